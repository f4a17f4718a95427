"""``streamem follow``: the daemon's results topic in the terminal, one line per result.

Each line says where the reading came from, which model version scored it, the family's
fields (in the order of the result record) and the score, and ends with ``ANOMALY`` when the
result flags one. The reader uses no consumer group (it moves no group's offsets) and starts at
the end of every partition (new results only) unless asked to read from the beginning.

Examples
--------
>>> print(result_line({"family": "gaussian_mixture",
...     "source": {"topic": "sensors", "partition": 0, "offset": 5120},
...     "model_version": 12, "warmup": False, "anomaly": True, "score": 19.31, "error": None,
...     "component": 1, "probabilities": [[1, 0.9981], [2, 0.0019]], "log_density": -19.31}))
sensors/0@5120 v12 component=1 probabilities=1:0.998,2:0.0019 log_density=-19.31 score=19.31 ANOMALY
>>> print(result_line({"family": "lda", "source": {"topic": "notes", "partition": 1, "offset": 7},
...     "model_version": None, "warmup": True, "anomaly": False, "score": None, "error": None}))
notes/1@7 warm-up
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from streamem.commands.connect import connect
from streamem.errors import ValidationError

__all__ = ["follow", "result_line"]

_COMMON = ("family", "source", "model_version", "warmup", "anomaly", "score", "error")


def _short(value: Any) -> str:
    """A field's value in few characters: numbers to 4 significant digits, ``[class,
    probability]`` pairs as ``class:probability`` joined by commas."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if value and all(isinstance(item, list) and len(item) == 2 for item in value):
            return ",".join(f"{_short(label)}:{_short(share)}" for label, share in value)
        return "[" + ",".join(_short(item) for item in value) + "]"
    return str(value)


def result_line(result: Mapping[str, Any]) -> str:
    """One line of a result record (see ``streamem/schemas/result.schema.json``)."""
    source = result["source"]
    where = f"{source['topic']}/{source['partition']}@{source['offset']}"
    if "index" in source:
        where += f"[{source['index']}]"
    if result.get("error") is not None:
        return f"{where} not scored: {result['error']}"
    if result.get("warmup"):
        return f"{where} warm-up"
    version = result.get("model_version")
    parts = [where, f"v{version}" if version is not None else "v?"]
    parts += [f"{name}={_short(value)}" for name, value in result.items() if name not in _COMMON]
    if result.get("score") is not None:
        parts.append(f"score={_short(result['score'])}")
    if result.get("anomaly"):
        parts.append("ANOMALY")
    return " ".join(parts)


def follow(
    bootstrap_servers: str,
    topic: str,
    *,
    write: Callable[[str], None] = print,
    anomalies_only: bool = False,
    from_beginning: bool = False,
    count: int | None = None,
    connect_timeout: float = 6.0,
    stop: threading.Event | None = None,
) -> int:
    """Write one line per result of ``topic`` until ``count`` lines were written or ``stop``
    is set (or Ctrl-C); return the number of lines.

    Raises
    ------
    ValidationError
        If the topic does not exist (no partition within a few seconds).
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = connect(
        KafkaConsumer,
        bootstrap_servers,
        connect_timeout,
        client_id="streamem-follow",
        enable_auto_commit=False,
    )
    stop = stop or threading.Event()
    written = 0
    try:
        deadline = time.monotonic() + 5.0
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValidationError(f"topic {topic!r} has no partition on {bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            consumer.seek_to_beginning()
        else:
            consumer.seek_to_end()
        while not stop.is_set() and (count is None or written < count):
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        result = json.loads(record.value or b"")
                        line = result_line(result)
                    except (ValueError, KeyError, TypeError):
                        continue  # not a result record
                    if anomalies_only and not result.get("anomaly"):
                        continue
                    write(line)
                    written += 1
                    if count is not None and written >= count:
                        return written
    finally:
        consumer.close()
    return written
