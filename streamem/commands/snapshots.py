"""Reading the model snapshots that the daemon publishes, from its output topic.

:class:`SnapshotReader` reads a topic from its beginning, without a consumer group (so it never
waits for a group join and never moves a group's offsets), and hands out the snapshots in the
order of their versions. ``streamem inspect`` reads up to the end of every partition as of
its start (:func:`latest_snapshots`), so a daemon that keeps publishing does not keep it
waiting; ``streamem demo`` polls it for its live view.

The ends are the partitions' high watermarks as the first fetch reports them
(``KafkaConsumer.highwater``): ``end_offsets()`` would be the usual way, but the test broker
(Tansu) answers it wrongly, and the first fetch is sent at once anyway.
"""

from __future__ import annotations

import json
import time
from typing import Any

from streamem.commands.connect import connect
from streamem.errors import StreamemError, ValidationError

__all__ = ["SnapshotReader", "latest_snapshots", "newest_run"]

_TOPIC_WAIT_SECONDS = 5.0  # a topic whose metadata has not come within this time does not exist


class SnapshotReader:
    """New snapshots of a topic (of one model, if ``model`` is given), in publication order.

    Records whose value is not a JSON object with a ``version`` are skipped: the topic may be
    shared with other writers. So is a snapshot older than the newest one read of its model in
    both version and build time: a member expelled from the group while its producer still held
    a snapshot delivers it late (``docs/scale-out-protocol.md``). A lower version built later
    is a new lineage (the model's state was deleted) and is read.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        model: str | None = None,
        *,
        connect_timeout: float = 10.0,
    ) -> None:
        from kafka import KafkaConsumer

        self.topic = topic
        self.model = model
        self._consumer = connect(
            KafkaConsumer,
            bootstrap_servers,
            connect_timeout,
            client_id="streamem-snapshots",
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._assigned = False
        self._newest: dict[bytes | None, tuple[int, float]] = {}

    def poll(self, timeout: float = 0.2) -> list[dict[str, Any]]:
        """The snapshots that arrived since the last call (waits up to ``timeout`` seconds), in
        the order they were published (a model's records share a partition: its key)."""
        if not self._assign():
            time.sleep(timeout)
            return []
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        found = []
        for records in batches.values():
            for record in records:
                snapshot = self._decode(record.key, record.value)
                if snapshot is None:
                    continue
                made = (snapshot["version"], float(snapshot.get("timestamp") or 0.0))
                newest = self._newest.get(record.key)
                if newest is not None and made[0] <= newest[0] and made[1] <= newest[1]:
                    continue  # delivered late by an expelled member
                self._newest[record.key] = made
                found.append(snapshot)
        return found

    def at_ends(self, ends: dict[Any, int]) -> bool:
        """Whether every partition was read up to its offset in ``ends``; partitions whose
        high watermark became known since the last call are added to ``ends`` first (so
        ``ends`` holds each partition's end as of the first fetch)."""
        if not self._assigned:
            return False
        for partition in self._consumer.assignment():
            if partition not in ends:
                highwater = self._consumer.highwater(partition)
                if highwater is None:
                    return False
                ends[partition] = highwater
        return all(self._consumer.position(p) >= end for p, end in ends.items())

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
    timeout: float = 30.0,
    connect_timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Every snapshot of ``topic`` published before the call, in the order of publication.

    Reads each partition up to its end as of the start of the call (see the module docstring)
    and stops; ``timeout`` bounds the whole read (a topic that does not exist or a broker that
    stops answering).

    Raises
    ------
    BrokerUnreachableError
        If no broker answered within ``connect_timeout`` seconds.
    ValidationError
        If the topic holds no snapshot (of ``model``), does not exist, or holds snapshots of
        several models and ``model`` is None.
    StreamemError
        If the topic could not be read to its end within ``timeout`` seconds.
    """
    reader = SnapshotReader(bootstrap_servers, topic, model, connect_timeout=connect_timeout)
    found: list[dict[str, Any]] = []
    ends: dict[Any, int] = {}
    try:
        started = time.monotonic()
        while not reader.at_ends(ends):
            waited = time.monotonic() - started
            if not reader.assigned and waited >= min(timeout, _TOPIC_WAIT_SECONDS):
                raise ValidationError(f"no topic {topic!r} on {bootstrap_servers}")
            if waited >= timeout:
                raise StreamemError(
                    f"topic {topic!r} on {bootstrap_servers} was not read to its end within "
                    f"{timeout:g} s"
                )
            found.extend(reader.poll(0.25))
    finally:
        reader.close()
    if not found:
        which = f" of model {model!r}" if model else ""
        raise ValidationError(f"no model snapshot{which} in topic {topic!r} on {bootstrap_servers}")
    names = sorted({str(snapshot.get("model")) for snapshot in found})
    if len(names) > 1:
        raise ValidationError(f"topic {topic!r} holds models {names}: choose one with --model")
    return found


def newest_run(snapshots: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The snapshots since the versions last started again, and a warning if they did.

    A model's versions increase while one lineage publishes; a daemon whose state was reset
    or that was switched to scale-out publishes from version 1 again. Its newest record is
    then the model, not the highest version.

    Examples
    --------
    >>> run, warning = newest_run([{"version": 20}, {"version": 21}, {"version": 1}])
    >>> [s["version"] for s in run]
    [1]
    >>> print(warning)
    version 1 was published after version 21: the model's versions started again (a daemon
    whose state was reset, or switched to scale-out); showing the newest run, from version 1
    """
    starts = [i for i in range(1, len(snapshots)) if _starts_again(snapshots[i], snapshots[i - 1])]
    if not starts:
        return snapshots, None
    at = starts[-1]
    version, before = snapshots[at]["version"], snapshots[at - 1]["version"]
    return snapshots[at:], (
        f"version {version} was published after version {before}: the model's versions "
        "started again (a daemon whose state was reset, or switched to scale-out); showing "
        f"the newest run, from version {version}"
    )


def _starts_again(snapshot: dict[str, Any], before: dict[str, Any]) -> bool:
    """Whether ``snapshot`` starts a new run of versions after ``before``."""
    return bool(snapshot["version"] <= before["version"])
