"""Logging of the daemon: text lines or JSON lines on standard error.

Examples
--------
>>> import json
>>> record = logging.LogRecord("streamem.demo", logging.INFO, __file__, 1, "learned %d points",
...                            (1000,), None)
>>> line = json.loads(JsonFormatter().format(record))
>>> line["level"], line["logger"], line["message"]
('INFO', 'streamem.demo', 'learned 1000 points')
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["JsonFormatter", "RateLimitFilter", "SlowTaskFilter", "configure_logging"]

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "streamem-daemon"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``
    and, if there is one, ``exception`` (the formatted traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


_NUMBERS = re.compile(r"\d+(\.\d+)?")

SLOW_TASK_SECONDS = 1.0
"""kafka-python's "Task ... ran for ...s ... blocking the event loop" warnings of shorter steps
are left out (:class:`SlowTaskFilter`)."""

_SLOW_TASK = re.compile(r"^Task .* ran for (?P<seconds>\d+(\.\d+)?)s .*blocking the event loop")


class SlowTaskFilter(logging.Filter):
    """Leaves out kafka-python's warning that a step of its network loop ran longer than 0.1 s,
    when it ran less than :data:`SLOW_TASK_SECONDS`.

    A consumer's rebalance listener runs inside that loop, and the daemon's restores a
    partition's state there (every scale-out assignment takes a little over 0.1 s); a step must
    take seconds before the group's heartbeats (``session_timeout_ms``) are at risk.

    Examples
    --------
    >>> def record(seconds):
    ...     text = (f"Task <Task x> ran for {seconds:.3f}s (>0.100s threshold). It is blocking "
    ...             "the event loop -- likely a tight sync loop inside a coroutine.")
    ...     return logging.LogRecord("kafka.net.selector", logging.WARNING, "", 1, text, (), None)
    >>> SlowTaskFilter().filter(record(0.101)), SlowTaskFilter().filter(record(2.5))
    (False, True)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka"):
            return True
        slow = _SLOW_TASK.match(str(record.msg))
        return slow is None or float(slow["seconds"]) >= SLOW_TASK_SECONDS


class RateLimitFilter(logging.Filter):
    """Lets a log message of the loggers under ``prefix`` through at most once per ``period``.

    kafka-python logs every failed connection attempt, several per second while a broker is
    away; one line per message template and period is enough. The next line that gets through
    says how many were left out.

    Examples
    --------
    >>> limit = RateLimitFilter("kafka", period=10.0)
    >>> def record(t):
    ...     r = logging.LogRecord("kafka.net", logging.ERROR, "", 1, "failed: %s", ("x",), None)
    ...     r.created = t
    ...     return r
    >>> [limit.filter(record(t)) for t in (0.0, 1.0, 2.0)]
    [True, False, False]
    >>> late = record(11.0)
    >>> limit.filter(late), late.getMessage()
    (True, 'failed: x (2 similar messages left out)')
    """

    def __init__(self, prefix: str, period: float) -> None:
        super().__init__()
        self.prefix = prefix
        self.period = period
        self._last: dict[tuple[str, int, str], float] = {}
        self._skipped: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        # messages formatted before logging differ by their numbers (ports, node ids, times)
        key = (record.name, record.levelno, _NUMBERS.sub("#", str(record.msg)))
        last = self._last.get(key)
        if last is not None and record.created - last < self.period:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return False
        if len(self._last) > 10_000:  # preformatted messages: do not grow without bound
            self._last.clear()
            self._skipped.clear()
        self._last[key] = record.created
        skipped = self._skipped.pop(key, 0)
        if skipped:
            record.msg = f"{record.msg} ({skipped} similar messages left out)"
        return True


def configure_logging(level: str, format: str, *, stream: TextIO | None = None) -> None:
    """Send the root logger's records to ``stream`` (standard error) as text or JSON lines.

    kafka-python's own loggers are kept at WARNING unless ``level`` is DEBUG: at INFO they
    describe every connection and group event; and each of their messages is let through at
    most once per 10 s (:class:`RateLimitFilter`; messages that differ only by their numbers
    are one message), its warnings about network-loop steps shorter than 1 s are left out
    (:class:`SlowTaskFilter`). Calling it again replaces the handler.

    Parameters
    ----------
    level
        ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL``.
    format
        ``text`` or ``json``.
    stream
        Where to write; ``sys.stderr`` by default.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(_TEXT_FORMAT))
    if level != "DEBUG":
        handler.addFilter(SlowTaskFilter())
        handler.addFilter(RateLimitFilter("kafka", period=10.0))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.captureWarnings(True)
