"""``streamem produce``: readings into a Kafka topic, from a file or the synthetic sensor stream.

Every record is a JSON object, the format that ``input.format: json`` reads, but documents:

- from a file (:mod:`streamem.datafiles`: CSV, NDJSON, ``.npy``), each row becomes
  ``{"<feature>": value, ...}`` with its numeric features (a missing value is ``null``), no key,
  or keyed by a field of the row (:func:`file_records`);
- from a text file, each line is one document, sent as it is (:func:`document_records`);
- from the synthetic stream (:class:`streamem.synthetic.SensorStream`), each reading is
  ``{"machine": "m2", "ts": ..., "temp": ..., "hum": ..., "vib": ...}`` keyed by its machine.

Examples
--------
>>> from streamem.synthetic import SensorStream
>>> key, value = next(synthetic_records(SensorStream(seed=0)))
>>> key, sorted(json.loads(value))
(b'm1', ['hum', 'machine', 'temp', 'ts', 'vib'])
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

from streamem.commands.connect import connect
from streamem.datafiles import DataFile
from streamem.errors import StreamemError, ValidationError
from streamem.synthetic import SensorStream

__all__ = [
    "MALFORMED",
    "ProgressLine",
    "document_records",
    "file_records",
    "paced",
    "send_records",
    "synthetic_records",
    "with_malformed",
]

Message = tuple[bytes | None, bytes]
"""A record's key (or None) and value."""

_BLOCK = 200  # readings generated at once

MALFORMED = b'{"temp": "hot"'
"""What :func:`with_malformed` sends instead of a reading: truncated JSON, a string feature."""


def synthetic_records(stream: SensorStream) -> Iterator[Message]:
    """The synthetic readings, stamped with the current time, keyed by machine, forever."""
    while True:
        for reading in stream.take(_BLOCK, timestamp=round(time.time(), 3)):
            yield str(reading["machine"]).encode(), json.dumps(reading).encode()


def file_records(data: DataFile, key_field: str | None = None) -> Iterator[Message]:
    """Every row of a data file as a JSON object of its features (NaN as null).

    With ``key_field`` the row's value of that field (a text or a whole number,
    :meth:`~streamem.datafiles.DataFile.keys`) is the record's key and a field of the object:
    the input of a sequential family's daemon with ``input.sequence_key`` (each sequence in one
    partition); unkeyed otherwise.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from streamem.datafiles import open_data
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "readings.csv"
    >>> _ = path.write_text("sensor,temp\\ns1,21.5\\ns2,\\n")
    >>> list(file_records(open_data(path), key_field="sensor"))
    [(b's1', b'{"temp": 21.5, "sensor": "s1"}'), (b's2', b'{"temp": null, "sensor": "s2"}')]
    """
    keys = data.keys(key_field) if key_field is not None else None
    for chunk in data.chunks():
        for row in chunk.tolist():
            values: dict[str, object] = {
                f: None if math.isnan(v) else v for f, v in zip(data.features, row, strict=True)
            }
            if keys is None:
                yield None, json.dumps(values).encode()
                continue
            key = next(keys)
            values[str(key_field)] = key
            yield str(key).encode(), json.dumps(values).encode()


def document_records(path: Path) -> Iterator[Message]:
    """Every non-blank line of a UTF-8 text file as one document (the record's value, the
    input of an ``input.format: text`` daemon), unkeyed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = path.write_text("pump leak at valve 3\\n\\nbelt motor noise\\n")
    >>> list(document_records(path))
    [(None, b'pump leak at valve 3'), (None, b'belt motor noise')]

    Raises
    ------
    ValidationError
        If the file cannot be read or a line is not UTF-8 (named by its number).
    """
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ValidationError(f"cannot read {str(path)!r}: {error.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip(b"\r\n")
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(f"{str(path)!r} line {number} is not UTF-8 text") from None
            if text.strip():
                yield None, text


def with_malformed(messages: Iterator[Message], every: int | None) -> Iterator[Message]:
    """``messages`` with every ``every``-th one replaced by :data:`MALFORMED` (None: none).

    For trying the dead-letter path of a daemon.

    Examples
    --------
    >>> sent = with_malformed(iter([(None, b"1"), (None, b"2"), (None, b"3")]), every=2)
    >>> [value for _, value in sent]
    [b'1', b'{"temp": "hot"', b'3']
    """
    for n, (key, value) in enumerate(messages, start=1):
        yield (key, MALFORMED) if every and n % every == 0 else (key, value)


def paced(
    messages: Iterator[Message],
    rate: float | None,
    stop: threading.Event | None = None,
) -> Iterator[Message]:
    """``messages`` at about ``rate`` per second (as fast as possible if None) until ``stop``."""
    if rate is not None and not rate > 0:
        raise ValidationError(f"rate must be > 0 records per second, got {rate}")
    stop = stop or threading.Event()
    started = time.monotonic()
    for n, message in enumerate(messages):
        delay = 0.0 if rate is None else started + n / rate - time.monotonic()
        if stop.wait(delay) if delay > 0 else stop.is_set():
            return
        yield message


def send_records(
    bootstrap_servers: str,
    topic: str,
    messages: Iterator[Message],
    count: int | None = None,
    *,
    on_sent: Callable[[int], None] | None = None,
    connect_timeout: float = 10.0,
) -> int:
    """Send ``count`` messages (all if None) to ``topic`` with kafka-python; return how many.

    The producer is flushed before this returns, so every message was acknowledged by the broker
    or failed.

    Parameters
    ----------
    on_sent
        Called with the number of messages handed to the producer so far, after each one (a
        progress line, a live view).
    connect_timeout
        Seconds to wait for a first broker.

    Raises
    ------
    BrokerUnreachableError
        If no broker answered within ``connect_timeout`` seconds.
    StreamemError
        If any message was not delivered (the first error and the number of failures).
    """
    from kafka import KafkaProducer

    producer = connect(
        KafkaProducer,
        bootstrap_servers,
        connect_timeout,
        client_id="streamem-produce",
        linger_ms=20,
        acks=1,
        enable_idempotence=False,
        max_block_ms=10_000,
    )
    failures: list[BaseException] = []
    sent = 0
    try:
        for key, value in islice(messages, count):
            producer.send(topic, key=key, value=value).add_errback(failures.append)
            sent += 1
            if on_sent is not None:
                on_sent(sent)
        producer.flush()
    finally:
        producer.close(timeout=5)
    if failures:
        raise StreamemError(
            f"{len(failures):,} of {sent:,} records were not delivered to {topic!r} on "
            f"{bootstrap_servers}: {failures[0]!r}"
        )
    return sent


class ProgressLine:
    """Prints ``sent N records (R/s)`` every ``every`` seconds, for :func:`send_records`.

    Examples
    --------
    >>> lines = []
    >>> ticks = iter([0.0, 1.0, 6.0, 7.0])
    >>> progress = ProgressLine("sensors", every=5.0, out=lines.append, clock=lambda: next(ticks))
    >>> progress(100); progress(3_000); progress(3_500)
    >>> lines
    ['sent 3,000 records to sensors (500/s)']
    """

    def __init__(
        self,
        topic: str,
        *,
        every: float = 5.0,
        out: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self.every = every
        self._out = out or (lambda line: print(line, file=sys.stderr, flush=True))
        self._clock = clock
        self._started = clock()
        self._next = self._started + every

    def __call__(self, sent: int) -> None:
        """Note that ``sent`` records were sent; print a line when one is due."""
        now = self._clock()
        if now >= self._next:
            rate = sent / (now - self._started)
            self._out(f"sent {sent:,} records to {self.topic} ({rate:,.0f}/s)")
            self._next = now + self.every
