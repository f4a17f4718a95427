"""The daemon: consume, decode + validate, micro-batch, learn, publish, checkpoint, commit.

:class:`Daemon` is the loop; its stages are injected (a :class:`~streamem.service.source.Source`
factory and a :class:`~streamem.service.publisher.Sink` factory), so that tests can run it on
in-memory fakes. :func:`run` wires the real ones (kafka-python), the metrics endpoint, logging
and signal handling; ``streamem run --config FILE.yaml`` calls it.

Exactly-once effect on the model
--------------------------------
The daemon keeps, for every assigned partition, the offset below which every record has been
*settled*: learned into the model (or into its warm-up buffer, which is part of the model's
state) or rejected. The micro-batch being filled is not in the model yet, so the offset it
reports for a partition is that of its oldest record still waiting in the batch
(:meth:`Daemon.model_offsets`). A checkpoint stores the model's complete state together with
these offsets, atomically, and the offsets are committed to the group only after it.

On assignment the daemon loads the checkpoint of its partition set and seeks every partition to
its stored offset; so a record below it is in the model exactly once and a record at or above
it is read (again) and learned exactly once: ``n_seen`` counts every valid point once, whatever
crashes happened. Dead letters are sent at least once: a checkpoint is written only when every
dead letter of a record below its offsets was acknowledged, and a record above them that was
rejected before a crash is rejected (and sent) again after it.

The checkpoint key is the model name plus the sorted assigned partitions
(:func:`~streamem.service.checkpoint.partition_set_key`): a daemon that owns the same partitions
again resumes its model; a different partition set (partitions added to a topic, or replicas
sharing the work, a later step) has its own checkpoint, and a set without one starts a new model
from ``auto_offset_reset``.

Versions of the published model increase strictly, across restarts and crashes: a version is
published only if the checkpoint on disk reserves it. A checkpoint written while running stores
the last published version plus :data:`VERSION_RESERVE`, and one is written before a version
beyond the reserved ones is published (at the latest, the first publication after a restart);
a restart continues above the stored version, so above anything published before a crash. The
final checkpoint of a clean stop stores the exact version: versions then continue without a gap.

Lifecycle
---------
SIGTERM or SIGINT makes the loop finish the records of its current poll; the daemon then learns
the partial batch, publishes, checkpoints, commits, leaves the group and exits with 0. A second
signal exits at once (the last checkpoint stays valid). While a broker is away the consumer
reconnects by itself; failed deliveries are retried with a new producer after a growing backoff;
the model stays in memory and learning resumes when records flow again.

Probes (see :mod:`streamem.service.metrics`): every turn of the loop, and every retry while the
brokers cannot be reached at start, is a heartbeat of ``/healthz``; every half second the loop
notes whether the consumer is connected to a broker, which ``/readyz`` needs (with assigned
partitions) within ``kafka.consumer.session_timeout_ms``.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import FrameType
from typing import Any

import numpy as np

from streamem.errors import StreamemError
from streamem.models.base import EngineBackedModel
from streamem.models.protocol import StreamingModel
from streamem.models.registry import model_class
from streamem.service.batching import MicroBatch, MicroBatcher
from streamem.service.bookkeeping import VERSION_RESERVE, Bookkeeping
from streamem.service.checkpoint import CheckpointError, prepare_state_dir
from streamem.service.codecs import (
    ROW_FORMATS,
    RecordRejected,
    RejectReason,
    decode,
    row_decoder,
    sequence_key_decoder,
)
from streamem.service.config import Settings
from streamem.service.documents import DocumentDecoder
from streamem.service.guard import ModelScorer, Refusal, RowGuard, isolate_refused
from streamem.service.learner import Learner
from streamem.service.logwatch import LogReplaced, LogWatch
from streamem.service.metrics import DaemonMetrics
from streamem.service.publisher import Publisher, Sink
from streamem.service.results import ResultStage, result_records
from streamem.service.snapshot import build_snapshot, encode_snapshot
from streamem.service.source import AssignmentHandler, Partition, Record, Source
from streamem.service.state import (
    CheckpointFileState,
    PartitionState,
    StatisticsTopicState,
    partition_names,
)
from streamem.service.statistics import StatisticsChannel

__all__ = ["EXIT_CHECKPOINT_FAILED", "VERSION_RESERVE", "Daemon", "run"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
"""Longest wait of one poll: the loop notices a stop request or a due batch this often."""

PROGRESS_SECONDS = 30.0
"""How often the loop logs a progress line at INFO."""

EXIT_CHECKPOINT_FAILED = 3
"""Exit code of a stop whose final checkpoint could not be written (the state directory
failed): the records after the previous checkpoint will be read again at restart."""

_NO_OFFSET = 1 << 62
_HEADROOM = 64 * 1024  # room for the key, headers and batch overhead under max_request_size


class _RateLimited:
    """Logs at most once per ``period`` seconds per key, counting what it left out."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, key: str, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.period) < self.period:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        self._last[key] = now
        suffix = f" ({skipped} similar messages left out)" if skipped else ""
        log.log(level, message + suffix, *args)


class Daemon(AssignmentHandler):
    """The daemon's loop over injected stages.

    Parameters
    ----------
    settings
        The validated configuration.
    source_factory
        Builds the consume stage; it receives the daemon as its
        :class:`~streamem.service.source.AssignmentHandler`.
    sink_factory
        Builds a producer for the publish stage (called again after a failed delivery).
    statistics_factory
        Builds the statistics topic's channel; needed with ``output.statistics_topic``.
    metrics
        Where to count; new :class:`~streamem.service.metrics.DaemonMetrics` by default.
    clock, wall_clock
        Monotonic time and Unix time in seconds (injectable for tests).

    Examples
    --------
    See ``tests/service/test_app.py``: the loop runs there on an in-memory source and sink.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        source_factory: Callable[[AssignmentHandler], Source],
        sink_factory: Callable[[], Sink],
        statistics_factory: Callable[[], StatisticsChannel] | None = None,
        metrics: DaemonMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else DaemonMetrics()
        self._source_factory = source_factory
        self.clock = clock
        self.wall_clock = wall_clock
        documents = None
        if settings.model.vocabulary is not None:  # the text format (a topic model)
            vocabulary = settings.model.vocabulary.build()
            documents = DocumentDecoder(
                vocabulary, settings.input.max_record_bytes, settings.input.max_word_count
            )
        self._documents = documents is not None
        self.batcher = MicroBatcher(
            settings.batching.batch_size,
            settings.batching.max_wait_ms,
            clock=clock,
            assemble=None if documents is None else documents.batch,
        )
        self._row_decoder: Callable[[bytes | None], Any] | None = (
            documents
            if documents is not None
            else row_decoder(settings.input)
            if settings.input.format in ROW_FORMATS
            else None
        )
        key_field = settings.input.sequence_key
        self._sequence_key = (
            None
            if key_field is None
            else sequence_key_decoder(settings.input, key_field, settings.input.max_key_bytes)
        )
        self._sequential = model_class(settings.model.family).sequential
        self.guard = RowGuard(settings.guard, settings.input.features, settings.input.bounds)
        self.metrics.state.unready_after_failed_batches = (
            settings.guard.unready_after_failed_batches
        )
        max_bytes = min(
            settings.output.dead_letter_max_bytes,
            max(1024, settings.kafka.producer.max_request_size - _HEADROOM),
        )
        self.publisher = Publisher(
            sink_factory,
            output_topic=settings.output.topic,
            dead_letter_topic=settings.output.dead_letter_topic,
            key=settings.model.name,
            dead_letter_max_bytes=max_bytes,
            clock=clock,
            connect=False,
        )
        self.results = (
            None
            if settings.output.results_topic is None
            else ResultStage(settings.output, settings.model.family)
        )
        """The results stage (None: ``output.results_topic`` is off)."""
        self.source: Source | None = None
        self._statistics_factory = statistics_factory
        self.state: PartitionState
        """Where the assigned partitions' state lives: a checkpoint file, or (with
        ``output.statistics_topic``) the statistics topic."""
        if settings.output.statistics_topic is None:
            self.state = CheckpointFileState(self)
        elif statistics_factory is None:
            raise ValueError("output.statistics_topic needs a statistics_factory")
        else:
            self.state = StatisticsTopicState(self)
        self.assigned: tuple[Partition, ...] = ()
        self.book = Bookkeeping(settings.state, settings.output, clock=clock)
        """Offsets handled, what is due, the versions reserved, the offsets to commit."""
        self._stop_reason: str | None = None
        self._fatal: BaseException | None = None
        self._last_lag = 0.0
        self._last_progress = clock()
        self._progress_consumed = 0
        self._failures_seen = 0
        self._delivered_seen = 0
        self._results_seen = 0
        self._published_model: tuple[StreamingModel, tuple[Any, ...], int] | None = None
        self._checkpoint_failed = False  # the newest attempt could not write the file
        self.logs = LogWatch()
        """Which log each partition's offsets belong to (see :mod:`streamem.service.logwatch`)."""
        self._limited = _RateLimited(10.0)

    @property
    def version(self) -> int:
        """Version of the last published snapshot."""
        return self.book.version

    @property
    def learner(self) -> Learner | None:
        """The model the daemon publishes (None: none restored or started yet)."""
        return self.state.learner

    def statistics_factory(self) -> StatisticsChannel:
        """A new channel to the statistics topic (scale-out)."""
        assert self._statistics_factory is not None
        return self._statistics_factory()

    # ---- control ------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop_reason is not None

    def request_stop(self, reason: str = "stop requested") -> None:
        """Make the loop stop after its current turn (safe to call from a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def waiting_for_brokers(self) -> bool:
        """Called while the source retries unreachable brokers at start; True to stop waiting.

        A wait is not a stall: it refreshes the heartbeat, so ``/healthz`` stays 200.
        """
        self.metrics.state.heartbeat = self.clock()
        return self.stopping

    def run(self) -> int:
        """Run until :meth:`request_stop`; then shut down cleanly and return 0, or
        :data:`EXIT_CHECKPOINT_FAILED` if the final checkpoint could not be written.

        Raises
        ------
        StreamemError
            On a fatal problem: a checkpoint that cannot be read or does not fit the
            configuration. Bad records, broker outages and failed deliveries are not fatal.
        """
        self.start()
        try:
            while not self.stopping:
                self.turn()
            log.info(
                "stopping (%s): finishing the batch, publishing and checkpointing",
                self._stop_reason,
            )
            clean = self.shutdown()
        finally:
            self.publisher.close(timeout=1.0)
            self.state.close()
        return 0 if clean else EXIT_CHECKPOINT_FAILED

    def start(self) -> None:
        """Check the state directory, build the producer and the source (which joins the group
        at its first poll).

        Raises
        ------
        CheckpointError
            If the state directory cannot be created, written or synced.
        """
        for path in prepare_state_dir(self.settings.state.dir):
            log.warning("removed %s, left by a checkpoint write that did not finish", path)
        self.publisher.connect()
        self.state.open()
        if self.source is None and not self.stopping:
            self.source = self._source_factory(self)

    def turn(self) -> None:
        """One pass of the loop: poll, handle the records, and do what is due."""
        source = self.source
        assert source is not None, "start() creates the source"
        self.metrics.state.heartbeat = self.clock()
        timeout_ms = POLL_TIMEOUT_MS
        wait = self.batcher.seconds_until_due()
        if wait is not None:
            timeout_ms = min(timeout_ms, int(wait * 1000) + 1)
        try:
            polled = source.poll(timeout_ms)
        except Exception as error:  # kafka-python raises many types while brokers are away
            self._raise_fatal()
            self._limited("poll", logging.WARNING, "polling the brokers failed: %s", error)
            time.sleep(0.5)
            return
        self._raise_fatal()
        if polled:
            self.metrics.state.broker_contact = self.clock()  # records came from a broker
            self._handle(polled)
        if self.batcher.due():
            self.learn_batch()
        self.state.turn()
        self.publisher.poll()
        self._count_failures()
        now = self.clock()
        if now - self._last_lag >= 0.5:
            self._last_lag = now
            if source.connected():
                self.metrics.state.broker_contact = now
            self._watch_partitions()
        if source.generation() is None:
            # Not sure of its partitions (rebalancing, or resumed after a pause past the session
            # timeout): it writes nothing for them until the group confirms or moves them.
            self._limited(
                "unsure",
                logging.INFO,
                "not publishing, checkpointing or committing: the group has not confirmed this "
                "member's partitions (rebalancing, or no heartbeat answered within the session "
                "timeout)",
            )
        else:
            if self.book.publish_due(now):
                self._reserve_and_publish()
            if self.book.expired(now) or self.state.save_due(self.wall_clock()):
                self.checkpoint()  # (scale-out: the first parameters are sent at once)
            self.book.commit(source.commit, self.assigned)
        if now - self._last_progress >= PROGRESS_SECONDS:
            self._progress(now)

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            error, self._fatal = self._fatal, None
            raise error

    # ---- records ------------------------------------------------------------------------------

    def _handle(self, polled: Mapping[Partition, Sequence[Record]]) -> None:
        spec = self.settings.input
        batcher = self.batcher
        book = self.book
        row = self._row_decoder
        key_of = self._sequence_key
        n_records = 0
        logs = self.logs
        for partition, records in polled.items():
            if not records:
                continue
            self.state.before_records(partition)
            try:
                records = logs.check(partition, records, self.log_id(partition))
            except LogReplaced as why:
                self.log_replaced(partition, str(why))
                continue
            if not records:
                continue
            # A sequential family without input.sequence_key: each partition is one sequence.
            key = f"{partition[0]}/{partition[1]}" if self._sequential else None
            # No exception raised while decoding one record leaves this loop: it is that
            # record's dead letter (``internal`` for an unexpected one), and the loop goes on.
            if row is not None:  # one point (or document) per record, one array per batch
                for record in records:
                    try:
                        values = row(record.value)
                        if key_of is not None:
                            key = key_of(record.value)
                    except RecordRejected as error:
                        self._reject(record, error)
                        continue
                    except Exception as error:
                        self._reject(record, _internal(error))
                        continue
                    if batcher.add_row(values, partition, record.offset, key, record=record):
                        self.learn_batch()
            else:
                for record in records:
                    try:
                        points = decode(record.value, spec)
                    except RecordRejected as error:
                        self._reject(record, error)
                        continue
                    except Exception as error:
                        self._reject(record, _internal(error))
                        continue
                    if batcher.add(points, partition, record.offset, key, record=record):
                        self.learn_batch()
            n_records += len(records)
            book.store_offset(partition, records[-1].offset + 1, n_records=len(records))
            logs.handled(partition, records, batcher.first_offsets.get(partition))
        self.metrics.consumed.inc(n_records)
        self._progress_consumed += n_records

    def log_id(self, partition: Partition) -> str | None:
        """The identity of ``partition``'s log, when the source knows it."""
        log_id = getattr(self.source, "log_id", None)
        return None if log_id is None else log_id(partition)

    def log_replaced(self, partition: Partition, why: str) -> None:
        """The policy for a partition whose log is not the one its offset belongs to."""
        log.warning(
            "partition %s/%d: its log was recreated or truncated (%s); the stored offset is "
            "discarded and the partition is read from the %s offset (the model keeps what it "
            "learned)",
            partition[0],
            partition[1],
            why,
            self.settings.kafka.consumer.auto_offset_reset,
        )
        self.learn_batch()  # the open batch holds valid records of the old log
        self.book.forget_offset(partition)
        self.logs.replaced(partition, self.log_id(partition))
        if self.source is not None:
            self.source.seek(partition, None)

    def _reject(self, record: Record, error: RecordRejected) -> None:
        reason = error.reason.value
        self.metrics.rejected.labels(reason=reason).inc()
        self.publisher.reject(record, error)
        self._limited(
            f"reject-{reason}",
            logging.WARNING,
            "rejected record %s/%d@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            error,
        )

    def learn_batch(self) -> None:
        """Learn the open micro-batch: screen it (the guard), score it (results), update the
        model of its partition's state, dead-letter what was refused, and count it all."""
        if self.results is not None:
            self._publish_scoring_model()
        batch = self.batcher.take()
        shard = next(iter(batch.first_offsets), None)
        learner = self.state.learner_for(shard, batch.first_offsets.get(shard) if shard else None)
        if not len(batch) or learner is None:
            return
        started = time.perf_counter()
        metrics = self.metrics
        dropped_before = learner.status.n_dropped
        refusals = (
            []  # counts of known words: nothing to guard (the decoder checked them)
            if self._documents
            else _whole_records(
                batch, self.guard.screen(batch.points, ModelScorer(learner.model), batch.keys)
            )
        )
        points, keys = batch.points, batch.keys
        kept = np.arange(len(batch))
        if refusals:
            kept = np.delete(kept, [refusal.index for refusal in refusals])
            points = points[kept]
            keys = None if keys is None else tuple(keys[i] for i in kept.tolist())
        model = learner.model
        n_points = points.shape[0]
        results = self.results
        scored = (
            results.score(model, points, keys, self._version_of(model))
            if results is not None and n_points
            else None
        )
        isolate = None if self._documents else lambda X, k: isolate_refused(model, X, k)
        outcome = learner.learn(points, keys, isolate=isolate) if n_points else None
        if results is not None and scored is not None:
            isolated = outcome.isolated if outcome is not None else []
            for record, value in result_records(results, batch, kept, scored, isolated):
                self.publisher.result(results.topic, record, value)
            self.metrics.anomalies.inc(int(np.count_nonzero(scored.flags)))
        if keys is not None and isinstance(model, EngineBackedModel):
            evicted = model.forget_idle_keys(keys, self.settings.input.max_keys)
            metrics.evicted_keys.inc(evicted)
        if outcome is not None and outcome.isolated:
            refusals = [
                *refusals,
                *(
                    Refusal(
                        int(kept[i]),
                        RejectReason.DEGENERATE,
                        "the engine refused the update with this point (found by trial updates)",
                    )
                    for i in outcome.isolated
                ),
            ]
        n_rejected = self._reject_points(batch, refusals) if refusals else 0
        metrics.batch_duration.observe(time.perf_counter() - started)
        metrics.batches.inc()
        n_isolated = len(outcome.isolated) if outcome is not None else 0
        metrics.points.inc(n_points - n_isolated)
        metrics.learned.inc(batch.n_records - n_rejected)
        dropped = learner.status.n_dropped - dropped_before
        if dropped:
            metrics.refused_points.labels(reason="dropped").inc(dropped)
        metrics.state.failed_batches = metrics.state.failed_batches + 1 if dropped else 0
        metrics.state.status = learner.status
        self.book.batch_learned(
            changed=outcome is not None and outcome.learned,
            drift=outcome is not None and outcome.drift,
        )
        self.state.batch_learned(shard)

    def _publish_scoring_model(self) -> None:
        """With results on, the model that scores the next batch is published first (unless
        it is the published one, or the group has not confirmed this member), so that each
        result names its snapshot's version."""
        learner, source = self.learner, self.source
        if learner is None or not learner.initialized:
            return
        if self._version_of(learner.model) is not None:
            return
        if source is not None and source.generation() is not None:
            self.book.model_changed()  # e.g. restored: published again, under a new version
            self._reserve_and_publish()

    def _version_of(self, model: StreamingModel) -> int | None:
        """The version of the snapshot published of ``model`` as it stands (None: none)."""
        published = self._published_model
        if published is None or published[0] is not model or published[1] != _identity(model):
            return None
        return published[2]

    def _reject_points(self, batch: MicroBatch, refusals: Sequence[Refusal]) -> int:
        """Dead-letter the records of points the guard kept out; return how many records."""
        owners = batch.owners()
        by_record: dict[int, list[Refusal]] = {}
        for refusal in refusals:
            self.metrics.refused_points.labels(reason=refusal.reason.value).inc()
            by_record.setdefault(int(owners[refusal.index]), []).append(refusal)
        first_point = np.concatenate([[0], np.cumsum(batch.sizes)]) if batch.sizes else None
        for owner, found in by_record.items():
            first = found[0]
            detail = first.detail
            if first_point is not None and batch.sizes is not None and batch.sizes[owner] > 1:
                where = ", ".join(str(r.index - int(first_point[owner])) for r in found[:20])
                detail = f"{len(found)} of {batch.sizes[owner]} points ({where}); first: {detail}"
            record = batch.records[owner]
            if record is not None:
                self._reject(record, RecordRejected(first.reason, detail))
        return len(by_record)

    def note_checkpoint_failure(self, error: CheckpointError) -> None:
        self._checkpoint_failed = True
        self.metrics.checkpoint_failures.inc()
        self.metrics.state.checkpoint_error = str(error)
        self._limited("checkpoint", logging.ERROR, "%s", error)

    def model_offsets(self) -> dict[Partition, int]:
        """Per partition, the offset below which every record is settled (in the model or
        rejected) and at or above which no valid record is in the model."""
        offsets = dict(self.book.next_offsets)
        for partition, first in self.batcher.first_offsets.items():
            offsets[partition] = min(offsets.get(partition, first), first)
        return offsets

    # ---- publish ------------------------------------------------------------------------------

    def _reserve_and_publish(self) -> bool:
        """Publish the current model if it changed (:meth:`publish`), after a checkpoint that
        reserves its version where none does yet; return True if sent."""
        if not self._publishable():
            return False
        if not self.book.may_publish() and not self.checkpoint():
            self._limited(
                "reserve",
                logging.WARNING,
                "not publishing version %d: no checkpoint reserves it yet, and one cannot be "
                "written now",
                self.version + 1,
            )
            return False
        return self._send_snapshot()

    def publish(self) -> bool:
        """Publish the current model as a new version if it changed and a checkpoint reserves
        its version (:meth:`Bookkeeping.may_publish`); return True if sent."""
        return self.book.may_publish() and self._publishable() and self._send_snapshot()

    def _publishable(self) -> bool:
        """Whether the model changed since its last publication and this replica publishes
        it now (:meth:`PartitionState.may_publish`)."""
        learner = self.learner
        if learner is None or not self.book.unpublished or not learner.status.initialized:
            return False
        return self.state.may_publish()

    def _send_snapshot(self) -> bool:
        learner, book = self.learner, self.book
        assert learner is not None
        snapshot = build_snapshot(
            learner,
            name=self.settings.model.name,
            version=book.version + 1,
            offsets=self.state.snapshot_offsets(self.model_offsets()),
            drift=book.drift,
            timestamp=self.wall_clock(),
        )
        self.publisher.publish(encode_snapshot(snapshot), version=book.version + 1)
        self._published_model = (learner.model, _identity(learner.model), book.published())
        return True

    def _count_failures(self) -> None:
        """Bring the delivery metrics up to date: failures, acknowledged snapshots (only those
        count as published) and the delivery problem that ``/readyz`` reports."""
        failures = self.publisher.failures
        if failures != self._failures_seen:
            self.metrics.delivery_failures.inc(failures - self._failures_seen)
            self._failures_seen = failures
        delivered = self.publisher.delivered
        if delivered != self._delivered_seen:
            self.metrics.published.inc(delivered - self._delivered_seen)
            self._delivered_seen = delivered
            self.metrics.state.last_publish = self.wall_clock()
        results = self.publisher.results_delivered - self._results_seen
        if results:
            self.metrics.results_published.inc(results)
            self._results_seen += results
        self.metrics.state.delivery_problem = self.publisher.problem
        self.metrics.state.version = self.publisher.acknowledged_version

    # ---- checkpoint ---------------------------------------------------------------------------

    def checkpoint(self, *, final: bool = False, settle_timeout: float = 1.0) -> bool:
        """Store the model and its offsets atomically; the loop then commits the offsets to
        the group (:meth:`Bookkeeping.commit`).

        Every dead letter of a record below the offsets must be acknowledged first (the call
        waits up to ``settle_timeout`` seconds); otherwise nothing is written and False is
        returned (the previous checkpoint stays valid, the next due time tries again).

        Parameters
        ----------
        final
            The daemon stops after this checkpoint and publishes nothing more: store the exact
            version instead of reserving versions ahead.
        settle_timeout
            Seconds to wait for the acknowledgements of dead letters and snapshots.
        """
        if not self.state.may_save():
            return False
        self.publisher.settle(settle_timeout)
        self._count_failures()
        offsets = self.model_offsets()
        unsettled = {
            partition: offset
            for partition, offset in self.publisher.unsettled_offsets().items()
            if offset < offsets.get(partition, _NO_OFFSET)
        }
        if unsettled:
            self._limited(
                "deferred",
                logging.WARNING,
                "checkpoint deferred: dead letters of %s are not acknowledged yet",
                ", ".join(f"{t}/{p}@{o}" for (t, p), o in sorted(unsettled.items())),
            )
            return False
        version = self.book.reservation(final=final)
        if not self.state.save(offsets, version):
            return False
        self._checkpoint_failed = False
        self.metrics.state.checkpoint_error = None
        self.metrics.checkpoints.inc()
        self.metrics.state.last_checkpoint = self.wall_clock()
        self.book.saved(offsets, reserved=version)
        log.debug("checkpoint written: version %d, offsets %s", version, offsets)
        return True

    # ---- partitions ---------------------------------------------------------------------------

    def on_assigned(self, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        """Restore the partition set's checkpoint; return where to read each partition."""
        try:
            return self._assign(tuple(sorted(partitions)))
        except BaseException as error:
            self._fatal = error  # kafka-python swallows it into a KafkaError: re-raised by turn()
            raise

    def _assign(self, partitions: tuple[Partition, ...]) -> dict[Partition, int]:
        if not partitions:
            log.info("no partition assigned: waiting")
            self.assigned = ()
            self.metrics.state.ready = False
            self.metrics.state.lag = {}
            self._note_publisher(())
            return {}
        seek = self.state.assign(partitions)
        self._assigned(partitions)
        return seek

    def restart(self, version: int, offsets: Mapping[Partition, int]) -> None:
        """The model was restored (or started): its version and offsets are the daemon's
        (called by :attr:`state` at an assignment)."""
        self.book.restart(version, offsets)
        if self.learner is not None:
            self.metrics.state.status = self.learner.status

    def _assigned(self, partitions: tuple[Partition, ...]) -> None:
        self.assigned = partitions
        self.metrics.state.broker_contact = self.clock()  # the group coordinator just answered
        self.metrics.state.ready = True
        self.metrics.state.lag = {p: 0 for p in partitions}
        self._note_publisher(partitions)

    def _note_publisher(self, owned: Collection[Partition]) -> None:
        """Whether this replica publishes the model, owning ``owned``: any partition, and in
        scale-out the leader partition."""
        self.metrics.state.publishing = self.state.publishes(owned)

    def on_revoked(self, partitions: Sequence[Partition]) -> None:
        """Learn the open batch, publish and checkpoint before the partitions go away (the
        offsets are committed by the loop, not in this callback); a member without the
        group's lease (resumed after a pause) lost them instead (:meth:`on_lost`)."""
        if self.source is not None and not self.source.holds_lease():
            self.on_lost(partitions)
            return
        try:
            self.metrics.state.ready = False
            if not self.state.keeps_on_revoke() or self.learner is None:
                return
            self.learn_batch()
            self._reserve_and_publish()
            if self.book.pending:
                log.info("partitions %s revoked: checkpointing", partition_names(partitions))
                self.checkpoint()
            else:
                log.info(
                    "partitions %s revoked (the checkpoint is current)", partition_names(partitions)
                )
        except Exception as error:  # never let kafka-python swallow it silently
            log.exception("saving the state at revocation failed: %s", error)
        finally:
            self.state.released(partitions)
            self._note_publisher(set(self.assigned) - set(partitions))

    def on_lost(self, partitions: Sequence[Partition]) -> None:
        """The group expelled this member: drop what it learned of ``partitions`` since their
        stored state, and write nothing for them (no learning of the open batch, no
        publication, no checkpoint, no commit): their new owner continues from the stored
        state. At the next assignment the state is restored again."""
        lost = set(partitions)
        log.warning(
            "partitions %s lost: the group expelled this member (its session expired, e.g. "
            "after a pause); what it learned of them since their stored state is dropped and "
            "nothing is published, stored or committed for them",
            partition_names(partitions),
        )
        self.metrics.state.ready = False
        self.batcher.discard()
        self.guard.reset()
        self.book.lost(lost)
        self.state.lost(partitions)
        self.assigned = tuple(p for p in self.assigned if p not in lost)
        self._note_publisher(self.assigned)

    @property
    def _reads_from_start(self) -> bool:
        return self.settings.kafka.consumer.auto_offset_reset == "earliest"

    def _watch_partitions(self) -> None:
        """Update the lag, and re-read a partition whose log end fell below our position."""
        source = self.source
        if source is None or not self.assigned:
            return
        lag: dict[Partition, int] = {}
        for partition in self.assigned:
            end = source.highwater(partition)
            position = self.book.next_offsets.get(partition)
            if end is None or position is None:  # nothing read yet
                lag[partition] = end if end is not None and self._reads_from_start else 0
                continue
            if end < position and partition not in self.batcher.first_offsets:
                # Only a recreated or truncated topic does that (a Kafka broker answers
                # OFFSET_OUT_OF_RANGE and the client resets; a memory-only test broker does not).
                log.warning(
                    "partition %s/%d ends at offset %d, below the next offset to read (%d): the "
                    "topic was recreated or truncated; reading it from the %s offset",
                    partition[0],
                    partition[1],
                    end,
                    position,
                    self.settings.kafka.consumer.auto_offset_reset,
                )
                self.book.forget_offset(partition)
                self.logs.replaced(partition, self.log_id(partition))
                source.seek(partition, None)
                lag[partition] = end
                continue
            lag[partition] = max(0, end - position)
        self.metrics.state.lag = lag

    # ---- shutdown -----------------------------------------------------------------------------

    def shutdown(self) -> bool:
        """Learn the open batch, publish, checkpoint, commit and close the source.

        Returns
        -------
        bool
            False if the final checkpoint could not be written (the state directory failed).
        """
        source = self.source
        clean = True
        member = source is not None and source.generation() is not None
        if not member and self.assigned:
            clean = not self._checkpoint_failed
            log.warning(
                "stopping without a final checkpoint: the group has not confirmed this member's "
                "partitions (they may be another member's now); the records after the previous "
                "checkpoint will be read again"
            )
        elif self.learner is not None and self.assigned:
            self.learn_batch()
            self._reserve_and_publish()
            if not self.checkpoint(final=True, settle_timeout=2.0):
                clean = not self._checkpoint_failed
                error = self.metrics.state.checkpoint_error
                why = (
                    self.state.failure_detail(error)
                    if not clean
                    else "dead letters not acknowledged"
                    if self.publisher.unsettled_offsets()
                    else None
                )
                if why is not None:
                    log.log(
                        logging.WARNING if clean else logging.ERROR,
                        "the final checkpoint was not written (%s); the records after the "
                        "previous checkpoint will be read again at restart",
                        why,
                    )
        if source is not None:
            if member:
                self.book.commit(source.commit_sync, self.assigned)
            source.close()
        log.info(
            "stopped: n_seen=%d, version=%d, snapshots acknowledged by the broker: %d",
            self.learner.status.n_seen if self.learner is not None else 0,
            self.version,
            self.publisher.delivered,
        )
        return clean

    def _progress(self, now: float) -> None:
        elapsed = now - self._last_progress
        status = self.learner.status if self.learner is not None else None
        log.info(
            "%.0f records/s; n_seen=%d, version=%d, lag=%d, pending dead letters=%d",
            self._progress_consumed / elapsed if elapsed > 0 else 0.0,
            status.n_seen if status is not None else 0,
            self.version,
            sum(self.metrics.state.lag.values()),
            self.publisher.n_pending,
        )
        self._last_progress = now
        self._progress_consumed = 0


def _identity(model: StreamingModel) -> tuple[Any, ...]:
    """What changes whenever ``model`` learns, warms up or merges statistics."""
    status = model.status
    return (status.n_seen, status.n_warmup, status.n_updates, status.n_refused, status.weights)


def _internal(error: Exception) -> RecordRejected:
    """The dead-letter reason of a record whose handling raised an unexpected error (logged,
    rate-limited, by :meth:`Daemon._reject`)."""
    return RecordRejected(RejectReason.INTERNAL, f"{type(error).__name__}: {error}"[:500])


def _whole_records(batch: MicroBatch, refusals: list[Refusal]) -> list[Refusal]:
    """Refusals extended to every point of a record with a refused point: a record of several
    points (a packed batch) is learned whole or dead-lettered whole, never both."""
    if not refusals or batch.sizes is None or max(batch.sizes) == 1:
        return refusals
    owners = batch.owners()
    refused = {refusal.index for refusal in refusals}
    first_of: dict[int, Refusal] = {}
    for refusal in refusals:
        first_of.setdefault(int(owners[refusal.index]), refusal)
    extra = [
        Refusal(int(index), first_of[int(owner)].reason, first_of[int(owner)].detail)
        for index, owner in enumerate(owners.tolist())
        if owner in first_of and index not in refused
    ]
    return sorted([*refusals, *extra], key=lambda refusal: refusal.index)


COLLECTOR_THRESHOLDS = (50_000, 20, 10)
"""The cyclic garbage collector's thresholds in the daemon (Python's default: 700, 10, 10).

Reference counting frees the per-record objects of the consume path; what the collector does
there is traverse the live records of a fetch again and again (every 700 allocations by
default). ``python benchmarks/scaleout.py`` measured 8.4 replica CPU us per JSON record with the
defaults and 6.7 with these thresholds (10.5 and 7.6 with the statistics topic).
"""


def run(settings: Settings) -> int:
    """Run the daemon with Kafka, the metrics endpoint, logging and signal handling.

    Parameters
    ----------
    settings
        The validated configuration (:func:`streamem.service.config.load_config`).

    Returns
    -------
    int
        The exit code: 0 after a stop requested by SIGTERM or SIGINT,
        :data:`EXIT_CHECKPOINT_FAILED` if the final checkpoint could not be written.
    """
    import prometheus_client

    from streamem.service.logs import configure_logging
    from streamem.service.metrics import MetricsServer
    from streamem.service.publisher import KafkaSink
    from streamem.service.source import KafkaSource
    from streamem.service.statistics import KafkaStatisticsChannel

    configure_logging(settings.logging.level, settings.logging.format)
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = DaemonMetrics()
    server = None
    if settings.metrics.enabled:
        server = MetricsServer(
            metrics,
            settings.metrics.address,
            settings.metrics.port,
            unreachable_after=settings.kafka.consumer.session_timeout_ms / 1000,
        )
        log.info("metrics on http://%s:%d/metrics", settings.metrics.address, server.port)

    producer_kwargs = settings.producer_kwargs()
    daemon = Daemon(
        settings,
        source_factory=lambda handler: KafkaSource(
            settings.kafka.topics,
            settings.consumer_kwargs(),
            handler,
            stop_requested=daemon.waiting_for_brokers,
        ),
        sink_factory=lambda: KafkaSink(producer_kwargs),
        statistics_factory=lambda: KafkaStatisticsChannel(
            settings.output.statistics_topic or "",
            settings.model.name,
            settings.consumer_kwargs(),
            producer_kwargs,
        ),
        metrics=metrics,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if daemon.stopping:
            log.warning("second %s: exiting at once (the last checkpoint stays valid)", name)
            logging.shutdown()
            os._exit(128 + signum)
        daemon.request_stop(name)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    log.info(
        "streamem daemon: model %r, topics %s on %s, group %r, state in %s",
        settings.model.name,
        settings.kafka.topics,
        ",".join(settings.kafka.bootstrap_servers),
        settings.kafka.group_id,
        settings.state.dir,
    )
    try:
        return daemon.run()
    except StreamemError:
        raise
    except Exception as error:
        if daemon.stopping:  # e.g. the brokers were never reached before the stop request
            log.warning("stopped before the daemon was running: %s", error)
            return 0
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.close()
