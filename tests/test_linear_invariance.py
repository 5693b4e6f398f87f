"""Invariances of the weighted linear estimator, and equality with unweighted ML software."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb.errors import FewGroupsWarning


@pytest.fixture(scope="module")
def survey() -> pd.DataFrame:
    """A small unbalanced three-level data set with integer weights."""
    rng = np.random.default_rng(20261126)
    rows = []
    for school in range(12):
        u_school = rng.normal(0, 1.0)
        for klass in range(rng.integers(2, 5)):
            u_class = rng.normal(0, 0.7)
            for _ in range(rng.integers(3, 9)):
                x = rng.normal()
                rows.append(
                    (
                        f"s{school}",
                        f"s{school}c{klass}",
                        x,
                        2.0 + 0.5 * x + u_school + u_class + rng.normal(0, 1.0),
                    )
                )
    data = pd.DataFrame(rows, columns=["school", "klass", "x", "y"])
    data["w1"] = rng.integers(1, 4, len(data)).astype(float)
    data["w2"] = data.groupby("klass")["x"].transform(lambda s: 1.0 + (len(s) % 3))
    data["w3"] = data.groupby("school")["x"].transform(lambda s: 1.0 + (len(s) % 2))
    return data


def _expand_rows(data: pd.DataFrame, column: str) -> pd.DataFrame:
    return data.loc[data.index.repeat(data[column].astype(int))].reset_index(drop=True)


def _fit(formula, data, weights, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these fits should warn
        warnings.simplefilter("ignore", FewGroupsWarning)  # but of their 12 schools
        return wemix_nb.mix(formula, data, weights=weights, **kw)


def assert_same_fit(a, b, lnl=True):
    if lnl:
        assert a.lnl == pytest.approx(b.lnl, rel=1e-10)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-8)
    np.testing.assert_allclose(a.vars, b.vars, rtol=1e-6)


def test_integer_level1_weight_equals_repeated_rows(survey):
    data = survey.assign(one=1.0)
    weighted = _fit("y ~ x + (1|klass)", data, ["w1", "one"])
    repeated = _fit("y ~ x + (1|klass)", _expand_rows(data, "w1"), ["one", "one"])
    assert_same_fit(weighted, repeated)
    # the random-slope model too
    weighted = _fit("y ~ x + (1 + x|klass)", data, ["w1", "one"])
    repeated = _fit("y ~ x + (1 + x|klass)", _expand_rows(data, "w1"), ["one", "one"])
    assert_same_fit(weighted, repeated)


def _repeat_groups(data: pd.DataFrame, factor: str, times: pd.Series) -> pd.DataFrame:
    """Copy each group ``times[group]`` times under new labels."""
    pieces = []
    for copy in range(int(times.max())):
        keep = data[factor].map(times) > copy
        piece = data[keep].copy()
        piece[factor] = piece[factor].astype(str) + f"#{copy}"
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True)


def test_integer_level2_weight_equals_repeated_groups(survey):
    times = survey.groupby("klass")["w2"].first()
    data = survey.assign(one=1.0, w1u=survey["w2"])  # unconditional level-1 = level-2 weight
    weighted = _fit("y ~ x + (1|klass)", data, ["w1u", "w2"])
    repeated = _fit("y ~ x + (1|klass)", _repeat_groups(data, "klass", times), ["one", "one"])
    assert_same_fit(weighted, repeated)
    # conditional weights: level-1 weights stay as they are within the copied groups
    weighted = _fit("y ~ x + (1 + x|klass)", data, ["w1", "w2"], cweights=True)
    repeated = _fit(
        "y ~ x + (1 + x|klass)", _repeat_groups(data, "klass", times), ["w1", "one"], cweights=True
    )
    assert_same_fit(weighted, repeated)


def test_integer_top_weight_equals_repeated_top_groups_three_levels(survey):
    times = survey.groupby("school")["w3"].first()
    weighted = _fit("y ~ x + (1|klass) + (1|school)", survey, ["w1", "w2", "w3"], cweights=True)
    copied = _repeat_groups(survey, "school", times)
    copied["klass"] = copied["school"] + "/" + copied["klass"]
    repeated = _fit(
        "y ~ x + (1|klass) + (1|school)", copied.assign(one=1.0), ["w1", "w2", "one"], cweights=True
    )
    assert_same_fit(weighted, repeated)


def test_scaling_top_weights_scales_lnl_only(survey):
    base = _fit("y ~ x + (1|klass) + (1|school)", survey, ["w1", "w2", "w3"], cweights=True)
    scaled = _fit(
        "y ~ x + (1|klass) + (1|school)",
        survey.assign(w3=survey["w3"] * 3.5),
        ["w1", "w2", "w3"],
        cweights=True,
    )
    np.testing.assert_allclose(scaled.coef, base.coef, rtol=1e-9)
    np.testing.assert_allclose(scaled.vars, base.vars, rtol=1e-7)
    np.testing.assert_allclose(scaled.SE, base.SE, rtol=1e-7)
    assert scaled.lnl == pytest.approx(3.5 * base.lnl, rel=1e-10)


def test_conditional_and_unconditional_weights_agree(survey):
    uncond = survey.assign(w2u=survey["w2"] * survey["w3"])
    uncond["w1u"] = uncond["w1"] * uncond["w2u"]
    a = _fit("y ~ x + (1|klass) + (1|school)", uncond, ["w1u", "w2u", "w3"])
    b = _fit("y ~ x + (1|klass) + (1|school)", survey, ["w1", "w2", "w3"], cweights=True)
    assert_same_fit(a, b)
    np.testing.assert_allclose(a.SE, b.SE, rtol=1e-7)


@pytest.mark.parametrize(
    "formula,re_formula",
    [
        ("Reaction ~ Days + (1|Subject)", None),
        ("Reaction ~ Days + (1 + Days|Subject)", "~Days"),
    ],
)
def test_unit_weights_equal_statsmodels_ml(formula, re_formula):
    sm = pytest.importorskip("statsmodels.formula.api")
    data = wemix_nb.datasets.sleepstudy()
    ours = wemix_nb.mix(formula, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sm.mixedlm(
            "Reaction ~ Days", data, groups=data["Subject"].astype(str), re_formula=re_formula
        ).fit(reml=False, method=["lbfgs"], gtol=1e-10)
    assert ours.lnl == pytest.approx(theirs.llf, rel=1e-8)
    np.testing.assert_allclose(ours.coef.to_numpy(), theirs.fe_params.to_numpy(), rtol=1e-5)
    assert ours.vars["Residual"] == pytest.approx(theirs.scale, rel=1e-4)
    re_cov = theirs.cov_re.to_numpy()
    np.testing.assert_allclose(ours.vars.iloc[0], re_cov[0, 0], rtol=1e-4)
    # lme4's ML values for the random-intercept model
    if re_formula is None:
        assert ours.lnl == pytest.approx(-897.039321502613, rel=1e-12)
        assert ours.theta.iloc[0] == pytest.approx(1.16561176532399, rel=1e-6)


def test_predict_equals_fixed_plus_random_part_with_correlated_slopes():
    data = wemix_nb.datasets.sleepstudy()
    fit = wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", data)
    b = fit.ranef["Subject"].loc[data["Subject"]].to_numpy()
    by_hand = fit.coef["Intercept"] + fit.coef["Days"] * data["Days"] + b[:, 0] + b[:, 1] * data["Days"]
    np.testing.assert_allclose(fit.predict().to_numpy(), by_hand.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fit.predict(data).to_numpy(), by_hand.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fit.resid.to_numpy(), (data["Reaction"] - by_hand).to_numpy(), atol=1e-9)


def test_start_is_honoured_and_reaches_the_same_optimum():
    data = wemix_nb.datasets.sleepstudy()
    a = wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", data)
    b = wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", data, start=[3.0, -0.5, 0.8])
    assert b.lnl == pytest.approx(a.lnl, rel=1e-12)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-5)


def test_conditional_sd_of_random_intercepts_two_levels():
    """Unweighted random intercept: the conditional variance is sigma^2 / (n_j + 1/theta^2)."""
    data = wemix_nb.datasets.sleepstudy()
    fit = wemix_nb.mix("Reaction ~ Days + (1|Subject)", data)
    theta = fit.theta.iloc[0]
    expected = np.sqrt(fit.sigma**2 / (10 + 1 / theta**2))
    np.testing.assert_allclose(fit.ranef_sd["Subject"].to_numpy().ravel(), expected, rtol=1e-10)


@pytest.mark.parametrize("seed", range(6))
def test_equivalent_weightings_stop_at_the_same_point(seed):
    """Conditional or unconditional weights, and the top-level weights times 3, are the same problem:
    the estimates agree to rounding, not to where a deviance comparison stops resolving progress
    (the Newton polish judges its last steps by the exact gradient; comparing deviances alone left
    variances up to 6e-8 apart here, with one fit stopping at a gradient of 1e-13 and the other at
    5e-6)."""
    d = wemix_nb.datasets.sleepstudy()
    rng = np.random.default_rng(seed)
    c1 = rng.uniform(0.5, 2.0, len(d))
    c2 = rng.uniform(0.5, 2.0, 18)[d["Subject"].cat.codes]
    d = d.assign(c1=c1, c2=c2, u1=c1 * c2, u2=c2)
    formula = "Reaction ~ Days + (1 + Days|Subject)"
    base = wemix_nb.mix(formula, d, ["c1", "c2"], cweights=True)
    others = [
        wemix_nb.mix(formula, d, ["u1", "u2"]),
        wemix_nb.mix(formula, d.assign(c2=3.0 * d["c2"]), ["c1", "c2"], cweights=True),
    ]
    for other in others:
        for name in ("vars", "theta", "SE", "coef"):
            a, b = getattr(other, name), getattr(base, name)
            # relative to the largest entry (a covariance entry near 0 included)
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11 * np.max(np.abs(b)), err_msg=name)


@pytest.mark.parametrize("seed", range(5))
def test_tiny_unconditional_weights_are_optimised_to_the_end(seed):
    """Conditional level-2 weights of 1e-5 and top-level weights of 1e-3 make the deviance ~1e-6:
    tolerances with a floor of 1 in deviance units stopped the optimiser at once there (coefficients
    20% off, marked converged); the problem is the one with top-level weights 1e6 times larger."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, 12)
    g = np.repeat(np.arange(12), sizes)
    x = rng.normal(size=len(g))
    d = pd.DataFrame(
        {
            "y": 1 + 0.4 * x + rng.normal(scale=0.8, size=12)[g] + rng.normal(size=len(g)),
            "x": x,
            "g": g,
            "t": (np.arange(12) % 2)[g],
            "c1": rng.uniform(0.5, 2, len(g)),
            "c2": (1e-5 * rng.uniform(0.5, 2, 12))[g],
        }
    )
    d["c3"] = np.where(d["t"] == 0, 1.2e3, 0.7e3)
    formula = "y ~ x + (1|t) + (1|t:g)"
    weights = ["c1", "c2", "c3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few top-level groups
        tiny = wemix_nb.mix(formula, d.assign(c3=d["c3"] * 1e-6), weights, cweights=True)
        base = wemix_nb.mix(formula, d, weights, cweights=True)
    np.testing.assert_allclose(tiny.coef, base.coef, rtol=1e-10)
    np.testing.assert_allclose(tiny.vars, base.vars, rtol=1e-8, atol=1e-8 * base.vars.max())
    assert tiny.lnl == pytest.approx(base.lnl * 1e-6, rel=1e-10)
