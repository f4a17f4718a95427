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
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["JsonFormatter", "configure_logging"]

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


def configure_logging(level: str, format: str, *, stream: TextIO | None = None) -> None:
    """Send the root logger's records to ``stream`` (standard error) as text or JSON lines.

    kafka-python's own loggers are kept at WARNING unless ``level`` is DEBUG: at INFO they
    describe every connection and group event. Calling it again replaces the handler.

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
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.captureWarnings(True)
