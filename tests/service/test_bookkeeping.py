"""The daemon's bookkeeping between checkpoints: due rules, reserved versions, queued commits."""

from __future__ import annotations

from collections.abc import Mapping

from streamem.service.bookkeeping import VERSION_RESERVE, Bookkeeping
from streamem.service.config import OutputSettings, StateSettings
from streamem.service.source import Partition

P0, P1 = ("sensors", 0), ("sensors", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def book_of(clock: Clock, **state: float) -> Bookkeeping:
    return Bookkeeping(
        StateSettings.model_validate(state),
        OutputSettings(publish_every_batches=3, publish_every_seconds=2.0),
        clock=clock,
    )


def test_a_checkpoint_is_due_after_enough_batches_or_time_and_only_with_something_new() -> None:
    clock = Clock()
    book = book_of(clock, checkpoint_every_batches=2, checkpoint_every_seconds=10.0)
    clock.now += 60
    assert not book.expired()  # nothing handled: nothing to store, however long ago
    book.store_offset(P0, 5, n_records=5)
    assert book.expired()  # records handled, and the last checkpoint is old
    book.saved({P0: 5}, reserved=VERSION_RESERVE)
    assert not book.expired()
    assert not book.pending
    book.batch_learned(changed=False, drift=False)
    assert not book.expired()
    book.batch_learned(changed=False, drift=False)
    assert book.expired()  # two batches


def test_a_publication_is_due_after_enough_changed_batches_or_time() -> None:
    clock = Clock()
    book = book_of(clock)
    book.batch_learned(changed=False, drift=False)
    assert not book.publish_due()  # the model did not change
    book.batch_learned(changed=True, drift=True)
    book.batch_learned(changed=True, drift=False)
    assert not book.publish_due()
    clock.now += 2.5
    assert book.publish_due()
    assert book.drift
    book.saved({}, reserved=1)
    assert book.published() == 1
    assert not book.unpublished
    assert not book.drift
    for _ in range(3):
        book.batch_learned(changed=True, drift=False)
    assert book.publish_due()
    book.skip_publication()
    assert not book.publish_due()


def test_versions_are_published_only_inside_the_stored_reservation() -> None:
    book = book_of(Clock())
    book.restart(7, {P0: 3})
    assert book.next_offsets == {P0: 3}
    assert not book.may_publish()  # version 8 is not reserved by a stored state
    assert book.reservation(final=False) == 7 + VERSION_RESERVE
    assert book.reservation(final=True) == 7
    book.saved({P0: 3}, reserved=book.reservation(final=False))
    for version in range(8, 8 + VERSION_RESERVE):
        assert book.may_publish()
        assert book.published() == version
    assert not book.may_publish()


def test_commits_send_the_newest_stored_offsets_once_and_only_for_assigned_partitions() -> None:
    book = book_of(Clock())
    sent: list[dict[Partition, int]] = []

    def send(offsets: Mapping[Partition, int]) -> None:
        sent.append(dict(offsets))

    book.commit(send, [P0, P1])
    assert sent == []  # nothing stored yet
    book.store_offset(P0, 4, n_records=4)
    book.commit(send, [P0, P1])
    assert sent == []  # handled, not stored: not committable
    book.saved({P0: 4, P1: 9}, reserved=100)
    book.saved({P0: 6, P1: 9}, reserved=100)
    book.commit(send, [P0])  # P1 was revoked in between: its new owner commits it
    book.commit(send, [P0, P1])
    assert sent == [{P0: 6}]
