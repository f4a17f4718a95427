"""Batch EM of a Gaussian mixture on a Dask cluster (``streamem.dask.fit``) against the
in-memory ``fit``: time per EM iteration, and a run on data larger than the workers' memory.

1. ``--rows`` rows (d=8, K=6, full covariances) are generated block by block from a seeded
   mixture: in memory for ``GaussianMixture.fit`` (BLAS on one thread), and on the workers for
   ``streamem.dask.fit`` with 1 and 2 worker processes of one thread (the same blocks, so the
   same data). All three start from the same given values and make ``--iterations`` iterations;
   the table gives the seconds per iteration (in memory: ``fit``'s time over its iterations;
   on the cluster: the E-step on every block plus the tree reduction and the M-step, the median
   over the iterations), the whole run (on the cluster: generating and persisting the blocks
   included), and the largest relative difference of the means from the in-memory fit.
2. ``--memory-limit`` MB per worker, 2 workers, and a data set ``--memory-factor`` times their
   total limit: ``distributed`` spills the persisted blocks to the workers' local disk and
   reads them back at each iteration. The table gives each worker's peak resident memory
   (``VmHWM``) and the most it held on disk, sampled after each iteration.

Run: python benchmarks/dask_backfill.py [--rows 10000000] [--iterations 3]
     [--memory-limit 512] [--memory-factor 4] [--memory-iterations 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
from dask.delayed import delayed
from distributed import Client, LocalCluster
from threadpoolctl import threadpool_limits

from streamem.dask import EStep, fit

if TYPE_CHECKING:
    from streamem import GaussianMixture

D, K = 8, 6
SEED = 0


def truth() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mixture the rows come from: weights (K,), means (K, d), Cholesky factors (K, d, d)."""
    rng = np.random.default_rng(SEED)
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(0.0, 4.0, (K, D))
    factors = np.tril(rng.normal(0.0, 0.3, (K, D, D)), -1) + np.eye(D)
    return weights, means, factors


def block(index: int, rows: int) -> np.ndarray:
    """Block ``index`` of the data set: ``rows`` rows, the same wherever it is made."""
    weights, means, factors = truth()
    rng = np.random.default_rng([SEED, index])
    labels = rng.choice(K, size=rows, p=weights)
    noise = rng.standard_normal((rows, D))
    return means[labels] + np.einsum("nij,nj->ni", factors[labels], noise)


def sizes(n_rows: int, rows: int) -> list[int]:
    return [min(rows, n_rows - start) for start in range(0, n_rows, rows)]


def on_workers(n_rows: int, rows: int) -> Any:
    """The data set as a dask array whose blocks of ``rows`` rows are made on the workers."""
    parts = [
        da.from_delayed(delayed(block)(i, n), shape=(n, D), dtype=np.float64)
        for i, n in enumerate(sizes(n_rows, rows))
    ]
    return da.concatenate(parts)


def model(iterations: int) -> GaussianMixture:
    """The same start for every run: the true weights and covariances, perturbed means.

    Imported here, not at the top: worker processes import this script, and should load what
    ``streamem.dask`` needs only, as they do under ``streamem fit --workers``."""
    from streamem import GaussianMixture

    weights, means, factors = truth()
    shifted = means + np.random.default_rng(SEED + 1).normal(0.0, 0.5, means.shape)
    covariances = factors @ factors.transpose(0, 2, 1)
    return GaussianMixture(
        K,
        max_iter=iterations,
        tol=0.0,
        weights_init=weights,
        means_init=shifted,
        covariances_init=covariances,
    )


def cluster_run(
    data: Any, iterations: int, client: Client
) -> tuple[GaussianMixture, list[float], float, dict[str, tuple[float, float]]]:
    """The cluster's fit, the seconds of each E-step (with the reduction), the whole run's,
    and per worker the peak resident memory and the most spilled to disk (MB), sampled after
    each iteration (outside the E-step's time)."""
    steps: list[EStep] = []
    memory: dict[str, tuple[float, float]] = {}

    def note(step: EStep) -> None:
        steps.append(step)
        for address, (peak, disk) in client.run(worker_memory).items():
            before = memory.get(address, (0.0, 0.0))
            memory[address] = (max(before[0], peak), max(before[1], disk))

    began = time.perf_counter()
    fitted = fit(model(iterations), data, client=client, progress=note)
    return fitted, [step.seconds for step in steps], time.perf_counter() - began, memory


def worker_memory(dask_worker: Any) -> tuple[float, float]:
    """A worker's peak resident memory (``VmHWM``) and the bytes it holds on disk, in MB."""
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    spilled = getattr(dask_worker.data, "spilled_total", None)
    return peak / 1024, 0.0 if spilled is None else float(spilled.disk) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--memory-limit", type=int, default=512, help="MB per worker")
    parser.add_argument("--memory-factor", type=float, default=4.0, help="0: no such run")
    parser.add_argument("--memory-iterations", type=int, default=2)
    parser.add_argument("--block-rows", type=int, default=250_000)
    parser.add_argument("--memory-block-rows", type=int, default=50_000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # ConvergenceWarning: the runs stop at --iterations

    print(f"{args.rows:,} rows, d={D}, K={K}, full covariances, {args.iterations} iterations")
    began = time.perf_counter()
    X = np.concatenate([block(i, n) for i, n in enumerate(sizes(args.rows, args.block_rows))])
    made = time.perf_counter() - began
    with threadpool_limits(1):
        began = time.perf_counter()
        here = model(args.iterations).fit(X)
        in_memory = time.perf_counter() - began
    del X
    rows = [("in-memory `fit`, one process", in_memory / args.iterations, in_memory, 0.0, None)]
    print(f"in memory: data made in {made:.1f} s, fit {in_memory:.1f} s")
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            fitted, seconds, total, peaks = cluster_run(
                on_workers(args.rows, args.block_rows), args.iterations, client
            )
        gap = float(np.abs(fitted.means_ - here.means_).max() / np.abs(here.means_).max())
        peak = max(p for p, _ in peaks.values())
        rows.append(
            (
                f"`streamem.dask.fit`, {workers} worker(s)",
                statistics.median(seconds),
                total,
                gap,
                peak,
            )
        )
        print(f"{workers} worker(s): per iteration {seconds}, total {total:.1f} s, gap {gap:.1e}")

    print()
    print(
        "| run | s per iteration | s in all | means vs in-memory (relative) | peak RSS per worker |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, per, total, gap, peak in rows:
        peak_text = "" if peak is None else f"{peak:,.0f} MB"
        gap_text = "" if peak is None else f"{gap:.1e}"
        print(f"| {name} | {per:.2f} | {total:.1f} | {gap_text} | {peak_text} |")

    if args.memory_factor <= 0:
        return
    limit = args.memory_limit
    n_big = int(args.memory_factor * 2 * limit * 2**20 / (8 * D))
    print()
    print(
        f"data {n_big * D * 8 / 2**20:,.0f} MB ({n_big:,} rows) on 2 workers of memory_limit "
        f"{limit} MB each ({args.memory_factor}x their total), {args.memory_iterations} iterations"
    )
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=f"{limit}MB",
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        fitted, seconds, total, peaks = cluster_run(
            on_workers(n_big, args.memory_block_rows), args.memory_iterations, client
        )
    print(f"n_seen {fitted.n_seen_:,}, per iteration {seconds}, total {total:.1f} s")
    print("| worker | peak RSS | spilled to disk |")
    print("|---|---:|---:|")
    for address, (peak, disk) in sorted(peaks.items()):
        print(f"| {address} | {peak:,.0f} MB | {disk:,.0f} MB |")


if __name__ == "__main__":
    main()
