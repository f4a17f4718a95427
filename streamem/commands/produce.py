"""``streamem produce``: readings into a Kafka topic, from a file or the synthetic sensor stream.

Every record is a JSON object, the format that ``input.format: json`` reads:

- from a file (:mod:`streamem.datafiles`: CSV, NDJSON, ``.npy``), each row becomes
  ``{"<feature>": value, ...}`` with its numeric features (a missing value is ``null``), no key;
- from the synthetic stream (:class:`streamem.synthetic.SensorStream`), each reading is
  ``{"machine": "m2", "ts": ..., "temp": ..., "hum": ..., "vib": ...}`` keyed by its machine.

Examples
--------
>>> from streamem.synthetic import SensorStream
>>> key, value = next(synthetic_records(SensorStream(seed=0)))
>>> key, sorted(json.loads(value))
(b'm1', ['hum', 'machine', 'temp', 'ts', 'vib'])
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from itertools import islice

from streamem.datafiles import DataFile
from streamem.synthetic import SensorStream

__all__ = [
    "MALFORMED",
    "file_records",
    "paced",
    "send_records",
    "synthetic_records",
    "with_malformed",
]

Message = tuple[bytes | None, bytes]
"""A record's key (or None) and value."""

_BLOCK = 200  # readings generated at once

MALFORMED = b'{"temp": "hot"'
"""What :func:`with_malformed` sends instead of a reading: truncated JSON, a string feature."""


def synthetic_records(stream: SensorStream) -> Iterator[Message]:
    """The synthetic readings, stamped with the current time, keyed by machine, forever."""
    while True:
        for reading in stream.take(_BLOCK, timestamp=round(time.time(), 3)):
            yield str(reading["machine"]).encode(), json.dumps(reading).encode()


def file_records(data: DataFile) -> Iterator[Message]:
    """Every row of a data file as a JSON object of its features (NaN as null), unkeyed."""
    for chunk in data.chunks():
        for row in chunk.tolist():
            values = {
                f: None if math.isnan(v) else v for f, v in zip(data.features, row, strict=True)
            }
            yield None, json.dumps(values).encode()


def with_malformed(messages: Iterator[Message], every: int | None) -> Iterator[Message]:
    """``messages`` with every ``every``-th one replaced by :data:`MALFORMED` (None: none).

    For trying the dead-letter path of a daemon.

    Examples
    --------
    >>> sent = with_malformed(iter([(None, b"1"), (None, b"2"), (None, b"3")]), every=2)
    >>> [value for _, value in sent]
    [b'1', b'{"temp": "hot"', b'3']
    """
    for n, (key, value) in enumerate(messages, start=1):
        yield (key, MALFORMED) if every and n % every == 0 else (key, value)


def paced(
    messages: Iterator[Message],
    rate: float | None,
    stop: threading.Event | None = None,
) -> Iterator[Message]:
    """``messages`` at about ``rate`` per second (as fast as possible if None) until ``stop``."""
    started = time.monotonic()
    for n, message in enumerate(messages):
        if stop is not None and stop.is_set():
            return
        if rate is not None:
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield message


def send_records(
    bootstrap_servers: str,
    topic: str,
    messages: Iterator[Message],
    count: int | None = None,
) -> int:
    """Send ``count`` messages (all if None) to ``topic`` with kafka-python; return how many.

    Every message is acknowledged by the broker before this returns (the producer is flushed).
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="streamem-produce",
        linger_ms=20,
        acks=1,
        enable_idempotence=False,
    )
    sent = 0
    try:
        for key, value in islice(messages, count):
            producer.send(topic, key=key, value=value)
            sent += 1
        producer.flush()
    finally:
        producer.close(timeout=5)
    return sent
