"""The DataFrame.wemix accessor and the per-level weight summary behind it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _html_tables import number, parse_tables, shown

import wemix_nb
from wemix_nb.errors import ArgumentError, ColumnNotFoundError, WeightError
from wemix_nb.survey.describe import describe_weights, weight_stats

WEIGHTS = ["w_fstuwt", "w_fschwt"]


@pytest.fixture(scope="module")
def pisa():
    return wemix_nb.datasets.pisa2012_like()


def test_accessor_is_registered_on_import(pisa):
    assert hasattr(pd.DataFrame, "wemix")
    assert type(pisa.wemix).__name__ == "WemixAccessor"


def test_accessor_mix_equals_mix(pisa):
    formula = "pv1math ~ escs + (1|schoolid)"
    via_accessor = pisa.wemix.mix(formula, weights=WEIGHTS)
    direct = wemix_nb.mix(formula, pisa, WEIGHTS)
    pd.testing.assert_series_equal(via_accessor.coef, direct.coef)
    assert via_accessor.lnl == direct.lnl


def test_accessor_mix_passes_options(pisa):
    fit = pisa.wemix.mix("pv1math ~ escs + (1|schoolid)", weights=WEIGHTS, center_grand="~ escs")
    direct = wemix_nb.mix("pv1math ~ escs + (1|schoolid)", pisa, WEIGHTS, center_grand="~ escs")
    pd.testing.assert_series_equal(fit.coef, direct.coef)
    assert fit.options["center_grand"] == "~ escs"
    unweighted = wemix_nb.datasets.sleepstudy().wemix.mix("Reaction ~ Days + (1|Subject)")
    assert unweighted.wgtStats["max"].max() == 1.0


def test_weight_stats_definitions():
    w = np.array([1.0, 2.0, 3.0, 6.0])
    stats = weight_stats(w)
    cv = w.std(ddof=0) / w.mean()
    assert stats["n"] == 4 and stats["sum"] == 12.0 and stats["mean"] == 3.0
    assert stats["min"] == 1.0 and stats["max"] == 6.0
    assert stats["cv"] == pytest.approx(cv)
    assert stats["deff"] == pytest.approx(1 + cv**2)
    assert stats["deff"] == pytest.approx(len(w) * np.sum(w**2) / np.sum(w) ** 2)
    assert stats["n_eff"] == pytest.approx(np.sum(w) ** 2 / np.sum(w**2))
    assert weight_stats(np.ones(5))["deff"] == pytest.approx(1.0)


def test_describe_weights_per_level(pisa):
    summary = pisa.wemix.describe_weights(weights=WEIGHTS, groups=["schoolid"])
    table = summary.table
    assert list(table["level"]) == [1, 2] and list(table["unit"]) == ["rows", "schoolid"]
    assert list(table["n"]) == [len(pisa), pisa["schoolid"].nunique()]
    school_w = pisa.groupby("schoolid")["w_fschwt"].first().to_numpy()
    row2 = table.iloc[1]
    assert row2["sum"] == pytest.approx(school_w.sum())
    assert row2["deff"] == pytest.approx(len(school_w) * np.sum(school_w**2) / school_w.sum() ** 2)
    assert row2["cv"] == pytest.approx(school_w.std() / school_w.mean())
    # the same numbers as the fit's wgtStats
    fit = pisa.wemix.mix("pv1math ~ escs + (1|schoolid)", weights=WEIGHTS)
    for k, name in ((1, "sum"), (1, "max"), (2, "mean"), (2, "min")):
        assert table.iloc[k - 1][name] == pytest.approx(fit.wgtStats.loc[k, name])
    assert summary.n_dropped == 0
    assert "Survey weights by level" in repr(summary)


def test_describe_weights_html(pisa):
    summary = describe_weights(pisa, WEIGHTS, ["schoolid"])
    (table,) = parse_tables(summary._repr_html_())
    assert table.title == "Survey weights by level"
    assert table.header == [
        "Level",
        "Unit",
        "Weight",
        "N",
        "Sum",
        "Mean",
        "Min",
        "Max",
        "CV",
        "Design effect",
        "Effective n",
    ]
    for shown_row, row in zip(table.rows, summary.table.itertuples(), strict=True):
        assert int(number(shown_row[3])) == row.n
        assert number(shown_row[4]) == shown(row.sum, 3)
        assert number(shown_row[8]) == shown(row.cv, 3)
        assert number(shown_row[9]) == shown(row.deff, 3)
        assert number(shown_row[10]) == shown(row.n_eff, 1)
    from great_tables import GT

    assert isinstance(summary.to_gt(), GT)


def test_describe_weights_drops_missing_and_checks_input(pisa):
    data = pisa.copy()
    data.loc[data.index[:3], "w_fstuwt"] = np.nan
    summary = data.wemix.describe_weights(weights=WEIGHTS, groups=["schoolid"])
    assert summary.n_dropped == 3 and summary.table.iloc[0]["n"] == len(pisa) - 3
    with pytest.raises(ArgumentError):
        pisa.wemix.describe_weights(weights=WEIGHTS)  # a group per level above 1 is needed
    with pytest.raises(ColumnNotFoundError):
        pisa.wemix.describe_weights(weights=["nope"])
    bad = pisa.copy()
    bad.loc[bad.index[0], "w_fschwt"] += 1.0
    with pytest.raises(WeightError, match="varies within 1 group"):
        bad.wemix.describe_weights(weights=WEIGHTS, groups=["schoolid"])
    neg = pisa.copy()
    neg.loc[neg.index[0], "w_fstuwt"] = -1.0
    with pytest.raises(WeightError):
        neg.wemix.describe_weights(weights=["w_fstuwt"])
