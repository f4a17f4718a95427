"""The Kafka daemon: config, codecs, source, batching, learning, publishing, checkpoints."""
