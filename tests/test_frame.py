"""The model frame: what rows and columns a fit uses."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb._frame import build_model_frame
from wemix_nb.errors import DroppedRowsWarning

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
        a = wemix_nb.mix("pv1math ~ escs + (1|schoolid/klass)", data)
        b = wemix_nb.mix("pv1math ~ escs + (1|schoolid) + (1|schoolid:klass)", data)
    assert a.lnl == pytest.approx(b.lnl, rel=1e-12)
    assert a.ngroups["schoolid:klass"] == data.groupby(["schoolid", "klass"]).ngroups
    assert "1:0" in a.ranef["schoolid:klass"].index
