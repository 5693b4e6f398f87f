"""Population-level predictions (``include_random=False``) and their delta-method standard errors,
against hand computations: ``X beta``, ``sqrt(diag(X V X'))``, and the response scale by numerical
differentiation of the mean in beta."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import wemix_case
from scipy import stats
from scipy.special import expit

import wemix_nb
from wemix_nb.errors import ArgumentError, ColumnNotFoundError
from wemix_nb.results.predict import PREDICTION_COLUMNS


def _case_fit(name: str, family=None):
    data, expected = wemix_case(name)
    call = expected["call"]
    return wemix_nb.mix(call["formula"], data, weights=call["weights"], family=family), data


@pytest.fixture(scope="module")
def linear():
    return _case_fit("A2_sleepstudy_rslope")


@pytest.fixture(scope="module")
def binomial():
    return _case_fit("A4_sleepstudy_binomial", family="binomial")


def _X(data: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.ones(len(data)), data["Days"].to_numpy(float)])


def test_population_prediction_is_x_beta(linear):
    fit, data = linear
    hand = _X(data) @ fit.coef.to_numpy()
    np.testing.assert_allclose(fit.predict(data, include_random=False), hand, rtol=1e-13)
    # the fitting rows, in their labels
    fitted_rows = fit.predict(include_random=False)
    np.testing.assert_allclose(fitted_rows, hand, rtol=1e-13)
    assert list(fitted_rows.index) == list(fit.fitted.index)
    # new groups need no allow_new_levels, and no grouping column is needed at all
    new = data.iloc[:4].assign(Subject="never seen")
    np.testing.assert_allclose(fit.predict(new, include_random=False), hand[:4], rtol=1e-13)
    np.testing.assert_allclose(
        fit.predict(data[["Days"]].iloc[:4], include_random=False), hand[:4], rtol=1e-13
    )
    # the random part is what the conditional prediction adds
    conditional = fit.predict(data) - fit.predict(data, include_random=False)
    b = fit.ranef["Subject"].loc[data["Subject"].astype(str).to_numpy()].to_numpy()
    np.testing.assert_allclose(conditional, np.einsum("nq,nq->n", _X(data), b), rtol=1e-9, atol=1e-9)


def test_standard_errors_on_the_link_scale(linear):
    fit, data = linear
    new = data.iloc[[0, 5, 9]]
    out = fit.predict(new, include_random=False, se=True, conf_level=0.9)
    assert list(out.columns) == PREDICTION_COLUMNS and list(out.index) == list(new.index)
    X, V = _X(new), fit.cov_mat.to_numpy()
    se = np.sqrt(np.diag(X @ V @ X.T))
    eta = X @ fit.coef.to_numpy()
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(out["predicted"], eta, rtol=1e-13)
    np.testing.assert_allclose(out["std_error"], se, rtol=1e-12)
    np.testing.assert_allclose(out["conf_low"], eta - z * se, rtol=1e-12)
    np.testing.assert_allclose(out["conf_high"], eta + z * se, rtol=1e-12)
    # a linear model's response scale is its link scale
    pd.testing.assert_frame_equal(
        out, fit.predict(new, type="response", include_random=False, se=True, conf_level=0.9)
    )


def test_standard_errors_on_the_response_scale_by_the_delta_method(binomial):
    fit, data = binomial
    new = data.iloc[[0, 3, 7, 12]]
    out = fit.predict(new, type="response", include_random=False, se=True)
    X, V, beta = _X(new), fit.cov_mat.to_numpy(), fit.coef.to_numpy()
    mu = expit(X @ beta)
    np.testing.assert_allclose(out["predicted"], mu, rtol=1e-13)
    # gradient of mu in beta by central differences, independent of the family's mu_eta
    h = 1e-6
    grad = np.column_stack(
        [(expit(X @ (beta + h * e)) - expit(X @ (beta - h * e))) / (2 * h) for e in np.eye(2)]
    )
    np.testing.assert_allclose(out["std_error"], np.sqrt(np.einsum("ni,ij,nj->n", grad, V, grad)), rtol=1e-7)
    # the interval is the link interval transformed: inside (0, 1) and not symmetric around mu
    link = fit.predict(new, include_random=False, se=True)
    np.testing.assert_allclose(out["conf_low"], expit(link["conf_low"]), rtol=1e-13)
    np.testing.assert_allclose(out["conf_high"], expit(link["conf_high"]), rtol=1e-13)
    assert ((out["conf_low"] > 0) & (out["conf_low"] < out["predicted"]) & (out["conf_high"] < 1)).all()
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(link["std_error"], np.sqrt(np.diag(X @ V @ X.T)), rtol=1e-12)
    np.testing.assert_allclose(link["conf_high"] - link["predicted"], z * link["std_error"], rtol=1e-12)


def test_poisson_response_scale():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(40), 6)
    x = rng.normal(size=len(g))
    y = rng.poisson(np.exp(0.3 + 0.4 * x + rng.normal(0, 0.5, 40)[g]))
    data = pd.DataFrame({"y": y, "x": x, "g": g})
    fit = wemix_nb.mix("y ~ x + (1|g)", data, family="poisson")
    out = fit.predict(pd.DataFrame({"x": [-1.0, 0.0, 2.0]}), type="response", include_random=False, se=True)
    X = np.column_stack([np.ones(3), [-1.0, 0.0, 2.0]])
    eta = X @ fit.coef.to_numpy()
    se_eta = np.sqrt(np.diag(X @ fit.cov_mat.to_numpy() @ X.T))
    np.testing.assert_allclose(out["predicted"], np.exp(eta), rtol=1e-13)
    np.testing.assert_allclose(out["std_error"], np.exp(eta) * se_eta, rtol=1e-12)


def test_missing_covariates_give_nan_rows(binomial):
    fit, data = binomial
    new = data.iloc[:3].copy()
    new["Days"] = new["Days"].astype(float)
    new.loc[new.index[1], "Days"] = np.nan
    out = fit.predict(new, include_random=False, se=True)
    assert out.iloc[1].isna().all() and out.drop(index=new.index[1]).notna().all().all()


def test_prediction_arguments_are_checked(binomial):
    fit, data = binomial
    with pytest.raises(ArgumentError, match="include_random=False"):
        fit.predict(data, se=True)
    with pytest.raises(ArgumentError, match="conf_level"):
        fit.predict(data, include_random=False, se=True, conf_level=95)
    with pytest.raises(ColumnNotFoundError, match="Days"):
        fit.predict(data.drop(columns="Days"), include_random=False)


def test_group_centering_is_repeated_at_the_population_level():
    data = wemix_nb.datasets.pisa2012_like()
    fit = wemix_nb.mix(
        "pv1math ~ escs + (1|schoolid)",
        data,
        weights=["w_fstuwt", "w_fschwt"],
        center_group={"schoolid": "~ escs"},
    )
    population = fit.predict(data, include_random=False)
    np.testing.assert_allclose(population, fit.predict(include_random=False), rtol=1e-12)
    with pytest.raises(ColumnNotFoundError, match="schoolid"):
        fit.predict(data.drop(columns="schoolid"), include_random=False)
