"""``confint(which="variances" | "all")``: the delta-method intervals by hand, their range, and
their coverage in simulations with known truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from reference import wemix_case
from scipy import stats

import wemix_nb
from wemix_nb.errors import ArgumentError
from wemix_nb.results.intervals import FISHER_Z, INTERVAL_COLUMNS, LOG_SD, variance_intervals


@pytest.fixture(scope="module")
def slope():
    data, expected = wemix_case("A2_sleepstudy_rslope")
    return wemix_nb.mix(expected["call"]["formula"], data, weights=expected["call"]["weights"])


def test_intervals_by_hand(slope):
    table = slope.confint(0.9, which="variances")
    assert list(table.columns) == INTERVAL_COLUMNS
    assert list(table.index) == ["Subject.Intercept", "Subject.Days", "Subject.Days.Intercept", "Residual"]
    z = stats.norm.ppf(0.95)
    varDF = slope.varDF
    for name, v, se in [
        ("Subject.Intercept", *varDF.loc[0, ["vcov", "SEvcov"]]),
        ("Subject.Days", *varDF.loc[1, ["vcov", "SEvcov"]]),
        ("Residual", *varDF.loc[3, ["vcov", "SEvcov"]]),
    ]:
        row = table.loc[name]
        # Wald on log(sd) = log(v) / 2, se(log sd) = se / (2 v), squared back
        sd, se_log_sd = np.sqrt(v), se / (2 * v)
        assert row["parameter"] == "variance" and row["method"] == LOG_SD
        assert row["estimate"] == v and row["std_error"] == se
        assert row["lower"] == pytest.approx((sd * np.exp(-z * se_log_sd)) ** 2, rel=1e-13)
        assert row["upper"] == pytest.approx((sd * np.exp(z * se_log_sd)) ** 2, rel=1e-13)
    # the correlation: delta method with a numerical gradient of rho(c, v1, v2)
    sigma = slope.variance.levels[0].sigma
    point = np.array([sigma[0, 1], sigma[0, 0], sigma[1, 1]])

    def rho(x):
        return x[0] / np.sqrt(x[1] * x[2])

    h = 1e-6 * np.abs(point)
    gradient = np.array([(rho(point + e) - rho(point - e)) / (2 * e[j]) for j, e in enumerate(np.diag(h))])
    names = ["Subject.Days.Intercept", "Subject.Intercept", "Subject.Days"]
    cov = slope.var_theta.loc[names, names].to_numpy()
    se_rho = np.sqrt(gradient @ cov @ gradient)
    r = rho(point)
    row = table.loc["Subject.Days.Intercept"]
    assert row["parameter"] == "correlation" and row["method"] == FISHER_Z
    assert row["estimate"] == pytest.approx(r, rel=1e-13)
    assert row["std_error"] == pytest.approx(se_rho, rel=1e-7)
    assert row["lower"] == pytest.approx(np.tanh(np.arctanh(r) - z * se_rho / (1 - r**2)), rel=1e-7)
    assert row["upper"] == pytest.approx(np.tanh(np.arctanh(r) + z * se_rho / (1 - r**2)), rel=1e-7)


def test_intervals_stay_in_the_parameter_space(slope):
    wide = slope.confint(0.999999, which="variances")
    variances = wide[wide["parameter"] == "variance"]
    # a plain Wald interval v -/+ z se would go below 0 at this level
    assert ((variances["estimate"] - 4.9 * variances["std_error"]) < 0).all()
    assert (variances["lower"] > 0).all() and (variances["upper"] > variances["estimate"]).all()
    corr = wide.loc["Subject.Days.Intercept"]
    assert -1 < corr["lower"] < corr["estimate"] < corr["upper"] < 1


def test_which(slope):
    fixed = slope.confint()
    assert list(fixed.columns) == ["lower", "upper"] and list(fixed.index) == list(slope.coef.index)
    pd.testing.assert_frame_equal(slope.confint(which="fixed"), fixed)
    both = slope.confint(which="all", df="groups")
    assert list(both.index) == [*slope.coef.index, *slope.confint(which="variances").index]
    coefficients = both.iloc[: len(slope.coef)]
    assert (coefficients["parameter"] == "coefficient").all()
    np.testing.assert_allclose(coefficients[["lower", "upper"]], slope.confint(df="groups"), rtol=1e-14)
    np.testing.assert_allclose(coefficients["std_error"], slope.SE, rtol=1e-14)
    assert coefficients["method"].iloc[0] == "Wald, robust SE (t reference)"
    with pytest.raises(ArgumentError, match="which"):
        slope.confint(which="random")
    with pytest.raises(ArgumentError, match="conf_level"):
        slope.confint(1.5, which="variances")


def test_a_variance_at_zero_gets_no_interval():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=10)
    y0 = rng.poisson(np.exp(0.5 + 0.5 * x0))
    data = pd.DataFrame({"y": np.tile(y0, 12), "x": np.tile(x0, 12), "g": np.repeat(np.arange(12), 10)})
    fit = wemix_nb.mix("y ~ x + (1|g)", data, family="poisson")
    assert 0 < fit.vars["g.Intercept"] < 1e-20  # numerically 0: the interval says nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = fit.confint(which="variances").loc["g.Intercept"]
    assert row["lower"] < 1e-20 and row["upper"] > 1e10
    variance = fit.variance
    at_zero = variance.with_estimates(np.zeros(1), variance.std_errors.to_numpy(), variance.cov)
    row = variance_intervals(at_zero).loc["g.Intercept"]
    assert row["estimate"] == 0 and np.isnan(row["lower"]) and np.isnan(row["upper"])


def test_plausible_value_results_have_intervals():
    data = wemix_nb.datasets.pisa2012_like()
    data["pv2math"] = data["pv1math"] + np.random.default_rng(1).normal(0, 20, len(data))
    fit = wemix_nb.mix("pv{1..2}math ~ escs + (1|schoolid)", data, weights=["w_fstuwt", "w_fschwt"])
    table = fit.confint(which="variances")
    assert table.loc["schoolid.Intercept", "std_error"] == fit.rubin_vars.loc["schoolid.Intercept", "SE"]
    assert (table["lower"] > 0).all()


# -------------------------------------------------------------------------------------------------
# coverage


def _simulate_linear(rng: np.random.Generator, n_groups: int = 120, size: int = 8) -> pd.DataFrame:
    """``y = 1 + 0.5 x + u0 + u1 x + e``: SDs 1 and 0.6, correlation 0.5, residual SD 1. School
    weights only (conditional row weights 1): unscaled row weights that vary within small groups
    bias pseudo-ML variance estimates (Pfeffermann et al. 1998), which no interval can repair."""
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    factor = np.array([[1.0, 0.0], [0.3, 0.6 * np.sqrt(0.75)]])
    u = rng.normal(size=(n_groups, 2)) @ factor.T
    y = 1 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=len(g))
    w2 = np.repeat(rng.uniform(0.5, 2.0, n_groups), size)
    return pd.DataFrame({"y": y, "x": x, "g": g, "w1": w2, "w2": w2})


LINEAR_TRUTH = {"g.Intercept": 1.0, "g.x": 0.36, "g.x.Intercept": 0.5, "Residual": 1.0}


def coverage(simulate, formula: str, truth: dict, replications: int, seed: int, **kwargs) -> pd.Series:
    """Share of ``replications`` simulated fits whose 95% interval holds the true value."""
    rng = np.random.default_rng(seed)
    hits = pd.Series(0.0, index=list(truth))
    for _ in range(replications):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = wemix_nb.mix(formula, simulate(rng), weights=["w1", "w2"], **kwargs)
        table = fit.confint(which="variances")
        for name, value in truth.items():
            hits[name] += table.loc[name, "lower"] <= value <= table.loc[name, "upper"]
    return hits / replications


@pytest.mark.parametrize(
    "replications", [120, pytest.param(1000, marks=pytest.mark.slow, id="1000-replications")]
)
def test_coverage_of_linear_variance_intervals(replications):
    share = coverage(_simulate_linear, "y ~ x + (1 + x|g)", LINEAR_TRUTH, replications, seed=2024)
    print(f"\ncoverage of 95% intervals, linear, 120 groups of 8, {replications} replications:")
    print(share.to_string())
    assert (share >= 0.90).all(), share


def _simulate_binomial(rng: np.random.Generator, n_groups: int = 150, size: int = 10) -> pd.DataFrame:
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    eta = -0.2 + 0.5 * x + rng.normal(0, np.sqrt(0.6), n_groups)[g]
    w2 = np.repeat(rng.uniform(0.5, 2.0, n_groups), size)
    return pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "g": g, "w1": w2, "w2": w2})


@pytest.mark.slow
def test_coverage_of_binomial_variance_intervals():
    share = coverage(
        _simulate_binomial, "y ~ x + (1|g)", {"g.Intercept": 0.6}, replications=300, seed=7, family="binomial"
    )
    print("\ncoverage of 95% intervals, binomial, 150 groups of 10, 300 replications:")
    print(share.to_string())
    assert (share >= 0.90).all(), share
