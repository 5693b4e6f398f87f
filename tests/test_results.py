"""Results: summary() against WeMix's printed summary, tidy tables, to_dict, and predict semantics."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from reference import vignette_case, wemix_case
from scipy import stats

import wemix_nb
from wemix_nb.errors import ArgumentError, NewLevelError
from wemix_nb.estimation.families import get_family

NUMBER = re.compile(r"(?<![\w.\[])-?\d+(?:\.\d+)?(?![\w.\]])")


def _fit(case: str):
    if case.startswith("pisa_like_"):
        data, expected = vignette_case(case.removeprefix("pisa_like_"))
    else:
        data, expected = wemix_case(case)
    call = expected["call"]
    fit = wemix_nb.mix(call["formula"], data, weights=call["weights"], cweights=call.get("cWeights", False))
    return fit, expected, data


@pytest.fixture(scope="module")
def a2():
    return _fit("A2_sleepstudy_rslope")


def _numbers_after(text: str, marker: str = "Variance terms:") -> list[str]:
    """The numbers printed from ``marker`` on, up to wemix_nb's own notes (not in WeMix's layout)."""
    text = text[text.index(marker) :]
    return NUMBER.findall(text.split("\nNotes:\n")[0])


@pytest.mark.parametrize(
    "case", ["A1_sleepstudy_ri", "A2_sleepstudy_rslope", "A8a_survey_linear", "pisa_like_m1u", "pisa_like_m2"]
)
def test_summary_prints_wemix_numbers(case):
    """Every number WeMix prints (variances, SEs, SDs, correlations, group sizes and weights, fixed
    effects, lnl, ICC) is printed identically, in the same order and with the same digits."""
    fit, expected, _ = _fit(case)
    ours, theirs = _numbers_after(str(fit.summary())), _numbers_after(expected["summary_text"])
    assert len(theirs) > 20
    assert ours == theirs


def test_glmm_summary_prints_wemix_numbers():
    data, expected = wemix_case("A4_sleepstudy_binomial")
    call = expected["call"]
    fit = wemix_nb.mix(call["formula"], data, weights=call["weights"], family="binomial", nquad=13)
    text = str(fit.summary())
    assert _numbers_after(text) == _numbers_after(expected["summary_text"])
    assert "Residual" not in text and "Intraclass" not in text
    assert text.splitlines()[2] == "Family: binomial (link 'logit')"


def test_summary_blocks(a2):
    fit, expected, _ = a2
    s = fit.summary()
    text = str(s)
    for block in ("Call:", "Variance terms:", "Groups:", "Fixed Effects:", "lnl=", "Intraclass Correlation="):
        assert block in text
    lines = text.splitlines()
    header = lines[lines.index("Variance terms:") + 1]
    assert header.split() == ["Level", "Group", "Name", "Variance", "Std.", "Error", "Std.Dev.", "Corr1"]
    assert "Reaction ~ Days + (1+Days|Subject)" in text and "weights=['W1', 'W2']" in text
    # the tables behind the text
    ref = {(r["Group"], r["Name"]): r for r in expected["summary_varsmat"]}
    for row in s.variance.itertuples(index=False):
        theirs = ref[(row.Group, None if row.Name == "" else row.Name.replace("Intercept", "(Intercept)"))]
        assert row.Variance == pytest.approx(theirs["Variance"], rel=1e-6)
        assert row[4] == pytest.approx(theirs["Std. Error"], rel=1e-5)
    corr = s.variance["Corr1"].iloc[1]
    assert corr == pytest.approx(expected["summary_varsmat"][1]["Corr1"], rel=1e-5)
    np.testing.assert_allclose(s.coef.to_numpy(), np.array(expected["summary_coef"]["data"]), rtol=1e-6)
    assert list(s.groups["Group"]) == ["Subject", "Obs"]
    assert s.ICC == fit.ICC and s.lnl == fit.lnl
    assert repr(s) == text
    shown = s._repr_html_()  # notebooks keep the fixed-width lines (scrolling, not re-wrapping)
    assert shown.startswith('<pre style="white-space: pre; overflow-x: auto">') and "Variance terms:" in shown


def _glmm_like(fit):
    names = list(fit.coef.index)
    var_names = ["Subject.Intercept", "Subject.Days", "Subject.Days.Intercept"]
    k = len(names) + len(var_names)
    full = np.eye(k)
    return dataclasses.replace(
        fit,
        family=get_family("binomial"),
        ICC=None,
        sigma=1.0,
        varDF=fit.varDF[fit.varDF["grp"] != "Residual"].reset_index(drop=True),
        vars=pd.Series([1.0, 2.0, 0.5], index=var_names),
        extra={"vcov_full": full, "var_param_names": var_names},
    )


def test_summary_of_a_glmm_has_no_residual_or_icc(a2):
    fit, _, _ = a2
    glmm = _glmm_like(fit)
    s = glmm.summary()
    text = str(s)
    assert "Residual" not in text and "Intraclass" not in text
    assert "Obs" in text and "binomial" in text
    # correlations are those of the random effects (not of sampling errors, WeMix's GLMM bug)
    sub = glmm.varDF
    cov = sub.loc[sub["var2"].notna(), "vcov"].iloc[0]
    v = sub.loc[sub["var2"].isna(), "vcov"].to_numpy()
    assert s.variance["Corr1"].iloc[1] == pytest.approx(cov / np.sqrt(v[0] * v[1]))
    assert "binomial" in str(glmm)


def test_short_str(a2):
    fit, _, _ = a2
    text = str(fit)
    assert text.startswith("Linear weighted mixed model: Reaction ~ Days + (1+Days|Subject)")
    assert "180 rows" in text and "Subject: 18" in text and "-1018.265" in text
    assert "Intercept" in text and "250.591" in text and "6.859" in text
    assert len(text.splitlines()) < 10
    assert repr(fit).startswith("<MixResult")


def test_tidy_confint_consistency(a2):
    fit, _, _ = a2
    t = fit.tidy(df="normal")
    assert list(t.columns) == [
        "term",
        "estimate",
        "std_error",
        "statistic",
        "df",
        "p_value",
        "conf_low",
        "conf_high",
    ]
    assert np.isinf(t["df"]).all()
    np.testing.assert_allclose(t["estimate"], fit.coef)
    np.testing.assert_allclose(t["std_error"], fit.SE)
    np.testing.assert_allclose(t["statistic"], fit.tvalues)
    assert not hasattr(fit, "pvalues")  # else maketables would read results as statsmodels ones
    np.testing.assert_allclose(t["p_value"], 2 * stats.norm.sf(np.abs(fit.coef / fit.SE)))
    ci = fit.confint(df="normal")
    np.testing.assert_allclose(ci["lower"], fit.coef - 1.959963984540054 * fit.SE)
    np.testing.assert_allclose(ci["upper"], t["conf_high"])
    np.testing.assert_allclose(fit.conf_int(alpha=0.1).to_numpy(), fit.confint(0.9).to_numpy())
    # 18 top-level groups: by default the t reference with 18 - 2 df
    default = fit.tidy()
    assert (default["df"] == 16).all()
    np.testing.assert_allclose(default["p_value"], 2 * stats.t.sf(np.abs(fit.coef / fit.SE), 16))
    np.testing.assert_allclose(fit.confint()["upper"], default["conf_high"])
    wide, narrow = fit.confint(0.99), fit.confint(0.5)
    assert (wide["lower"] < narrow["lower"]).all() and (wide["upper"] > narrow["upper"]).all()
    assert list(ci.index) == list(fit.coef.index)
    for bad in (0, 1, 1.5, "0.95"):
        with pytest.raises(ArgumentError, match="level"):
            fit.tidy(bad)


def test_variance_components(a2):
    fit, _, _ = a2
    vc = fit.variance_components()
    assert list(vc.columns) == [
        "level",
        "group",
        "term1",
        "term2",
        "kind",
        "estimate",
        "std_error",
        "std_dev",
        "correlation",
    ]
    assert list(vc["kind"]) == ["variance", "variance", "covariance", "variance"]
    np.testing.assert_allclose(vc["estimate"], fit.varDF["vcov"])
    np.testing.assert_allclose(vc["std_error"], fit.varDF["SEvcov"])
    var = vc[vc["kind"] == "variance"]
    np.testing.assert_allclose(var["std_dev"], np.sqrt(var["estimate"]))
    cov = vc[vc["kind"] == "covariance"].iloc[0]
    assert cov["correlation"] == pytest.approx(
        cov["estimate"] / np.sqrt(fit.vars["Subject.Intercept"] * fit.vars["Subject.Days"])
    )
    assert vc.iloc[-1]["group"] == "Residual" and vc.iloc[-1]["estimate"] == pytest.approx(fit.sigma**2)


def test_random_effects(a2):
    fit, _, _ = a2
    raw = fit.random_effects(raw=True)["Subject"]
    assert list(raw.columns) == ["Intercept", "Intercept_sd", "Days", "Days_sd"]
    np.testing.assert_allclose(raw[["Intercept", "Days"]], fit.ranef["Subject"])
    np.testing.assert_allclose(raw[["Intercept_sd", "Days_sd"]], fit.ranef_sd["Subject"])
    assert raw.attrs["weights"].startswith("pseudo-likelihood")
    plain = fit.random_effects(with_sd=False, raw=True)["Subject"]
    pd.testing.assert_frame_equal(plain, fit.ranef["Subject"])
    # by default (unscaled survey weights) each subject's weights are rescaled to its 10 rows
    table = fit.random_effects()["Subject"]
    assert list(table.columns) == list(raw.columns) and list(table.index) == list(raw.index)
    assert table.attrs["weights"] == "weights rescaled within each group to its number of sampled units"
    assert (table["Days_sd"] > 0).all()
    assert not np.allclose(table["Intercept"], raw["Intercept"])


def test_to_dict_is_json(a2):
    fit, _, _ = a2
    d = fit.to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["coef"] == pytest.approx(fit.coef.to_dict())
    assert back["SE"]["Days"] == pytest.approx(fit.SE["Days"])
    assert back["lnl"] == pytest.approx(fit.lnl) and back["nobs"] == 180 and back["levels"] == 2
    assert back["vars"]["Residual"] == pytest.approx(fit.sigma**2)
    assert back["cov_mat"]["names"] == ["Intercept", "Days"]
    np.testing.assert_allclose(back["var_theta"]["data"], fit.var_theta.to_numpy())
    assert back["varDF"][0]["var2"] is None  # NaN -> null
    first = fit.ranef["Subject"].iloc[0]
    ranef = back["ranef"]["Subject"]  # ids, column names and a row-major matrix, like cov_mat
    assert ranef["ids"][0] == str(first.name)
    assert ranef["data"][0][ranef["names"].index("Days")] == pytest.approx(first["Days"])
    assert back["wgtStats"]["1"]["sum"] == pytest.approx(210)


# -- predict -----------------------------------------------------------------------------------------


def _by_hand(fit, data: pd.DataFrame) -> np.ndarray:
    """X b + Z u for (1 + Days | Subject): the fixed part plus each row's own subject's effects."""
    b = fit.ranef["Subject"]
    labels = pd.Index([str(i) for i in b.index])
    pos = labels.get_indexer(data["Subject"].astype(str))
    u = b.to_numpy()[pos]
    days = data["Days"].to_numpy(float)
    return fit.coef["Intercept"] + fit.coef["Days"] * days + u[:, 0] + u[:, 1] * days


def test_predict_is_fixed_plus_z_b(a2):
    fit, expected, data = a2
    hand = _by_hand(fit, data)
    np.testing.assert_allclose(fit.predict().to_numpy(), hand, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(data).to_numpy(), hand, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(data, type="response").to_numpy(), hand, rtol=1e-12)
    np.testing.assert_allclose(fit.fitted.to_numpy() + fit.resid.to_numpy(), data["Reaction"], rtol=1e-12)
    # WeMix's stored predictor is wrong for a correlated vector bar; its newdata path is right
    wemix_default = np.array(list(expected["predict"]["default_link"].values()), dtype=float)
    wemix_newdata = np.array(list(expected["predict"]["newdata_link"].values()), dtype=float)
    assert np.abs(wemix_default - hand).max() > 100
    np.testing.assert_allclose(hand, wemix_newdata, rtol=1e-7)


def test_predict_new_levels(a2):
    fit, _, data = a2
    new = data.iloc[:3].copy()
    new["Subject"] = pd.Categorical(["999", "999", "308"])
    with pytest.raises(NewLevelError) as info:
        fit.predict(new)
    assert "'Subject'" in str(info.value) and "'999'" in str(info.value)
    pred = fit.predict(new, allow_new_levels=True).to_numpy()
    population = fit.coef["Intercept"] + fit.coef["Days"] * new["Days"].to_numpy(float)
    np.testing.assert_allclose(pred[:2], population[:2], rtol=1e-12)
    np.testing.assert_allclose(pred[2], _by_hand(fit, data.iloc[:3])[2], rtol=1e-12)
    # newdata without the response, in a different row order
    shuffled = data.drop(columns="Reaction").iloc[::-1]
    np.testing.assert_allclose(fit.predict(shuffled).to_numpy(), _by_hand(fit, data)[::-1], rtol=1e-12)
    assert list(fit.predict(shuffled).index) == list(shuffled.index)
    with pytest.raises(ArgumentError, match="type"):
        fit.predict(type="probability")
