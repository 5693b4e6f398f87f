"""A simulated informative two-stage sample with known group effects (for the coverage of the
random-effect intervals)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def informative_sample(
    seed: int,
    n_groups: int = 175,
    tau: float = 0.5,
    sigma: float = 1.0,
    informative: float = 0.3,
    population_groups: int = 2000,
) -> pd.DataFrame:
    """Groups drawn with probability proportional to size, then 15-40 units per group drawn with
    probabilities that grow with the unit's own residual.

    The population has ``population_groups`` groups of 40-3,000 units (larger groups tend to have
    larger effects, so the group weights are informative too), ``y = 1 + 0.5 x + u_g + e``,
    ``u_g ~ N(0, tau^2)``, ``e ~ N(0, sigma^2)``. Groups: systematic PPS sample of ``n_groups``;
    units: 15-40 per group (Poisson sampling of 20-35 expected units, redrawn outside 15-40),
    with probabilities proportional to ``exp(informative * e)``, so
    the unweighted mean of a group's sampled residuals is biased and its conditional weights sum to
    about its population size.

    Returns
    -------
    pandas.DataFrame
        ``group``, ``x``, ``y``, ``w1`` (unconditional unit weight), ``w2`` (group weight),
        ``u`` (the group's true effect).
    """
    rng = np.random.default_rng(seed)
    u_all = rng.normal(0, tau, population_groups)
    sizes = np.round(np.exp(rng.normal(np.log(300), 0.5, population_groups) + 0.3 * u_all / tau)).astype(int)
    sizes = np.clip(sizes, 0, 3000) + 40
    pi_group = n_groups * sizes / sizes.sum()
    cumulative = np.cumsum(sizes) / sizes.sum() * n_groups
    chosen = np.searchsorted(cumulative, rng.uniform() + np.arange(n_groups))
    pieces = []
    for g in chosen:
        x = rng.normal(size=sizes[g])
        e = rng.normal(0, sigma, sizes[g])
        tilt = np.exp(informative * e)
        pi_unit = np.minimum(1.0, rng.uniform(20, 35) * tilt / tilt.sum())
        while True:  # Poisson sampling, redrawn until the sample has 15 to 40 units
            keep = rng.random(sizes[g]) < pi_unit
            if 15 <= keep.sum() <= 40:
                break
        pieces.append(
            pd.DataFrame(
                {
                    "group": g,
                    "x": x[keep],
                    "y": 1.0 + 0.5 * x[keep] + u_all[g] + e[keep],
                    "w1": 1.0 / (pi_unit[keep] * pi_group[g]),
                    "w2": 1.0 / pi_group[g],
                    "u": u_all[g],
                }
            )
        )
    return pd.concat(pieces, ignore_index=True)


def coverage(data: pd.DataFrame, table: pd.DataFrame, z: float = 1.96) -> float:
    """Share of the groups whose true effect lies in ``mode ± z sd`` (``table`` from
    ``random_effects()[group]``, indexed by group)."""
    truth = data.groupby("group")["u"].first().reindex(table.index)
    return float(np.mean(np.abs(truth.to_numpy() - table["Intercept"]) <= z * table["Intercept_sd"]))
