"""Plausible values: Rubin's rules, the PVResult, and the pv{1..5} shorthand."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from reference import pisa_with_plausible_values

import wemix_nb
from wemix_nb.errors import ArgumentError, FormulaError
from wemix_nb.survey.pv import PVResult, combine_pv, expand_pv, pv_formulas

WEIGHTS = ["w_fstuwt", "w_fschwt"]
RHS = "escs + st04q01 + (1|schoolid)"


@pytest.fixture(scope="module")
def pisa_pv() -> pd.DataFrame:
    return pisa_with_plausible_values(5, seed=20240607)


@pytest.fixture(scope="module")
def pv_fit(pisa_pv) -> PVResult:
    return wemix_nb.mix(f"pv{{1..5}}math ~ {RHS}", pisa_pv, weights=WEIGHTS)


def test_expand():
    assert expand_pv("pv{1..5}math") == [f"pv{k}math" for k in range(1, 6)]
    assert expand_pv("pv{ 3 .. 1 }") == ["pv3", "pv2", "pv1"]
    names, formulas = pv_formulas("pv{1..2}math ~ x + (1|g)")
    assert names == ["pv1math", "pv2math"] and formulas[1] == "pv2math ~ x + (1|g)"
    names, formulas = pv_formulas("score ~ x + (1|g)", ["a", "b", "c"])
    assert formulas == ["a ~ x + (1|g)", "b ~ x + (1|g)", "c ~ x + (1|g)"]
    with pytest.raises(FormulaError):
        expand_pv("pv1math")
    with pytest.raises(ArgumentError):
        pv_formulas("pv{1..2} ~ x", ["pv1", "pv3"])
    with pytest.raises(ArgumentError):
        pv_formulas("y ~ x", ["pv1"])


def test_rubin_by_hand(pisa_pv):
    """Three fits combined by hand: mean, U + (1 + 1/M) B, Barnard-Rubin df, fmi."""
    names = ["pv1math", "pv2math", "pv3math"]
    fits = [wemix_nb.mix(f"{pv} ~ {RHS}", pisa_pv, weights=WEIGHTS) for pv in names]
    combined = wemix_nb.mix(f"y ~ {RHS}", pisa_pv, weights=WEIGHTS, pv=names)
    M = 3
    Q = np.array([f.coef.to_numpy() for f in fits])
    qbar = Q.mean(axis=0)
    U = sum(f.cov_mat.to_numpy() for f in fits) / M
    B = sum(np.outer(q - qbar, q - qbar) for q in Q) / (M - 1)
    T = U + (1 + 1 / M) * B
    np.testing.assert_allclose(combined.coef.to_numpy(), qbar, rtol=1e-12)
    np.testing.assert_allclose(combined.cov_mat.to_numpy(), T, rtol=1e-12)
    np.testing.assert_allclose(combined.SE.to_numpy(), np.sqrt(np.diag(T)), rtol=1e-12)
    nu_com = 150 - 3
    for j, name in enumerate(combined.coef.index):
        u, b, t = U[j, j], B[j, j], T[j, j]
        lam = (1 + 1 / M) * b / t
        r = (1 + 1 / M) * b / u
        nu_old = (M - 1) / lam**2
        nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
        nu = nu_old * nu_obs / (nu_old + nu_obs)
        row = combined.rubin.loc[name]
        assert row["within"] == pytest.approx(u, rel=1e-12)
        assert row["between"] == pytest.approx(b, rel=1e-12)
        assert row["total"] == pytest.approx(t, rel=1e-12)
        assert row["df"] == pytest.approx(nu, rel=1e-12)
        assert row["fmi"] == pytest.approx((r + 2 / (nu + 3)) / (r + 1), rel=1e-12)
        assert row["lambda"] == pytest.approx(lam, rel=1e-12)
    # variance components: means, SE by Rubin's rule on the variances
    vc = np.array([f.varDF["vcov"].to_numpy() for f in fits])
    se = np.array([f.varDF["SEvcov"].to_numpy() for f in fits])
    np.testing.assert_allclose(combined.varDF["vcov"], vc.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        combined.varDF["SEvcov"],
        np.sqrt((se**2).mean(axis=0) + (1 + 1 / M) * vc.var(axis=0, ddof=1)),
        rtol=1e-12,
    )
    np.testing.assert_allclose(combined.vars.to_numpy(), np.mean([f.vars.to_numpy() for f in fits], axis=0))
    assert combined.lnl == pytest.approx(np.mean([f.lnl for f in fits]), rel=1e-14)
    assert combined.sigma == pytest.approx(np.sqrt(combined.vars["Residual"]))
    assert combined.df_complete == nu_com
    # pooling the fits directly gives the same
    again = combine_pv(fits)
    pd.testing.assert_frame_equal(again.rubin, combined.rubin)


def test_pv_result_is_a_mix_result(pv_fit, pisa_pv):
    assert isinstance(pv_fit, wemix_nb.MixResult) and isinstance(pv_fit, PVResult)
    assert pv_fit.n_pv == 5 and pv_fit.pv == [f"pv{k}math" for k in range(1, 6)]
    assert all(isinstance(f, wemix_nb.MixResult) for f in pv_fit.fits)
    assert list(pv_fit.rubin.columns) == [
        "estimate",
        "SE",
        "within",
        "between",
        "total",
        "riv",
        "lambda",
        "df",
        "fmi",
    ]
    # imputation adds variance: total >= within, 0 < fmi < 1, df between 0 and nu_com
    assert (pv_fit.rubin["total"] >= pv_fit.rubin["within"]).all()
    assert ((pv_fit.fmi > 0) & (pv_fit.fmi < 1)).all()
    assert ((pv_fit.df > 1) & (pv_fit.df <= 147)).all()
    # the estimates are close to the pv1 fit (noise is small relative to the signal)
    assert np.allclose(pv_fit.coef, pv_fit.fits[0].coef, rtol=0.05)
    assert len(pv_fit.predict(pisa_pv.head())) == 5
    assert pv_fit.ranef["schoolid"].shape == pv_fit.fits[0].ranef["schoolid"].shape
    assert "PVResult" in repr(pv_fit)
    back = pickle.loads(pickle.dumps(pv_fit))
    pd.testing.assert_series_equal(back.coef, pv_fit.coef)
    assert len(back.fits) == 5


def test_reports_and_tests_use_the_combined_covariance(pv_fit):
    if not hasattr(wemix_nb, "wald_test") or not hasattr(pv_fit, "tidy"):
        pytest.skip("wald_test / summary / tidy are not available yet")
    W = wemix_nb.wald_test(pv_fit, coefs=["escs", "st04q01[T.Male]"])
    beta = pv_fit.coef[["escs", "st04q01[T.Male]"]].to_numpy()
    V = pv_fit.cov_mat.loc[["escs", "st04q01[T.Male]"], ["escs", "st04q01[T.Male]"]].to_numpy()
    assert W.statistic == pytest.approx(beta @ np.linalg.solve(V, beta), rel=1e-10)
    assert "Fixed Effects" in str(pv_fit.summary())
    tidy = pv_fit.tidy()
    np.testing.assert_allclose(tidy["std_error"].to_numpy(), pv_fit.SE.to_numpy())


def test_shorthand_equals_pv_list(pisa_pv, pv_fit):
    listed = wemix_nb.mix(
        f"pv1math ~ {RHS}", pisa_pv, weights=WEIGHTS, pv=[f"pv{k}math" for k in range(1, 6)]
    )
    pd.testing.assert_series_equal(listed.coef, pv_fit.coef)
    pd.testing.assert_frame_equal(listed.rubin, pv_fit.rubin)


def test_identical_pvs_have_no_between_variance(pisa_pv):
    data = pisa_pv.assign(copy1=pisa_pv["pv1math"], copy2=pisa_pv["pv1math"])
    fit = wemix_nb.mix(f"y ~ {RHS}", data, weights=WEIGHTS, pv=["copy1", "copy2"])
    single = wemix_nb.mix(f"pv1math ~ {RHS}", data, weights=WEIGHTS)
    np.testing.assert_allclose(fit.SE, single.SE, rtol=1e-12)
    assert (fit.rubin["between"] == 0).all()
    nu_com = 147
    np.testing.assert_allclose(fit.df, (nu_com + 1) / (nu_com + 3) * nu_com)
    np.testing.assert_allclose(fit.fmi, 2 / (fit.df + 3))


def test_combine_checks(pisa_pv):
    a = wemix_nb.mix(f"pv1math ~ {RHS}", pisa_pv, weights=WEIGHTS)
    b = wemix_nb.mix("pv2math ~ escs + (1|schoolid)", pisa_pv, weights=WEIGHTS)
    with pytest.raises(ArgumentError, match="at least 2"):
        combine_pv([a])
    with pytest.raises(ArgumentError, match=r"only fit 1 has \['st04q01\[T.Male\]'\]"):
        combine_pv([a, b])
    # the same fixed effects in another order
    c = wemix_nb.mix("pv2math ~ st04q01 + escs + (1|schoolid)", pisa_pv, weights=WEIGHTS)
    with pytest.raises(ArgumentError, match="another order"):
        combine_pv([a, c])
    # other variance components
    d = wemix_nb.mix(
        f"pv2math ~ {RHS.replace('(1|schoolid)', '(1 + escs|schoolid)')}", pisa_pv, weights=WEIGHTS
    )
    with pytest.raises(ArgumentError, match="variance components"):
        combine_pv([a, d])
    # another family, a combined result, something else
    binary = pisa_pv.assign(high=(pisa_pv["pv2math"] > pisa_pv["pv2math"].median()).astype(int))
    e = wemix_nb.mix(f"high ~ {RHS}", binary, weights=WEIGHTS, family="binomial")
    with pytest.raises(ArgumentError, match="binomial"):
        combine_pv([a, e])
    pooled = combine_pv([a, wemix_nb.mix(f"pv2math ~ {RHS}", pisa_pv, weights=WEIGHTS)])
    with pytest.raises(ArgumentError, match="already combined"):
        combine_pv([a, pooled])
    with pytest.raises(ArgumentError, match="Fit 2 is a dict"):
        combine_pv([a, {}])


def test_random_slope_var_theta(pisa_pv):
    fit = wemix_nb.mix("pv{1..3}math ~ escs + (1 + escs|schoolid)", pisa_pv, weights=WEIGHTS)
    within = np.mean([f.var_theta.to_numpy() for f in fit.fits], axis=0)
    # the between-PV part makes var_theta larger (positive semidefinite difference)
    assert np.linalg.eigvalsh(fit.var_theta.to_numpy() - within).min() > -1e-6
    assert list(fit.var_theta.index) == list(fit.fits[0].theta.index)


def test_a_row_missing_one_plausible_value_leaves_every_fit():
    data = wemix_nb.datasets.pisa2012_like()
    rng = np.random.default_rng(11)
    data["pv2math"] = data["pv1math"] + rng.normal(0, 20, len(data))
    data.loc[data.index[:3], "pv2math"] = np.nan
    with pytest.warns(wemix_nb.errors.DroppedRowsWarning, match="3 row"):
        fit = wemix_nb.mix("pv{1..2}math ~ escs + (1|schoolid)", data, weights=["w_fstuwt", "w_fschwt"])
    assert [f.nobs for f in fit.fits] == [len(data) - 3] * 2


def test_combined_theta_reproduces_the_combined_variances():
    data = wemix_nb.datasets.pisa2012_like()
    rng = np.random.default_rng(5)
    data["pv2math"] = data["pv1math"] + rng.normal(0, 30, len(data))
    fit = wemix_nb.mix("pv{1..2}math ~ escs + (1 + escs|schoolid)", data, weights=["w_fstuwt", "w_fschwt"])
    structure = fit.fits[0].extra["problem"].structure
    cov = structure.covariances(fit.theta.to_numpy(), fit.sigma**2)[0]
    np.testing.assert_allclose(np.diag(cov), fit.vars.iloc[:2].to_numpy(), rtol=1e-10)
