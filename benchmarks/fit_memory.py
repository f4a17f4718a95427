"""Peak memory and speed of ``streamem fit`` on a large CSV, and agreement with ``partial_fit``.

Writes a CSV of synthetic sensor readings (3 features, full precision), then runs
``streamem fit FILE --components 3`` and ``--components auto`` under ``/usr/bin/time -v`` (peak
resident memory of the whole process: Python, numpy, pandas and the model included), and the
library's own ``partial_fit`` loop over the same rows held in memory; the first and the last must
agree exactly.

Run: python benchmarks/fit_memory.py [--rows 5000000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from streamem import GaussianMixture
from streamem.synthetic import SensorModes

BATCH_SIZE = 1_000
WRITE_ROWS = 500_000


def write_csv(path: Path, n_rows: int, seed: int = 0) -> None:
    """``n_rows`` readings of temp, hum, vib, written with every float's shortest exact form."""
    rng = np.random.default_rng(seed)
    modes = SensorModes.default()
    with path.open("w") as out:
        out.write("temp,hum,vib\n")
        for start in range(0, n_rows, WRITE_ROWS):
            X, _ = modes.sample(min(WRITE_ROWS, n_rows - start), rng)
            out.write("\n".join(",".join(map(repr, row)) for row in X.tolist()) + "\n")


def run_fit(path: Path, out: Path, components: str) -> tuple[float, float]:
    """Run ``streamem fit`` under ``/usr/bin/time -v``; return (peak RSS in MB, seconds)."""
    command = [sys.executable, "-m", "streamem", "fit", str(path), "--components", components]
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command, "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_kb = int(_field(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    wall = _field(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    hours, minutes, seconds = (float(g or 0) for g in wall.groups())
    return peak_kb / 1024, hours * 3600 + minutes * 60 + seconds


def _field(pattern: str, report: str) -> re.Match[str]:
    found = re.search(pattern, report)
    if found is None:
        raise RuntimeError(f"/usr/bin/time -v printed nothing like {pattern!r}:\n{report}")
    return found


def library_loop(path: Path) -> tuple[GaussianMixture, float]:
    """The library's ``partial_fit`` over the same rows, read whole into memory."""
    X = np.loadtxt(path, delimiter=",", skiprows=1)
    model = GaussianMixture(3, n_init=5, random_state=0, init_size=10_000)
    started = time.perf_counter()
    with threadpool_limits(1):
        for start in range(0, len(X), BATCH_SIZE):
            model.partial_fit(X[start : start + BATCH_SIZE])
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the CSV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path, out = Path(tmp) / "readings.csv", Path(tmp) / "model.json"
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        runs = {k: run_fit(path, out.with_suffix(f".{k}.json"), k) for k in ("3", "auto")}
        fitted = GaussianMixture.from_dict(json.loads(out.with_suffix(".3.json").read_text()))
        chosen = GaussianMixture.from_dict(json.loads(out.with_suffix(".auto.json").read_text()))
        library, library_seconds = library_loop(path)
    difference = max(
        float(np.max(np.abs(fitted.means_ - library.means_))),
        float(np.max(np.abs(fitted.covariances_ - library.covariances_))),
        float(np.max(np.abs(fitted.weights_ - library.weights_))),
    )
    print(f"{args.rows:,} rows of 3 features, CSV of {size_mb:,.0f} MB, batches of {BATCH_SIZE:,}")
    print(f"{'run':<46} {'peak RSS':>10} {'seconds':>9} {'rows/s':>11}")
    for components, (peak_mb, seconds) in runs.items():
        print(
            f"{'streamem fit FILE --components ' + components:<46} {peak_mb:>7,.0f} MB "
            f"{seconds:>9.1f} {args.rows / seconds:>11,.0f}"
        )
    print(
        f"{'library partial_fit loop (data in memory)':<46} {'':>10} "
        f"{library_seconds:>9.1f} {args.rows / library_seconds:>11,.0f}"
    )
    print(f"largest parameter difference, --components 3 vs the library: {difference:.3g}")
    print(f"--components auto chose K={chosen.n_components}")


if __name__ == "__main__":
    main()
