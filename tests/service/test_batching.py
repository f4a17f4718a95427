"""Micro-batching: size or time closes a batch, records stay whole, first offsets are kept."""

from __future__ import annotations

import numpy as np
import pytest

from streamem.service.batching import MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_closes_at_batch_size_points() -> None:
    batcher = MicroBatcher(batch_size=3, max_wait_ms=10_000, clock=Clock())
    assert batcher.add(np.ones((1, 2)), ("t", 0), 0) is False
    assert batcher.add(np.ones((1, 2)), ("t", 0), 1) is False
    assert batcher.add(np.ones((1, 2)), ("t", 1), 5) is True
    assert batcher.due()
    batch = batcher.take()
    assert batch.points.shape == (3, 2)
    assert batch.n_records == 3
    assert batch.first_offsets == {("t", 0): 0, ("t", 1): 5}
    assert len(batcher) == 0
    assert batcher.first_offsets == {}
    assert not batcher.due()


def test_a_batch_closes_after_max_wait_counted_from_its_first_point() -> None:
    clock = Clock()
    batcher = MicroBatcher(batch_size=1000, max_wait_ms=200, clock=clock)
    assert batcher.seconds_until_due() is None
    batcher.add(np.zeros((1, 2)), ("t", 0), 0)
    clock.now += 0.15
    batcher.add(np.zeros((1, 2)), ("t", 0), 1)  # does not restart the timer
    assert not batcher.due()
    assert batcher.seconds_until_due() == pytest.approx(0.05)
    clock.now += 0.05
    assert batcher.due()
    assert batcher.seconds_until_due() == 0.0


def test_max_wait_zero_closes_at_every_check() -> None:
    batcher = MicroBatcher(batch_size=1000, max_wait_ms=0, clock=Clock())
    assert not batcher.due()
    batcher.add(np.zeros((1, 1)), ("t", 0), 0)
    assert batcher.due()


def test_a_packed_record_is_never_split() -> None:
    batcher = MicroBatcher(batch_size=1000, max_wait_ms=500, clock=Clock())
    assert not batcher.add(np.zeros((600, 3)), ("t", 0), 10)
    assert batcher.add(np.zeros((600, 3)), ("t", 0), 11)
    batch = batcher.take()
    assert len(batch) == 1200
    assert batch.n_records == 2
    assert batch.first_offsets == {("t", 0): 10}


def test_points_keep_their_order_and_values(rng: np.random.Generator) -> None:
    chunks = [rng.normal(size=(int(n), 3)) for n in rng.integers(1, 5, size=20)]
    batcher = MicroBatcher(batch_size=10_000, max_wait_ms=500, clock=Clock())
    for offset, chunk in enumerate(chunks):
        batcher.add(chunk, ("t", 0), offset)
    np.testing.assert_array_equal(batcher.take().points, np.concatenate(chunks))


def test_discard_forgets_the_open_batch() -> None:
    batcher = MicroBatcher(batch_size=10, max_wait_ms=500, clock=Clock())
    batcher.add(np.zeros((2, 2)), ("t", 3), 7)
    batcher.discard()
    assert len(batcher) == 0
    assert batcher.n_records == 0
    assert batcher.first_offsets == {}


def test_an_empty_take_is_an_empty_batch() -> None:
    assert len(MicroBatcher(batch_size=1, max_wait_ms=0).take()) == 0


@pytest.mark.parametrize(("size", "wait"), [(0, 10), (5, -1)])
def test_bad_settings_name_the_parameter(size: int, wait: int) -> None:
    with pytest.raises(ValueError, match="batch_size" if size < 1 else "max_wait_ms"):
        MicroBatcher(batch_size=size, max_wait_ms=wait)


def test_rows_and_arrays_make_one_batch_of_whole_records() -> None:
    batcher = MicroBatcher(batch_size=3, max_wait_ms=500, clock=Clock())
    assert not batcher.add_row([1.0, 2.0], ("t", 0), 4)
    assert batcher.n_records == 1
    assert batcher.seconds_until_due() == 0.5
    assert not batcher.add_row([3.0, float("nan")], ("t", 1), 9)
    assert batcher.add_row([5, 6], ("t", 0), 5)
    batch = batcher.take()
    np.testing.assert_array_equal(batch.points, [[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    assert batch.points.dtype == np.float64
    assert batch.n_records == 3
    assert batch.first_offsets == {("t", 0): 4, ("t", 1): 9}
    assert batcher.n_records == 0


def test_sequence_keys_follow_their_points_in_arrival_order() -> None:
    batcher = MicroBatcher(batch_size=10, max_wait_ms=1000)
    batcher.add_row([1.0, 2.0], ("t", 0), 5, "s1")
    batcher.add_row([3.0, 4.0], ("t", 1), 9, "s2")
    batcher.add(np.zeros((2, 2)), ("t", 0), 6, "s1")
    batch = batcher.take()
    assert batch.keys is not None
    assert sorted(batch.keys) == ["s1", "s1", "s1", "s2"]
    assert len(batch.keys) == len(batch)
    assert batcher.take().keys is None


def test_a_batch_without_keys_has_none() -> None:
    batcher = MicroBatcher(batch_size=10, max_wait_ms=1000)
    batcher.add_row([1.0, 2.0], ("t", 0), 5)
    assert batcher.take().keys is None
