"""Timings of the GLMM estimator (binomial logit, random intercept, nquad = 13, with SEs).

Run with ``python benchmarks/bench_glmm.py`` from the repository root. Prints one row per case:
rows, groups, wall seconds of the fit (with SEs), its CPU seconds (less sensitive to other load on
the machine), wall seconds including the model frame, iterations, evaluations, lnl.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wemix_nb.estimation.glmm import fit_glmm  # noqa: E402
from wemix_nb.model.frame import build_model_frame  # noqa: E402


def synthetic(n_rows: int, n_groups: int, seed: int = 1) -> pd.DataFrame:
    """Two-stage sample: group effects N(0, 0.8^2), two covariates, informative-ish weights."""
    rng = np.random.default_rng(seed)
    group = np.sort(rng.integers(0, n_groups, n_rows))
    group = np.unique(group, return_inverse=True)[1]  # every group non-empty
    n_g = group.max() + 1
    u = rng.normal(0.0, 0.8, n_g)
    x1 = rng.normal(size=n_rows)
    x2 = rng.binomial(1, 0.4, n_rows)
    eta = -0.4 + 0.6 * x1 - 0.3 * x2 + u[group]
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    w2 = rng.uniform(1.0, 5.0, n_g)
    w1 = w2[group] * rng.uniform(1.0, 3.0, n_rows)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": group, "w1": w1, "w2": w2[group]})


def pisa() -> tuple[str, pd.DataFrame]:
    path = Path(__file__).resolve().parents[1] / "wemix_nb" / "datasets" / "pisa2012_like.csv"
    data = pd.read_csv(path)
    data["high"] = (data["pv1math"] > 500).astype(float)
    return "high ~ st04q01 + escs + (1|schoolid)", data, ["w_fstuwt", "w_fschwt"]


def run(label: str, formula: str, data: pd.DataFrame, weights: list[str], nquad: int = 13) -> None:
    t0 = time.perf_counter()
    frame = build_model_frame(formula, data, weights, binomial_response=True)
    t1, c1 = time.perf_counter(), time.process_time()
    fit = fit_glmm(frame, "binomial", nquad=nquad)
    t2, c2 = time.perf_counter(), time.process_time()
    print(
        f"{label:<24} {frame.n:>8} {frame.levels[0].n_groups:>7} {nquad:>5} "
        f"{t2 - t1:>8.3f} {c2 - c1:>8.3f} {t2 - t0:>8.3f} {fit.n_iterations:>5} "
        f"{fit.n_evaluations:>5} {fit.lnl:>16.6f}"
    )


def main() -> None:
    print(
        f"{'case':<24} {'rows':>8} {'groups':>7} {'nquad':>5} {'fit s':>8} {'cpu s':>8} "
        f"{'+frame':>8} {'iter':>5} {'evals':>5} {'lnl':>16}"
    )
    formula, data, weights = pisa()
    run("pisa2012_like high", formula, data, weights)
    for n_rows, n_groups in ((100_000, 5_000), (500_000, 20_000)):
        run(
            f"synthetic {n_rows // 1000}k/{n_groups}",
            "y ~ x1 + x2 + (1|g)",
            synthetic(n_rows, n_groups),
            ["w1", "w2"],
        )


if __name__ == "__main__":
    main()
