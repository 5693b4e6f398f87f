"""Linear models against R's WeMix: every linear reference case, to many digits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import (
    by_r_name,
    r_center_group,
    r_name,
    realdata_case,
    vignette_case,
    wemix_case,
    wemix_reference_case,
)

import wemix_nb

LINEAR_CASES = [
    "A1_sleepstudy_ri",
    "A2_sleepstudy_rslope",
    "A3_sleepstudy_3level",
    "A5a_center_group",
    "A5b_center_grand",
    "A5c_center_group_survey",
    "A5d_center_grand_survey",
    "A6a_uncond_weights",
    "A6b_cond_weights",
    "A7a_wald_A1",
    "A7b_wald_A2",
    "A8a_survey_linear",
    "A8c_survey_linear_cond",
]


def assert_close(ours: dict, theirs: dict, rtol: float, what: str, atol: float = 0.0) -> None:
    assert set(ours) == set(theirs), f"{what}: names differ: {sorted(ours)} vs {sorted(theirs)}"
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, rel=rtol, abs=atol), f"{what}[{key}]"


def check_fit(fit, expected: dict, *, boundary: bool = False) -> None:
    """lnl 1e-7 relative and never below WeMix; coef 1e-5; SE and vars 1e-3 (looser on a boundary)."""
    lnl = expected["lnl"]
    assert fit.lnl == pytest.approx(lnl, rel=1e-9)
    assert fit.lnl >= lnl - 1e-9 * abs(lnl), "our optimum must not be below WeMix's"
    assert_close(by_r_name(fit.coef), expected["coef"], 1e-5 if boundary else 1e-7, "coef")
    assert_close(by_r_name(fit.SE), expected["SE"], 1e-3 if boundary else 1e-6, "SE")
    assert_close(
        by_r_name(fit.vars),
        expected["vars"],
        1e-2 if boundary else 1e-5,
        "vars",
        atol=1e-6 if boundary else 0.0,
    )


def varse(fit) -> dict:
    out = {}
    for row in fit.varDF.itertuples():
        key = (
            row.grp,
            None if pd.isna(row.var1) else r_name(str(row.var1)),
            None if pd.isna(row.var2) else r_name(str(row.var2)),
        )
        out[key] = row.SEvcov
    return out


def expected_varse(rows) -> dict:
    return {(r["grp"], r["var1"], r["var2"]): r["SEvcov"] for r in rows}


# real data (reference/realdata): R WeMix's fits of survey samples
REALDATA_CASES = ["R1_api_ri"]


@pytest.mark.parametrize("case", LINEAR_CASES + REALDATA_CASES)
def test_wemix_r_linear_case(case):
    data, expected = realdata_case(case) if case in REALDATA_CASES else wemix_case(case)
    call = expected["call"]
    fit = wemix_nb.mix(
        call["formula"],
        data,
        weights=call["weights"],
        cweights=call["cWeights"],
        center_group=r_center_group(call["center_group"]),
        center_grand=call["center_grand"],
    )
    boundary = case.startswith("A3")  # the Group correlation sits at -1 (see reference README)
    check_fit(fit, expected["result"], boundary=boundary)
    ours, theirs = varse(fit), expected_varse(expected["result"]["varDF"])
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if value is not None:
            assert ours[key] == pytest.approx(value, rel=1e-2 if boundary else 2e-5), key
    # the robust covariance and the model-based one, element by element
    cov = expected["result"]["cov_mat"]
    scale = np.abs(np.array(cov["data"])).max()
    np.testing.assert_allclose(
        fit.cov_mat.to_numpy(), np.array(cov["data"]), rtol=1e-3 if boundary else 1e-6, atol=1e-12 * scale
    )
    inv_h = expected["result"]["invHessian"]
    np.testing.assert_allclose(
        fit.model_cov.to_numpy(), np.array(inv_h["data"]), rtol=1e-3 if boundary else 1e-6, atol=1e-12 * scale
    )
    assert fit.ICC == pytest.approx(expected["result"]["ICC"], rel=1e-2 if boundary else 1e-6)
    assert fit.sigma == pytest.approx(expected["result"]["sigma"], rel=1e-3 if boundary else 1e-7)


@pytest.mark.parametrize(
    "case", ["A1_sleepstudy_ri", "A2_sleepstudy_rslope", "A8a_survey_linear", "R1_api_ri"]
)
def test_random_effects_and_residuals(case):
    data, expected = realdata_case(case) if case in REALDATA_CASES else wemix_case(case)
    call = expected["call"]
    fit = wemix_nb.mix(call["formula"], data, weights=call["weights"], cweights=call["cWeights"])
    for factor, table in expected["result"]["ranefMat"].items():
        ours = fit.ranef[factor]
        theirs = np.array(table["data"], dtype=float)
        assert [str(i) for i in ours.index] == [str(i) for i in table["ids"]]
        np.testing.assert_allclose(ours.to_numpy(), theirs, rtol=1e-5, atol=1e-6)
    resid = expected["result"]["resid"]
    values = np.array(list(resid.values()) if isinstance(resid, dict) else resid, dtype=float)
    np.testing.assert_allclose(fit.resid.to_numpy(), values, rtol=1e-6, atol=1e-6)


def test_var_theta_matches_wemix():
    data, expected = wemix_case("A2_sleepstudy_rslope")
    call = expected["call"]
    fit = wemix_nb.mix(call["formula"], data, weights=call["weights"])
    theirs = expected["result"]["var_theta"]
    assert [r_name(n) for n in fit.var_theta.index] == theirs["rownames"]
    np.testing.assert_allclose(fit.var_theta.to_numpy(), np.array(theirs["data"]), rtol=1e-4)


@pytest.mark.parametrize("name", ["m1u", "m1c", "m2"])
def test_vignette_pisa_like(name):
    data, expected = vignette_case(name)
    call = expected["call"]
    kwargs = {"weights": call["weights"], "cweights": call.get("cWeights", False)}
    if name == "m1c":
        data = data.assign(pwt2=data["w_fschwt"], pwt1=data["w_fstuwt"] / data["w_fschwt"])
    fit = wemix_nb.mix(call["formula"], data, **kwargs)
    check_fit(fit, expected["result"])


@pytest.mark.parametrize("name", ["L1", "L2", "L3", "L3c", "L4", "L5"])
def test_wemix_reference_linear(name):
    data, expected = wemix_reference_case(name)
    fit = wemix_nb.mix(expected["formula"], data, weights=expected["weights"], cweights=expected["cWeights"])
    check_fit(fit, expected)
    theirs = {(r["grp"], r["var1"], r["var2"]): r["SEvcov"] for r in expected["varDF"]}
    ours = varse(fit)
    for key, value in theirs.items():
        if value is not None:
            assert ours[key] == pytest.approx(value, rel=1e-4), key
    assert fit.ICC == pytest.approx(expected["ICC"], rel=1e-6)
