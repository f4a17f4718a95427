"""Reading the model snapshots that the daemon publishes, from its output topic.

:class:`SnapshotReader` reads a topic from its beginning, without a consumer group (so it never
waits for a group join and never moves a group's offsets), and hands out the snapshots in the
order of their versions. ``streamem inspect`` reads until the topic is quiet; ``streamem demo``
polls it for its live view.
"""

from __future__ import annotations

import json
import time
from typing import Any

from streamem.errors import ValidationError

__all__ = ["SnapshotReader", "latest_snapshots"]


class SnapshotReader:
    """New snapshots of a topic (of one model, if ``model`` is given), oldest version first.

    Records whose value is not a JSON object with a ``version`` are skipped: the topic may be
    shared with other writers.
    """

    def __init__(self, bootstrap_servers: str, topic: str, model: str | None = None) -> None:
        from kafka import KafkaConsumer

        self.topic = topic
        self.model = model
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id="streamem-snapshots",
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._assigned = False

    def poll(self, timeout: float = 0.2) -> list[dict[str, Any]]:
        """The snapshots that arrived since the last call (waits up to ``timeout`` seconds)."""
        if not self._assign():
            time.sleep(timeout)
            return []
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        found = []
        for records in batches.values():
            for record in records:
                snapshot = self._decode(record.key, record.value)
                if snapshot is not None:
                    found.append(snapshot)
        return sorted(found, key=lambda snapshot: snapshot["version"])

    @property
    def assigned(self) -> bool:
        """Whether the topic exists and the reader reads all its partitions."""
        return self._assigned

    def close(self) -> None:
        """Leave the broker."""
        self._consumer.close()

    def _assign(self) -> bool:
        if self._assigned:
            return True
        from kafka import TopicPartition

        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            return False
        self._consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        self._consumer.seek_to_beginning()
        self._assigned = True
        return True

    def _decode(self, key: bytes | None, value: bytes | None) -> dict[str, Any] | None:
        if self.model is not None and key != self.model.encode():
            return None
        try:
            snapshot = json.loads(value or b"")
        except ValueError:
            snapshot = None
        if not isinstance(snapshot, dict) or not isinstance(snapshot.get("version"), int):
            return None
        return snapshot


def latest_snapshots(
    bootstrap_servers: str,
    topic: str,
    model: str | None = None,
    *,
    quiet_seconds: float = 2.0,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Every snapshot of ``topic``, read until it stayed quiet ``quiet_seconds``, oldest first.

    Raises
    ------
    ValidationError
        If the topic holds no snapshot (of ``model``) after ``timeout`` seconds or once quiet, or
        snapshots of several models and ``model`` is None.
    """
    reader = SnapshotReader(bootstrap_servers, topic, model)
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        last_news = time.monotonic()
        while time.monotonic() < deadline:
            news = reader.poll(0.25)
            if news:
                found.extend(news)
                last_news = time.monotonic()
            elif time.monotonic() - last_news >= quiet_seconds and (found or reader.assigned):
                break
    finally:
        reader.close()
    if not found:
        which = f" of model {model!r}" if model else ""
        raise ValidationError(f"no model snapshot{which} in topic {topic!r} on {bootstrap_servers}")
    names = sorted({str(snapshot.get("model")) for snapshot in found})
    if len(names) > 1:
        raise ValidationError(f"topic {topic!r} holds models {names}: choose one with --model")
    return sorted(found, key=lambda snapshot: snapshot["version"])
