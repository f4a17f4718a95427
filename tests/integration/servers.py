"""Real servers and clients for the integration tests: Prometheus, kcat and helpers.

Everything listens on 127.0.0.1 on a free port, and every process is stopped through the pid it was
started with (never by name). The Kafka-protocol broker itself is
:class:`streamem.service.broker.EmbeddedBroker`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

import pytest

from streamem.service.broker import die_with_parent_preexec, free_loopback_port

__all__ = [
    "Kcat",
    "PrometheusServer",
    "free_port",
    "read_records",
    "require",
    "unavailable",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_loopback_port()


def unavailable(reason: str) -> NoReturn:
    """Skip the current test because a real server or tool is missing; fail instead under CI.

    Under ``CI=true`` a missing tool is an error of the CI image, so the test fails loudly instead
    of being skipped silently.
    """
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure instead of a skip)", pytrace=False)
    pytest.skip(reason)


def require(executable: str) -> str:
    """Return the full path of ``executable``; skip the test (fail under ``CI=true``) if missing.

    Parameters
    ----------
    executable : str
        A program name looked up on ``PATH`` (or a path).

    Returns
    -------
    str
        The path of the executable.
    """
    path = shutil.which(executable)
    if path is None:
        unavailable(f"{executable!r} is not on PATH (Debian: apt-get install -y {executable})")
    return path


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the process by its pid, then SIGKILL it if it is still alive after ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_records(
    bootstrap: str, topic: str, count: int, timeout: float = 10.0
) -> list[Any]:  # list of kafka.consumer.fetcher.ConsumerRecord
    """Read the first ``count`` records of every partition of a topic with kafka-python.

    Uses ``assign`` + ``seek_to_beginning`` (no consumer group, so no join delay).

    Parameters
    ----------
    bootstrap : str
        ``host:port`` of the broker.
    topic : str
        The topic; it must exist.
    count : int
        How many records to wait for.
    timeout : float, default=10.0
        Seconds to wait for them.

    Returns
    -------
    list of ConsumerRecord
        The records in the order they were fetched (ordered within each partition).

    Raises
    ------
    TimeoutError
        If fewer than ``count`` records arrived in time.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise TimeoutError(f"topic {topic!r} has no partitions on {bootstrap}")
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list[Any] = []
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        if len(records) < count:
            raise TimeoutError(f"read {len(records)} of {count} records from {topic!r}")
        return records[:count]
    finally:
        consumer.close()


class PrometheusServer:
    """A real Prometheus server on loopback that scrapes targets added at run time.

    Targets come from ``file_sd_configs`` (one JSON file per job, re-read every second) and are
    scraped every second, so one server can serve a whole test session. Note that Prometheus makes
    its first scrape about 5.3 s after it reports ready.

    Parameters
    ----------
    executable : str, default="prometheus"
        The Prometheus binary (Debian package ``prometheus``).
    port : int, optional
        Port of the web API on 127.0.0.1; a free one by default.
    """

    def __init__(self, executable: str = "prometheus", port: int | None = None) -> None:
        self.executable = executable
        self.port = port if port is not None else free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="streamem-prometheus-"))
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._sd_dir = self._dir / "targets"
        self._sd_dir.mkdir()
        self.log_path = self._dir / "prometheus.log"
        self._targets: dict[str, list[str]] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the web API, e.g. ``"http://127.0.0.1:40123"``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or ``None``."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, timeout: float = 15.0) -> None:
        """Write the config, launch Prometheus and wait until ``/-/ready`` answers 200."""
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {
                    "job_name": "file_sd",
                    "file_sd_configs": [
                        {"files": [str(self._sd_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        config_path = self._dir / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        cmd = [
            self.executable,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self._dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent_preexec(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with code {self._proc.returncode}:\n{_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus not ready within {timeout} s:\n{_tail(self.log_path)}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server through its pid (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_process(proc, timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_target(self, job: str, target: str) -> None:
        """Add a scrape target, e.g. ``add_target("daemon", "127.0.0.1:9100")``.

        The series get the label ``job=<job>``. The file is replaced atomically, so Prometheus
        never reads a half-written one.
        """
        self._targets.setdefault(job, []).append(target)
        self._write_targets(job)

    def remove_target(self, job: str) -> None:
        """Stop scraping every target of ``job``."""
        self._targets.pop(job, None)
        (self._sd_dir / f"{job}.json").unlink(missing_ok=True)

    def _write_targets(self, job: str) -> None:
        groups = [{"targets": self._targets[job], "labels": {"job": job}}]
        tmp = self._sd_dir / f".{job}.tmp"  # not matched by *.json
        tmp.write_text(json.dumps(groups))
        tmp.replace(self._sd_dir / f"{job}.json")

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} failed: {body}")
        return body["data"]

    def targets(self, job: str | None = None) -> list[dict[str, Any]]:
        """The active targets (as in ``/api/v1/targets``), optionally only those of ``job``."""
        active: list[dict[str, Any]] = self._get("/api/v1/targets", state="active")["activeTargets"]
        return [t for t in active if job is None or t["labels"].get("job") == job]

    def wait_target_up(self, timeout: float = 20.0, *, job: str | None = None) -> None:
        """Wait until at least one target (of ``job``) exists and all of them are ``up``.

        Raises
        ------
        TimeoutError
            With the last seen target states.
        """
        deadline = time.monotonic() + timeout
        targets: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            targets = self.targets(job)
            if targets and all(t["health"] == "up" for t in targets):
                return
            time.sleep(0.2)
        states = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
        raise TimeoutError(f"targets of job {job!r} not up within {timeout} s: {states}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate an instant PromQL query; return ``data.result``.

        For a vector each item is ``{"metric": {labels}, "value": [timestamp, "value"]}``.
        """
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=promql)["result"]
        return result

    def wait_query(self, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Repeat :meth:`query` until its result is not empty; raise ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no result for {promql!r} within {timeout} s")
            time.sleep(0.2)


class Kcat:
    """The ``kcat`` command-line Kafka client, run against the librdkafka of ``confluent-kafka``.

    Debian's kcat links librdkafka 2.0.2, which cannot talk to Tansu. The ``confluent-kafka``
    wheel bundles a newer librdkafka; a temporary directory holds a ``librdkafka.so.1`` symlink to
    it and kcat runs with ``LD_LIBRARY_PATH`` pointing there.

    Parameters
    ----------
    executable : str, default="kcat"
        The kcat program.

    Raises
    ------
    FileNotFoundError
        If the bundled librdkafka cannot be found.
    """

    def __init__(self, executable: str = "kcat") -> None:
        import confluent_kafka

        self.executable = executable
        libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
        candidates = sorted(libs.glob("librdkafka*.so.1"))
        if not candidates:
            raise FileNotFoundError(f"no librdkafka*.so.1 in {libs}")
        self._dir = Path(tempfile.mkdtemp(prefix="streamem-kcat-"))
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        (self._dir / "librdkafka.so.1").symlink_to(candidates[0])
        self.env = {**os.environ, "LD_LIBRARY_PATH": str(self._dir)}

    def run(
        self, args: list[str], *, stdin: bytes | None = None, timeout: float = 15.0
    ) -> subprocess.CompletedProcess[bytes]:
        """Run kcat with ``args``; raise ``RuntimeError`` (with its stderr) if it fails."""
        try:
            done = subprocess.run(
                [self.executable, *args],
                input=stdin,
                capture_output=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"kcat {args} timed out after {timeout} s: {exc.stderr!r}") from exc
        if done.returncode != 0:
            raise RuntimeError(f"kcat {args} exited with {done.returncode}: {done.stderr.decode()}")
        return done

    def produce(
        self,
        bootstrap: str,
        topic: str,
        lines: list[str],
        key: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        """Produce one message per line (UTF-8), all with the same ``key`` if given."""
        if any("\n" in line for line in lines):
            raise ValueError("a line must not contain a newline: it is the message delimiter")
        args = ["-P", "-b", bootstrap, "-t", topic, "-m", str(int(timeout))]
        args += ["-X", f"message.timeout.ms={int(timeout * 1000)}"]
        if key is not None:
            args += ["-k", key]
        payload = "".join(f"{line}\n" for line in lines).encode()
        self.run(args, stdin=payload, timeout=timeout + 5)  # kcat exits non-zero if one failed

    def consume(self, bootstrap: str, topic: str, count: int, timeout: float = 15.0) -> list[str]:
        """Read the first ``count`` message values of a topic (all partitions), from the start.

        Runs ``kcat -C -e -o beginning -c count`` again until ``count`` messages are there or
        ``timeout`` seconds passed. Values are decoded as UTF-8; a NULL value reads as ``""``.
        Order is kept within a partition, not across partitions.

        Raises
        ------
        TimeoutError
            If fewer than ``count`` messages could be read in time.
        """
        deadline = time.monotonic() + timeout
        values: list[str] = []
        while True:
            left = max(deadline - time.monotonic(), 1.0)
            args = ["-C", "-b", bootstrap, "-t", topic, "-e", "-o", "beginning", "-q"]
            args += ["-c", str(count), "-m", str(int(left)), "-f", "%S\\n%s\\n"]
            values = self._parse(self.run(args, timeout=left + 5).stdout)
            if len(values) >= count or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if len(values) < count:
            raise TimeoutError(f"kcat read {len(values)} of {count} messages from {topic!r}")
        return values

    @staticmethod
    def _parse(out: bytes) -> list[str]:
        """Parse ``%S\\n%s\\n`` records: byte length, newline, payload, newline."""
        values: list[str] = []
        pos = 0
        while pos < len(out):
            end = out.index(b"\n", pos)
            size = int(out[pos:end])
            start = end + 1
            payload = out[start : start + max(size, 0)]
            values.append(payload.decode("utf-8", errors="replace"))
            pos = start + max(size, 0) + 1
        return values
