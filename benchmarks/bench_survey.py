"""Plausible values x replicate weights: 5 PVs x (1 + 80) Fay replicates = 405 linear fits, combined.

    python benchmarks/bench_survey.py [--repeat 3] [--skip-separate] [--skip-glmm]

The data are ``pisa2012_like(design=True)`` (5,057 students, 150 schools, PV1MATH..PV5MATH,
W_FSTR1..80). ``mix(..., replicate_weights="W_FSTR{1..80}", replicate_method="fay")`` fits every
plausible value on the full sample and with each replicate's weights and combines them (replicate
variance per PV, Rubin's rules across PVs). It is timed in this process and on 2 local worker
processes (best of ``--repeat`` runs; the pool is started inside the timed call, as a user would run
it), and compared with the same 405 fits as separate ``mix()`` calls in the same run (each with the
replicate's level-1 column and the school weight times the replicate factor), from which the
combined standard errors are recomputed to check that both give the same numbers.

Then a binomial GLMM (PV1MATH > 500) with the 80 replicates, with a progress bar.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import wemix_nb

RHS = "escs + st04q01 + st29q03 + sc14q02 + (1|schoolid)"
WEIGHTS = ["w_fstuwt", "w_fschwt"]
R = 80


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def separate_fits(data: pd.DataFrame) -> tuple[float, np.ndarray]:
    """The 405 fits as separate mix() calls; returns the time and the combined SEs."""
    factors = data[[f"W_FSTR{r}" for r in range(1, R + 1)]].to_numpy() / data[["w_fstuwt"]].to_numpy()
    school = pd.DataFrame(
        data[["w_fschwt"]].to_numpy() * factors,
        columns=[f"SCH{r}" for r in range(1, R + 1)],
        index=data.index,
    )
    work = pd.concat([data, school], axis=1)
    start = time.perf_counter()
    coefs, covs = [], []
    for m in range(1, 6):
        formula = f"PV{m}MATH ~ {RHS}"
        full = wemix_nb.mix(formula, work, weights=WEIGHTS).coef.to_numpy()
        reps = np.array(
            [
                wemix_nb.mix(formula, work, weights=[f"W_FSTR{r}", f"SCH{r}"]).coef.to_numpy()
                for r in range(1, R + 1)
            ]
        )
        coefs.append(full)
        covs.append((reps - full).T @ (reps - full) / (R * 0.25))
    elapsed = time.perf_counter() - start
    Q = np.array(coefs)
    T = np.mean(covs, axis=0) + 1.2 * np.cov(Q, rowvar=False)
    return elapsed, np.sqrt(np.diag(T))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-separate", action="store_true")
    parser.add_argument("--skip-glmm", action="store_true")
    args = parser.parse_args()
    data = wemix_nb.datasets.pisa2012_like(design=True)
    formula = f"PV{{1..5}}MATH ~ {RHS}"
    options = {"weights": WEIGHTS, "replicate_weights": f"W_FSTR{{1..{R}}}", "replicate_method": "fay"}
    print(f"{len(data)} rows, {data['schoolid'].nunique()} schools; {os.cpu_count()} CPUs")
    print(f"model: {formula}; 5 plausible values x (1 + {R}) Fay replicates = {5 * (R + 1)} linear fits")

    t_seq, fit = best_of(lambda: wemix_nb.mix(formula, data, progress=False, **options), args.repeat)
    t_par, fit2 = best_of(
        lambda: wemix_nb.mix(formula, data, progress=False, n_jobs=2, **options), args.repeat
    )
    assert np.array_equal(fit.SE, fit2.SE)
    print(f"mix(replicate_weights=..., pv), 1 process    {t_seq:7.3f} s")
    print(f"mix(replicate_weights=..., pv), 2 processes  {t_par:7.3f} s")
    if not args.skip_separate:
        t_sep, se = separate_fits(data)
        np.testing.assert_allclose(fit.SE, se, rtol=1e-6)
        best = min(t_seq, t_par)
        print(f"405 separate mix() calls                     {t_sep:7.3f} s")
        print(f"ratio (best of the two above / separate)     {best / t_sep:7.3f}")

    if not args.skip_glmm:
        binary = data.assign(high=(data["PV1MATH"] > 500).astype(int))
        glmm_formula = "high ~ escs + st04q01 + (1|schoolid)"
        start = time.perf_counter()
        wemix_nb.mix(glmm_formula, binary, weights=WEIGHTS, family="binomial")
        t_one = time.perf_counter() - start
        start = time.perf_counter()
        glmm = wemix_nb.mix(glmm_formula, binary, family="binomial", progress=True, **options)
        t_glmm = time.perf_counter() - start
        start = time.perf_counter()
        wemix_nb.mix(glmm_formula, binary, family="binomial", progress=True, n_jobs=2, **options)
        t_glmm2 = time.perf_counter() - start
        print(
            f"binomial GLMM: one fit {t_one:.3f} s; with {R} replicates {t_glmm:.3f} s (1 process), "
            f"{t_glmm2:.3f} s (2 processes)"
        )
        print(glmm.tidy()[["term", "estimate", "std_error"]].assign(sandwich=glmm.sandwich_SE.to_numpy()))


if __name__ == "__main__":
    main()
