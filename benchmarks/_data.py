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
