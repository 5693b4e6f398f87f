"""GLMM estimates on any scale: huge counts, huge level-1 weights, rescaled top-level weights.

A Poisson count multiplied by ``lam`` (with the intercept shifted by ``log lam``) has the
log-density ``lam (y eta - mu) + constant``: the same objective as the original counts with a
level-1 conditional weight ``lam``. So scaling counts and scaling level-1 weights must give the
same estimates, and those must be the optimum of the pseudo-likelihood computed independently
(brute-force integration on a fine grid, maximised by scipy).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import gammaln, logsumexp, xlogy

from wemix_nb.estimation.glmm import fit_glmm
from wemix_nb.estimation.glmm.optimize import _make_pd, _newton_decrement
from wemix_nb.model.frame import build_model_frame

FORMULA = "y ~ x + (1|g)"


def _poisson_data(seed: int = 2, n_groups: int = 30, size: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    u = rng.normal(0.0, 0.5, n_groups)
    y = rng.poisson(np.exp(1.0 + 0.3 * x + u[g])).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": g, "w1": 1.0, "w2": 1.0})


def _fit(data: pd.DataFrame, nquad: int = 13):
    frame = build_model_frame(FORMULA, data, ["w1", "w2"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean fit: no convergence or numerical warning
        return fit_glmm(frame, "poisson", nquad=nquad)


def _poisson_constants(y: np.ndarray) -> np.ndarray:
    return -gammaln(y + 1.0)


def _brute_force_lnl(params: np.ndarray, data: pd.DataFrame, size: int) -> float:
    """The weighted 2-level Poisson pseudo-log-likelihood (without the log(y!) terms) of groups of
    ``size`` rows (sorted by group), each group's integral by the trapezoid rule on 2001 points
    around its mode (exact to rounding for these near-Gaussian integrands)."""
    b0, b1, log_sd = params
    sd = np.exp(log_sd)
    y, x = (data[col].to_numpy().reshape(-1, size) for col in ("y", "x"))
    c = (data["w1"] / data["w2"]).to_numpy().reshape(-1, size)
    w2 = data["w2"].to_numpy().reshape(-1, size)[:, 0]
    eta0 = b0 + b1 * x
    u = np.zeros(len(y))
    for _ in range(200):  # Newton for each group's mode of c * log f - u^2 / 2
        mu = np.exp(eta0 + sd * u[:, None])
        step = (sd * np.sum(c * (y - mu), axis=1) - u) / (1.0 + sd**2 * np.sum(c * mu, axis=1))
        u += step
        if np.max(np.abs(step)) < 1e-13 * (1 + np.max(np.abs(u))):
            break
    scale = 1.0 / np.sqrt(1.0 + sd**2 * np.sum(c * np.exp(eta0 + sd * u[:, None]), axis=1))
    grid = u[:, None] + scale[:, None] * np.linspace(-12.0, 12.0, 2001)  # (groups, points)
    eta = eta0[:, None, :] + sd * grid[:, :, None]
    # log-density relative to the saturated model, so that weights of 1e5 add no rounding noise
    rel = xlogy(y[:, None, :], np.exp(eta)) - np.exp(eta) - (xlogy(y, y) - y)[:, None, :]
    h = np.sum(c[:, None, :] * rel, axis=2) - 0.5 * grid**2
    log_integral = logsumexp(h, axis=1) + np.log(grid[:, 1] - grid[:, 0]) - 0.5 * np.log(2 * np.pi)
    return float(np.sum(w2 * log_integral))


def test_counts_times_lambda_equal_level1_weight_lambda():
    """Counts x 1e6 (the case that returned its start values) and counts with level-1 weight 1e6:
    one objective, so the same slope and variance, the intercept shifted by log(1e6), and the
    log-likelihoods apart by the known constant."""
    lam = 1e6
    data = _poisson_data()
    big_counts = _fit(data.assign(y=data["y"] * lam))
    weighted = _fit(data.assign(w1=lam))
    assert big_counts.converged and weighted.converged
    assert big_counts.beta[0] == pytest.approx(weighted.beta[0] + np.log(lam), abs=1e-8)
    assert big_counts.beta[1] == pytest.approx(weighted.beta[1], rel=1e-7)
    assert big_counts.var_params[0] == pytest.approx(weighted.var_params[0], rel=1e-6)
    y = data["y"].to_numpy()
    shift = np.sum(xlogy(lam * y, lam) + _poisson_constants(lam * y) - lam * _poisson_constants(y))
    assert big_counts.lnl - weighted.lnl == pytest.approx(shift, rel=1e-12)
    assert big_counts.lnl - shift == pytest.approx(weighted.lnl, abs=1e-5)


def test_weights_times_1e5_and_counts_times_1e6():
    """Level-1 weights x 1e5 on counts x 1e6: the same objective as the original counts with a
    level-1 weight of 1e11."""
    data = _poisson_data(seed=5)
    both = _fit(data.assign(y=data["y"] * 1e6, w1=1e5))
    equivalent = _fit(data.assign(w1=1e11))
    assert both.converged and equivalent.converged
    # sums of terms of 1e11 carry rounding noise of ~1e-5 in the log-likelihood: the estimates
    # agree to a small fraction of their standard errors, which is what this problem allows
    shifted = np.r_[both.beta[0] - np.log(1e6), both.beta[1], both.var_params]
    reference = np.r_[equivalent.beta, equivalent.var_params]
    se = np.r_[equivalent.se_beta, equivalent.var_params_se]
    assert np.all(np.abs(shifted - reference) < 1e-3 * se)
    assert both.var_params[0] == pytest.approx(equivalent.var_params[0], rel=1e-4)
    # the start values (GLM, variance 1) are far from this optimum: the fit moved
    assert abs(equivalent.var_params[0] - 1.0) > 0.3


@pytest.mark.parametrize("level1_weight", [1.0, 1e5])
def test_optimum_matches_brute_force_integration(level1_weight):
    """The fit is the optimum of the independently computed pseudo-likelihood."""
    data = _poisson_data(seed=7, n_groups=15, size=6).assign(w1=level1_weight)
    fit = _fit(data, nquad=21)
    res = minimize(
        lambda p: -_brute_force_lnl(p, data, 6),
        x0=np.array([0.0, 0.0, 0.0]),
        method="Powell",  # derivative-free: independent of the fit's gradients
        options={"xtol": 1e-10, "ftol": 1e-15, "maxfev": 5000},
    )
    assert res.success
    b0, b1, log_sd = res.x
    assert fit.beta == pytest.approx([b0, b1], rel=1e-5, abs=1e-7)
    assert fit.var_params[0] == pytest.approx(np.exp(2 * log_sd), rel=1e-4)
    constants = np.sum(data["w1"] * _poisson_constants(data["y"].to_numpy()))
    saturated = np.sum(data["w1"] * (xlogy(data["y"], data["y"]) - data["y"]))
    assert fit.lnl == pytest.approx(-res.fun + constants + saturated, abs=1e-6 * max(1.0, abs(res.fun)))


@pytest.mark.parametrize("factor", [1e-9, 1e9])
def test_rescaled_top_level_weights_change_only_lnl(factor):
    data = _poisson_data(seed=3)
    base = _fit(data)
    scaled = _fit(data.assign(w1=factor, w2=factor))  # conditional level-1 weights stay 1
    assert scaled.converged
    assert scaled.beta == pytest.approx(base.beta, rel=1e-7)
    assert scaled.var_params == pytest.approx(base.var_params, rel=1e-6)
    assert scaled.lnl == pytest.approx(factor * base.lnl, rel=1e-9)
    assert scaled.se_beta == pytest.approx(base.se_beta, rel=1e-5)


def test_positive_definite_repair_works_on_each_parameters_scale():
    """A slope whose curvature is 2.5e13 (counts near 1e11) must not freeze a variance parameter
    of curvature 6.5: the eigenvalue floor is relative to each parameter's own curvature."""
    H = np.array([[2.5e13, 1.0e3], [1.0e3, 6.5]])
    assert np.allclose(_make_pd(H), H, rtol=1e-9, atol=0)
    flipped = np.diag([2.5e13, -6.5])  # not concave in the variance far from the optimum
    assert np.allclose(_make_pd(flipped), np.diag([2.5e13, 6.5]), rtol=1e-12, atol=0)
    g = np.array([0.0, 22.0])
    schur = 6.5 - 1e6 / 2.5e13
    assert _newton_decrement(g, H) == pytest.approx(22.0**2 / schur, rel=1e-9)


def test_convergence_is_decided_at_the_polished_point():
    """A fit stopped early reports the Newton decrement and is not converged."""
    data = _poisson_data()
    frame = build_model_frame(FORMULA, data.assign(y=data["y"] * 1e6), ["w1", "w2"])
    with pytest.warns(Warning, match="did not converge.*Newton decrement"):
        fit = fit_glmm(frame, "poisson", nquad=3, max_iteration=1)
    assert not fit.converged and "Newton decrement" in fit.message


def _binary_and_count_data(seed: int = 0, n_groups: int = 20, size: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    eta = 0.2 + 0.5 * x + rng.normal(0.0, 0.7, n_groups)[g]
    return pd.DataFrame(
        {
            "yb": (rng.random(len(g)) < 1 / (1 + np.exp(-eta))).astype(float),
            "yp": rng.poisson(np.exp(eta)).astype(float),
            "x": x,
            "g": g,
            "w1": 1.0,
            "w2": 1.0,
        }
    )


@pytest.mark.parametrize("family", ["binomial", "poisson"])
@pytest.mark.parametrize("slope", [False, True])
def test_level1_weight_1e8(family, slope):
    """Level-1 weights of 1e8 fit cleanly, and the robust SEs are those of weights 1e5 (the two
    models differ by O(1e-5)). Before: a raw LinAlgError, "not finite at the start values", or
    an intercept SE of 20; the direct logit log-density lost every digit in the tails (-1e-8),
    which such a weight turns into O(1) noise that stalls the modes."""
    data = _binary_and_count_data()
    formula = f"{'yb' if family == 'binomial' else 'yp'} ~ x + ({'1 + x' if slope else '1'} | g)"
    fits = []
    for weight in (1e5, 1e8):
        frame = build_model_frame(
            formula, data.assign(w1=weight), ["w1", "w2"], binomial_response=family == "binomial"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fits.append(fit_glmm(frame, family, nquad=7))
    small, big = fits
    assert big.converged
    assert big.beta == pytest.approx(small.beta, rel=1e-3, abs=1e-3)
    assert big.se_beta == pytest.approx(small.se_beta, rel=1e-2)
    assert big.var_params_se == pytest.approx(small.var_params_se, rel=1e-2)
