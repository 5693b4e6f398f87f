"""Binomial responses with trials (``cbind(successes, failures)``) and offsets, each checked
against an independent computation: the expanded 0/1 data, a known coefficient absorbing the
offset, statsmodels' GLM with an offset, and the regression of ``y - offset``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import gammaln

import wemix_nb
from wemix_nb.errors import ArgumentError, ColumnNotFoundError, DataError, FewGroupsWarning, FormulaError


def _data(seed: int = 1, n_groups: int = 30, size: int = 6, schools: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    u = rng.normal(0.0, 0.6, n_groups)[g] + rng.normal(0.0, 0.4, schools)[g % schools]
    n = rng.integers(0, 6, len(g))
    n[0] = 3  # the first row has trials (the zero-trial test removes rows without)
    exposure = rng.uniform(0.5, 4.0, len(g))
    return pd.DataFrame(
        {
            "k": rng.binomial(n, 1 / (1 + np.exp(-(0.2 + 0.6 * x + u)))).astype(float),
            "n": n.astype(float),
            "count": rng.poisson(exposure * np.exp(0.3 + 0.4 * x + u)).astype(float),
            "exposure": exposure,
            "x": x,
            "z": rng.normal(size=len(g)),
            "g": g,
            "s": g % schools,
            "w1": rng.uniform(2.0, 5.0, len(g)),  # survey weights, not integers
            "w2": np.repeat(rng.uniform(1.0, 2.0, n_groups), size),
            "w3": 1.0,
        }
    )


def _expanded(data: pd.DataFrame) -> pd.DataFrame:
    """One 0/1 row per trial, with its row's weights and covariates."""
    rows = data.loc[data.index.repeat(data["n"].astype(int))].copy()
    rows["yb"] = np.concatenate(
        [np.r_[np.ones(int(k)), np.zeros(int(n - k))] for k, n in zip(data["k"], data["n"], strict=True)]
    )
    return rows.reset_index(drop=True)


def _log_binomial_coefficients(data: pd.DataFrame) -> float:
    n, k = data["n"], data["k"]
    return float(np.sum(data["w1"] * (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))))


def _fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", FewGroupsWarning)  # about p-values: some test data have few groups
        return wemix_nb.mix(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# binomial with trials


@pytest.mark.parametrize(
    "levels,link,nquad",
    [(2, "logit", 13), (2, "probit", 7), (2, "logit", 1), (3, "logit", 5)],
)
def test_cbind_equals_the_expanded_binary_data(levels, link, nquad):
    """Trials are not weights: the same survey weights on a row of n trials and on its n 0/1
    rows give the same estimates, SEs and, up to the log binomial coefficients, lnl."""
    data = _data()
    bars, weights = ("(1|g)", ["w1", "w2"]) if levels == 2 else ("(1|s) + (1|g)", ["w1", "w2", "w3"])
    options = {"family": "binomial", "link": link, "nquad": nquad}
    trials = _fit(f"cbind(k, n - k) ~ x + {bars}", data, weights, **options)
    expanded = _fit(f"yb ~ x + {bars}", _expanded(data), weights, **options)
    assert trials.converged and expanded.converged
    np.testing.assert_allclose(trials.coef, expanded.coef, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(trials.vars, expanded.vars, rtol=1e-5)
    np.testing.assert_allclose(trials.SE, expanded.SE, rtol=1e-4)
    assert trials.lnl - _log_binomial_coefficients(data) == pytest.approx(expanded.lnl, rel=1e-9)
    assert trials.nobs == (data["n"] > -1).sum() and trials.fitted.between(0, 1).all()


def test_rows_without_trials_contribute_nothing():
    data = _data()
    with_empty = _fit("cbind(k, n - k) ~ x + (1|g)", data, ["w1", "w2"], family="binomial")
    without = _fit("cbind(k, n - k) ~ x + (1|g)", data[data["n"] > 0], ["w1", "w2"], family="binomial")
    assert (data["n"] == 0).any()
    assert with_empty.lnl == pytest.approx(without.lnl, rel=1e-12)
    np.testing.assert_allclose(with_empty.coef, without.coef, rtol=1e-8)


def test_cbind_residuals_use_the_trials_as_precision_weights():
    """R's residuals.glm for a binomial with trials, at the same fitted probabilities."""
    data = _data()
    fit = _fit("cbind(k, n - k) ~ x + (1|g)", data, ["w1", "w2"], family="binomial")
    n, p = data["n"].to_numpy(), fit.fitted.to_numpy()
    prop = np.where(n > 0, data["k"] / np.where(n > 0, n, 1), 0.0)
    np.testing.assert_allclose(fit.residuals("response"), prop - p, atol=1e-14)
    np.testing.assert_allclose(fit.residuals("pearson"), (prop - p) * np.sqrt(n / (p * (1 - p))), atol=1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = 2 * (
            np.where(prop > 0, prop * np.log(prop / p), 0)
            + np.where(prop < 1, (1 - prop) * np.log((1 - prop) / (1 - p)), 0)
        )
    np.testing.assert_allclose(fit.residuals("deviance"), np.sign(prop - p) * np.sqrt(n * unit), atol=1e-10)


def test_cbind_bad_inputs():
    data = _data()
    with pytest.raises(FormulaError, match="family='binomial'"):
        wemix_nb.mix("cbind(k, n - k) ~ x + (1|g)", data, family="poisson")
    with pytest.raises(FormulaError, match="family='binomial'"):
        wemix_nb.mix("cbind(k, n - k) ~ x + (1|g)", data)
    with pytest.raises(FormulaError, match="two expressions"):
        wemix_nb.mix("cbind(k) ~ x + (1|g)", data, family="binomial")
    with pytest.raises(DataError, match="whole numbers.*row 4"):
        wemix_nb.mix(
            "cbind(k, n - k) ~ x + (1|g)",
            data.assign(k=np.where(data.index == 4, -1.0, data.k)),
            family="binomial",
        )
    with pytest.raises(DataError, match="whole numbers"):
        wemix_nb.mix("cbind(k, n - k) ~ x + (1|g)", data.assign(k=data.k + 0.5), family="binomial")
    with pytest.raises(DataError, match="no success"):
        wemix_nb.mix("cbind(k, n - k) ~ x + (1|g)", data.assign(k=0.0), family="binomial")


# ---------------------------------------------------------------------------------------------
# offsets


@pytest.mark.parametrize("family", ["poisson", "binomial"])
def test_offset_absorbed_into_a_known_coefficient(family):
    """offset(0.7 z) with z also a covariate: z's coefficient drops by exactly 0.7, nothing else
    changes (the same likelihood)."""
    data = _data()
    lhs = "count" if family == "poisson" else "cbind(k, n - k)"
    plain = _fit(f"{lhs} ~ x + z + (1|g)", data, ["w1", "w2"], family=family)
    offset = _fit(f"{lhs} ~ x + z + offset(0.7 * z) + (1|g)", data, ["w1", "w2"], family=family)
    assert offset.coef["z"] == pytest.approx(plain.coef["z"] - 0.7, abs=1e-7)
    np.testing.assert_allclose(offset.coef[["Intercept", "x"]], plain.coef[["Intercept", "x"]], rtol=1e-6)
    np.testing.assert_allclose(offset.vars, plain.vars, rtol=1e-5)
    assert offset.lnl == pytest.approx(plain.lnl, rel=1e-10)
    np.testing.assert_allclose(offset.SE, plain.SE, rtol=1e-4)
    np.testing.assert_allclose(offset.fitted, plain.fitted, rtol=1e-6)


def test_poisson_rate_equals_statsmodels_glm_with_offset_when_groups_are_identical():
    """Every group a copy of the others: the variance is estimated at 0 and the GLMM is the GLM;
    statsmodels' GLM with the same offset gives the coefficients."""
    rng = np.random.default_rng(4)
    x0, e0 = rng.normal(size=12), rng.uniform(0.5, 5.0, 12)
    y0 = rng.poisson(e0 * np.exp(0.2 + 0.5 * x0)).astype(float)
    data = pd.DataFrame(
        {"y": np.tile(y0, 15), "x": np.tile(x0, 15), "e": np.tile(e0, 15), "g": np.repeat(np.arange(15), 12)}
    )
    fit = wemix_nb.mix("y ~ x + offset(np.log(e)) + (1|g)", data, family="poisson")
    glm = sm.GLM(
        data["y"], sm.add_constant(data["x"]), family=sm.families.Poisson(), offset=np.log(data["e"])
    ).fit()
    assert fit.vars.iloc[0] < 1e-12
    np.testing.assert_allclose(fit.coef.to_numpy(), glm.params.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(fit.fitted.to_numpy(), glm.fittedvalues.to_numpy(), rtol=1e-8)


def test_formula_offset_argument_column_and_values_agree():
    data = _data().assign(log_e=lambda d: np.log(d["exposure"]))
    fits = [
        _fit("count ~ x + offset(np.log(exposure)) + (1|g)", data, ["w1", "w2"], family="poisson"),
        _fit("count ~ x + offset(log(exposure)) + (1|g)", data, ["w1", "w2"], family="poisson"),
        _fit("count ~ x + (1|g)", data, ["w1", "w2"], family="poisson", offset="log_e"),
        _fit("count ~ x + (1|g)", data, ["w1", "w2"], family="poisson", offset=data["log_e"].to_numpy()),
        _fit("count ~ x + (1|g)", data, ["w1", "w2"], family="poisson", offset=data["log_e"].iloc[::-1]),
        _fit(
            "count ~ x + offset(0.5 * log_e) + (1|g)",
            data,
            ["w1", "w2"],
            family="poisson",
            offset=0.5 * data["log_e"],
        ),
    ]
    for other in fits[1:]:
        assert other.lnl == pytest.approx(fits[0].lnl, rel=1e-12)
        np.testing.assert_allclose(other.coef, fits[0].coef, rtol=1e-9)
    loglik = wemix_nb.likelihood("count ~ x + (1|g)", data, ["w1", "w2"], family="poisson", offset="log_e")
    assert loglik(loglik.params_of(fits[2])) == pytest.approx(fits[2].lnl, rel=1e-12)


def test_three_level_poisson_offset():
    data = _data()
    plain = _fit("count ~ x + z + (1|s) + (1|g)", data, ["w1", "w2", "w3"], family="poisson", nquad=3)
    offset = _fit(
        "count ~ x + z + offset(-0.4 * z) + (1|s) + (1|g)",
        data,
        ["w1", "w2", "w3"],
        family="poisson",
        nquad=3,
    )
    assert offset.coef["z"] == pytest.approx(plain.coef["z"] + 0.4, abs=1e-5)
    assert offset.lnl == pytest.approx(plain.lnl, rel=1e-9)


def test_linear_model_with_an_offset_regresses_y_less_offset():
    data = _data().assign(
        y=lambda d: 1.0 + 0.5 * d["x"] + 2.0 * d["z"] + d["g"] % 3 + np.sin(np.arange(len(d)))
    )
    offset = _fit("y ~ x + offset(2 * z) + (1|g)", data, ["w1", "w2"])
    less = _fit("y2 ~ x + (1|g)", data.assign(y2=data["y"] - 2 * data["z"]), ["w1", "w2"])
    np.testing.assert_allclose(offset.coef, less.coef, rtol=1e-10)
    np.testing.assert_allclose(offset.vars, less.vars, rtol=1e-8)
    assert offset.lnl == pytest.approx(less.lnl, rel=1e-12)
    np.testing.assert_allclose(offset.fitted, less.fitted + 2 * data["z"], rtol=1e-10)
    np.testing.assert_allclose(offset.resid, less.resid, atol=1e-10)
    # absorbed into z's coefficient
    plain = _fit("y ~ x + z + (1|g)", data, ["w1", "w2"])
    shifted = _fit("y ~ x + z + offset(2 * z) + (1|g)", data, ["w1", "w2"])
    assert shifted.coef["z"] == pytest.approx(plain.coef["z"] - 2.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# predictions with offsets


def test_predict_rebuilds_the_offset_from_newdata():
    data = _data()
    fit = _fit("count ~ x + offset(np.log(exposure)) + (1|g)", data, ["w1", "w2"], family="poisson")
    np.testing.assert_allclose(fit.predict(data), fit.predict(), rtol=1e-10)
    np.testing.assert_allclose(fit.predict(data, type="response"), fit.fitted, rtol=1e-10)
    population = fit.predict(data, include_random=False)
    np.testing.assert_allclose(population, fit.predict(include_random=False), rtol=1e-12)
    expected = fit.coef["Intercept"] + fit.coef["x"] * data["x"] + np.log(data["exposure"])
    np.testing.assert_allclose(population, expected, rtol=1e-12)
    doubled = fit.predict(data.assign(exposure=2 * data["exposure"]), type="response")
    np.testing.assert_allclose(doubled, 2 * fit.fitted, rtol=1e-10)  # a rate times the exposure
    table = fit.predict(data, include_random=False, se=True)
    without = fit.predict(data.assign(exposure=1.0), include_random=False, se=True)
    np.testing.assert_allclose(table["std_error"], without["std_error"], rtol=1e-12)
    with pytest.raises(ColumnNotFoundError, match="'exposure'"):
        fit.predict(data.drop(columns="exposure"))


def test_predict_with_an_offset_argument():
    data = _data().assign(log_e=lambda d: np.log(d["exposure"]))
    by_column = _fit("count ~ x + (1|g)", data, ["w1", "w2"], family="poisson", offset="log_e")
    np.testing.assert_allclose(by_column.predict(data), by_column.predict(), rtol=1e-10)
    by_values = _fit(
        "count ~ x + (1|g)", data, ["w1", "w2"], family="poisson", offset=data["log_e"].to_numpy()
    )
    with pytest.raises(ArgumentError, match="offset"):
        by_values.predict(data)
    np.testing.assert_allclose(
        by_values.predict(data, offset=data["log_e"].to_numpy()), by_values.predict(), rtol=1e-10
    )
    np.testing.assert_allclose(by_values.predict(data, offset="log_e"), by_values.predict(), rtol=1e-10)
    gap = data.assign(x=np.where(np.arange(len(data)) == 2, np.nan, data["x"]))  # row 2: no prediction
    with_gap = by_values.predict(gap, offset=data["log_e"].to_numpy())
    assert np.isnan(with_gap.iloc[2])
    np.testing.assert_allclose(with_gap.drop(index=2), by_values.predict().drop(index=2), rtol=1e-10)
    with pytest.raises(ArgumentError, match="newdata"):
        by_values.predict(offset="log_e")


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_offset_argument_errors():
    data = _data()
    with pytest.raises(ArgumentError, match="one value per row"):
        wemix_nb.mix("count ~ x + (1|g)", data, family="poisson", offset=np.zeros(3))
    with pytest.raises(ArgumentError, match="scalar"):
        wemix_nb.mix("count ~ x + (1|g)", data, family="poisson", offset=1.0)
    with pytest.raises(ColumnNotFoundError, match="'nope'"):
        wemix_nb.mix("count ~ x + (1|g)", data, family="poisson", offset="nope")
    with pytest.raises(DataError, match="offset"):
        wemix_nb.mix("count ~ x + offset(np.log(x)) + (1|g)", data, family="poisson")


def test_mix_dask_with_a_formula_offset():
    dd = pytest.importorskip("dask.dataframe")
    data = _data().assign(y=lambda d: d["x"] + 2 * d["z"] + np.cos(np.arange(len(d))) + d["g"] % 4)
    reference = _fit("y ~ x + offset(2 * z) + (1|g)", data, ["w1", "w2"])
    ddf = dd.from_pandas(data.set_index("g", drop=False), npartitions=3)
    fit = wemix_nb.mix_dask(
        "y ~ x + offset(2 * z) + (1|g)", ddf, ["w1", "w2"], compute_kwargs={"scheduler": "sync"}
    )
    np.testing.assert_allclose(fit.coef, reference.coef, rtol=1e-9)
    assert fit.lnl == pytest.approx(reference.lnl, rel=1e-10)
