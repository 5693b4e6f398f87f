"""Marginal and conditional R^2 (Nakagawa & Schielzeth 2013) and the df choice for tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import wemix_nb
from wemix_nb.results.extras import degrees_of_freedom

WEIGHTS = ["w_fstuwt", "w_fschwt"]


@pytest.fixture(scope="module")
def pisa() -> pd.DataFrame:
    return wemix_nb.datasets.pisa2012_like()


@pytest.fixture(scope="module")
def ri_fit(pisa):
    return wemix_nb.mix("pv1math ~ escs + st04q01 + (1|schoolid)", pisa, weights=WEIGHTS)


def weighted_var(x, w):
    m = np.average(x, weights=w)
    return np.average((x - m) ** 2, weights=w)


def test_random_intercept_by_hand(ri_fit, pisa):
    r2 = ri_fit.r_squared()
    w = pisa["w_fstuwt"].to_numpy()
    X = np.column_stack([np.ones(len(pisa)), pisa["escs"], (pisa["st04q01"] == "Male").astype(float)])
    var_f = weighted_var(X @ ri_fit.coef.to_numpy(), w)
    tau2, sigma2 = ri_fit.vars["schoolid.Intercept"], ri_fit.vars["Residual"]
    total = var_f + tau2 + sigma2
    assert r2["var_fixed"] == pytest.approx(var_f, rel=1e-10)
    assert r2["var_random"] == pytest.approx(tau2, rel=1e-10)
    assert r2["var_residual"] == pytest.approx(sigma2, rel=1e-12)
    assert r2["marginal"] == pytest.approx(var_f / total, rel=1e-10)
    assert r2["conditional"] == pytest.approx((var_f + tau2) / total, rel=1e-10)
    assert 0 < r2["marginal"] < r2["conditional"] < 1


def test_random_slope_johnson(pisa):
    fit = wemix_nb.mix("pv1math ~ escs + (1 + escs|schoolid)", pisa, weights=WEIGHTS)
    r2 = fit.r_squared()
    w = pisa["w_fstuwt"].to_numpy()
    Z = np.column_stack([np.ones(len(pisa)), pisa["escs"]])
    S = np.array([[fit.vars["schoolid.Intercept"], 0], [0, fit.vars["schoolid.escs"]]])
    cov = fit.varDF.query("var2.notna()", engine="python")["vcov"].iloc[0]
    S[0, 1] = S[1, 0] = cov
    expected = np.average(np.einsum("ni,ij,nj->n", Z, S, Z), weights=w)
    assert r2["var_random"] == pytest.approx(expected, rel=1e-8)


def test_unweighted_equals_plain_nakagawa():
    data = wemix_nb.datasets.sleepstudy()
    fit = wemix_nb.mix("Reaction ~ Days + (1|Subject)", data)
    var_f = np.var(fit.coef["Intercept"] + fit.coef["Days"] * data["Days"])
    total = var_f + fit.vars["Subject.Intercept"] + fit.vars["Residual"]
    assert fit.r_squared()["marginal"] == pytest.approx(var_f / total, rel=1e-10)


@pytest.mark.parametrize(
    ("family", "link", "expected"),
    [
        ("binomial", "logit", np.pi**2 / 3),
        ("binomial", "probit", 1.0),
    ],
)
def test_glmm_distribution_specific_variance(ri_fit, family, link, expected):
    get_family = wemix_nb.families.get_family
    fake = replace(ri_fit, family=get_family(family, link), sigma=1.0)
    r2 = fake.r_squared()
    assert r2["var_residual"] == pytest.approx(expected)
    assert r2["var_random"] == pytest.approx(ri_fit.vars["schoolid.Intercept"] / ri_fit.sigma**2)


def test_poisson_lognormal_variance(ri_fit, pisa):
    get_family = wemix_nb.families.get_family
    small = replace(ri_fit, family=get_family("poisson", None), sigma=1.0, coef=ri_fit.coef / 1000.0)
    r2 = small.r_squared()
    w = pisa["w_fstuwt"].to_numpy()
    X = small.frame.X
    tau2 = ri_fit.vars["schoolid.Intercept"] / ri_fit.sigma**2
    mu = np.average(np.exp(X @ small.coef.to_numpy() + tau2 / 2), weights=w)
    assert r2["var_residual"] == pytest.approx(np.log1p(1 / mu), rel=1e-10)


def test_pv_r_squared_is_the_mean(pisa):
    data = pisa.assign(pv2math=pisa["pv1math"] + np.random.default_rng(2).normal(0, 20, len(pisa)))
    fit = wemix_nb.mix("pv{1..2}math ~ escs + (1|schoolid)", data, weights=WEIGHTS)
    expected = (fit.fits[0].r_squared() + fit.fits[1].r_squared()) / 2
    np.testing.assert_allclose(fit.r_squared(), expected)


def test_degrees_of_freedom(ri_fit, pisa):
    normal = degrees_of_freedom(ri_fit, "normal")
    assert np.isinf(normal).all() and list(normal.index) == list(ri_fit.coef.index)
    assert (degrees_of_freedom(ri_fit, "groups") == 150 - 3).all()
    with pytest.raises(wemix_nb.errors.ArgumentError):
        degrees_of_freedom(ri_fit, "rubin")
    with pytest.raises(wemix_nb.errors.ArgumentError):
        degrees_of_freedom(ri_fit, "satterthwaite")
    table = ri_fit.tidy(df="normal")
    z = ri_fit.coef / ri_fit.SE
    np.testing.assert_allclose(table["p_value"], 2 * stats.norm.sf(np.abs(z)), rtol=1e-10)
    groups = ri_fit.tidy(df="groups")
    assert (groups["p_value"] >= table["p_value"]).all()
    assert (groups["conf_high"] - groups["conf_low"] > table["conf_high"] - table["conf_low"]).all()
    data = pisa.assign(pv2math=pisa["pv1math"] + np.random.default_rng(2).normal(0, 20, len(pisa)))
    pv = wemix_nb.mix("pv{1..2}math ~ escs + st04q01 + (1|schoolid)", data, weights=WEIGHTS)
    pd.testing.assert_series_equal(degrees_of_freedom(pv, "groups"), pv.rubin["df"].rename("df"))
    pd.testing.assert_series_equal(degrees_of_freedom(pv, "rubin"), pv.rubin["df"].rename("df"))
