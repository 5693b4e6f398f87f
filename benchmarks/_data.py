"""Synthetic two-stage samples for the benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def two_level_sample(
    n_rows: int, n_groups: int, n_fixed: int = 2, slope: bool = False, binary: bool = False, seed: int = 1
) -> pd.DataFrame:
    """Unequal-size groups, informative-looking weights, ``n_fixed`` fixed effects (intercept incl.)."""
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n_rows - n_groups, np.full(n_groups, 1 / n_groups)) + 1
    group = np.repeat(np.arange(n_groups), sizes)
    n = len(group)
    data = {"g": group}
    eta = np.zeros(n)
    for j in range(1, n_fixed):
        data[f"x{j}"] = rng.normal(size=n)
        eta += 0.3 * j * data[f"x{j}"]
    u0 = rng.normal(0, 0.8, n_groups)[group]
    eta += u0
    if slope:
        eta += rng.normal(0, 0.3, n_groups)[group] * data["x1"]
    if binary:
        data["y"] = (rng.random(n) < 1 / (1 + np.exp(-(eta - 0.2)))).astype(float)
    else:
        data["y"] = 1.0 + eta + rng.normal(size=n)
    w2 = rng.uniform(1, 5, n_groups)
    data["w2"] = w2[group]
    data["w1"] = data["w2"] * rng.uniform(1, 3, n)
    return pd.DataFrame(data)


def three_level_sample(
    n_rows: int = 100_000, n_classes: int = 10_000, n_schools: int = 1_000, seed: int = 1
) -> pd.DataFrame:
    """Students in classes in schools: unequal sizes, informative-looking weights at 3 levels.

    Columns: ``school``, ``cls`` (class ids unique within the data), ``x1`` (normal), ``x2``
    (0/1), responses ``yb`` (0/1, logit), ``yc`` (counts, log link) and ``y`` (continuous), and
    unconditional weights ``w1`` (students), ``w2`` (classes), ``w3`` (schools) with
    ``w1 >= w2 >= w3``. School effects N(0, 0.5^2), class effects N(0, 0.7^2).
    """
    rng = np.random.default_rng(seed)
    per_school = rng.multinomial(n_classes - n_schools, np.full(n_schools, 1 / n_schools)) + 1
    school_of_class = np.repeat(np.arange(n_schools), per_school)
    per_class = rng.multinomial(n_rows - n_classes, np.full(n_classes, 1 / n_classes)) + 1
    cls = np.repeat(np.arange(n_classes), per_class)
    school = school_of_class[cls]
    n = len(cls)
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, n).astype(float)
    v = rng.normal(0.0, 0.5, n_schools)[school]
    u = rng.normal(0.0, 0.7, n_classes)[cls]
    eta = -0.3 + 0.5 * x1 - 0.4 * x2 + v + u
    w3 = rng.uniform(1.0, 4.0, n_schools)
    w2 = w3[school_of_class] * rng.uniform(1.0, 3.0, n_classes)
    w1 = w2[cls] * rng.uniform(1.0, 2.0, n)
    return pd.DataFrame(
        {
            "school": school,
            "cls": cls,
            "x1": x1,
            "x2": x2,
            "yb": (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float),
            "yc": rng.poisson(np.exp(0.2 + 0.3 * x1 - 0.2 * x2 + 0.6 * (v + u))).astype(float),
            "y": 1.0 + eta + rng.normal(size=n),
            "w1": w1,
            "w2": w2[cls],
            "w3": w3[school],
        }
    )
