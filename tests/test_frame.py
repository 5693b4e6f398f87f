"""The model frame: what rows and columns a fit uses."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb.errors import DroppedRowsWarning, SingularFitWarning
from wemix_nb.model.frame import build_model_frame

WEIGHTS = ["w_fstuwt", "w_fschwt"]


@pytest.fixture(scope="module")
def pisa() -> pd.DataFrame:
    return wemix_nb.datasets.pisa2012_like()


def test_unused_categories_are_dropped_as_in_r(pisa):
    """A category with no rows (never used, or only in dropped rows) gives no dummy column."""
    base = wemix_nb.mix("pv1math ~ escs + st04q01 + (1|schoolid)", pisa, weights=WEIGHTS)
    extra = pisa.assign(st04q01=pisa["st04q01"].cat.add_categories(["Other"]))
    extra.loc[0, "st04q01"] = "Other"
    extra.loc[0, "escs"] = np.nan  # the only 'Other' row is dropped for its missing escs
    with pytest.warns(DroppedRowsWarning, match="1 row"):
        fit = wemix_nb.mix("pv1math ~ escs + st04q01 + (1|schoolid)", extra, weights=WEIGHTS)
    assert list(fit.coef.index) == list(base.coef.index)
    assert fit.nobs == base.nobs - 1


def test_levels_are_ordered_by_group_count_whatever_the_formula_order(pisa):
    data = pisa.assign(region=pisa["schoolid"] % 7)
    frame = build_model_frame("pv1math ~ escs + (1|region) + (1|schoolid)", data, None)
    assert [level.name for level in frame.levels] == ["schoolid", "region"]
    assert frame.levels[0].parent_index is not None and frame.levels[1].parent_index is None


def test_composite_group_labels_and_nesting_syntax(pisa):
    data = pisa.assign(klass=pisa.groupby("schoolid").cumcount() % 3)  # class ids restart per school
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", SingularFitWarning)  # these made-up classes vary not at all
        a = wemix_nb.mix("pv1math ~ escs + (1|schoolid/klass)", data)
        b = wemix_nb.mix("pv1math ~ escs + (1|schoolid) + (1|schoolid:klass)", data)
    assert a.lnl == pytest.approx(b.lnl, rel=1e-12)
    assert a.ngroups["schoolid:klass"] == data.groupby(["schoolid", "klass"]).ngroups
    assert "1:0" in a.ranef["schoolid:klass"].index


def test_predict_gives_nan_for_rows_with_a_missing_covariate_or_group(pisa):
    fit = wemix_nb.mix("pv1math ~ escs + st04q01 + (1|schoolid)", pisa, weights=WEIGHTS)
    new = pisa.head(4).copy()
    new.loc[new.index[1], "escs"] = np.nan
    new.loc[new.index[2], "st04q01"] = np.nan
    new["schoolid"] = new["schoolid"].astype(float)
    new.loc[new.index[3], "schoolid"] = np.nan
    predicted = fit.predict(new)
    assert np.isfinite(predicted.iloc[0])
    assert predicted.iloc[1:].isna().all()
    assert predicted.iloc[0] == pytest.approx(fit.predict(pisa.head(1)).iloc[0], rel=1e-12)


def test_non_finite_values_are_errors_not_silent_nans(pisa):
    bad = pisa.assign(escs=pisa["escs"].where(pisa.index != 5, np.inf))
    with pytest.raises(wemix_nb.errors.DataError, match="'escs'.*1 row"):
        wemix_nb.mix("pv1math ~ escs + (1|schoolid)", bad, weights=WEIGHTS)
    with pytest.raises(wemix_nb.errors.DataError, match="random-effect design"):
        wemix_nb.mix("pv1math ~ 1 + (1 + escs|schoolid)", bad, weights=WEIGHTS)


def test_backticked_names_with_dots_and_spaces(pisa):
    data = pisa.rename(columns={"escs": "escs.index", "schoolid": "school id"})
    fit = wemix_nb.mix("pv1math ~ `escs.index` + (1|`school id`)", data, weights=WEIGHTS)
    base = wemix_nb.mix("pv1math ~ escs + (1|schoolid)", pisa, weights=WEIGHTS)
    np.testing.assert_allclose(fit.coef.to_numpy(), base.coef.to_numpy(), rtol=1e-12)
    assert fit.lnl == pytest.approx(base.lnl, rel=1e-12)


def test_string_binomial_response_models_the_second_level_in_r_order(pisa):
    data = pisa.assign(result=np.where(pisa["pv1math"] > 500, "Yes", "no"))
    fit = wemix_nb.mix("result ~ escs + (1|schoolid)", data, weights=WEIGHTS, family="binomial", nquad=1)
    assert fit.frame.response_levels == ("no", "Yes")  # R: factor levels sorted case-insensitively
    assert fit.coef["escs"] > 0  # P(Yes) rises with escs
