"""LinearGaussianSSM against pykalman and statsmodels: one run, one table per question.

    .venv/bin/python benchmarks/kalman.py [--quick] [--plot docs/kalman-drift.png]

1. Iterate-by-iterate equality with pykalman's ``em`` (20 iterations, a 1,500-step 2-d
   constant-velocity track; Q and R, then every parameter) and the time per iteration.
2. The Nile series (local level, Q and R learned): statsmodels' MLE, streamem ``fit`` with
   plain EM and with SQUAREM, pykalman's ``em``; log-likelihoods on statsmodels' footing
   (``UnobservedComponents.loglike``, which leaves out the diffuse first step).
3. One pass of ``partial_fit`` over a 1,000,000-step track (blocks of 500), Q full and Q
   "scaled" (a known shape times a learned variance); a track whose R doubles half-way,
   followed with a half-life schedule (the plot).
4. 20% of the coordinates missing at random: streamem's estimates against its complete-data
   ones; pykalman (which drops every row with a missing coordinate) side by side.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import pykalman
import statsmodels.api as sm
from statsmodels.datasets import nile

from streamem import HalfLife, LinearGaussianSSM
from streamem.models.base import ConvergenceWarning
from streamem.models.state_space.records import PARAMETER_NAMES
from streamem.models.state_space.simulation import constant_velocity, simulate

QR = ("transition_covariance", "observation_covariance")


def relative(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def quiet_fit(model: LinearGaussianSSM, Y: np.ndarray) -> LinearGaussianSSM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(Y)


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title}\n")
    cells = [header] + [[f"{v:.5g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def tracking_start(all_vars: bool) -> dict[str, np.ndarray]:
    truth = constant_velocity(acceleration_variance=0.05, measurement_variance=0.5)
    start = dict(truth)
    start["transition_covariance"] = 0.2 * np.eye(4)
    start["observation_covariance"] = np.array([[1.0, 0.3], [0.3, 2.0]])
    start["transition_offsets"] = np.full(4, 0.01)
    start["observation_offsets"] = np.array([0.1, -0.1])
    start["initial_state_mean"] = np.zeros(4)
    start["initial_state_covariance"] = np.eye(4)
    if all_vars:
        start["transition_matrices"] = 0.98 * start["transition_matrices"] + 0.01
        start["observation_matrices"] = start["observation_matrices"] + 0.05
    return start


def against_pykalman(n_timesteps: int, n_iter: int) -> None:
    truth = constant_velocity(acceleration_variance=0.05, measurement_variance=0.5)
    _, Y = simulate(truth, n_timesteps, np.random.default_rng(12))
    rows = []
    for label, em_vars in (("Q, R", QR), ("all", "all")):
        start = tracking_start(em_vars == "all")
        names = list(PARAMETER_NAMES) if em_vars == "all" else list(em_vars)
        reference = pykalman.KalmanFilter(**start)
        iterates, began = [], time.perf_counter()
        for _ in range(n_iter):
            reference.em(Y, n_iter=1, em_vars=names)
            iterates.append({name: np.array(getattr(reference, name)) for name in PARAMETER_NAMES})
        pykalman_seconds = (time.perf_counter() - began) / n_iter
        worst = 0.0
        for iteration, expected in enumerate(iterates, start=1):
            ours = quiet_fit(
                LinearGaussianSSM(**start, em_vars=em_vars, max_iter=iteration, tol=0.0), Y
            )
            for name, value in expected.items():
                deviation = float(np.abs(getattr(ours, f"{name}_") - value).max())
                scale = float(np.abs(value).max())
                worst = max(worst, deviation / scale if scale else deviation)
        timings = {}
        for steady_tol in (1e-12, 0.0):
            model = LinearGaussianSSM(
                **start, em_vars=em_vars, max_iter=n_iter, tol=0.0, steady_tol=steady_tol
            )
            quiet_fit(model, Y)
            timings[steady_tol] = model.fit_seconds_ / n_iter
        rows.append(
            [
                label,
                n_iter,
                worst,
                pykalman_seconds,
                timings[1e-12],
                pykalman_seconds / timings[1e-12],
                timings[0.0],
                pykalman_seconds / timings[0.0],
            ]
        )
    table(
        f"1. fit against pykalman em, {n_timesteps}-step 2-d constant-velocity track "
        "(4 states, 2 observations)",
        [
            "em_vars",
            "iterations",
            "max relative deviation",
            "pykalman s/iter",
            "streamem s/iter",
            "speed-up",
            "exact recursion s/iter",
            "speed-up (exact)",
        ],
        rows,
    )


def on_nile(pykalman_iter: int) -> None:
    y = nile.load_pandas().data["volume"].to_numpy(dtype=float)
    model = sm.tsa.UnobservedComponents(y, "llevel")
    began = time.perf_counter()
    result = model.fit(disp=False)
    rows: list[list[Any]] = [
        [
            "statsmodels UnobservedComponents MLE",
            "-",
            time.perf_counter() - began,
            result.params[1],
            result.params[0],
            f"{result.llf:.4f}",
        ]
    ]
    start = {"initial_state_mean": [y[0]], "initial_state_covariance": [[1e7]]}
    for label, acceleration in (("streamem fit, EM", None), ("streamem fit, SQUAREM", "squarem")):
        fitted = quiet_fit(
            LinearGaussianSSM(**start, tol=1e-9, max_iter=5000, acceleration=acceleration), y
        )
        q, r = fitted.transition_covariance_[0, 0], fitted.observation_covariance_[0, 0]
        loglike = f"{model.loglike([r, q]):.4f}"
        rows.append([label, fitted.n_iter_, fitted.fit_seconds_, q, r, loglike])
    reference = pykalman.KalmanFilter(
        initial_state_mean=[y[0]], initial_state_covariance=[[1e7]], n_dim_obs=1
    )
    began = time.perf_counter()
    reference.em(y, n_iter=pykalman_iter, em_vars=list(QR))
    q, r = reference.transition_covariance[0, 0], reference.observation_covariance[0, 0]
    seconds, loglike = time.perf_counter() - began, f"{model.loglike([r, q]):.4f}"
    rows.append(["pykalman em", pykalman_iter, seconds, q, r, loglike])
    table(
        "2. Nile, local level (Q = sigma2 level, R = sigma2 irregular); log-likelihood on "
        "statsmodels' footing (diffuse first step left out); fit tol 1e-9 per step",
        ["method", "iterations", "seconds", "Q", "R", "log-likelihood"],
        rows,
    )


def streaming(n_timesteps: int, block: int, plot: str | None) -> None:
    truth = constant_velocity()
    _, Y = simulate(truth, n_timesteps, np.random.default_rng(3))
    shape = constant_velocity(acceleration_variance=1.0)["transition_covariance"]
    rows: list[list[Any]] = []
    for label, kind in (("Q full (default)", "full"), ('Q "scaled"', "scaled")):
        model = LinearGaussianSSM(
            truth["transition_matrices"],
            truth["observation_matrices"],
            transition_covariance=shape,
            transition_covariance_type=kind,
        )
        began = time.perf_counter()
        for start in range(0, n_timesteps, block):
            model.partial_fit(Y[start : start + block])
        rows.append(
            [
                f"streamem partial_fit, {label}",
                f"1 pass, blocks of {block}",
                time.perf_counter() - began,
                relative(model.transition_covariance_, truth["transition_covariance"]),
                relative(model.observation_covariance_, truth["observation_covariance"]),
            ]
        )
    prefix = Y[:20_000]
    for label, kind in (("Q full", "full"), ('Q "scaled"', "scaled")):
        fitted = quiet_fit(
            LinearGaussianSSM(
                truth["transition_matrices"],
                truth["observation_matrices"],
                transition_covariance=shape,
                transition_covariance_type=kind,
                acceleration="squarem",
                tol=1e-7,
                max_iter=300,
            ),
            prefix,
        )
        rows.append(
            [
                f"streamem fit (SQUAREM), {label}, first 20,000 steps",
                f"{fitted.n_iter_} E-steps",
                fitted.fit_seconds_,
                relative(fitted.transition_covariance_, truth["transition_covariance"]),
                relative(fitted.observation_covariance_, truth["observation_covariance"]),
            ]
        )
    reference = pykalman.KalmanFilter(
        truth["transition_matrices"], truth["observation_matrices"], shape, np.eye(2)
    )
    began = time.perf_counter()
    reference.em(Y[:2000], n_iter=5, em_vars=list(QR))
    rows.append(
        [
            "pykalman em, first 2,000 steps",
            "5 iterations",
            time.perf_counter() - began,
            relative(reference.transition_covariance, truth["transition_covariance"]),
            relative(reference.observation_covariance, truth["observation_covariance"]),
        ]
    )
    table(
        f"3. {n_timesteps:,}-step 2-d constant-velocity track (q = 0.01, R = I), from Q = "
        "100 x truth, R = I; statsmodels has no model of this form in its API",
        ["method", "passes / iterations", "seconds", "Q rel. error", "R rel. error"],
        rows,
    )
    drift(n_timesteps // 2, block, plot)


def drift(n_timesteps: int, block: int, plot: str | None) -> None:
    truth = constant_velocity()
    R = np.repeat(np.eye(2)[np.newaxis], n_timesteps, axis=0)
    R[n_timesteps // 2 :] *= 2.0
    _, Y = simulate(truth, n_timesteps, np.random.default_rng(4), observation_covariances=R)
    shape = constant_velocity(acceleration_variance=1.0)["transition_covariance"]
    half_life = 20_000.0
    model = LinearGaussianSSM(
        truth["transition_matrices"],
        truth["observation_matrices"],
        transition_covariance=shape,
        transition_covariance_type="scaled",
        schedule=HalfLife(half_life),
    )
    steps, trace = [], []
    for start in range(0, n_timesteps, block):
        model.partial_fit(Y[start : start + block])
        steps.append(start + block)
        trace.append(np.diag(model.observation_covariance_).mean())
    trace_array = np.array(trace)
    steps_array = np.array(steps)
    before = trace_array[steps_array == n_timesteps // 2][0]
    after = trace_array[-1]
    settle = steps_array[(steps_array > n_timesteps // 2) & (np.abs(trace_array - 2.0) < 0.1)]
    rows = [
        [
            f"HalfLife({half_life:.0f})",
            before,
            after,
            int(settle[0] - n_timesteps // 2) if len(settle) else "never",
        ]
    ]
    table(
        f"3b. R doubles (I -> 2 I) at step {n_timesteps // 2:,} of {n_timesteps:,}; partial_fit "
        f"in blocks of {block}",
        ["schedule", "mean R variance before", "at the end", "steps to within 0.1 of 2"],
        rows,
    )
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(7, 3))
        axes.plot(steps_array, trace_array, label="learned (mean of R's diagonal)")
        axes.step([0, n_timesteps // 2, n_timesteps], [1, 2, 2], where="post", label="truth")
        axes.set_xlabel("time step")
        axes.set_ylabel("measurement variance")
        axes.legend()
        figure.tight_layout()
        figure.savefig(plot, dpi=100)
        print(f"\n(plot written to {plot})")


def identifiability(n_timesteps: int) -> None:
    """The log-likelihood along ``Q + delta * D``, D adding delta to each axis's position
    variance and position-velocity covariance."""
    truth = constant_velocity()
    _, Y = simulate(truth, n_timesteps, np.random.default_rng(0))
    D = np.zeros((4, 4))
    for axis in range(2):
        D[axis, axis] = D[axis, axis + 2] = D[axis + 2, axis] = 1.0
    rows = []
    for delta in (0.0, 0.001, 0.002, -0.002):
        Q = truth["transition_covariance"] + delta * D
        model = LinearGaussianSSM(
            truth["transition_matrices"],
            truth["observation_matrices"],
            Q,
            truth["observation_covariance"],
            em_vars=(),
            init_em_iter=0,
        ).partial_fit(Y[:1])
        rows.append(
            [
                delta,
                relative(Q, truth["transition_covariance"]),
                f"{model.loglikelihood(Y):.4f}",
            ]
        )
    table(
        f"3c. A full Q is not identifiable from positions: log-likelihood of a {n_timesteps:,}-"
        "step track along one direction of Q",
        ["delta", "Q distance from the truth", "log-likelihood"],
        rows,
    )


def missing(n_timesteps: int) -> None:
    truth = constant_velocity(acceleration_variance=0.05, measurement_variance=0.5)
    _, Y = simulate(truth, n_timesteps, np.random.default_rng(5))
    masked = Y.copy()
    masked[np.random.default_rng(6).random(Y.shape) < 0.2] = np.nan
    shape = constant_velocity(acceleration_variance=1.0)["transition_covariance"]
    settings = {
        "transition_matrices": truth["transition_matrices"],
        "observation_matrices": truth["observation_matrices"],
        "transition_covariance": shape,
    }
    results = {}
    rows: list[list[Any]] = []
    for label, data in (("complete", Y), ("20% missing", masked)):
        fitted = quiet_fit(
            LinearGaussianSSM(
                **settings,
                transition_covariance_type="scaled",
                acceleration="squarem",
                tol=1e-7,
                max_iter=200,
            ),
            data,
        )
        results[label] = fitted
        base = results["complete"]
        rows.append(
            [
                f"streamem fit, {label}",
                int(np.isnan(data).any(axis=1).sum()),
                fitted.n_iter_,
                fitted.fit_seconds_,
                relative(fitted.transition_covariance_, results["complete"].transition_covariance_),
                relative(
                    fitted.observation_covariance_, results["complete"].observation_covariance_
                ),
            ]
        )
    short = 1000
    reference_results = {}
    for label, data in (("complete", Y[:short]), ("20% missing", masked[:short])):
        reference = pykalman.KalmanFilter(**settings, observation_covariance=np.eye(2))
        began = time.perf_counter()
        reference.em(np.ma.masked_invalid(data), n_iter=20, em_vars=list(QR))
        reference_results[label] = reference
        base = reference_results["complete"]
        rows.append(
            [
                f"pykalman em, {label}, first {short} steps (Q full)",
                int(np.isnan(data).any(axis=1).sum()),
                20,
                time.perf_counter() - began,
                relative(reference.transition_covariance, base.transition_covariance),
                relative(reference.observation_covariance, base.observation_covariance),
            ]
        )
    table(
        f'4. missing coordinates at random, {n_timesteps:,}-step track (Q "scaled"); '
        "differences relative to the same library's complete-data estimate",
        [
            "method",
            "rows with a missing coordinate",
            "iterations",
            "seconds",
            "Q rel. difference",
            "R rel. difference",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller series, fewer iterations")
    parser.add_argument("--plot", default=None, help="write the drift plot to this PNG")
    arguments = parser.parse_args()
    quick = arguments.quick
    against_pykalman(300 if quick else 1500, 5 if quick else 20)
    on_nile(50 if quick else 1000)
    streaming(100_000 if quick else 1_000_000, 500, arguments.plot)
    identifiability(20_000)
    missing(2_000 if quick else 10_000)


if __name__ == "__main__":
    main()
