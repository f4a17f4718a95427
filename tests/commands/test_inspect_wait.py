"""``streamem inspect --wait``: the first model of a daemon that just started is waited for."""

from __future__ import annotations

import argparse

import pytest

from streamem.cli import _first_snapshots
from streamem.errors import ValidationError


def _args(wait: float) -> argparse.Namespace:
    return argparse.Namespace(
        bootstrap_servers="127.0.0.1:9092",
        topic="streamem.models",
        model=None,
        connect_timeout=6.0,
        wait=wait,
    )


def test_the_read_is_tried_again_until_a_model_is_there(capsys: pytest.CaptureFixture[str]) -> None:
    answers: list[object] = [ValidationError("no topic 'streamem.models'")] * 2 + [["snapshot"]]

    def read(*args: object, **kwargs: object) -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert _first_snapshots(_args(wait=30), read) == ["snapshot"]
    assert not answers
    err = capsys.readouterr().err
    assert err.count("waiting up to 30 s for the first model (--wait)") == 1  # said once


def test_without_wait_the_error_comes_at_once() -> None:
    calls = []

    def read(*args: object, **kwargs: object) -> object:
        calls.append(1)
        raise ValidationError("no topic 'streamem.models'")

    with pytest.raises(ValidationError, match="no topic"):
        _first_snapshots(_args(wait=0), read)
    assert len(calls) == 1
