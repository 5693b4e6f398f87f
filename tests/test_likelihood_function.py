"""``wemix_nb.likelihood``: the log pseudo-likelihood as a function of the parameters equals the fit's
lnl at the estimate, peaks there (profiles), and another optimiser finds the same optimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import WEMIX_REFERENCE, require_shared, wemix_case
from scipy import optimize

import wemix_nb
from wemix_nb.errors import ArgumentError


def _case(name: str, family=None):
    data, expected = wemix_case(name)
    call = expected["call"]
    kwargs = {"weights": call["weights"], "cweights": call.get("cWeights", False), "family": family}
    return call["formula"], data, kwargs


@pytest.mark.parametrize(
    "name", ["A1_sleepstudy_ri", "A2_sleepstudy_rslope", "A3_sleepstudy_3level", "A8a_survey_linear"]
)
def test_linear_likelihood_equals_lnl_at_the_estimate(name):
    formula, data, kwargs = _case(name)
    fit = wemix_nb.mix(formula, data, **kwargs)
    loglik = wemix_nb.likelihood(formula, data, **kwargs)
    assert loglik.names == (*fit.coef.index, *fit.theta.index, "sigma")
    params = loglik.params_of(fit)
    np.testing.assert_array_equal(params, [*fit.coef, *fit.theta, fit.sigma])
    # the full form at (beta, theta, sigma): equal up to the last bits of the sum
    assert loglik(params) == pytest.approx(fit.lnl, rel=1e-14)
    assert loglik.by_group(params).sum() == pytest.approx(fit.lnl, rel=1e-14)
    assert loglik.by_group(params).shape == (fit.ngroups.iloc[-1],)
    # the profiled form is the very function the optimiser maximised: exactly equal
    profiled = wemix_nb.likelihood(formula, data, profiled=True, **kwargs)
    assert profiled.names == tuple(fit.theta.index)
    assert profiled(profiled.params_of(fit)) == fit.lnl
    assert np.isfinite(loglik(loglik.start)) and loglik(loglik.start) < fit.lnl


@pytest.mark.parametrize("name", ["A4_sleepstudy_binomial", "A8b_survey_binomial"])
def test_glmm_likelihood_equals_lnl_at_the_estimate(name):
    formula, data, kwargs = _case(name, family="binomial")
    fit = wemix_nb.mix(formula, data, **kwargs)
    loglik = wemix_nb.likelihood(formula, data, **kwargs)
    assert loglik.names == (*fit.coef.index, *fit.theta.index)
    assert loglik(loglik.params_of(fit)) == fit.lnl
    assert loglik.by_group(loglik.params_of(fit)).sum() == pytest.approx(fit.lnl, rel=1e-13)
    assert loglik(loglik.start) < fit.lnl
    # the Laplace objective with WeMix's rounded weights is a different function, with its own lnl
    rounded = {**kwargs, "nquad": 1, "laplace_rounding": True}
    fit1 = wemix_nb.mix(formula, data, **rounded)
    loglik1 = wemix_nb.likelihood(formula, data, **rounded)
    assert loglik1(loglik1.params_of(fit1)) == fit1.lnl


def test_three_level_glmm_likelihood():
    require_shared()
    data = pd.read_csv(WEMIX_REFERENCE / "wemix_ref_data.csv")
    args = ("ycount ~ x + (1|class) + (1|school)", data)
    kwargs = {"weights": ["w1", "w2", "w3"], "family": "poisson", "nquad": 5}
    fit = wemix_nb.mix(*args, **kwargs)
    loglik = wemix_nb.likelihood(*args, **kwargs)
    assert loglik.names == ("Intercept", "x", "class.Intercept", "school.Intercept")
    assert loglik(loglik.params_of(fit)) == pytest.approx(fit.lnl, rel=1e-12, abs=0)


def test_profiles_peak_at_the_estimate():
    formula, data, kwargs = _case("A1_sleepstudy_ri")
    fit = wemix_nb.mix(formula, data, **kwargs)
    # linear: the profiled likelihood is the profile in theta; its maximum is the estimate
    profiled = wemix_nb.likelihood(formula, data, profiled=True, **kwargs)
    best = optimize.minimize_scalar(
        lambda t: -profiled([t]), bounds=(0.01, 5), method="bounded", options={"xatol": 1e-9}
    )
    assert best.x == pytest.approx(fit.theta.iloc[0], rel=1e-6)
    assert -best.fun == pytest.approx(fit.lnl, rel=1e-12)
    # the full form: sigma's profile (beta and theta maximised) peaks at sigma hat
    loglik = wemix_nb.likelihood(formula, data, **kwargs)
    x_hat = loglik.params_of(fit).to_numpy()

    def sigma_profile(sigma):
        inner = optimize.minimize(lambda z: -loglik([*z, sigma]), x_hat[:-1], method="BFGS")
        return -inner.fun

    for step in (-0.5, 0.5):
        assert sigma_profile(fit.sigma + step) < fit.lnl - 1e-4
    # the optimum by another optimiser, from the start vector
    other = optimize.minimize(
        lambda z: -loglik(z),
        loglik.start,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000, "maxfev": 20000},
    )
    assert -other.fun == pytest.approx(fit.lnl, rel=1e-9)
    np.testing.assert_allclose(np.abs(other.x), np.abs(x_hat), rtol=1e-4)


def test_glmm_profile_in_theta_peaks_at_the_estimate():
    formula, data, kwargs = _case("A4_sleepstudy_binomial", family="binomial")
    fit = wemix_nb.mix(formula, data, **kwargs)
    loglik = wemix_nb.likelihood(formula, data, **kwargs)
    beta_hat, theta_hat = fit.coef.to_numpy(), float(fit.theta.iloc[0])

    def profile(theta):
        inner = optimize.minimize(
            lambda b: -loglik([*b, theta]), beta_hat, method="BFGS", options={"gtol": 1e-9}
        )
        return -inner.fun

    steps = np.array([-0.05, 0.0, 0.05])
    values = np.array([profile(theta_hat + s) for s in steps])
    assert values[1] == pytest.approx(fit.lnl, abs=1e-8)
    assert values[0] < values[1] and values[2] < values[1]
    # the vertex of the parabola through the three points is the estimate
    a, b, _ = np.polyfit(steps, values, 2)
    assert abs(-b / (2 * a)) < 1e-3


def test_parameters_by_name_and_errors():
    formula, data, kwargs = _case("A1_sleepstudy_ri")
    fit = wemix_nb.mix(formula, data, **kwargs)
    loglik = wemix_nb.likelihood(formula, data, **kwargs)
    params = loglik.params_of(fit)
    assert loglik(params.iloc[::-1]) == loglik(params.to_numpy())  # a Series is read by name
    assert loglik(dict(params)) == loglik(params.to_numpy())
    assert loglik([*params.iloc[:-1], 0.0]) == -np.inf
    assert "sigma" in repr(loglik) and len(loglik) == 4
    with pytest.raises(ArgumentError, match="4 values"):
        loglik([1.0, 2.0])
    with pytest.raises(ArgumentError, match="missing"):
        loglik(params.iloc[:-1])
    # text, complex numbers, NaN and infinity are refused by name, also by_group
    values = params.to_numpy()
    for bad, words in [("ten", "text"), (1 + 2j, "complex"), (np.nan, "not finite"), (-np.inf, "not finite")]:
        for position, name in enumerate(loglik.names):
            wrong = [*values[:position], bad, *values[position + 1 :]]
            with pytest.raises(ArgumentError, match=f"'{name}' must be a finite real number.*{words}"):
                loglik(wrong)
            with pytest.raises(ArgumentError, match=f"'{name}'"):
                loglik.by_group(dict(zip(loglik.names, wrong, strict=True)))
    with pytest.raises(ArgumentError, match="complex"):
        loglik(values.astype(complex))
    binomial_formula, binomial_data, binomial_kwargs = _case("A4_sleepstudy_binomial", family="binomial")
    with pytest.raises(ArgumentError, match="linear models"):
        wemix_nb.likelihood(binomial_formula, binomial_data, profiled=True, **binomial_kwargs)
    glmm = wemix_nb.likelihood(binomial_formula, binomial_data, **binomial_kwargs)
    with pytest.raises(ArgumentError, match="same model"):
        glmm.params_of(fit)
