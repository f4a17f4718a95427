"""First contact with a broker: a host without an address fails at once, a refused connection
says so (issue 32, item 11)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer

from streamem.cli import main
from streamem.commands.connect import BrokerUnreachableError, connect
from streamem.service.broker import free_loopback_port


def test_a_host_without_an_address_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    argv = ["produce", "--bootstrap-servers", "no-such-host.invalid:9092", "--count", "1"]
    assert main(argv) == 1
    assert time.monotonic() - started < 3.0  # not the 6 s of --connect-timeout
    assert "host 'no-such-host.invalid' has no address (check the name)" in capsys.readouterr().err


def test_a_refused_connection_is_named_after_the_timeout() -> None:
    port = free_loopback_port()  # nothing listens there
    with pytest.raises(BrokerUnreachableError, match="refused the connection") as raised:
        connect(KafkaProducer, f"127.0.0.1:{port}", 1.0, enable_idempotence=False)
    assert f"127.0.0.1:{port} refused the connection (nothing listens there)" in str(raised.value)
