"""First contact with a Kafka broker, bounded in time and explained in one line when it fails.

kafka-python waits 30 s by default for a first broker and then says only ``Unable to bootstrap
from 127.0.0.1:1``. The commands instead fail at once when no host of the bootstrap servers has an
address (a typo in a host name), otherwise wait ``connect_timeout`` seconds (their
``--connect-timeout``: a broker may be starting) and fail with a :class:`BrokerUnreachableError`
that names the address, the setting, and what each server did: refused the connection (nothing
listens on that port) or did not answer.

Examples
--------
>>> print(BrokerUnreachableError.of("127.0.0.1:1", 10.0))
no Kafka broker answered at 127.0.0.1:1 within 10 s (raise --connect-timeout to wait longer, or
check the address)
>>> print(unresolvable("no-such-host.invalid:9092,127.0.0.1:9092"))
None
>>> print(unresolvable("no-such-host.invalid:9092"))
no Kafka broker at no-such-host.invalid:9092: host 'no-such-host.invalid' has no address (check
the name)
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar

from streamem.errors import StreamemError

__all__ = ["BrokerUnreachableError", "connect", "unresolvable"]

Client = TypeVar("Client")


class BrokerUnreachableError(StreamemError):
    """No broker of the bootstrap servers answered within the connect timeout."""

    @classmethod
    def of(cls, bootstrap_servers: str, timeout: float, why: str = "") -> BrokerUnreachableError:
        """The error for ``bootstrap_servers`` after ``timeout`` seconds (``why``: what the
        servers did, see :func:`_diagnose`)."""
        return cls(
            f"no Kafka broker answered at {bootstrap_servers} within {timeout:g} s"
            + (f": {why}" if why else "")
            + " (raise --connect-timeout to wait longer, or check the address)"
        )


def _servers(bootstrap_servers: str) -> list[tuple[str, int]]:
    servers = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        servers.append((host.strip("[]") or "localhost", int(port) if port.isdigit() else 9092))
    return servers


def unresolvable(bootstrap_servers: str) -> str | None:
    """The error message when no host of ``bootstrap_servers`` has an address; None if one
    has (a name that does not resolve cannot come to; a broker that is starting can)."""
    servers = _servers(bootstrap_servers)
    unknown = []
    for host, port in servers:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            unknown.append(host)
    if len(unknown) < len(servers):
        return None
    hosts = ", ".join(repr(host) for host in unknown)
    plural = "s" if len(unknown) > 1 else ""
    have = "have" if len(unknown) > 1 else "has"
    return (
        f"no Kafka broker at {bootstrap_servers}: host{plural} {hosts} {have} no address "
        "(check the name)"
    )


def _diagnose(bootstrap_servers: str) -> str:
    """What each server does now: refuses the connection, or does not answer in 1 s."""
    found = []
    for host, port in _servers(bootstrap_servers):
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            found.append(f"{host}:{port} accepts connections but did not answer as a broker")
        except ConnectionRefusedError:
            found.append(f"{host}:{port} refused the connection (nothing listens there)")
        except OSError:
            found.append(f"{host}:{port} did not answer")
    return "; ".join(found)


def connect(
    factory: Callable[..., Client], bootstrap_servers: str, timeout: float, **kwargs: Any
) -> Client:
    """``factory(bootstrap_servers=..., bootstrap_timeout_ms=..., **kwargs)``: a kafka-python
    client that found a broker within ``timeout`` seconds.

    Raises
    ------
    BrokerUnreachableError
        At once if no host has an address; if no broker answered in time.
    """
    from kafka.errors import KafkaTimeoutError

    message = unresolvable(bootstrap_servers)
    if message is not None:
        raise BrokerUnreachableError(message)
    try:
        return factory(
            bootstrap_servers=bootstrap_servers,
            bootstrap_timeout_ms=int(timeout * 1000),
            **kwargs,
        )
    except KafkaTimeoutError:
        why = _diagnose(bootstrap_servers)
        raise BrokerUnreachableError.of(bootstrap_servers, timeout, why) from None
