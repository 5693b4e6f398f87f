"""``fit.residuals(type)``: hand formulas, statsmodels' family functions at the same means, and
statsmodels' GLM residuals where the GLMM collapses to a GLM (identical groups: variance 0)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from reference import wemix_case

import wemix_nb
from wemix_nb.errors import ArgumentError, FewGroupsWarning, SingularFitWarning

TYPES = ["response", "pearson", "deviance", "working"]


@pytest.fixture(scope="module")
def binomial():
    data, expected = wemix_case("A4_sleepstudy_binomial")
    call = expected["call"]
    return wemix_nb.mix(call["formula"], data, weights=call["weights"], family="binomial"), data


def test_linear_residuals():
    data, expected = wemix_case("A2_sleepstudy_rslope")
    fit = wemix_nb.mix(expected["call"]["formula"], data, weights=expected["call"]["weights"])
    raw = data["Reaction"].to_numpy(float) - fit.fitted.to_numpy()
    np.testing.assert_allclose(fit.residuals(), raw, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(fit.residuals("pearson"), raw / fit.sigma, rtol=1e-12, atol=1e-12)
    for kind in ("deviance", "working"):
        np.testing.assert_allclose(fit.residuals(kind), raw, rtol=1e-12, atol=1e-10)
    assert fit.residuals("pearson").name == "pearson_resid"
    assert list(fit.residuals().index) == list(fit.resid.index)


def test_binomial_residuals_by_hand(binomial):
    fit, data = binomial
    y, mu = data["bin"].to_numpy(float), fit.fitted.to_numpy()
    assert set(np.unique(y)) == {0.0, 1.0}
    np.testing.assert_allclose(fit.residuals("response"), y - mu, rtol=1e-13)
    np.testing.assert_allclose(fit.residuals("pearson"), (y - mu) / np.sqrt(mu * (1 - mu)), rtol=1e-12)
    np.testing.assert_allclose(fit.residuals("working"), (y - mu) / (mu * (1 - mu)), rtol=1e-10)
    unit = np.where(y == 1, -2 * np.log(mu), -2 * np.log(1 - mu))
    np.testing.assert_allclose(fit.residuals("deviance"), np.sign(y - mu) * np.sqrt(unit), rtol=1e-12)
    # statsmodels' family functions at the same means
    family = sm.families.Binomial()
    np.testing.assert_allclose(fit.residuals("deviance"), family.resid_dev(y, mu), rtol=1e-10)
    np.testing.assert_allclose(fit.residuals("pearson"), (y - mu) / np.sqrt(family.variance(mu)), rtol=1e-12)
    # conditional on the modes: eta is the fit's linear predictor, which includes the random effects
    assert not np.allclose(fit.linear_predictor, fit.predict(data, include_random=False))


def test_poisson_deviance_residuals_by_hand():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(30), 5)
    x = rng.normal(size=len(g))
    y = rng.poisson(np.exp(0.1 + 0.5 * x + rng.normal(0, 0.5, 30)[g])).astype(float)
    assert (y == 0).any()
    fit = wemix_nb.mix("y ~ x + (1|g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="poisson")
    mu = fit.fitted.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = 2 * (np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
    # near y = mu the unit deviance is a difference of nearly equal terms: absolute precision ~1e-16,
    # so its square root is known to ~1e-16 / sqrt(d) absolutely
    np.testing.assert_allclose(
        fit.residuals("deviance"), np.sign(y - mu) * np.sqrt(unit), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        fit.residuals("deviance"), sm.families.Poisson().resid_dev(y, mu), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(fit.residuals("pearson"), (y - mu) / np.sqrt(mu), rtol=1e-12)
    np.testing.assert_allclose(fit.residuals("working"), (y - mu) / mu, rtol=1e-12)


@pytest.mark.parametrize(
    ("family", "sm_family"), [("binomial", sm.families.Binomial()), ("poisson", sm.families.Poisson())]
)
def test_equal_statsmodels_glm_residuals_when_groups_are_identical(family, sm_family):
    """Every group a copy of the others: the random-effect variance is estimated at 0 and the GLMM
    is the GLM, so its residuals of every type are statsmodels' GLM ones."""
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=12)
    if family == "binomial":
        y0 = (rng.random(12) < 1 / (1 + np.exp(-(0.3 + x0)))).astype(float)
    else:
        y0 = rng.poisson(np.exp(0.5 + 0.5 * x0)).astype(float)
    data = pd.DataFrame({"y": np.tile(y0, 15), "x": np.tile(x0, 15), "g": np.repeat(np.arange(15), 12)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", FewGroupsWarning)  # 15 groups
        with pytest.warns(SingularFitWarning, match="g: the variance of Intercept is numerically 0"):
            fit = wemix_nb.mix("y ~ x + (1|g)", data, family=family)
    glm = sm.GLM(data["y"], sm.add_constant(data["x"]), family=sm_family).fit()
    assert fit.vars.iloc[0] < 1e-20 and fit.is_singular
    np.testing.assert_allclose(fit.coef.to_numpy(), glm.params.to_numpy(), rtol=1e-10)
    for kind in TYPES:
        np.testing.assert_allclose(
            fit.residuals(kind).to_numpy(), getattr(glm, f"resid_{kind}").to_numpy(), rtol=1e-9, atol=1e-12
        )


def test_unknown_type(binomial):
    fit, _ = binomial
    with pytest.raises(ArgumentError, match="'response', 'pearson', 'deviance', 'working'"):
        fit.residuals("studentized")
