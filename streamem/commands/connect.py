"""First contact with a Kafka broker, bounded in time and explained in one line when it fails.

kafka-python waits 30 s by default for a first broker and then says only ``Unable to bootstrap
from 127.0.0.1:1``. The commands instead wait ``connect_timeout`` seconds (their
``--connect-timeout``) and fail with a :class:`BrokerUnreachableError` that names the address and
the setting.

Examples
--------
>>> print(BrokerUnreachableError.of("127.0.0.1:1", 10.0))
no Kafka broker answered at 127.0.0.1:1 within 10 s (raise --connect-timeout to wait longer, or
check the address)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from streamem.errors import StreamemError

__all__ = ["BrokerUnreachableError", "connect"]

Client = TypeVar("Client")


class BrokerUnreachableError(StreamemError):
    """No broker of the bootstrap servers answered within the connect timeout."""

    @classmethod
    def of(cls, bootstrap_servers: str, timeout: float) -> BrokerUnreachableError:
        """The error for ``bootstrap_servers`` after ``timeout`` seconds."""
        return cls(
            f"no Kafka broker answered at {bootstrap_servers} within {timeout:g} s (raise "
            "--connect-timeout to wait longer, or check the address)"
        )


def connect(
    factory: Callable[..., Client], bootstrap_servers: str, timeout: float, **kwargs: Any
) -> Client:
    """``factory(bootstrap_servers=..., bootstrap_timeout_ms=..., **kwargs)``: a kafka-python
    client that found a broker within ``timeout`` seconds.

    Raises
    ------
    BrokerUnreachableError
        If no broker answered in time.
    """
    from kafka.errors import KafkaTimeoutError

    try:
        return factory(
            bootstrap_servers=bootstrap_servers,
            bootstrap_timeout_ms=int(timeout * 1000),
            **kwargs,
        )
    except KafkaTimeoutError:
        raise BrokerUnreachableError.of(bootstrap_servers, timeout) from None
