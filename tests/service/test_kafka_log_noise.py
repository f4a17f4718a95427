"""kafka-python's noise in the daemon's log (issue 32, item 14): a warning per scale-out
assignment, bursts of errors while the broker is away."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from streamem.service.logs import configure_logging


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    yield out
    configure_logging("WARNING", "text")


def test_network_loop_steps_shorter_than_a_second_are_not_warned(log: io.StringIO) -> None:
    selector = logging.getLogger("kafka.net.selector")
    for seconds in (0.101, 0.134, 2.5):  # formatted before logging, as kafka-python does
        selector.warning(
            f"Task <Task on_assign> ran for {seconds:.3f}s (>0.100s threshold). It is blocking "
            "the event loop -- likely a tight sync loop inside a coroutine."
        )
    lines = log.getvalue().splitlines()
    assert len(lines) == 1
    assert "ran for 2.500s" in lines[0]


def test_errors_that_differ_by_their_numbers_are_one_message(log: io.StringIO) -> None:
    connection = logging.getLogger("kafka.conn")
    for attempt in range(40):  # while the broker is away: one per attempt, formatted
        connection.error(
            f"<BrokerConnection node_id=bootstrap-0 host=127.0.0.1:{40_000 + attempt}>: "
            f"Connect attempt returned error 111 after {attempt * 0.05:.2f}s. Disconnecting."
        )
    assert len(log.getvalue().splitlines()) == 1
