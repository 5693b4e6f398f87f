"""Weight scaling within clusters (Pfeffermann et al. 1998; Asparouhov 2006)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb.errors import ArgumentError, WeightError
from wemix_nb.survey.scaling import scale_weights

WEIGHTS = ["w_fstuwt", "w_fschwt"]
FORMULA = "pv1math ~ escs + st04q01 + (1|schoolid)"


@pytest.fixture(scope="module")
def pisa() -> pd.DataFrame:
    return wemix_nb.datasets.pisa2012_like()


def _conditional(frame: pd.DataFrame) -> pd.Series:
    return frame["w_fstuwt"] / frame["w_fschwt"]


def test_cluster_sums_to_group_size(pisa):
    scaled = scale_weights(pisa, WEIGHTS, "schoolid", "cluster")
    sums = _conditional(scaled).groupby(pisa["schoolid"]).sum()
    sizes = pisa.groupby("schoolid").size()
    np.testing.assert_allclose(sums.to_numpy(), sizes.to_numpy(), rtol=1e-12)
    # the top-level weights are untouched, and the same factor applies within a school
    np.testing.assert_array_equal(scaled["w_fschwt"], pisa["w_fschwt"])
    ratio = scaled["w_fstuwt"] / pisa["w_fstuwt"]
    assert (ratio.groupby(pisa["schoolid"]).std().fillna(0) < 1e-12 * ratio.max()).all()


def test_effective_sums_to_effective_size(pisa):
    scaled = scale_weights(pisa, WEIGHTS, "schoolid", "effective")
    c = _conditional(pisa)
    effective = c.groupby(pisa["schoolid"]).sum() ** 2 / (c**2).groupby(pisa["schoolid"]).sum()
    sums = _conditional(scaled).groupby(pisa["schoolid"]).sum()
    np.testing.assert_allclose(sums.to_numpy(), effective.to_numpy(), rtol=1e-12)
    assert (sums <= pisa.groupby("schoolid").size() + 1e-9).all()


def test_conditional_input(pisa):
    cond = pisa.assign(w_fstuwt=_conditional(pisa))
    scaled = scale_weights(cond, WEIGHTS, "schoolid", "cluster", cweights=True)
    sums = scaled["w_fstuwt"].groupby(pisa["schoolid"]).sum()
    np.testing.assert_allclose(sums.to_numpy(), pisa.groupby("schoolid").size().to_numpy(), rtol=1e-12)
    unconditional = scale_weights(pisa, WEIGHTS, "schoolid", "cluster")
    np.testing.assert_allclose(scaled["w_fstuwt"], _conditional(unconditional), rtol=1e-12)


def test_equal_weights_cluster_is_a_no_op(pisa):
    equal = pisa.assign(w_fstuwt=pisa["w_fschwt"] * 1.0)  # conditional weight 1 for everyone
    scaled = scale_weights(equal, WEIGHTS, "schoolid", "cluster")
    np.testing.assert_allclose(scaled.to_numpy(), equal[WEIGHTS].to_numpy(), rtol=1e-14)
    effective = scale_weights(equal, WEIGHTS, "schoolid", "effective")
    np.testing.assert_allclose(effective.to_numpy(), equal[WEIGHTS].to_numpy(), rtol=1e-14)
    pd.testing.assert_frame_equal(
        scale_weights(pisa, WEIGHTS, "schoolid", "none"), pisa[WEIGHTS].astype(float)
    )


@pytest.mark.parametrize("method", ["cluster", "effective"])
def test_fit_equals_manually_rescaled(pisa, method):
    fit = wemix_nb.mix(FORMULA, pisa, weights=WEIGHTS, scale_weights=method)
    manual = pisa.copy()
    manual[WEIGHTS] = scale_weights(pisa, WEIGHTS, "schoolid", method)
    ref = wemix_nb.mix(FORMULA, manual, weights=WEIGHTS)
    pd.testing.assert_series_equal(fit.coef, ref.coef, rtol=1e-10)
    pd.testing.assert_series_equal(fit.SE, ref.SE, rtol=1e-8)
    pd.testing.assert_series_equal(fit.vars, ref.vars, rtol=1e-8)
    assert fit.lnl == pytest.approx(ref.lnl, rel=1e-12)
    unscaled = wemix_nb.mix(FORMULA, pisa, weights=WEIGHTS)
    assert not np.allclose(fit.vars, unscaled.vars, rtol=1e-4)  # scaling matters for informative weights


def test_scaling_counts_only_used_rows(pisa):
    """Rows dropped for missing values do not count in n_j."""
    holes = pisa.copy()
    holes.loc[holes.index[::7], "escs"] = np.nan
    with pytest.warns(wemix_nb.errors.DroppedRowsWarning):
        fit = wemix_nb.mix(FORMULA, holes, weights=WEIGHTS, scale_weights="cluster")
    kept = holes.dropna(subset=["escs"]).copy()
    kept[WEIGHTS] = scale_weights(kept, WEIGHTS, "schoolid", "cluster")
    ref = wemix_nb.mix(FORMULA, kept, weights=WEIGHTS)
    pd.testing.assert_series_equal(fit.coef, ref.coef, rtol=1e-10)
    assert fit.frame.n_dropped_missing == len(holes) - len(kept)


def test_three_levels():
    rng = np.random.default_rng(3)
    rows = []
    for school in range(6):
        for klass in range(rng.integers(2, 5)):
            for _ in range(rng.integers(3, 8)):
                rows.append((school, f"{school}-{klass}"))
    data = pd.DataFrame(rows, columns=["school", "klass"])
    ws = rng.uniform(1, 5, 6)
    wc = pd.Series(rng.uniform(1, 3, data["klass"].nunique()), index=sorted(data["klass"].unique()))
    data["w3"] = ws[data["school"]]
    data["w2"] = data["klass"].map(wc).to_numpy() * data["w3"]
    data["w1"] = rng.uniform(1, 4, len(data)) * data["w2"]
    scaled = scale_weights(data, ["w1", "w2", "w3"], ["klass", "school"], "cluster")
    c1 = scaled["w1"] / scaled["w2"]
    np.testing.assert_allclose(c1.groupby(data["klass"]).sum(), data.groupby("klass").size(), rtol=1e-12)
    per_class = (scaled["w2"] / scaled["w3"]).groupby(data["klass"]).first()
    school_of = data.groupby("klass")["school"].first()
    np.testing.assert_allclose(
        per_class.groupby(school_of).sum(), school_of.value_counts().sort_index(), rtol=1e-12
    )
    np.testing.assert_array_equal(scaled["w3"], data["w3"])


def test_errors(pisa):
    with pytest.raises(ArgumentError):
        scale_weights(pisa, WEIGHTS, "schoolid", "size")
    with pytest.raises(WeightError):
        scale_weights(pisa, ["w_fstuwt"], "schoolid", "cluster")
    with pytest.raises(ArgumentError):
        wemix_nb.mix(FORMULA, pisa, weights=WEIGHTS, scale_weights="bogus")


@pytest.mark.parametrize("method", ["cluster", "effective"])
@pytest.mark.parametrize("cweights", [False, True])
def test_centering_uses_the_scaled_weights(pisa, method, cweights):
    """Grand- and group-mean centering weigh rows with the scaled level-1 weights, as a fit of
    data whose weight columns were scaled beforehand does."""
    data = pisa.assign(w_fstuwt=_conditional(pisa)) if cweights else pisa
    centering = {"center_grand": "~ escs", "center_group": {"schoolid": "~ st04q01_num"}}
    data = data.assign(st04q01_num=(data["st04q01"] == data["st04q01"].cat.categories[0]).astype(float))
    formula = "pv1math ~ escs + st04q01_num + (1|schoolid)"
    fit = wemix_nb.mix(formula, data, weights=WEIGHTS, cweights=cweights, scale_weights=method, **centering)
    manual = data.copy()
    manual[WEIGHTS] = scale_weights(data, WEIGHTS, "schoolid", method, cweights=cweights)
    ref = wemix_nb.mix(formula, manual, weights=WEIGHTS, cweights=cweights, **centering)
    assert fit.frame.centering.grand["escs"] == pytest.approx(ref.frame.centering.grand["escs"], rel=1e-12)
    pd.testing.assert_series_equal(
        fit.frame.centering.group["schoolid"]["st04q01_num"],
        ref.frame.centering.group["schoolid"]["st04q01_num"],
        rtol=1e-12,
    )
    pd.testing.assert_series_equal(fit.coef, ref.coef, rtol=1e-10)
    pd.testing.assert_series_equal(fit.vars, ref.vars, rtol=1e-8)
    assert fit.lnl == pytest.approx(ref.lnl, rel=1e-12)
    unscaled = wemix_nb.mix(formula, data, weights=WEIGHTS, cweights=cweights, **centering)
    assert fit.frame.centering.grand["escs"] != pytest.approx(
        unscaled.frame.centering.grand["escs"], rel=1e-6
    )


def test_the_fit_scales_the_weights_of_its_own_frame(pisa):
    fit = wemix_nb.mix(FORMULA, pisa, weights=WEIGHTS, scale_weights="cluster")
    frame = fit.frame
    assert frame.weight_scaling == "cluster"
    school = frame.levels[0]
    np.testing.assert_allclose(np.bincount(school.group_index, frame.cond_weight1), school.n_rows, rtol=1e-12)
    np.testing.assert_array_equal(school.weight, pisa.groupby("schoolid")["w_fschwt"].first().to_numpy())


def test_scaling_refuses_a_group_weight_varying_within_its_group(pisa):
    bad = pisa.copy()
    bad.loc[bad.index[0], "w_fschwt"] *= 3
    with pytest.raises(WeightError, match="'w_fschwt' varies within 1 group"):
        scale_weights(bad, WEIGHTS, "schoolid", "cluster")
