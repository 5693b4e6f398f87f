"""The linear pseudo-log-likelihood as a function of theta, checked away from the optimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import wemix_reference_case

from wemix_nb.estimation.linear import LinearProblem
from wemix_nb.model.frame import build_model_frame


@pytest.mark.parametrize("name", ["L1", "L2", "L3", "L3c", "L4", "L5"])
def test_lnl_at_theta_times_1_1_matches_wemix(name):
    """WeMix's likelihood function evaluated at 1.1 x its estimate (2-3 levels, slopes, two bars)."""
    data, expected = wemix_reference_case(name)
    frame = build_model_frame(expected["formula"], data, expected["weights"], cweights=expected["cWeights"])
    problem = LinearProblem(frame)
    theta = 1.1 * np.array(list(expected["theta"].values()))
    assert -0.5 * problem.deviance(theta) == pytest.approx(expected["lnl_at_theta_times_1.1"], rel=1e-12)


def _nested_data(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(3):
        for b in range(2):
            for c in range(rng.integers(2, 4)):
                for _ in range(rng.integers(2, 5)):
                    x = rng.normal()
                    rows.append((f"a{a}", f"a{a}b{b}", f"a{a}b{b}c{c}", x, rng.normal() + x))
    return pd.DataFrame(rows, columns=["a", "b", "c", "x", "y"])


def _dense_profiled_lnl(y, X, Zs, covs):
    """Unweighted ML log-likelihood with beta and sigma profiled out, from the marginal normal
    ``y ~ N(X beta, sigma^2 (I + sum_l Z_l blockdiag(Sigma_l) Z_l'))`` (covs relative to sigma^2)."""
    n = len(y)
    V = np.eye(n)
    for Z, cov in zip(Zs, covs, strict=True):
        V += Z @ cov @ Z.T
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    sigma2 = r @ Vi @ r / n
    return -0.5 * (np.linalg.slogdet(V)[1] + n * np.log(2 * np.pi * sigma2) + n)


def _group_design(values: pd.Series, columns: np.ndarray) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(values, sort=True)
    q = columns.shape[1]
    Z = np.zeros((len(values), len(uniques) * q))
    for j in range(q):
        Z[np.arange(len(values)), codes * q + j] = columns[:, j]
    return Z, len(uniques)


def test_four_levels_with_a_random_slope_equal_the_dense_marginal_likelihood():
    data = _nested_data()
    frame = build_model_frame("y ~ x + (1|c) + (1 + x|b) + (1|a)", data, None)
    assert [level.name for level in frame.levels] == ["c", "b", "a"]
    problem = LinearProblem(frame)
    y, X = data["y"].to_numpy(), np.column_stack([np.ones(len(data)), data["x"]])
    ones, slope = np.ones((len(data), 1)), np.column_stack([np.ones(len(data)), data["x"]])
    Zc, nc = _group_design(data["c"], ones)
    Zb, nb = _group_design(data["b"], slope)
    Za, na = _group_design(data["a"], ones)
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = rng.uniform(0.2, 1.5, 5) * np.array([1, 1, rng.choice([-1, 1]), 1, 1])
        lam_b = np.array([[theta[1], 0.0], [theta[2], theta[3]]])
        covs = [theta[0] ** 2 * np.eye(nc), np.kron(np.eye(nb), lam_b @ lam_b.T), theta[4] ** 2 * np.eye(na)]
        dense = _dense_profiled_lnl(y, X, [Zc, Zb, Za], covs)
        assert -0.5 * problem.deviance(theta) == pytest.approx(dense, rel=1e-12)


def test_gradient_is_exact():
    """The forward-mode gradient of the profiled deviance against central differences."""
    data = _nested_data(5).assign(w1=lambda d: 1 + (d.index % 3), w2=1.0, w3=2.0, w4=1.5)
    data["w2"] = data.groupby("b")["x"].transform(lambda s: 1 + len(s) % 2)
    frame = build_model_frame(
        "y ~ x + (1|c) + (1 + x|b) + (1|a)", data, ["w1", "w2", "w2", "w4"], cweights=True
    )
    problem = LinearProblem(frame)
    theta = np.array([0.7, 1.1, -0.3, 0.5, 0.9])
    _, grad = problem.deviance(theta, gradient=True)
    h = 1e-6
    numeric = [
        (problem.deviance(theta + h * e) - problem.deviance(theta - h * e)) / (2 * h)
        for e in np.eye(len(theta))
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)
