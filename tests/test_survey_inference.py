"""Survey inference in ``mix()``: replicate-weight variances, plausible values x replicates, the
design-based (linearization) sandwich, and level-1-only weights.

* every replicate fit equals a plain ``mix()`` with that replicate's weights (linear: two and three
  levels, random slopes, derived and explicit per-level replicates, zero weights, scaled and
  conditional weights; binomial GLMM);
* the replicate variances of every estimate against a hand computation of
  ``sum_r c_r (theta_r - theta)^2`` (Fay, ``mse=False``, ``replicate_scale``), and the Wald tests;
* plausible values x replicates against a hand combination by Rubin's rules (``"all"``, ``"first"``);
* the stratified, PSU-clustered, fpc-corrected meat against a hand computation, and the sandwich
  without strata equal to the default one;
* ``weights=["w"]`` equal to explicit unit weights at the higher levels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _html_tables import parse_tables
from scipy import stats

import wemix_nb
from wemix_nb.estimation.meat import score_meat
from wemix_nb.model.sampling import SamplingDesign

W = ["w_fstuwt", "w_fschwt"]
F1 = "PV1MATH ~ escs + st04q01 + (1|schoolid)"
FAY = {"replicate_weights": "W_FSTR{1..80}", "replicate_method": "fay"}


@pytest.fixture(scope="module")
def pisa() -> pd.DataFrame:
    return wemix_nb.datasets.pisa2012_like(design=True)


@pytest.fixture(scope="module")
def fay_fit(pisa):
    return wemix_nb.mix(F1, pisa, weights=W, progress=False, **FAY)


def replicate_data(data: pd.DataFrame, replicate: str, weights: list[str]) -> pd.DataFrame:
    """The data with the weights of one replicate derived as mix() derives them: the level-1
    replicate column, and each higher level's weight times the rows' factor."""
    factor = data[replicate] / data[weights[0]]
    return data.assign(**{f"{w}_r": data[w] * factor for w in weights[1:]})


def plain_fit(data, formula, replicate, weights, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wemix_nb.errors.DroppedRowsWarning)
        return wemix_nb.mix(
            formula,
            replicate_data(data, replicate, weights),
            weights=[replicate] + [f"{w}_r" for w in weights[1:]],
            **kwargs,
        )


def assert_replicate_equals(result, r: int, plain, rtol: float) -> None:
    """Replicate ``r`` of ``result`` against a plain fit: fixed effects, (co)variances, residual, ICC."""
    row = result.replicate_estimates.loc[r]
    np.testing.assert_allclose(row[list(plain.coef.index)], plain.coef, rtol=rtol)
    scale = plain.variance.estimates.abs().max()
    np.testing.assert_allclose(
        row[plain.variance.names], plain.variance.estimates, rtol=rtol, atol=rtol * scale
    )
    if plain.family is None:
        assert row["Residual"] == pytest.approx(plain.variance.residual, rel=rtol)
    if plain.ICC is not None:
        assert row["ICC"] == pytest.approx(plain.ICC, rel=rtol)


def assert_at_least_as_converged(result, r: int, plain) -> None:
    """Replicate ``r``'s estimate is an optimum of the plain fit's likelihood at least as tight as
    the plain fit's own (which stops at a gradient below 1e-8 of the deviance)."""
    row = result.replicate_estimates.loc[r]
    problem = plain.details.problem
    covariances = plain.variance.covariances_of(np.zeros(plain.variance.size))
    for level, cov in zip(plain.variance.levels, covariances, strict=True):
        for (a, c), name in zip(level.free, [p.name for p in level.parameters()], strict=True):
            cov[a, c] = cov[c, a] = row[name]
    theta = problem.structure.theta_from_covariances([c / row["Residual"] for c in covariances])
    ours = problem.deviance(theta, gradient=True)
    theirs = problem.deviance(plain.details.solution.theta, gradient=True)
    assert ours[0] <= theirs[0] + 1e-12 * abs(theirs[0])
    assert np.max(np.abs(ours[1])) <= max(np.max(np.abs(theirs[1])), 1e-9 * abs(theirs[0]))


# -------------------------------------------------------------------------------------------------
# each replicate fit is a plain fit with the replicate's weights


@pytest.mark.parametrize("r", [1, 37, 80])
def test_each_fay_replicate_equals_a_plain_fit(pisa, fay_fit, r):
    plain = plain_fit(pisa, F1, f"W_FSTR{r}", W)
    assert_replicate_equals(fay_fit, r, plain, rtol=1e-8)


def test_full_sample_estimates_are_the_plain_fit(pisa, fay_fit):
    plain = wemix_nb.mix(F1, pisa, weights=W)
    pd.testing.assert_series_equal(fay_fit.coef, plain.coef)
    pd.testing.assert_series_equal(fay_fit.sandwich_SE, plain.SE)
    assert fay_fit.lnl == plain.lnl
    assert fay_fit.full_sample.SE.equals(plain.SE)
    assert fay_fit.replicate_converged.all() and fay_fit.n_replicates == 80


def test_random_slope_replicates_equal_plain_fits(pisa):
    formula = "PV1MATH ~ escs + (1 + escs|schoolid)"
    fit = wemix_nb.mix(formula, pisa, weights=W, replicate_weights="W_FSTR{1..6}", replicate_method="brr")
    for r in (2, 5):
        # the plain fits stop at a relative gradient of 3e-10 here, 1e-6 apart from the optimum
        plain = plain_fit(pisa, formula, f"W_FSTR{r}", W)
        assert_replicate_equals(fit, r, plain, rtol=1e-6)
        assert_at_least_as_converged(fit, r, plain)


def sleep_three_levels() -> pd.DataFrame:
    """sleepstudy with a level-3 grouping G (three subjects each), informative weights, and BRR-like
    factors constant within G (R1..R6) and others varying within G but constant within subjects
    (S1..S6)."""
    d = wemix_nb.datasets.sleepstudy()
    code = d["Subject"].cat.codes.to_numpy()
    rng = np.random.default_rng(3)
    d = d.assign(G=code // 3, W3=rng.uniform(1, 3, 6)[code // 3])
    d["W2"] = d["W3"] * rng.uniform(1, 2, 18)[code]
    d["W1"] = d["W2"] * rng.uniform(1, 2, len(d))
    for r in range(1, 7):
        d[f"R{r}"] = d["W1"] * rng.choice([0.5, 1.5], 6)[code // 3]
        d[f"S{r}"] = d["W1"] * rng.choice([0.5, 1.5], 18)[code]
    return d


def test_three_level_replicates_equal_plain_fits():
    d = sleep_three_levels()
    formula = "Reaction ~ Days + (1|Subject) + (1|G)"
    weights = ["W1", "W2", "W3"]
    fit = wemix_nb.mix(formula, d, weights=weights, replicate_weights="R{1..6}", replicate_method="brr")
    for r in (1, 4):
        assert_replicate_equals(fit, r, plain_fit(d, formula, f"R{r}", weights), rtol=1e-7)


def test_explicit_per_level_replicates_equal_plain_fits():
    """Factors that vary within the level-3 groups: the level-3 replicate columns are given."""
    d = sleep_three_levels()
    formula = "Reaction ~ Days + (1|Subject) + (1|G)"
    weights = ["W1", "W2", "W3"]
    with pytest.raises(wemix_nb.errors.WeightError, match="varies within group"):
        wemix_nb.mix(formula, d, weights=weights, replicate_weights="S{1..6}", replicate_method="brr")
    for r in range(1, 7):  # explicit level-3 replicate weights (unconditional), constant within G
        d[f"T{r}"] = d["W3"] * (1 + 0.1 * r)
    fit = wemix_nb.mix(
        formula, d, weights=weights, replicate_weights={1: "S{1..6}", 3: "T{1..6}"}, replicate_method="brr"
    )
    for r in (2, 6):
        factor = d[f"S{r}"] / d["W1"]
        data = d.assign(w2=d["W2"] * factor)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wemix_nb.errors.WeightWarning)
            plain = wemix_nb.mix(formula, data, weights=[f"S{r}", "w2", f"T{r}"])
        assert_replicate_equals(fit, r, plain, rtol=1e-7)


def test_jackknife_zero_weights_equal_plain_fits_without_those_rows():
    """JK1 deletes one district per replicate: its rows and group get weight 0 and drop out. The
    plain fit stops at a gradient below 1e-8 of the deviance (the replicate fits go further), which
    bounds the agreement."""
    api = wemix_nb.datasets.apiclus2()
    formula = "api00 ~ ell + mobility + api99 + (1|dnum)"
    jk = wemix_nb.replicate_weights(api, "w1", "jk1", psu="dnum")
    fit = wemix_nb.mix(formula, api, weights=["w1", "w2"], replicate_weights=jk)
    data = api.join(jk.weights)
    for r in (1, 25):
        assert_replicate_equals(fit, r, plain_fit(data, formula, f"repw{r}", ["w1", "w2"]), rtol=1e-6)


@pytest.mark.parametrize("how", ["cluster", "cweights"])
def test_replicates_of_scaled_and_conditional_weights(pisa, how):
    """Replicate columns are unconditional; with scale_weights the replicate weights are scaled
    as the full sample's; with cweights=True the fit's own columns are conditional."""
    data = pisa.assign(w_cond=pisa["w_fstuwt"] / pisa["w_fschwt"])
    options = {"scale_weights": "cluster"} if how == "cluster" else {"cweights": True}
    weights = W if how == "cluster" else ["w_cond", "w_fschwt"]
    fit = wemix_nb.mix(
        F1, data, weights=weights, replicate_weights="W_FSTR{1..4}", replicate_method="brr", **options
    )
    r = 3
    factor = data[f"W_FSTR{r}"] / data["w_fstuwt"]
    data = data.assign(w2=data["w_fschwt"] * factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wemix_nb.errors.WeightWarning)
        plain = wemix_nb.mix(
            F1, data, weights=[f"W_FSTR{r}", "w2"], scale_weights=options.get("scale_weights", "none")
        )
    assert_replicate_equals(fit, r, plain, rtol=1e-8)


def test_glmm_replicates_equal_plain_fits(pisa):
    data = pisa.assign(high=(pisa["PV1MATH"] > 500).astype(int))
    formula = "high ~ escs + st04q01 + (1|schoolid)"
    fit = wemix_nb.mix(
        formula, data, weights=W, family="binomial", replicate_weights="W_FSTR{1..4}", replicate_method="brr"
    )
    assert fit.replicate_converged.all()
    for r in (1, 4):
        assert_replicate_equals(
            fit, r, plain_fit(data, formula, f"W_FSTR{r}", W, family="binomial"), rtol=1e-7
        )


# -------------------------------------------------------------------------------------------------
# the variance formulas


def hand_covariance(result, c: float | np.ndarray, mse: bool = True) -> np.ndarray:
    est = result.replicate_estimates.to_numpy()
    full = result.replicate_covariance.index
    center = np.r_[
        result.coef.to_numpy(), result.variance.estimates.to_numpy(), result.variance.residual, result.ICC
    ]
    assert list(full) == [*result.coef.index, *result.variance.names, "Residual", "ICC"]
    dev = est - (center if mse else est.mean(axis=0))
    return (dev * np.broadcast_to(c, (len(est),))[:, None]).T @ dev


def test_fay_variance_by_hand(fay_fit):
    V = hand_covariance(fay_fit, 1 / (80 * 0.5**2))
    p, k = len(fay_fit.coef), fay_fit.variance.size
    np.testing.assert_allclose(fay_fit.cov_mat.to_numpy(), V[:p, :p], rtol=1e-12)
    np.testing.assert_allclose(fay_fit.SE.to_numpy(), np.sqrt(np.diag(V)[:p]), rtol=1e-12)
    np.testing.assert_allclose(fay_fit.var_theta.to_numpy(), V[p : p + k, p : p + k], rtol=1e-12)
    se = dict(zip(fay_fit.varDF["fullGroup"], fay_fit.varDF["SEvcov"], strict=True))
    assert se["schoolid.Intercept"] == pytest.approx(np.sqrt(V[p, p]), rel=1e-12)
    assert se["Residual"] == pytest.approx(np.sqrt(V[p + k, p + k]), rel=1e-12)
    assert fay_fit.ICC_SE == pytest.approx(np.sqrt(V[-1, -1]), rel=1e-12)
    # the replicate SEs are not the sandwich's, but of its size
    assert not np.allclose(fay_fit.SE, fay_fit.sandwich_SE, rtol=1e-3)
    np.testing.assert_allclose(fay_fit.SE, fay_fit.sandwich_SE, rtol=0.5)


def test_mse_false_and_replicate_scale_by_hand(pisa, fay_fit):
    centred = wemix_nb.mix(F1, pisa, weights=W, mse=False, **FAY)
    V = hand_covariance(fay_fit, 1 / 20, mse=False)
    np.testing.assert_allclose(centred.cov_mat.to_numpy(), V[:3, :3], rtol=1e-10)
    scaled = wemix_nb.mix(F1, pisa, weights=W, replicate_scale=0.01, **FAY)
    np.testing.assert_allclose(scaled.SE**2, fay_fit.SE**2 * 0.01 / 0.05, rtol=1e-10)
    c = np.linspace(0.01, 0.09, 80)
    per_replicate = wemix_nb.mix(F1, pisa, weights=W, replicate_scale=c, **FAY)
    V = hand_covariance(fay_fit, c)
    np.testing.assert_allclose(per_replicate.cov_mat.to_numpy(), V[:3, :3], rtol=1e-10)
    assert "given multipliers" in wemix_nb.results.report.se_method(per_replicate)


def test_other_methods_use_their_multipliers(pisa, fay_fit):
    """The same columns read as JK1 give (R - 1)/R instead of 1/(R (1 - k)^2) (a check of the
    multipliers, not a meaningful design)."""
    jk = wemix_nb.mix(F1, pisa, weights=W, replicate_weights="W_FSTR{1..80}", replicate_method="jk1")
    np.testing.assert_allclose(jk.SE**2, fay_fit.SE**2 * (79 / 80) / (1 / 20), rtol=1e-10)


def test_replicate_weights_object_equals_its_columns(pisa):
    jkn = wemix_nb.replicate_weights(pisa, "w_fstuwt", "jkn", strata="VARSTRAT", psu="VARUNIT", nest=True)
    fit = wemix_nb.mix(F1, pisa, weights=W, replicate_weights=jkn)
    by_columns = wemix_nb.mix(
        F1,
        pisa.join(jkn.weights),
        weights=W,
        replicate_weights=jkn.columns,
        replicate_method="jkn",
        replicate_scale=jkn.multipliers,
    )
    pd.testing.assert_series_equal(fit.SE, by_columns.SE)
    assert "stratified jackknife (JKn)" in wemix_nb.results.report.se_method(fit)


def test_wald_tests_use_the_replicate_covariance(fay_fit):
    test = wemix_nb.wald_test(fay_fit, coefs=["escs", "st04q01[T.Male]"])
    b = fay_fit.coef[["escs", "st04q01[T.Male]"]].to_numpy()
    V = fay_fit.replicate_covariance.loc[["escs", "st04q01[T.Male]"], ["escs", "st04q01[T.Male]"]]
    assert test.statistic == pytest.approx(b @ np.linalg.solve(V.to_numpy(), b), rel=1e-10)
    lam = fay_fit.wald_test(type="Lambda")
    var = fay_fit.variance.estimates.iloc[0]
    assert lam.statistic == pytest.approx(var**2 / fay_fit.replicate_covariance.iloc[3, 3], rel=1e-10)


def test_reports_say_which_method(fay_fit):
    text = str(fay_fit.summary())
    assert "Replicate-weight standard errors: Fay's BRR replicates (R = 80, k = 0.5)." in text
    assert "replicate_weights=['W_FSTR1', ..., 'W_FSTR80'], replicate_method='fay'" in text
    assert f"(SE {wemix_nb.results.report.format_number(fay_fit.ICC_SE, 4)})" in text
    assert fay_fit.tidy().attrs["se_method"].startswith("Replicate-weight standard errors: Fay's BRR")
    fixed = parse_tables(fay_fit._repr_html_())[0]
    assert "Replicate SE" in fixed.header
    assert any("Fay's BRR replicates (R = 80, k = 0.5)" in note for note in fixed.notes)
    tidy = fay_fit.replicates
    assert list(tidy.columns) == ["replicate", "term", "kind", "estimate"]
    assert set(tidy["kind"]) == {"fixed", "variance", "residual", "ICC"} and len(tidy) == 80 * 6


# -------------------------------------------------------------------------------------------------
# plausible values x replicates


@pytest.fixture(scope="module")
def pv_rep_fit(pisa):
    return wemix_nb.mix(
        "PV{1..5}MATH ~ escs + st04q01 + (1|schoolid)", pisa, weights=W, progress=False, **FAY
    )


def test_pv_times_replicates_by_hand(pisa, pv_rep_fit):
    per_pv = [
        wemix_nb.mix(f"PV{m}MATH ~ escs + st04q01 + (1|schoolid)", pisa, weights=W, **FAY)
        for m in range(1, 6)
    ]
    M = 5
    Q = np.array([fit.coef.to_numpy() for fit in per_pv])
    U = np.mean([fit.cov_mat.to_numpy() for fit in per_pv], axis=0)
    B = np.cov(Q, rowvar=False, ddof=1)
    T = U + (1 + 1 / M) * B
    np.testing.assert_allclose(pv_rep_fit.coef, Q.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(pv_rep_fit.cov_mat.to_numpy(), T, rtol=1e-7)
    # Barnard-Rubin degrees of freedom and the fraction of missing information
    lam = (1 + 1 / M) * np.diag(B) / np.diag(T)
    nu_com = 150 - 3
    nu_old = (M - 1) / lam**2
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
    nu = 1 / (1 / nu_old + 1 / nu_obs)
    riv = (1 + 1 / M) * np.diag(B) / np.diag(U)
    np.testing.assert_allclose(pv_rep_fit.rubin["df"], nu, rtol=1e-6)
    np.testing.assert_allclose(pv_rep_fit.fmi, (riv + 2 / (nu + 3)) / (riv + 1), rtol=1e-6)
    # variance components and the ICC by the same rule
    iccs = np.array([fit.ICC for fit in per_pv])
    icc_se = np.sqrt(np.mean([fit.ICC_SE**2 for fit in per_pv]) + (1 + 1 / M) * iccs.var(ddof=1))
    assert pv_rep_fit.ICC_SE == pytest.approx(icc_se, rel=1e-7)
    v = np.array([fit.variance.estimates.iloc[0] for fit in per_pv])
    se = np.sqrt(
        np.mean([fit.variance.std_errors.iloc[0] ** 2 for fit in per_pv]) + (1 + 1 / M) * v.var(ddof=1)
    )
    assert pv_rep_fit.variance.std_errors.iloc[0] == pytest.approx(se, rel=1e-7)
    assert list(pv_rep_fit.replicates.columns) == ["pv", "replicate", "term", "kind", "estimate"]
    assert len(pv_rep_fit.replicates) == 5 * 80 * 6
    assert "5 plausible values by Rubin's rules (sampling variance: mean over them)" in str(
        pv_rep_fit.summary()
    )


def test_pv_sampling_first(pisa, pv_rep_fit):
    first = wemix_nb.mix(
        "PV{1..5}MATH ~ escs + st04q01 + (1|schoolid)", pisa, weights=W, pv_sampling="first", **FAY
    )
    pv1 = pv_rep_fit.fits[0]
    Q = np.array([fit.coef.to_numpy() for fit in pv_rep_fit.fits])
    T = pv1.cov_mat.to_numpy() + 1.2 * np.cov(Q, rowvar=False, ddof=1)
    np.testing.assert_allclose(first.cov_mat.to_numpy(), T, rtol=1e-7)
    assert "sampling variance: first plausible value" in first.tidy().attrs["se_method"]


def test_pv_glmm_with_replicates(pisa):
    data = pisa.assign(**{f"H{m}": (pisa[f"PV{m}MATH"] > 500).astype(int) for m in range(1, 4)})
    fit = wemix_nb.mix(
        "H{1..3} ~ escs + (1|schoolid)",
        data,
        weights=W,
        family="binomial",
        replicate_weights="W_FSTR{1..4}",
        replicate_method="brr",
    )
    per_pv = [
        wemix_nb.mix(
            f"H{m} ~ escs + (1|schoolid)",
            data,
            weights=W,
            family="binomial",
            replicate_weights="W_FSTR{1..4}",
            replicate_method="brr",
        )
        for m in range(1, 4)
    ]
    U = np.mean([f.cov_mat.to_numpy() for f in per_pv], axis=0)
    Q = np.array([f.coef.to_numpy() for f in per_pv])
    np.testing.assert_allclose(fit.cov_mat.to_numpy(), U + (4 / 3) * np.cov(Q, rowvar=False), rtol=1e-6)


def test_replicate_fits_on_two_processes_are_identical(pisa):
    kwargs = {"weights": W, "replicate_weights": "W_FSTR{1..8}", "replicate_method": "brr"}
    one = wemix_nb.mix("PV{1..2}MATH ~ escs + (1|schoolid)", pisa, **kwargs)
    two = wemix_nb.mix("PV{1..2}MATH ~ escs + (1|schoolid)", pisa, n_jobs=2, progress=False, **kwargs)
    pd.testing.assert_frame_equal(one.cov_mat, two.cov_mat)
    pd.testing.assert_frame_equal(one.replicates, two.replicates)


# -------------------------------------------------------------------------------------------------
# the design-based sandwich


def hand_meat(scores, stratum, psu, fraction=None, adjust=False) -> np.ndarray:
    """The stratified PSU meat, one stratum at a time."""
    k = scores.shape[1]
    totals = {}
    for s, h, u in zip(scores, stratum, psu, strict=True):
        totals.setdefault(h, {}).setdefault(u, np.zeros(k))
        totals[h][u] = totals[h][u] + s
    grand = np.mean([t for units in totals.values() for t in units.values()], axis=0)
    meat = np.zeros((k, k))
    for h, units in totals.items():
        t = np.array(list(units.values()))
        n = len(t)
        if n == 1:
            assert adjust
            meat += np.outer(t[0] - grand, t[0] - grand)
            continue
        f = 0.0 if fraction is None else fraction[h]
        d = t - t.mean(axis=0)
        meat += (1 - f) * n / (n - 1) * d.T @ d
    return meat


def test_score_meat_against_a_hand_computation():
    rng = np.random.default_rng(7)
    G = 40
    scores = rng.normal(size=(G, 3))
    psu = rng.permutation(np.repeat(np.arange(16), [3, 2] * 8))  # 16 PSUs of 2 or 3 groups
    psu_stratum = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 7])  # stratum 6: one PSU
    fraction = rng.uniform(0, 0.3, 8)
    design = SamplingDesign(psu, psu_stratum, fraction, lonely_psu="adjust")
    expected = hand_meat(scores, psu_stratum[psu], psu, fraction, adjust=True)
    np.testing.assert_allclose(score_meat(scores, design), expected, rtol=1e-12)
    # no design: G/(G-1) S'S
    np.testing.assert_allclose(score_meat(scores), G / (G - 1) * scores.T @ scores, rtol=1e-14)
    assert np.isnan(score_meat(scores[:1])).all()


def beta_scores(fit) -> np.ndarray:
    """Per-school scores of beta of a linear fit, as its sandwich computes them."""
    problem, sol = fit.details.problem, fit.details.solution
    ev = problem.evaluate(sol.theta, tangents=True)
    ext = np.append(sol.beta - problem.beta0, 1.0)
    return -(problem.top_weight[:, None] / sol.sigma**2) * ev.top_linear(ext, problem.p)


def test_without_strata_the_sandwich_is_the_default(pisa):
    default = wemix_nb.mix(F1, pisa, weights=W)
    explicit = wemix_nb.mix(F1, pisa, weights=W, psu="schoolid")
    np.testing.assert_allclose(explicit.cov_mat, default.cov_mat, rtol=1e-10)
    np.testing.assert_allclose(explicit.varDF["SEvcov"], default.varDF["SEvcov"], rtol=1e-10)
    assert "Design-based (linearized) sandwich standard errors: 150 PSUs ('schoolid')" in str(
        explicit.summary()
    )
    data = pisa.assign(high=(pisa["PV1MATH"] > 500).astype(int))
    glmm = [
        wemix_nb.mix("high ~ escs + (1|schoolid)", data, weights=W, family="binomial", **kw)
        for kw in ({}, {"psu": "schoolid"})
    ]
    np.testing.assert_allclose(glmm[1].cov_mat, glmm[0].cov_mat, rtol=1e-8)
    np.testing.assert_allclose(glmm[1].varDF["SEvcov"], glmm[0].varDF["SEvcov"], rtol=1e-8)


@pytest.mark.parametrize("fpc", [False, True])
def test_stratified_sandwich_by_hand(pisa, fpc):
    """75 pseudo-strata of two schools: the meat of beta against a hand computation."""
    data = pisa.assign(N=8.0)  # 8 schools per stratum in the population: f_h = 2/8
    default = wemix_nb.mix(F1, data, weights=W)
    design = {"strata": "VARSTRAT", "psu": "VARUNIT", "nest": True} | ({"fpc": "N"} if fpc else {})
    stratified = wemix_nb.mix(F1, data, weights=W, **design)
    school = default.frame.levels[0].labels
    first = data.groupby("schoolid")[["VARSTRAT", "VARUNIT"]].first().loc[school]
    stratum = first["VARSTRAT"].to_numpy()
    psu = (first["VARSTRAT"] * 10 + first["VARUNIT"]).to_numpy()
    fraction = {h: 2 / 8 for h in stratum} if fpc else None
    meat = hand_meat(beta_scores(default), stratum, psu, fraction)
    A = default.model_cov.to_numpy()
    np.testing.assert_allclose(stratified.cov_mat.to_numpy(), A @ meat @ A, rtol=1e-9)
    np.testing.assert_allclose(stratified.coef, default.coef, rtol=0)
    if fpc:
        plain = wemix_nb.mix(F1, data, weights=W, **{k: v for k, v in design.items() if k != "fpc"})
        np.testing.assert_allclose(stratified.SE**2, plain.SE**2 * 0.75, rtol=1e-10)
        np.testing.assert_allclose(
            stratified.varDF["SEvcov"] ** 2, plain.varDF["SEvcov"] ** 2 * 0.75, rtol=1e-10
        )


def test_psus_of_several_schools(pisa):
    """PSUs that group whole top-level groups: the strata as PSUs, one stratum."""
    default = wemix_nb.mix(F1, pisa, weights=W)
    grouped = wemix_nb.mix(F1, pisa, weights=W, psu="VARSTRAT")
    first = pisa.groupby("schoolid")["VARSTRAT"].first().loc[default.frame.levels[0].labels].to_numpy()
    meat = hand_meat(beta_scores(default), np.zeros(150), first)
    A = default.model_cov.to_numpy()
    np.testing.assert_allclose(grouped.cov_mat.to_numpy(), A @ meat @ A, rtol=1e-9)


def test_lonely_psu_adjust(pisa):
    data = pisa.copy()
    data.loc[data["VARSTRAT"] == data["VARSTRAT"].max(), "VARUNIT"] = 1  # last stratum: one PSU
    with pytest.raises(wemix_nb.errors.DesignError, match="single PSU"):
        wemix_nb.mix(F1, data, weights=W, strata="VARSTRAT", psu="VARUNIT", nest=True)
    fit = wemix_nb.mix(F1, data, weights=W, strata="VARSTRAT", psu="VARUNIT", nest=True, lonely_psu="adjust")
    default = wemix_nb.mix(F1, data, weights=W)
    first = data.groupby("schoolid")[["VARSTRAT", "VARUNIT"]].first().loc[default.frame.levels[0].labels]
    meat = hand_meat(
        beta_scores(default),
        first["VARSTRAT"].to_numpy(),
        (first["VARSTRAT"] * 10 + first["VARUNIT"]).to_numpy(),
        adjust=True,
    )
    A = default.model_cov.to_numpy()
    np.testing.assert_allclose(fit.cov_mat.to_numpy(), A @ meat @ A, rtol=1e-9)
    assert "1 single-PSU strata centred on the grand mean" in fit.tidy().attrs["se_method"]


# -------------------------------------------------------------------------------------------------
# level-1-only weights


@pytest.mark.parametrize("family", [None, "binomial"])
def test_level1_weights_only_equal_unit_higher_level_weights(pisa, family):
    data = pisa.assign(one=1.0, high=(pisa["PV1MATH"] > 500).astype(int))
    formula = ("high" if family else "PV1MATH") + " ~ escs + (1|schoolid)"
    only = wemix_nb.mix(formula, data, weights=["w_fstuwt"], family=family)
    explicit = wemix_nb.mix(formula, data, weights=["w_fstuwt", "one"], family=family)
    pd.testing.assert_series_equal(only.coef, explicit.coef)
    pd.testing.assert_series_equal(only.SE, explicit.SE)
    pd.testing.assert_series_equal(only.vars, explicit.vars)
    assert only.lnl == explicit.lnl
    note = "Weights: level 1 only ('w_fstuwt'); every higher level has weight 1"
    assert note in str(only.summary()) and note not in str(explicit.summary())
    groups = parse_tables(only._repr_html_())[2]
    assert any(note in n for n in groups.notes)


def test_three_level_model_with_level1_weights_only():
    d = sleep_three_levels().assign(one=1.0)
    formula = "Reaction ~ Days + (1|Subject) + (1|G)"
    only = wemix_nb.mix(formula, d, weights=["W1"])
    explicit = wemix_nb.mix(formula, d, weights=["W1", "one", "one"])
    np.testing.assert_allclose(only.coef, explicit.coef, rtol=1e-12)
    np.testing.assert_allclose(only.vars, explicit.vars, rtol=1e-10)


def test_weights_that_look_conditional_warn_with_the_count(pisa):
    data = pisa.assign(w_cond=pisa["w_fstuwt"] / pisa["w_fschwt"])
    below = int((data["w_cond"] < data["w_fschwt"]).sum())
    with pytest.warns(wemix_nb.errors.WeightWarning, match=f"{below} row\\(s\\)") as record:
        wemix_nb.mix(F1, data, weights=["w_cond", "w_fschwt"])
    assert record[0].filename == __file__  # points at the call
    with warnings.catch_warnings():
        warnings.simplefilter("error", wemix_nb.errors.WeightWarning)
        wemix_nb.mix(F1, data, weights=["w_cond", "w_fschwt"], cweights=True)


def test_t_reference_of_replicate_results_uses_the_replicate_se(fay_fit):
    tidy = fay_fit.tidy(df="groups")
    crit = stats.t.ppf(0.975, 150 - 3)
    np.testing.assert_allclose(tidy["conf_high"], fay_fit.coef + crit * fay_fit.SE)


def test_replicates_of_a_fit_with_a_zero_variance():
    """The full-sample school variance is 0 (its Hessian is singular there): the replicates are
    fitted by the general optimiser and still equal plain fits, at 0 or not."""
    d = wemix_nb.datasets.sleepstudy()
    rng = np.random.default_rng(2)
    d = d.assign(G=rng.integers(0, 30, len(d)), W1=1.0, W2=1.0, y=rng.normal(size=len(d)))
    for r in range(1, 5):
        d[f"R{r}"] = rng.choice([0.5, 1.5], 30)[d["G"]]
    formula = "y ~ Days + (1|G)"
    fit = wemix_nb.mix(formula, d, weights=["W1", "W2"], replicate_weights="R{1..4}", replicate_method="brr")
    assert fit.vars["G.Intercept"] == 0 and fit.replicate_converged.all()
    estimates = fit.replicate_estimates["G.Intercept"]
    assert (estimates == 0).any() and (estimates > 0).any()
    for r in range(1, 5):
        plain = plain_fit(d, formula, f"R{r}", ["W1", "W2"])
        assert_replicate_equals(fit, r, plain, rtol=1e-6)


@pytest.mark.parametrize("family", [None, "binomial"])
def test_replicates_centre_the_covariates_with_their_weights(pisa, family):
    """Grand-mean centring uses the weights, so each replicate centres with its own, as a plain fit
    with the replicate's weights does."""
    data = pisa.assign(high=(pisa["PV1MATH"] > 500).astype(int))
    formula = ("high" if family else "PV1MATH") + " ~ escs + (1|schoolid)"
    kwargs = {"family": family, "center_grand": "~ escs"}
    fit = wemix_nb.mix(
        formula, data, weights=W, replicate_weights="W_FSTR{1..3}", replicate_method="brr", **kwargs
    )
    for r in (1, 3):
        plain = plain_fit(data, formula, f"W_FSTR{r}", W, **kwargs)
        assert_replicate_equals(fit, r, plain, rtol=1e-7)
    # keeping the full sample's centring instead would move the replicate's intercept
    mean = np.average(data["escs"], weights=data["w_fstuwt"])
    fixed = plain_fit(data.assign(escs=data["escs"] - mean), formula, "W_FSTR1", W, family=family)
    assert fit.replicate_estimates.loc[1, "Intercept"] != pytest.approx(fixed.coef["Intercept"], rel=1e-6)
