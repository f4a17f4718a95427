"""End-to-end throughput of the daemon next to the raw kafka-python consume rate.

One Tansu broker on loopback, two workloads produced before timing starts:

- JSON: one sensor reading per record (``{"sensor": ..., "ts": ..., "temp": ..., ...}``);
- packed: 1,000 points of 3 little-endian float32 features per record (12 KB).

For each, the raw rate is a kafka-python consumer (``assign`` + ``seek_to_beginning``, the
daemon's fetch settings) that reads every record and does nothing with it; the daemon rate is
:class:`streamem.service.app.Daemon` with its real Kafka source and producer, from the first
record it reads until every point is learned (decode and validate, micro-batch, stepwise EM,
publish, checkpoint and commit included; the group join before the first record is not timed).
Each is measured ``--repeat`` times, alternately, and the best run is reported (a new consumer
group and state directory for every daemon run). The JSON workload runs the daemon twice per
repetition: with the short path of :func:`streamem.service.codecs.row_decoder` parsing with
Python's C scanner (``stdlib``, the parser before msgspec) and with msgspec (the default), and
a third time with msgspec and ``output.results_topic`` set (one result record per reading).

Run: python benchmarks/daemon_throughput.py [--json-records 200000] [--packed-records 2000]
     [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import prometheus_client

from streamem.service.app import COLLECTOR_THRESHOLDS, Daemon
from streamem.service.broker import EmbeddedBroker
from streamem.service.codecs import row_decoder
from streamem.service.config import Settings
from streamem.service.publisher import KafkaSink
from streamem.service.source import KafkaSource
from streamem.synthetic import FEATURES, SensorModes

PARTITIONS = 4
POINTS_PER_PACKED_RECORD = 1_000
CONSUMER = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
    "max_poll_records": 5000,
    "fetch_max_bytes": 104_857_600,
    "max_partition_fetch_bytes": 16_777_216,
}


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = PARTITIONS) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        batch_size=1024 * 1024,
        max_request_size=16 * 1024 * 1024,
        acks=1,
    )
    for i, value in enumerate(values):
        producer.send(topic, value=value, partition=i % partitions)
    producer.flush(timeout=120)
    producer.close()


def json_records(X: np.ndarray) -> list[bytes]:
    """One JSON sensor reading per row of ``X``, with a sensor id and a time stamp."""
    return [
        json.dumps(
            {"sensor": f"s{i % 50}", "ts": 1.7e9 + i, **dict(zip(FEATURES, row, strict=True))}
        ).encode()
        for i, row in enumerate(X.tolist())
    ]


def raw_consume_seconds(bootstrap: str, topic: str, count: int) -> float:
    """Seconds a bare kafka-python consumer takes to read ``count`` records."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        **{k: v for k, v in CONSUMER.items() if "timeout" not in k and "heartbeat" not in k},
    )
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen, started = 0, None
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            if started is None:
                started = time.perf_counter()
            seen += len(records)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return elapsed


def daemon_seconds(
    settings: Settings, n_points: int, parser: str | None = None
) -> tuple[float, dict[str, Any]]:
    """Seconds the daemon takes from its first record until ``n_points`` points are learned
    (``parser``: the JSON parser of the row decoder's short path, None for the default)."""
    daemon = Daemon(
        settings,
        source_factory=lambda handler: KafkaSource(
            settings.kafka.topics, settings.consumer_kwargs(), handler
        ),
        sink_factory=lambda: KafkaSink(settings.producer_kwargs()),
    )
    if parser is not None:
        daemon._row_decoder = row_decoder(settings.input, parser)
    daemon.start()
    consumed = daemon.metrics.consumed
    started = None
    deadline = time.monotonic() + 300
    while daemon.learner is None or daemon.learner.status.n_seen < n_points:
        daemon.turn()
        if started is None and consumed._value.get() > 0:
            started = time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not learn every point in 300 s")
    elapsed = time.perf_counter() - (started or time.perf_counter())
    status = daemon.learner.status
    daemon.request_stop("benchmark done")
    daemon.shutdown()
    daemon.publisher.close(timeout=5)
    return elapsed, {
        "n_seen": status.n_seen,
        "updates": status.n_updates,
        "version": daemon.version,
    }


def settings_for(
    bootstrap: str, topic: str, state: Path, run: int, name: str, **overrides: Any
) -> Settings:
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": f"bench-{name}-{run}",
            "topics": [topic],
            "consumer": CONSUMER,
            "producer": {"max_request_size": 8_388_608},
        },
        "input": {"format": "json", "features": list(FEATURES)},
        "output": {"topic": f"{topic}.models", "dead_letter_topic": f"{topic}.dead"},
        "batching": {"batch_size": 1000, "max_wait_ms": 200},
        "model": {"name": topic, "n_components": 3, "init_size": 2000, "n_init": 3},
        "state": {"dir": str(state / f"{name}-{run}")},
        "metrics": {"enabled": False},
    }
    for section, values in overrides.items():
        data[section] = {**data[section], **values}
    return Settings.model_validate(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-records", type=int, default=200_000)
    parser.add_argument("--packed-records", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    gc.set_threshold(*COLLECTOR_THRESHOLDS)  # as `streamem run` does (both paths measured so)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    rng = np.random.default_rng(args.seed)
    modes = SensorModes.default()

    X, _ = modes.sample(args.json_records, rng)
    json_values = json_records(X)
    P, _ = modes.sample(args.packed_records * POINTS_PER_PACKED_RECORD, rng)
    packed_values = [chunk.astype("<f4").tobytes() for chunk in np.split(P, args.packed_records)]

    rows = []
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as state:
        bootstrap = broker.bootstrap_servers
        broker.create_topics(["bench-json", "bench-packed"], partitions=PARTITIONS)
        broker.create_topics(
            [f"{t}.{s}" for t in ("bench-json", "bench-packed") for s in ("models", "dead")]
        )
        broker.create_topics(["bench-json.results"], partitions=PARTITIONS)
        workloads: list[tuple[str, str, list[bytes], int, dict[str, Any], str | None]] = [
            ("JSON, 1 reading/record, stdlib", "bench-json", json_values, 1, {}, "stdlib"),
            ("JSON, 1 reading/record, msgspec", "bench-json", json_values, 1, {}, "msgspec"),
            (
                "JSON, msgspec, results on",
                "bench-json",
                json_values,
                1,
                {"output": {"results_topic": "bench-json.results"}},
                "msgspec",
            ),
            (
                f"packed f32, {POINTS_PER_PACKED_RECORD} points/record",
                "bench-packed",
                packed_values,
                POINTS_PER_PACKED_RECORD,
                {
                    "input": {"format": "packed_f32", "max_record_bytes": 4_194_304},
                    "batching": {"batch_size": 20_000, "max_wait_ms": 200},
                    "model": {"init_size": 20_000},
                },
                None,
            ),
        ]
        produce(bootstrap, "bench-json", json_values)
        produce(bootstrap, "bench-packed", packed_values)
        raws: dict[str, list[float]] = {}
        daemons: dict[str, list[float]] = {}
        for run in range(args.repeat):  # every workload in turn, so that load affects all
            for label, topic, values, per_record, overrides, json_parser in workloads:
                if topic not in raws or len(raws[topic]) <= run:
                    raws.setdefault(topic, []).append(
                        raw_consume_seconds(bootstrap, topic, len(values))
                    )
                name = f"{topic}-{json_parser}-{len(overrides)}"
                settings = settings_for(bootstrap, topic, Path(state), run, name=name, **overrides)
                seconds, info = daemon_seconds(settings, len(values) * per_record, json_parser)
                assert info["n_seen"] == len(values) * per_record, info
                daemons.setdefault(label, []).append(seconds)
        for label, topic, values, per_record, _, _ in workloads:
            rows.append((label, len(values), per_record, min(raws[topic]), min(daemons[label])))

    print()
    print(
        f"{'workload':<34} {'records':>9} {'points':>10} {'raw kafka-python':>18} "
        f"{'daemon end-to-end':>19} {'daemon points/s':>16} {'daemon/raw':>11}"
    )
    for label, n, per_record, raw, seconds in rows:
        print(
            f"{label:<34} {n:>9,} {n * per_record:>10,} {n / raw:>12,.0f} rec/s "
            f"{n / seconds:>13,.0f} rec/s {n * per_record / seconds:>16,.0f} {raw / seconds:>11.2f}"
        )
    before, after, results = (rows[i][3] / rows[i][4] for i in (0, 1, 2))
    packed_rate = rows[3][1] * rows[3][2] / rows[3][4]
    print()
    print(f"JSON path / raw consume: {before:.0%} with stdlib, {after:.0%} with msgspec")
    print(f"goal: JSON path >= 80% of the raw consume rate: {after:.0%}")
    print(f"goal: JSON path with results on >= 60% of the raw consume rate: {results:.0%}")
    print(f"goal: packed path >= 1,000,000 points/s: {packed_rate:,.0f} points/s")


if __name__ == "__main__":
    main()
