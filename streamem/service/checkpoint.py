"""The crash-safe state store: the model and the next offset of every partition, in one file.

A checkpoint is the daemon's source of truth. On restart the daemon loads the last checkpoint
and seeks every assigned partition to the offset stored in it, so a record that reached the
model before the checkpoint is never applied twice and one after it is never lost.

The file is one JSON document (never a pickle)::

    {"schema_version": 2, "key": "...", "version": 42, "created_at": 1700000000.0,
     "offsets": [{"topic": "sensors", "partition": 0, "offset": 1234,
                  "log": {"topic_id": "01a2...", "last": [1233, 1700000000123, 2961574170]}},
                 ...],
     "model": {...}}

``log`` (schema version 2; version 1 files, without it, are read too) identifies the log the
offset belongs to: the broker's topic id where it gives one, and the fingerprint of the last
record settled below the offset (its offset, timestamp and the CRC-32 of its value), which the
daemon compares with what it reads again after a restart (see :mod:`streamem.service.app`).

It is written atomically: to a temporary file in the same directory, flushed and fsynced, renamed
over the previous file with :func:`os.replace`, and then the directory itself is fsynced so that
the rename survives a power cut. A reader therefore sees the previous checkpoint or the new one,
never a mixture; a temporary file left behind by a crash is ignored (and may be deleted).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamem.errors import StreamemError, ValidationError

__all__ = [
    "SCHEMA_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "highest_version",
    "partition_set_key",
    "prepare_state_dir",
]

SCHEMA_VERSION = 2
"""Version of the checkpoint file layout that this module writes (it reads 1 and 2)."""

_READABLE = (1, 2)

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
_SUFFIX = ".checkpoint.json"
_TMP_SUFFIX = ".tmp"
_ORPHAN_AGE_SECONDS = 60.0  # a write takes milliseconds: an older temporary file is an orphan
_PROBE = ".streamem-write-probe"


class CheckpointError(StreamemError):
    """A checkpoint cannot be read or written; the message names the file.

    Examples
    --------
    >>> raise CheckpointError("checkpoint file 'state/x.checkpoint.json' is not valid JSON")
    Traceback (most recent call last):
    ...
    streamem.service.checkpoint.CheckpointError: checkpoint file ... is not valid JSON
    """


@dataclass(frozen=True)
class Checkpoint:
    """The daemon's state at one point of the stream.

    Parameters
    ----------
    model
        The model's JSON-able state (opaque to the store); it round-trips exactly, floats
        included, but must not contain NaN or infinities.
    offsets
        The next offset to read for each ``(topic, partition)``.
    version
        The model version (monotonic, >= 0).
    created_at
        Unix time of the checkpoint; now by default.
    logs
        Per ``(topic, partition)``, what identifies its log: ``{"topic_id": str or None,
        "last": [offset, timestamp, crc32] or None}`` (see the module docstring).

    Examples
    --------
    >>> checkpoint = Checkpoint(model={"weights": [0.5, 0.5]}, offsets={("sensors", 0): 120},
    ...                         version=7, created_at=1700000000.0)
    >>> checkpoint.offsets[("sensors", 0)]
    120
    """

    model: dict[str, Any]
    offsets: dict[tuple[str, int], int]
    version: int
    created_at: float = field(default_factory=time.time)
    logs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, dict):
            raise ValidationError(f"model: expected a dict, received {type(self.model).__name__}")
        if type(self.version) is not int or self.version < 0:
            raise ValidationError(f"version: expected an integer >= 0, received {self.version!r}")
        if isinstance(self.created_at, bool) or not isinstance(self.created_at, int | float):
            raise ValidationError(f"created_at: expected a number, received {self.created_at!r}")
        for tp, offset in self.offsets.items():
            if (
                not isinstance(tp, tuple)
                or len(tp) != 2
                or not isinstance(tp[0], str)
                or type(tp[1]) is not int
                or tp[1] < 0
            ):
                raise ValidationError(
                    f"offsets: expected (topic, partition >= 0) keys, received {tp!r}"
                )
            if type(offset) is not int or offset < 0:
                raise ValidationError(
                    f"offsets[{tp!r}]: expected an integer >= 0, received {offset!r}"
                )
        for tp, mark in self.logs.items():
            if not _is_log_mark(mark):
                raise ValidationError(
                    f"logs[{tp!r}]: expected {{topic_id: str or null, last: [offset, "
                    f"timestamp, crc32] or null}}, received {mark!r}"
                )

    def to_json(self) -> dict[str, Any]:
        """Return the file's JSON document (without ``schema_version`` and ``key``).

        Examples
        --------
        >>> Checkpoint(model={}, offsets={("t", 1): 5}, version=0, created_at=0.0).to_json()
        {'version': 0, 'created_at': 0.0, 'offsets': [{'topic': 't', 'partition': 1, 'offset': 5}],
         'model': {}}
        """
        return {
            "version": self.version,
            "created_at": float(self.created_at),
            "offsets": [
                {"topic": topic, "partition": partition, "offset": offset}
                | (
                    {"log": self.logs[(topic, partition)]}
                    if (topic, partition) in self.logs
                    else {}
                )
                for (topic, partition), offset in sorted(self.offsets.items())
            ],
            "model": self.model,
        }


def prepare_state_dir(directory: str | Path, *, now: float | None = None) -> list[Path]:
    """Make sure checkpoints can be written in ``directory``; remove orphaned temporary files.

    The directory is created if missing; a probe file is written, fsynced, renamed, fsynced
    with its directory and removed (every step a checkpoint takes). Temporary files of
    checkpoint writes that were killed (``.<key>.*.tmp``, older than a minute, so that a
    replica writing in the same directory is left alone) are deleted.

    Parameters
    ----------
    directory
        The state directory (``state.dir``).
    now
        Unix time to judge the age of temporary files by (now by default).

    Returns
    -------
    list of Path
        The orphaned temporary files removed.

    Raises
    ------
    CheckpointError
        If the directory cannot be created, written or synced; the message names it.

    Examples
    --------
    >>> import tempfile
    >>> prepare_state_dir(tempfile.mkdtemp())
    []
    """
    path = Path(directory)
    where = f"the state directory {str(path)!r} (state.dir)"
    probe = path / _PROBE
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe.with_suffix(_TMP_SUFFIX), "wb") as handle:
            handle.write(b"streamem")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(probe.with_suffix(_TMP_SUFFIX), probe)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise CheckpointError(
            f"cannot write checkpoints in {where}: {exc.strerror or exc}; make it writable by "
            f"this user (or point state.dir elsewhere)"
        ) from exc
    limit = (time.time() if now is None else now) - _ORPHAN_AGE_SECONDS
    removed = []
    for orphan in sorted(path.glob(f".*{_TMP_SUFFIX}")):
        with contextlib.suppress(OSError):
            if orphan.is_file() and orphan.stat().st_mtime < limit:
                orphan.unlink()
                removed.append(orphan)
    return removed


def highest_version(directory: str | Path, model_name: str, topics: Iterable[str]) -> int:
    """The highest version stored by a checkpoint of ``model_name`` reading ``topics`` in
    ``directory`` (0: none).

    Every partition set of a model has its own checkpoint, but they publish under one key: a
    new partition set continues above this, so that versions never go backwards on the output
    topic. A file counts when its name is the model's followed by one of ``topics`` (see
    :func:`partition_set_key`), so another model whose name starts with this one's (``sensors``
    and ``sensors.v2``) never lends it a version. Unreadable files are skipped (their own load
    reports them).

    Examples
    --------
    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> key = partition_set_key("sensors", [("readings", 0)])
    >>> CheckpointStore(directory, key).save(Checkpoint(model={}, offsets={}, version=7))
    >>> key = partition_set_key("sensors.v2", [("readings", 0)])
    >>> CheckpointStore(directory, key).save(Checkpoint(model={}, offsets={}, version=105))
    >>> highest_version(directory, "sensors", ["readings"])
    7
    >>> highest_version(directory, "other", ["readings"])
    0
    """
    model = _SAFE.sub("_", model_name)
    highest = 0
    for topic in set(topics):
        prefix = f"{model}.{_SAFE.sub('_', topic)}-".lstrip(".")
        for path in Path(directory).glob(f"{glob.escape(prefix)}*{_SUFFIX}"):
            try:
                version = json.loads(path.read_bytes()).get("version")
            except (OSError, ValueError, AttributeError):
                continue
            if type(version) is int:
                highest = max(highest, version)
    return highest


def partition_set_key(model_name: str, partitions: Iterable[tuple[str, int]]) -> str:
    """Return a stable, filesystem-safe name for a model and a set of partitions.

    The name is readable (the model, each topic and its partitions) and ends with a hash of the
    exact set, so it does not depend on the order of ``partitions`` and two different sets never
    share a name. It changes whenever the set changes.

    Parameters
    ----------
    model_name
        The model's name (``model.name``).
    partitions
        The assigned ``(topic, partition)`` pairs; duplicates are ignored.

    Returns
    -------
    str
        At most about 150 characters among letters, digits, ``.``, ``_`` and ``-``.

    Raises
    ------
    ValidationError
        If ``partitions`` is empty.

    Examples
    --------
    >>> key = partition_set_key("sensors", [("sensors", 1), ("sensors", 0)])
    >>> key
    'sensors.sensors-0-1.4b662b598e38f912'
    >>> key == partition_set_key("sensors", [("sensors", 0), ("sensors", 1)])
    True
    """
    pairs = sorted({(str(topic), int(partition)) for topic, partition in partitions})
    if not pairs:
        raise ValidationError("partitions: expected at least one (topic, partition), received none")
    canonical = json.dumps([model_name, pairs], separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    by_topic: dict[str, list[int]] = {}
    for topic, partition in pairs:
        by_topic.setdefault(topic, []).append(partition)
    readable = ".".join(
        [_SAFE.sub("_", model_name)]
        + [f"{_SAFE.sub('_', t)}-{'-'.join(map(str, ps))}" for t, ps in by_topic.items()]
    )
    readable = readable.lstrip(".")[:120] or "_"
    return f"{readable}.{digest}"


class CheckpointStore:
    """Saves and loads the checkpoint of one partition set, atomically, in a local directory.

    Parameters
    ----------
    directory
        The state directory (``state.dir``); created if missing.
    key
        The name of the partition set, see :func:`partition_set_key`; the file is
        ``<directory>/<key>.checkpoint.json``.

    Examples
    --------
    >>> import tempfile
    >>> store = CheckpointStore(tempfile.mkdtemp(), partition_set_key("sensors", [("sensors", 0)]))
    >>> store.load() is None
    True
    >>> store.save(Checkpoint(model={"n_seen": 10}, offsets={("sensors", 0): 10}, version=1))
    >>> store.load().offsets
    {('sensors', 0): 10}
    """

    def __init__(self, directory: str | Path, key: str) -> None:
        if not _KEY.match(key):
            raise ValidationError(
                f"key: expected 1-200 characters among letters, digits, '.', '_', '-' not "
                f"starting with '.', received {key!r}"
            )
        self.directory = Path(directory)
        self.key = key
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(
                f"cannot create the state directory {str(self.directory)!r}: {exc}"
            ) from exc

    @property
    def path(self) -> Path:
        """The checkpoint file."""
        return self.directory / f"{self.key}{_SUFFIX}"

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.directory)!r}, {self.key!r})"

    def save(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` atomically and durably, replacing the previous one.

        Parameters
        ----------
        checkpoint
            The state to store.

        Raises
        ------
        CheckpointError
            If the model state is not JSON (or holds NaN / infinities) or the file cannot be
            written; the previous checkpoint is then left untouched.
        """
        document = {"schema_version": SCHEMA_VERSION, "key": self.key, **checkpoint.to_json()}
        try:
            data = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"cannot write checkpoint file {str(self.path)!r}: the model state is not "
                f"JSON-serialisable without NaN or infinities ({exc})"
            ) from exc
        try:
            fd, tmp_name = tempfile.mkstemp(
                dir=self.directory, prefix=f".{self.key}.", suffix=_TMP_SUFFIX
            )
        except OSError as exc:
            raise CheckpointError(
                f"cannot write checkpoint file {str(self.path)!r}: {exc}"
            ) from exc
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            if isinstance(exc, OSError):
                raise CheckpointError(
                    f"cannot write checkpoint file {str(self.path)!r}: {exc}"
                ) from exc
            raise
        self._fsync_directory()

    def identity(self) -> tuple[int, int, int] | None:
        """What identifies the file now on disk (inode, modification time, size), or None.

        Each save replaces the file, so a different identity than the one after this store's
        own last :meth:`save` or :meth:`load` means another writer (a replica that took the
        partitions) advanced the checkpoint.
        """
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _fsync_directory(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError as exc:
            raise CheckpointError(
                f"cannot sync the state directory {str(self.directory)!r}: {exc}"
            ) from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise CheckpointError(
                f"cannot sync the state directory {str(self.directory)!r}: {exc}"
            ) from exc
        finally:
            os.close(fd)

    def load(self) -> Checkpoint | None:
        """Return the stored checkpoint, or None if none was ever saved.

        Returns
        -------
        Checkpoint or None
            The last checkpoint saved.

        Raises
        ------
        CheckpointError
            If the file exists but cannot be read, is corrupt or truncated, was written by an
            unknown schema version or for another key. The daemon must not silently start over.
        """
        path = self.path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint file {str(path)!r}: {exc}") from exc
        try:
            document = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, _NonFiniteError) as exc:
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is corrupt or truncated (not valid JSON: {exc}); "
                f"restore it from a backup or delete it to start the model over"
            ) from exc
        return _from_document(document, path, self.key)


class _NonFiniteError(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise _NonFiniteError(f"the literal {name} is not JSON")


def _from_document(document: Any, path: Path, key: str) -> Checkpoint:
    where = f"checkpoint file {str(path)!r}"
    if not isinstance(document, dict):
        raise CheckpointError(f"{where} is corrupt: expected a JSON object")
    schema = document.get("schema_version")
    if schema not in _READABLE:
        raise CheckpointError(
            f"{where} has schema_version {schema!r}; this streamem reads schema_version "
            f"{' or '.join(map(str, _READABLE))} only"
        )
    expected = {"schema_version", "key", "version", "created_at", "offsets", "model"}
    if set(document) != expected:
        missing = sorted(expected - set(document))
        unknown = sorted(set(document) - expected)
        raise CheckpointError(f"{where} is corrupt: missing keys {missing}, unknown keys {unknown}")
    if document["key"] != key:
        raise CheckpointError(f"{where} belongs to key {document['key']!r}, expected {key!r}")
    offsets = document["offsets"]
    if not isinstance(offsets, list) or not all(_is_offset(entry) for entry in offsets):
        raise CheckpointError(
            f"{where} is corrupt: 'offsets' must be a list of {{topic, partition, offset}}"
        )
    table = {(entry["topic"], entry["partition"]): entry["offset"] for entry in offsets}
    logs = {(e["topic"], e["partition"]): e["log"] for e in offsets if "log" in e}
    if len(table) != len(offsets):
        raise CheckpointError(f"{where} is corrupt: a partition appears twice in 'offsets'")
    try:
        return Checkpoint(
            model=document["model"],
            offsets=table,
            version=document["version"],
            created_at=document["created_at"],
            logs=logs,
        )
    except ValidationError as exc:
        raise CheckpointError(f"{where} is corrupt: {exc}") from exc


def _is_log_mark(mark: Any) -> bool:
    if not isinstance(mark, Mapping) or set(mark) != {"topic_id", "last"}:
        return False
    last = mark["last"]
    return (mark["topic_id"] is None or isinstance(mark["topic_id"], str)) and (
        last is None
        or (isinstance(last, list) and len(last) == 3 and all(type(x) is int for x in last))
    )


def _is_offset(entry: Any) -> bool:
    return (
        isinstance(entry, Mapping)
        and set(entry) - {"log"} == {"topic", "partition", "offset"}
        and isinstance(entry["topic"], str)
        and type(entry["partition"]) is int
        and type(entry["offset"]) is int
    )
