"""Dask is an optional extra: the library, the river learner, the daemon and the command line
import without it, and ``streamem.dask`` says which extra it needs when it is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamem.extras import MissingExtraError

IMPORTS = """
import sys
import numpy as np
import streamem
from streamem import GaussianHMM, GaussianMixture, LatentDirichletAllocation, LinearGaussianSSM
import streamem.river, streamem.cli, streamem.service.app, streamem.commands.fit
GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2)))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
print(",".join(loaded))
"""


def test_the_base_and_the_other_extras_do_not_import_dask() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "", done.stdout


def test_a_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in ("dask", "streamem")]:
        if name == "dask" or name.startswith("dask.") or name == "streamem.dask":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r'pip install "streamem\[dask\]"'):
        import streamem.dask  # noqa: F401
