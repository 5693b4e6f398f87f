"""Coverage of the caterpillar plot's 95% intervals of the random effects, against known truth.

Simulated informative two-stage samples (tests/_informative_sample.py: 175 PPS-sampled groups, 15-40
units each, unit weights that grow with the unit's residual). For each sample the model is fitted
with unscaled weights (WeMix's default) and the share of groups whose true effect lies in
``mode ± 1.96 conditional SD`` is recorded, for the predictions of ``random_effects()`` (weights
rescaled to each group's sample size) and for the raw pseudo-likelihood ones (``raw=True``).

Run: ``python benchmarks/ranef_coverage.py [replications]`` (default 100; about 0.2 s each). It
also prints how the coverage changes with the strength of the informative unit sampling, and for a
probit GLMM fitted to a binary version of the outcome.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _informative_sample import coverage, informative_sample  # noqa: E402

import wemix_nb  # noqa: E402


def linear(seed: int, informative: float) -> tuple[float, float]:
    data = informative_sample(seed, informative=informative)
    fit = wemix_nb.mix("y ~ x + (1|group)", data, weights=["w1", "w2"])
    return coverage(data, fit.random_effects()["group"]), coverage(
        data, fit.random_effects(raw=True)["group"]
    )


def probit(seed: int) -> tuple[float, float]:
    """The same samples with a binary outcome: b = 1 when 0.5 x + u + e > 0, a probit GLMM whose
    latent residual is the unit's (informatively sampled) e."""
    data = informative_sample(seed)
    data["b"] = (data["y"] > 1.0).astype(int)  # y - 1 = 0.5 x + u + e
    fit = wemix_nb.mix(
        "b ~ x + (1|group)", data, weights=["w1", "w2"], family="binomial", link="probit", nquad=5
    )
    return coverage(data, fit.random_effects()["group"]), coverage(
        data, fit.random_effects(raw=True)["group"]
    )


def report(label: str, values: list[tuple[float, float]]) -> None:
    values = np.asarray(values)
    mean, sd = values.mean(axis=0), values.std(axis=0, ddof=1)
    print(
        f"{label:<46} rescaled {mean[0]:.3f} (sd {sd[0]:.3f})   raw {mean[1]:.3f} (sd {sd[1]:.3f})   "
        f"[{len(values)} samples]"
    )


def main(replications: int) -> None:
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    report(
        "linear, informative=0.3 (the test's design)", [linear(s, 0.3) for s in range(1, replications + 1)]
    )
    for strength in (0.0, 0.5, 0.8):
        report(
            f"linear, informative={strength}", [linear(s, strength) for s in range(1, replications // 4 + 1)]
        )
    report("probit GLMM, informative=0.3", [probit(s) for s in range(1, replications // 4 + 1)])
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
