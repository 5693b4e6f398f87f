"""Speed of 3-level fits: 100,000 students / 10,000 classes / 1,000 schools.

    python benchmarks/bench_glmm3.py [--repeat 3] [--quick] [--write-csv data3.csv]

Model: ``y ~ x1 + x2 + (1|school) + (1|school:cls)`` with weights at the three levels
(``w1``, ``w2``, ``w3``), fitted with ``wemix_nb.mix`` (standard errors included): binomial
(``yb``) and Poisson (``yc``) with ``nquad = 13`` (13 x 13 nested adaptive quadrature), the
binomial also unweighted, and the linear model (``y``). Each case prints the best wall time of
``--repeat`` fits, its CPU time (less sensitive to other load on the machine), iterations,
likelihood evaluations and lnl. ``--quick`` skips the unweighted fit.

``--write-csv`` writes the data (``benchmarks/_data.py: three_level_sample``) so that the same fits
can be timed in R::

    d <- read.csv("data3.csv")
    system.time(lme4::glmer(yb ~ x1 + x2 + (1|school) + (1|school:cls), d, family = binomial))
    system.time(lme4::glmer(yc ~ x1 + x2 + (1|school) + (1|school:cls), d, family = poisson))
    system.time(lme4::lmer(y ~ x1 + x2 + (1|school) + (1|school:cls), d))
    system.time(WeMix::mix(yb ~ x1 + x2 + (1|school) + (1|cls), d, weights = c("w1", "w2", "w3"),
                           family = binomial(link = "logit"), nQuad = 13))

(lme4's nested AGHQ is not available: ``glmer`` allows ``nAGQ > 1`` only for one grouping
factor, so it runs Laplace, ``nAGQ = 1``.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _data import three_level_sample  # noqa: E402

import wemix_nb  # noqa: E402

RHS = "x1 + x2 + (1|school) + (1|school:cls)"
WEIGHTS = ["w1", "w2", "w3"]
CASES = [
    # label, response, family, weights, nquad
    ("binomial, weighted, nquad 13", "yb", "binomial", WEIGHTS, 13),
    ("poisson, weighted, nquad 13", "yc", "poisson", WEIGHTS, 13),
    ("binomial, unweighted, nquad 13", "yb", "binomial", None, 13),
    ("linear, weighted", "y", None, WEIGHTS, None),
]


def time_fit(data, response: str, family, weights, nquad, repeat: int) -> dict:
    """Best wall time of ``repeat`` fits, with the CPU time of that fit."""
    kwargs = {} if family is None else {"family": family, "nquad": nquad}
    best = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fit = wemix_nb.mix(f"{response} ~ {RHS}", data, weights=weights, progress=False, **kwargs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if best is None or wall < best["wall"]:
            best = {"wall": wall, "cpu": cpu, "fit": fit}
    return best


def _counts(result) -> tuple[str, str]:
    """Iterations and (GLMMs) likelihood evaluations."""
    glmm = getattr(result.details, "fit", None)
    evaluations = str(glmm.n_evaluations) if hasattr(glmm, "n_evaluations") else ""
    return str(result.n_iterations), evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="fits per case (best wall time kept)")
    parser.add_argument("--quick", action="store_true", help="skip the unweighted binomial fit")
    parser.add_argument("--write-csv", metavar="PATH", help="also write the data for R")
    args = parser.parse_args()
    data = three_level_sample()
    if args.write_csv:
        data.to_csv(args.write_csv, index=False)
        print(f"wrote {args.write_csv}")
    print(
        f"{len(data):,} rows, {data['cls'].nunique():,} classes, {data['school'].nunique():,} schools; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"model: <response> ~ {RHS}")
    print(f"{'case':34s} {'wall s':>8s} {'cpu s':>8s} {'iter':>5s} {'evals':>6s} {'lnl':>18s}")
    for label, response, family, weights, nquad in CASES:
        if args.quick and weights is None:
            continue
        best = time_fit(data, response, family, weights, nquad, args.repeat)
        iterations, evaluations = _counts(best["fit"])
        print(
            f"{label:34s} {best['wall']:8.2f} {best['cpu']:8.2f} {iterations:>5s} {evaluations:>6s} "
            f"{best['fit'].lnl:18.6f}"
        )


if __name__ == "__main__":
    main()
