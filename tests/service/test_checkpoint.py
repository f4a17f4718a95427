"""The crash-safe checkpoint store."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamem.errors import StreamemError, ValidationError
from streamem.service.checkpoint import (
    SCHEMA_VERSION,
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    partition_set_key,
)

KEY = partition_set_key("sensors", [("sensors", 0), ("sensors", 1)])
MODEL = {
    "family": "gaussian_mixture",
    "weights": [0.1 + 0.2, 0.7],  # 0.30000000000000004 must survive exactly
    "means": [[1e-308, -0.0], [5e-324, 1.7976931348623157e308]],
    "n_seen": 12345678901234567890,
    "converged": False,
    "note": None,
}


def make_checkpoint(version: int = 3, **offsets: int) -> Checkpoint:
    table = {("sensors", int(p[1:])): o for p, o in offsets.items()} or {("sensors", 0): 10}
    return Checkpoint(model=MODEL, offsets=table, version=version, created_at=1700000000.25)


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "state", KEY)


# ---------------------------------------------------------------------------------------------
# Round trip and file layout
# ---------------------------------------------------------------------------------------------


def test_load_without_checkpoint_is_none(store: CheckpointStore) -> None:
    assert store.load() is None
    assert store.directory.is_dir()  # created by the constructor


def test_round_trip(store: CheckpointStore) -> None:
    checkpoint = make_checkpoint(p0=120, p1=7)
    store.save(checkpoint)
    loaded = store.load()
    assert loaded == checkpoint
    assert loaded is not None
    assert loaded.model["weights"][0] == 0.1 + 0.2
    assert loaded.offsets == {("sensors", 0): 120, ("sensors", 1): 7}


def test_save_replaces_the_previous_checkpoint(store: CheckpointStore) -> None:
    store.save(make_checkpoint(version=1, p0=10))
    store.save(make_checkpoint(version=2, p0=20))
    loaded = store.load()
    assert loaded is not None
    assert (loaded.version, loaded.offsets[("sensors", 0)]) == (2, 20)
    assert [path.name for path in store.directory.iterdir()] == [store.path.name]


def test_file_layout(store: CheckpointStore) -> None:
    store.save(make_checkpoint(p1=7, p0=120))
    assert store.path == store.directory / f"{KEY}.checkpoint.json"
    document = json.loads(store.path.read_text(encoding="utf-8"))
    assert document["schema_version"] == SCHEMA_VERSION == 2
    assert document["key"] == KEY
    assert document["version"] == 3
    assert document["created_at"] == 1700000000.25
    assert document["offsets"] == [
        {"topic": "sensors", "partition": 0, "offset": 120},
        {"topic": "sensors", "partition": 1, "offset": 7},
    ]
    assert document["model"] == MODEL


def test_default_created_at_is_now() -> None:
    import time

    before = time.time()
    checkpoint = Checkpoint(model={}, offsets={}, version=0)
    assert before <= checkpoint.created_at <= time.time()


def test_checkpoint_is_frozen() -> None:
    checkpoint = make_checkpoint()
    with pytest.raises(dataclasses.FrozenInstanceError):
        checkpoint.version = 4  # type: ignore[misc]


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
TOPICS = st.text(alphabet="abc.-_", min_size=1, max_size=8)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    model=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5),
    offsets=st.dictionaries(
        st.tuples(TOPICS, st.integers(0, 1000)), st.integers(0, 2**62), max_size=6
    ),
    version=st.integers(0, 2**62),
    created_at=st.floats(0, 4e9),
)
def test_round_trip_is_exact(
    store: CheckpointStore,
    model: dict[str, Any],
    offsets: dict[tuple[str, int], int],
    version: int,
    created_at: float,
) -> None:
    checkpoint = Checkpoint(model=model, offsets=offsets, version=version, created_at=created_at)
    store.save(checkpoint)
    loaded = store.load()
    assert loaded == checkpoint
    assert loaded is not None
    assert json.dumps(loaded.model, sort_keys=True) == json.dumps(model, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Atomicity and durability
# ---------------------------------------------------------------------------------------------


def test_leftover_temp_file_from_a_crash_is_ignored(store: CheckpointStore) -> None:
    store.save(make_checkpoint(version=1, p0=10))
    # A crash after writing half of the next checkpoint leaves a temp file beside the real one.
    leftover = store.directory / f".{KEY}.abc123.tmp"
    leftover.write_bytes(b'{"schema_version": 1, "key": "' + KEY.encode() + b'", "vers')
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == 1
    # ... and the next save still works.
    store.save(make_checkpoint(version=2, p0=20))
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == 2


def test_leftover_temp_file_without_checkpoint_means_no_checkpoint(store: CheckpointStore) -> None:
    (store.directory / f".{KEY}.abc123.tmp").write_bytes(b"{")
    assert store.load() is None


def test_crash_before_rename_keeps_the_previous_checkpoint(
    store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(make_checkpoint(version=1, p0=10))

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CheckpointError, match="No space left on device") as info:
        store.save(make_checkpoint(version=2, p0=20))
    assert str(store.path) in str(info.value)
    monkeypatch.undo()
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == 1
    assert [path.name for path in store.directory.iterdir()] == [store.path.name]  # temp removed


def test_interrupted_save_keeps_the_previous_checkpoint(
    store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(make_checkpoint(version=1))

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.save(make_checkpoint(version=2))
    monkeypatch.undo()
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == 1


def test_save_fsyncs_the_file_before_the_rename_and_the_directory_after(
    store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        events.append("fsync-dir" if target == store.directory.resolve() else "fsync-file")
        real_fsync(fd)

    def replace(src: str, dst: object) -> None:
        events.append("replace")
        assert Path(src).parent == Path(str(dst)).parent  # a rename within one directory
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.save(make_checkpoint())
    assert events == ["fsync-file", "replace", "fsync-dir"]


def test_model_that_is_not_json_is_refused_and_nothing_changes(store: CheckpointStore) -> None:
    store.save(make_checkpoint(version=1))
    for bad_model in ({"weights": [float("nan")]}, {"array": object()}, {"inf": float("inf")}):
        bad = Checkpoint(model=bad_model, offsets={}, version=2)
        with pytest.raises(CheckpointError, match="JSON"):
            store.save(bad)
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == 1
    assert len(list(store.directory.iterdir())) == 1


# ---------------------------------------------------------------------------------------------
# Corrupt files are errors that name the file
# ---------------------------------------------------------------------------------------------


def corrupt_error(store: CheckpointStore, content: bytes) -> CheckpointError:
    store.path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        store.load()
    assert str(store.path) in str(info.value)
    return info.value


def good_document(store: CheckpointStore) -> dict[str, Any]:
    store.save(make_checkpoint())
    document: dict[str, Any] = json.loads(store.path.read_bytes())
    return document


def test_truncated_file(store: CheckpointStore) -> None:
    store.save(make_checkpoint())
    content = store.path.read_bytes()
    for cut in (0, 1, len(content) // 2, len(content) - 1):
        error = corrupt_error(store, content[:cut])
        assert "corrupt or truncated" in str(error)


def test_garbage_file(store: CheckpointStore) -> None:
    assert "corrupt" in str(corrupt_error(store, b"\x00\xff garbage"))


def test_unknown_schema_version(store: CheckpointStore) -> None:
    document = good_document(store)
    document["schema_version"] = 99
    error = corrupt_error(store, json.dumps(document).encode())
    assert "schema_version 99" in str(error)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("offsets"),
        lambda d: d.pop("model"),
        lambda d: d.update(extra=1),
        lambda d: d.update(model=[1, 2]),
        lambda d: d.update(version=-1),
        lambda d: d.update(version="3"),
        lambda d: d.update(created_at="yesterday"),
        lambda d: d.update(offsets={"sensors": 1}),
        lambda d: d.update(offsets=[{"topic": "t", "partition": 0}]),
        lambda d: d.update(offsets=[{"topic": "t", "partition": "0", "offset": 1}]),
        lambda d: d.update(offsets=[{"topic": "t", "partition": 0, "offset": -5}]),
        lambda d: d.update(offsets=[{"topic": "t", "partition": 0, "offset": 1}] * 2),
        lambda d: d.update(key="another.key"),
    ],
)
def test_structurally_invalid_file(store: CheckpointStore, mutate: Any) -> None:
    document = good_document(store)
    mutate(document)
    corrupt_error(store, json.dumps(document).encode())


def test_non_standard_json_literals_are_refused(store: CheckpointStore) -> None:
    document = json.dumps(good_document(store)).replace("0.7", "NaN")
    assert "corrupt" in str(corrupt_error(store, document.encode()))


def test_not_a_json_object(store: CheckpointStore) -> None:
    corrupt_error(store, b"[1, 2, 3]")


def test_unreadable_path_is_an_error(store: CheckpointStore) -> None:
    store.path.mkdir()  # a directory where the file should be
    with pytest.raises(CheckpointError, match=re.escape(str(store.path))):
        store.load()


def test_checkpoint_error_is_a_streamem_error() -> None:
    assert issubclass(CheckpointError, StreamemError)


# ---------------------------------------------------------------------------------------------
# Validation of the checkpoint and the store
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": [], "offsets": {}, "version": 0},
        {"model": {}, "offsets": {}, "version": -1},
        {"model": {}, "offsets": {}, "version": True},
        {"model": {}, "offsets": {}, "version": 0, "created_at": "now"},
        {"model": {}, "offsets": {("t", -1): 0}, "version": 0},
        {"model": {}, "offsets": {("t", 0): -1}, "version": 0},
        {"model": {}, "offsets": {"t": 0}, "version": 0},
        {"model": {}, "offsets": {(0, 0): 0}, "version": 0},
    ],
)
def test_invalid_checkpoint(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Checkpoint(**kwargs)


@pytest.mark.parametrize("key", ["", ".hidden", "a/b", "a b", "x" * 201, "..", "é"])
def test_invalid_store_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValidationError, match="key"):
        CheckpointStore(tmp_path, key)


def test_stores_of_different_keys_are_independent(tmp_path: Path) -> None:
    first = CheckpointStore(tmp_path, partition_set_key("m", [("t", 0)]))
    second = CheckpointStore(tmp_path, partition_set_key("m", [("t", 1)]))
    first.save(make_checkpoint(version=1))
    assert second.load() is None


# ---------------------------------------------------------------------------------------------
# partition_set_key
# ---------------------------------------------------------------------------------------------

SAFE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


def test_partition_set_key_is_pinned() -> None:
    # Changing this value would orphan every existing checkpoint: do it only with a migration.
    assert KEY == "sensors.sensors-0-1.4b662b598e38f912"


def test_partition_set_key_ignores_order_and_duplicates() -> None:
    pairs = [("b", 2), ("a", 1), ("b", 0)]
    assert partition_set_key("m", pairs) == partition_set_key("m", reversed(pairs + pairs))


def test_partition_set_key_distinguishes_sets_and_models() -> None:
    keys = {
        partition_set_key("m", [("t", 0)]),
        partition_set_key("m", [("t", 1)]),
        partition_set_key("m", [("t", 0), ("t", 1)]),
        partition_set_key("m", [("u", 0)]),
        partition_set_key("n", [("t", 0)]),
        partition_set_key("a/b", [("t", 0)]),
        partition_set_key("a_b", [("t", 0)]),  # sanitised alike, still a different key
        partition_set_key("m", [("t", 10)]),
        partition_set_key("m", [("t-1", 0)]),
    }
    assert len(keys) == 9


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(max_size=150),
    partitions=st.lists(
        st.tuples(st.text(min_size=1, max_size=249), st.integers(0, 10_000)),
        min_size=1,
        max_size=200,
    ),
)
def test_partition_set_key_is_filesystem_safe(name: str, partitions: list[tuple[str, int]]) -> None:
    key = partition_set_key(name, partitions)
    assert SAFE.match(key)
    assert len(key) <= 150
    assert key not in (".", "..")
    with tempfile.TemporaryDirectory() as directory:
        CheckpointStore(directory, key).save(make_checkpoint())  # the store accepts the key


def test_partition_set_key_needs_partitions() -> None:
    with pytest.raises(ValidationError, match="partitions"):
        partition_set_key("m", [])
