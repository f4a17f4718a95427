"""``streamem broker``: the embedded Kafka-compatible broker as a command, to try the daemon.

It runs :class:`~streamem.service.broker.EmbeddedBroker` (Tansu, memory only) on a loopback
port, creates the topics asked for, prints the bootstrap address and waits until Ctrl-C or
SIGTERM, then stops the broker. Everything is lost when it stops.

Examples
--------
>>> topic_specs(["sensors:4", "streamem.models"])
{'sensors': 4, 'streamem.models': 1}
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

from streamem.errors import StreamemError, ValidationError

__all__ = ["serve_broker", "topic_specs"]


def topic_specs(texts: Sequence[str]) -> dict[str, int]:
    """``NAME`` or ``NAME:PARTITIONS`` strings as {name: partitions}.

    Raises
    ------
    ValidationError
        If a partition count is not a whole number >= 1.
    """
    specs = {}
    for text in texts:
        name, _, count = text.partition(":")
        try:
            partitions = int(count) if count else 1
        except ValueError:
            partitions = 0
        if not name or partitions < 1:
            raise ValidationError(f"--topics: expected NAME or NAME:PARTITIONS, got {text!r}")
        specs[name] = partitions
    return specs


def serve_broker(
    port: int | None,
    topics: Mapping[str, int],
    *,
    out: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the broker until Ctrl-C, SIGTERM or ``stop``; return the exit code (0).

    Parameters
    ----------
    port
        The port on 127.0.0.1; None chooses a free one.
    topics
        Topics to create and their partition counts.
    out
        Where the lines go (standard output, flushed, by default).
    stop
        Set it to stop the broker (for callers other than the command).

    Raises
    ------
    ValidationError
        If ``port`` is taken.
    StreamemError
        If the broker exits by itself.
    """
    from streamem.service.broker import EmbeddedBroker

    say = out or (lambda line: print(line, flush=True))
    stop = stop or threading.Event()
    if port is not None and not _free(port):
        raise ValidationError(f"--port {port}: 127.0.0.1:{port} is already in use")
    broker = EmbeddedBroker(port=port)
    previous = _stop_on_sigterm(stop)
    try:
        broker.start()
        for name, partitions in topics.items():
            broker.create_topics([name], partitions=partitions)
        made = ", ".join(f"{name} ({n} partitions)" for name, n in topics.items())
        say(f"broker ready at {broker.bootstrap_servers} (memory only; Ctrl-C stops it)")
        if made:
            say(f"topics: {made}")
        say(f"use: --bootstrap-servers {broker.bootstrap_servers}")
        try:
            while not stop.wait(0.5):
                if not broker.running:
                    raise StreamemError(f"the broker on {broker.bootstrap_servers} exited")
        except KeyboardInterrupt:
            pass
        say("broker stopped")
        return 0
    finally:
        broker.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_on_sigterm(stop: threading.Event) -> Any:
    """Make SIGTERM set ``stop`` (main thread only); return the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return signal.signal(signal.SIGTERM, on_sigterm)
