"""Prometheus metrics of the daemon, and the HTTP endpoint that serves them.

Counters and the batch-duration histogram are updated by the daemon as it works. Values that
describe the model (log-likelihood, step size, component weights, ...) and the consumer lag are
read at scrape time by a custom collector from :class:`MetricsState`, whose attributes the daemon
replaces with immutable values, so a scrape never sees a half-updated model. Every metric lives in
the daemon's own :class:`~prometheus_client.CollectorRegistry`.

Counters (``streamem_..._total``): ``records_consumed`` (records read), ``records_rejected``
(label ``reason``: sent to the dead letters), ``records_learned`` (valid records whose points were
learned), ``points_learned``, ``batches``, ``delivery_failures`` (failed deliveries, after which
the producer is recreated, and failed attempts to create it), ``checkpoints``, ``published``
(snapshots acknowledged by the broker), ``drift_events`` (in the model's lifetime, kept in the
checkpoint). Histogram: ``streamem_batch_duration_seconds`` (time to learn one micro-batch).

Gauges read from the model: ``streamem_batch_mean_log_likelihood`` (per point, of the last batch,
before learning it), ``streamem_smoothed_log_likelihood``, ``streamem_log_likelihood_change``,
``streamem_parameter_change``, ``streamem_step_size`` (of the last update),
``streamem_component_weight`` (label ``component``), ``streamem_converged`` and
``streamem_drift`` (0 or 1), ``streamem_model_points_seen`` (``n_seen``),
``streamem_model_warmup_points``, ``streamem_model_version`` (the newest acknowledged one).

Gauges of the consumer and the outputs: ``streamem_consumer_lag_records`` (labels ``topic``,
``partition``: log end offset minus position), ``streamem_assigned_partitions``,
``streamem_publishing_replica`` (1 if this replica publishes the model),
``streamem_last_checkpoint_timestamp_seconds``, ``streamem_last_publish_timestamp_seconds``,
``streamem_merged_statistics_age_seconds`` (scale-out: age of the oldest statistics of another
replica in the global model) and ``streamem_build_info`` (labels ``version``, ``python``; always 1).

:class:`MetricsServer` serves ``/metrics`` and two probes (200 or 503, with a one-line reason):

- ``/healthz`` (liveness: restart me if it fails) is 200 while the daemon's loop keeps turning,
  its heartbeat younger than ``stale_after`` (60 s). Waiting for unreachable brokers at start and
  polling through a broker outage count as turning: an outage never fails it, since a restart
  cannot bring a broker back. It fails when the loop is stuck, and when a Kafka producer of the
  daemon (snapshots and dead letters, or the statistics topic) stays broken for ``stale_after``
  seconds while the consumer reaches the brokers: a new process may mend what recreating the
  producer did not. A failing state directory does not fail it (a restart cannot mend a disk).
- ``/readyz`` (readiness: this replica does its share of the work) is 200 while partitions are
  assigned with their checkpoint restored and the consumer had a connection to a broker within
  ``unreachable_after`` seconds (the daemon uses ``kafka.consumer.session_timeout_ms``, after
  which the group has expelled a silent member anyway). So: 503 at start until the first
  assignment, 200 in normal operation, 503 during a broker outage longer than the session
  timeout and 200 again once the brokers are back and the group has assigned the partitions.
  It also fails while model snapshots cannot be delivered (the producer cannot be created, or
  deliveries fail) for ``unreachable_after`` seconds: :attr:`MetricsState.delivery_problem`.
"""

from __future__ import annotations

import logging
import math
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from streamem import __version__
from streamem.errors import StreamemError
from streamem.service.codecs import RejectReason
from streamem.service.learner import LearnerStatus
from streamem.service.source import Partition

__all__ = ["MAX_CONNECTIONS", "REFUSED_REASONS", "DaemonMetrics", "MetricsServer", "MetricsState"]

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32
"""Connections the endpoint serves at once; more are closed at once (no thread each)."""

_IDLE_SECONDS = 5.0  # a connection that sends nothing for this long is closed

REFUSED_REASONS = (RejectReason.OUT_OF_BOUNDS, RejectReason.DEGENERATE, RejectReason.OUTLIER)
"""Reasons of ``streamem_points_refused_total``: points kept out of a batch by the guard, plus
``dropped`` for points of an update that failed without a culprit (lost, not dead-lettered)."""

_BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class MetricsState:
    """What the collector reads at scrape time; the daemon replaces each attribute whole.

    Attributes
    ----------
    status
        The learner's newest :class:`~streamem.service.learner.LearnerStatus`.
    version
        Version of the last published snapshot (0: none yet).
    lag
        Records not yet read, per partition.
    last_checkpoint, last_publish
        Unix times (None: never).
    ready
        Whether partitions are assigned and their state restored.
    heartbeat
        Monotonic time of the daemon loop's last turn.
    broker_contact
        Monotonic time the consumer was last seen connected to a broker.
    delivery_problem
        Since when (monotonic time) and why snapshots are not delivered; None while they are.
    failed_batches
        Consecutive micro-batches whose update failed (0 after a good one).
    unready_after_failed_batches
        ``/readyz`` fails from this many consecutive failed batches on.
    checkpoint_error
        Why the newest checkpoint attempt failed (None: it was written).
    oldest_statistics
        Unix time of the oldest statistics of another replica in the global model (scale-out;
        None: none merged).
    statistics_problem
        Since when (monotonic time) and why the statistics topic does not acknowledge this
        replica's records (scale-out); None while it does.
    publishing
        Whether this replica publishes the model: it owns partitions and, in scale-out, the
        leader partition.
    """

    status: LearnerStatus = field(default_factory=LearnerStatus)
    version: int = 0
    lag: Mapping[Partition, int] = field(default_factory=dict)
    last_checkpoint: float | None = None
    last_publish: float | None = None
    ready: bool = False
    heartbeat: float = field(default_factory=time.monotonic)
    broker_contact: float = field(default_factory=time.monotonic)
    delivery_problem: tuple[float, str] | None = None
    failed_batches: int = 0
    unready_after_failed_batches: int = 3
    checkpoint_error: str | None = None
    oldest_statistics: float | None = None
    statistics_problem: tuple[float, str] | None = None
    publishing: bool = False


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily | None:
    if value is None or not math.isfinite(value):
        return None
    return GaugeMetricFamily(name, documentation, value=value)


class _StateCollector(Collector):
    """Reads :class:`MetricsState` at scrape time."""

    def __init__(self, state: MetricsState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        status = state.status
        record = status.record
        if record is not None:
            for name, doc, value in (
                (
                    "streamem_batch_mean_log_likelihood",
                    "Mean log-likelihood per point of the last micro-batch, before learning it.",
                    record.mean_log_likelihood,
                ),
                (
                    "streamem_smoothed_log_likelihood",
                    "Exponentially smoothed batch mean log-likelihood.",
                    record.smoothed_log_likelihood,
                ),
                (
                    "streamem_log_likelihood_change",
                    "Change of the smoothed log-likelihood at the last update.",
                    record.change,
                ),
                (
                    "streamem_parameter_change",
                    "Largest parameter change of the last update.",
                    record.parameter_change,
                ),
                ("streamem_step_size", "Step size of the last update.", record.step_size),
            ):
                metric = _gauge(name, doc, value)
                if metric is not None:
                    yield metric
        if status.weights:
            weights = GaugeMetricFamily(
                "streamem_component_weight", "Weight of a mixture component.", labels=["component"]
            )
            for index, weight in enumerate(status.weights):
                weights.add_metric([str(index)], float(weight))
            yield weights
        yield GaugeMetricFamily(
            "streamem_converged",
            "1 if the convergence monitor says the model converged.",
            value=float(status.converged),
        )
        yield GaugeMetricFamily(
            "streamem_drift",
            "1 if the last micro-batch triggered a drift.",
            value=float(status.drift),
        )
        yield CounterMetricFamily(
            "streamem_drift_events",
            "Drifts detected in the model's lifetime (kept in the checkpoint).",
            value=float(status.drift_events),
        )
        yield GaugeMetricFamily(
            "streamem_model_points_seen", "Points learned by the model.", value=float(status.n_seen)
        )
        yield GaugeMetricFamily(
            "streamem_model_warmup_points",
            "Points waiting for the model's first initialisation.",
            value=float(status.n_warmup),
        )
        yield GaugeMetricFamily(
            "streamem_model_version",
            "Version of the newest model snapshot the broker acknowledged.",
            value=float(state.version),
        )
        lag = GaugeMetricFamily(
            "streamem_consumer_lag_records",
            "Records of a partition not yet read: log end offset minus position.",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(state.lag.items()):
            lag.add_metric([topic, str(partition)], float(value))
        yield lag
        yield GaugeMetricFamily(
            "streamem_assigned_partitions",
            "Input partitions this daemon owns.",
            value=float(len(state.lag)),
        )
        yield GaugeMetricFamily(
            "streamem_publishing_replica",
            "1 if this replica publishes the model (in scale-out: it owns the leader partition).",
            value=float(state.publishing),
        )
        for name, doc, stamp in (
            (
                "streamem_last_checkpoint_timestamp_seconds",
                "Unix time of the last checkpoint.",
                state.last_checkpoint,
            ),
            (
                "streamem_last_publish_timestamp_seconds",
                "Unix time of the last published model snapshot.",
                state.last_publish,
            ),
        ):
            if stamp is not None:
                yield GaugeMetricFamily(name, doc, value=stamp)
        if state.oldest_statistics is not None:
            yield GaugeMetricFamily(
                "streamem_merged_statistics_age_seconds",
                "Age of the oldest statistics of another replica merged into the global model.",
                value=max(0.0, time.time() - state.oldest_statistics),
            )


class DaemonMetrics:
    """The daemon's metrics in their own registry.

    Parameters
    ----------
    registry
        Where to register them; a new :class:`~prometheus_client.CollectorRegistry` by default.

    Examples
    --------
    >>> metrics = DaemonMetrics()
    >>> metrics.consumed.inc(3)
    >>> metrics.rejected.labels(reason="malformed").inc()
    >>> metrics.registry.get_sample_value("streamem_records_consumed_total")
    3.0
    >>> metrics.registry.get_sample_value("streamem_records_rejected_total",
    ...                                   {"reason": "empty"})
    0.0
    >>> metrics.state.version = 7
    >>> metrics.registry.get_sample_value("streamem_model_version")
    7.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "streamem_records_consumed", "Records read from the input topics.", registry=r
        )
        self.rejected = Counter(
            "streamem_records_rejected",
            "Records rejected (sent to the dead-letter topic), by reason.",
            ["reason"],
            registry=r,
        )
        for reason in RejectReason:  # every reason exists from the start, at 0
            self.rejected.labels(reason=reason.value)
        self.learned = Counter(
            "streamem_records_learned",
            "Valid records whose points were given to the model.",
            registry=r,
        )
        self.points = Counter("streamem_points_learned", "Points given to the model.", registry=r)
        self.batches = Counter("streamem_batches", "Micro-batches given to the model.", registry=r)
        self.batch_duration = Histogram(
            "streamem_batch_duration_seconds",
            "Time to learn one micro-batch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.delivery_failures = Counter(
            "streamem_delivery_failures",
            "Failed deliveries of snapshots or dead letters (the producer is recreated), and "
            "failed attempts to create the producer.",
            registry=r,
        )
        self.checkpoints = Counter("streamem_checkpoints", "Checkpoints written.", registry=r)
        self.results_published = Counter(
            "streamem_results_published",
            "Result records (output.results_topic) acknowledged by the broker.",
            registry=r,
        )
        self.anomalies = Counter(
            "streamem_anomalies", "Records whose result flags an anomaly.", registry=r
        )
        self.published = Counter(
            "streamem_published", "Model snapshots acknowledged by the broker.", registry=r
        )
        self.refused_points = Counter(
            "streamem_points_refused",
            "Points kept out of the model, by reason (dead-lettered with their record, or "
            "'dropped' with a failed update).",
            ["reason"],
            registry=r,
        )
        for label in (*(refused.value for refused in REFUSED_REASONS), "dropped"):
            self.refused_points.labels(reason=label)
        self.evicted_keys = Counter(
            "streamem_sequence_keys_evicted",
            "Sequence keys whose filter state was dropped (more than input.max_keys live keys; "
            "an evicted key restarts from the model's initial state).",
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "streamem_checkpoint_failures",
            "Checkpoints that could not be written (the state directory failed).",
            registry=r,
        )
        Info("streamem_build", "Versions of streamem and Python.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.state = MetricsState()
        r.register(_StateCollector(self.state))

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return bytes(generate_latest(self.registry))


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP in a background thread.

    Parameters
    ----------
    metrics
        The metrics to serve.
    address, port
        Where to listen; port 0 picks a free port (see :attr:`port`).
    stale_after
        ``/healthz`` fails when the loop's heartbeat is older than this many seconds.
    unreachable_after
        ``/readyz`` fails when no broker was connected for this many seconds.
    clock
        Monotonic time in seconds, the daemon's clock (injectable for tests).

    Examples
    --------
    >>> import urllib.request
    >>> server = MetricsServer(DaemonMetrics(), "127.0.0.1", 0)
    >>> with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as response:
    ...     b"streamem_records_consumed_total 0.0" in response.read()
    True
    >>> server.close()
    """

    def __init__(
        self,
        metrics: DaemonMetrics,
        address: str,
        port: int,
        *,
        stale_after: float = 60.0,
        unreachable_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self._clock = clock
        self.stale_after = stale_after
        self.unreachable_after = unreachable_after
        handler = _handler(metrics, {"/healthz": self.healthy, "/readyz": self.ready})
        try:
            self._server = _BoundedServer((address, port), handler)
        except OSError as exc:
            raise StreamemError(
                f"metrics.address, metrics.port: cannot listen on {address}:{port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="streamem-metrics", daemon=True
        )
        self._thread.start()

    def healthy(self) -> tuple[bool, str]:
        """``/healthz``: whether the loop turned within ``stale_after`` seconds and no producer
        stays broken while the brokers answer; if not, why."""
        state, now = self.metrics.state, self._clock()
        age = now - state.heartbeat
        if age >= self.stale_after:
            return False, f"loop stalled: no turn for {age:.0f} s"
        if now - state.broker_contact < self.unreachable_after:
            for problem in (state.delivery_problem, state.statistics_problem):
                if problem is not None and now - problem[0] >= self.stale_after:
                    return False, (
                        f"a Kafka producer stays broken while the brokers answer, for "
                        f"{now - problem[0]:.0f} s: {problem[1]}"
                    )
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """``/readyz``: whether partitions are assigned, a broker is reachable, updates and
        checkpoints succeed; if not, why (the first failing condition)."""
        state = self.metrics.state
        if not state.ready:
            return False, "not ready: no partitions assigned (yet)"
        silence = self._clock() - state.broker_contact
        if silence >= self.unreachable_after:
            return False, f"not ready: no broker connection for {silence:.0f} s"
        for condition in (_updates_succeed, _checkpoints_succeed):
            reason = condition(state)
            if reason is not None:
                return False, f"not ready: {reason}"
        return self._delivering()

    def _delivering(self) -> tuple[bool, str]:
        """The ``/readyz`` condition of the outputs: snapshots are being delivered."""
        problem = self.metrics.state.delivery_problem
        if problem is not None:
            lasted = self._clock() - problem[0]
            if lasted >= self.unreachable_after:
                return False, f"not ready: no snapshot delivered for {lasted:.0f} s: {problem[1]}"
        return True, "ready"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def _updates_succeed(state: MetricsState) -> str | None:
    """``/readyz`` condition: the model's updates are not failing batch after batch."""
    if state.failed_batches >= state.unready_after_failed_batches:
        return f"the last {state.failed_batches} updates of the model failed"
    return None


def _checkpoints_succeed(state: MetricsState) -> str | None:
    """``/readyz`` condition: the newest checkpoint attempt was written."""
    if state.checkpoint_error is not None:
        return f"the checkpoint cannot be written: {state.checkpoint_error}"
    return None


class _BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server with at most :data:`MAX_CONNECTIONS` connections at once."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst of connections waits, not retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed, no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


_Probe = Callable[[], tuple[bool, str]]


def _handler(metrics: DaemonMetrics, probes: Mapping[str, _Probe]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = _IDLE_SECONDS

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path in probes:
                ok, reason = probes[path]()
                self._answer(200 if ok else 503, f"{reason}\n".encode())
            else:
                self._answer(404, b"not found: try /metrics, /healthz or /readyz\n")

        def _answer(self, code: int, body: bytes, kind: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics endpoint: " + format, *args)

    return Handler
