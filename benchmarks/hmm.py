"""Gaussian HMM: one pass of streamem's partial_fit next to batch fits (streamem, hmmlearn,
pomegranate), in one run on the same data.

Synthetic: a 3-state, 4-d sticky HMM (stay probability 0.98, full covariances), a 1,000,000-step
training sequence and a separate 100,000-step held-out sequence per data seed. Real: river's
bundled SP500Stocks (daily returns of ten stocks, 1,257 trading days, offline): the first 1,000
days train a 2-state full-covariance HMM, the last 257 are held out. Every model is scored
with the same scorer (hmmlearn's forward pass on its parameters, the held-out steps as a new
sequence): held-out log-likelihood per step. BLAS and torch are pinned to one thread.

- streamem partial_fit: one pass, blocks of ``--block`` steps, defaults otherwise (the first
  5,000 steps start k-means and 10 Baum-Welch iterations and make the first update, each next
  block continues the sequence; on SP500Stocks, 1,000 days, the first block of 250 starts);
- streamem fit / hmmlearn fit: Baum-Welch to hmmlearn's convergence (total log-likelihood gain
  below tol = 0.01, at most 1,000 iterations), each from its own k-means start;
- pomegranate DenseHMM (if installed; it needs torch): its fit takes a 3-D tensor of sequences
  of equal length, so the training sequence is cut into sequences of 1,000 steps (its
  forward-backward loops over time steps in Python, vectorised over sequences).

Forward-backward alone (``--forward-backward``): posteriors and transition counts of 1,000,000
steps, K = 3, by streamem's chunked recursion, by a Hillis-Steele scan of the K x K products in
numpy (the associative-scan form, dynamax's with JAX; written here for the comparison) and by
hmmlearn's compiled log-space routines, best of 3, same run.

Run: python benchmarks/hmm.py [--steps 1000000] [--seeds 5] [--block 500] [--quick]
     python benchmarks/hmm.py --forward-backward
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hmmlearn import hmm
from threadpoolctl import threadpool_limits

from streamem import GaussianHMM

K, D, STAY = 3, 4, 0.98


@dataclass(frozen=True)
class Fitted:
    """A fitted model's parameters (covariances as full matrices) and its fit time."""

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    seconds: float
    iterations: int


def timed(work: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def sticky_truth(seed: int) -> GaussianHMM:
    rng = np.random.default_rng(seed)
    truth = GaussianHMM(K, covariance_type="full", random_state=seed)
    truth.startprob_ = np.full(K, 1.0 / K)
    transmat = np.full((K, K), (1.0 - STAY) / (K - 1))
    np.fill_diagonal(transmat, STAY)
    truth.transmat_ = transmat
    truth.means_ = rng.normal(0.0, 1.5, (K, D))
    factors = rng.normal(size=(K, D, D))
    truth.covars_ = factors @ factors.swapaxes(1, 2) / D + 0.3 * np.eye(D)
    return truth


def held_out_per_step(model: Fitted, held_out: np.ndarray) -> float:
    scorer = hmm.GaussianHMM(len(model.startprob), covariance_type="full", init_params="")
    scorer.startprob_, scorer.transmat_ = model.startprob, model.transmat
    scorer.means_, scorer.covars_ = model.means, model.covariances
    return float(scorer.score(held_out) / len(held_out))


def streamem_stream(X: np.ndarray, k: int, block: int, **options: object) -> Fitted:
    def run() -> GaussianHMM:
        model = GaussianHMM(k, covariance_type="full", random_state=0, **options)
        for start in range(0, len(X), block):
            model.partial_fit(X[start : start + block])
        return model

    model, seconds = timed(run)
    assert isinstance(model, GaussianHMM)
    return _ours(model, seconds, model.n_iter_)


def streamem_fit(X: np.ndarray, k: int) -> Fitted:
    model = GaussianHMM(k, covariance_type="full", n_iter=1000, tol=1e-2, random_state=0)
    _, seconds = timed(lambda: model.fit(X))
    return _ours(model, seconds, model.n_iter_)


def _ours(model: GaussianHMM, seconds: float, iterations: int) -> Fitted:
    return Fitted(
        model.startprob_, model.transmat_, model.means_, model.covars_, seconds, iterations
    )


def hmmlearn_fit(X: np.ndarray, k: int) -> Fitted:
    model = hmm.GaussianHMM(k, covariance_type="full", n_iter=1000, tol=1e-2, random_state=0)
    _, seconds = timed(lambda: model.fit(X))
    return Fitted(
        model.startprob_,
        model.transmat_,
        model.means_,
        model.covars_,
        seconds,
        len(model.monitor_.history),
    )


def pomegranate_fit(X: np.ndarray, k: int, length: int) -> Fitted | None:
    try:
        import torch
        from pomegranate.distributions import Normal
        from pomegranate.hmm import DenseHMM
    except ImportError:
        return None
    torch.set_num_threads(1)
    n = len(X) // length * length
    sequences = torch.tensor(X[:n].reshape(-1, length, X.shape[1]), dtype=torch.float32)
    model = DenseHMM(
        [Normal(covariance_type="full") for _ in range(k)], max_iter=1000, tol=0.1, verbose=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, seconds = timed(lambda: model.fit(sequences))
    starts = np.exp(model.starts.detach().numpy().astype(np.float64))
    edges = np.exp(model.edges.detach().numpy().astype(np.float64))
    return Fitted(
        starts / starts.sum(),
        edges / edges.sum(axis=1, keepdims=True),  # without pomegranate's end probabilities
        np.stack([d.means.detach().numpy() for d in model.distributions]).astype(np.float64),
        np.stack([d.covs.detach().numpy() for d in model.distributions]).astype(np.float64),
        seconds,
        -1,
    )


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(f"\n{title}\n")
    print(fmt(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(fmt(row))


def synthetic(steps: int, seeds: int, block: int, pomegranate_seeds: int) -> None:
    per_method: dict[str, list[tuple[float, float, int]]] = {}
    acceptance = []
    for seed in range(seeds):
        truth = sticky_truth(seed)
        X, _ = truth.sample(steps, random_state=seed)
        held_out, _ = truth.sample(100_000, random_state=10_000 + seed)
        truth_fit = Fitted(truth.startprob_, truth.transmat_, truth.means_, truth.covars_, 0.0, 0)
        results = {
            f"streamem partial_fit (blocks of {block})": streamem_stream(X, K, block),
            "streamem fit": streamem_fit(X, K),
            "hmmlearn fit": hmmlearn_fit(X, K),
        }
        if seed < pomegranate_seeds:
            fitted = pomegranate_fit(X, K, 1000)
            if fitted is not None:
                results["pomegranate DenseHMM fit (sequences of 1,000)"] = fitted
        scores = {name: held_out_per_step(f, held_out) for name, f in results.items()}
        for name, f in results.items():
            per_method.setdefault(name, []).append((f.seconds, scores[name], f.iterations))
        stream_name = next(iter(results))
        gap = scores["hmmlearn fit"] - scores[stream_name]
        ratio = results[stream_name].seconds / results["hmmlearn fit"].seconds
        acceptance.append(
            [
                str(seed),
                f"{held_out_per_step(truth_fit, held_out):.6f}",
                f"{scores['hmmlearn fit']:.6f}",
                f"{scores[stream_name]:.6f}",
                f"{gap:+.2e}",
                f"{results[stream_name].seconds:.1f}",
                f"{results['hmmlearn fit'].seconds:.1f}",
                f"{ratio:.3f}",
                "yes" if gap <= 1e-3 and ratio <= 0.1 else "NO",
            ]
        )
        print(
            f"seed {seed} done: " + ", ".join(f"{n}: {s:.6f}" for n, s in scores.items()),
            flush=True,
        )
    table(
        f"Per seed ({steps:,} training steps, 100,000 held out): held-out log-likelihood per "
        "step, partial_fit against hmmlearn's converged fit",
        [
            "seed",
            "true model",
            "hmmlearn fit",
            "partial_fit",
            "hmmlearn - partial_fit",
            "partial_fit s",
            "hmmlearn s",
            "time ratio",
            "within 1e-3 and 1/10",
        ],
        acceptance,
    )
    rows = []
    for name, runs in per_method.items():
        seconds = np.array([r[0] for r in runs])
        iterations = [r[2] for r in runs]
        rows.append(
            [
                name,
                str(len(runs)),
                f"{steps / seconds.mean():,.0f}",
                f"{seconds.mean():.1f}",
                "-" if iterations[0] < 0 else f"{np.mean(iterations):.0f}",
                f"{np.mean([r[1] for r in runs]):.6f}",
            ]
        )
    table(
        "Means over the seeds (steps/s: training steps over the whole fit's wall time)",
        ["method", "seeds", "steps/s", "seconds", "iterations / updates", "held-out LL/step"],
        rows,
    )


def sp500(block: int) -> None:
    from river import datasets

    rows = [list(x.values()) for x, _ in datasets.SP500Stocks()]
    X = np.array(rows, dtype=np.float64)
    train, held_out = X[:1000], X[1000:]
    k = 2
    results = {
        f"streamem partial_fit (blocks of {block}, init_size=None)": streamem_stream(
            train, k, block, init_size=None
        ),
        "streamem fit": streamem_fit(train, k),
        "hmmlearn fit": hmmlearn_fit(train, k),
    }
    fitted = pomegranate_fit(train, k, 1000)
    if fitted is not None:
        results["pomegranate DenseHMM fit"] = fitted
    table(
        "river SP500Stocks: daily returns of 10 stocks (%), 2 states, full covariances; "
        "1,000 days train, 257 held out",
        ["method", "steps/s", "seconds", "held-out LL/step", "calm-state stay prob."],
        [
            [
                name,
                f"{len(train) / f.seconds:,.0f}",
                f"{f.seconds:.2f}",
                f"{held_out_per_step(f, held_out):.4f}",
                f"{np.diag(f.transmat)[np.argmin(np.trace(f.covariances, axis1=1, axis2=2))]:.3f}",
            ]
            for name, f in results.items()
        ],
    )


def hillis_steele_posteriors(log_b: np.ndarray, transmat: np.ndarray, startprob: np.ndarray):
    """Posteriors (T, K) from inclusive scans of the K x K step matrices (log2 T levels)."""
    b = np.exp(log_b - log_b.max(axis=1, keepdims=True))
    steps = transmat[np.newaxis] * b[:, np.newaxis, :]
    steps[0] = (startprob * b[0])[np.newaxis, :]

    def scan(matrices: np.ndarray) -> np.ndarray:
        out, shift = matrices.copy(), 1
        while shift < len(out):
            out[shift:] = np.matmul(out[:-shift], out[shift:])
            out[shift:] /= out[shift:].max(axis=(1, 2), keepdims=True)
            shift *= 2
        vectors = out.sum(axis=1)
        return vectors / vectors.sum(axis=1, keepdims=True)

    forward = scan(steps)
    backward = np.ones_like(forward)
    backward[:-1] = scan(steps[1:][::-1].swapaxes(1, 2))[::-1]
    posteriors = forward * backward
    return posteriors / posteriors.sum(axis=1, keepdims=True)


def sequential_posteriors(log_b: np.ndarray, transmat: np.ndarray, startprob: np.ndarray):
    """The textbook scaled recursion (Rabiner 1989), one Python step per time step."""
    b = np.exp(log_b - log_b.max(axis=1, keepdims=True))
    forward = np.empty_like(b)
    vector = startprob * b[0]
    forward[0] = vector / vector.sum()
    for t in range(1, len(b)):
        vector = (forward[t - 1] @ transmat) * b[t]
        forward[t] = vector / vector.sum()
    backward = np.ones_like(b)
    for t in range(len(b) - 2, -1, -1):
        vector = transmat @ (b[t + 1] * backward[t + 1])
        backward[t] = vector / vector.sum()
    posteriors = forward * backward
    return posteriors / posteriors.sum(axis=1, keepdims=True)


def forward_backward_timing(steps: int) -> None:
    from hmmlearn import _hmmc

    from streamem.models.hmm.scan import forward_backward

    rng = np.random.default_rng(0)
    transmat = np.full((K, K), (1.0 - STAY) / (K - 1))
    np.fill_diagonal(transmat, STAY)
    startprob = np.full(K, 1.0 / K)
    log_b = rng.normal(0.0, 3.0, (steps, K))

    def ours() -> np.ndarray:
        return forward_backward(
            log_b,
            transmat,
            np.array([0]),
            startprob[np.newaxis],
            np.zeros((1, K)),
            np.zeros(1, dtype=bool),
        ).posteriors

    def theirs() -> np.ndarray:
        log_prob, fwd = _hmmc.forward_log(startprob, transmat, log_b)
        bwd = _hmmc.backward_log(startprob, transmat, log_b)
        _hmmc.compute_log_xi_sum(fwd, transmat, bwd, log_b)
        return np.exp(fwd + bwd - log_prob)

    runs = {
        "streamem chunked recursion (numpy)": ours,
        "Hillis-Steele scan of K x K products (numpy)": lambda: hillis_steele_posteriors(
            log_b, transmat, startprob
        ),
        "hmmlearn forward_log + backward_log + xi (compiled)": theirs,
    }
    reference, seconds = timed(lambda: sequential_posteriors(log_b, transmat, startprob))
    assert isinstance(reference, np.ndarray)
    rows = [
        [
            "sequential scaled recursion (a Python step per step)",
            f"{seconds:.2f}",
            f"{steps / seconds:,.0f}",
            "0 (reference)",
        ]
    ]
    for name, work in runs.items():
        best = min(timed(work)[1] for _ in range(3))
        difference = np.abs(work() - reference).max()
        rows.append([name, f"{best:.2f}", f"{steps / best:,.0f}", f"{difference:.1e}"])
    table(
        f"Forward-backward of {steps:,} steps, K = {K} (best of 3; the sequential one run once)",
        ["implementation", "seconds", "steps/s", "max |posterior - sequential|"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--block", type=int, default=500, help="partial_fit block (250-1,000)")
    parser.add_argument("--pomegranate-seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="--steps 100000 --seeds 2")
    parser.add_argument("--forward-backward", action="store_true", help="only the E-step timing")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds = 100_000, 2
    print("The machine may be shared with other work: compare times within this run only.")
    with threadpool_limits(1):
        if args.forward_backward:
            forward_backward_timing(args.steps)
            return
        synthetic(args.steps, args.seeds, args.block, args.pomegranate_seeds)
        sp500(250)


if __name__ == "__main__":
    main()
