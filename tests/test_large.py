"""mix_dask: the same fit from a Dask DataFrame, partition by partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import wemix_nb

dd = pytest.importorskip("dask.dataframe")

WEIGHTS = ["w_fstuwt", "w_fschwt"]


@pytest.fixture(scope="module")
def pisa() -> pd.DataFrame:
    return wemix_nb.datasets.pisa2012_like()


def by_school(data: pd.DataFrame, n: int):
    """Partitions of whole schools, in a shuffled school order."""
    schools = np.random.default_rng(5).permutation(data["schoolid"].unique())
    parts = [data[data["schoolid"].isin(chunk)] for chunk in np.array_split(schools, n)]
    return dd.concat([dd.from_pandas(part, npartitions=1) for part in parts])


def assert_equal_fits(a, b, rtol=1e-8):
    for attribute in ("coef", "SE", "vars", "theta"):
        np.testing.assert_allclose(getattr(a, attribute), getattr(b, attribute), rtol=rtol, err_msg=attribute)
    np.testing.assert_allclose(a.cov_mat, b.cov_mat, rtol=rtol)
    np.testing.assert_allclose(a.varDF["SEvcov"], b.varDF["SEvcov"], rtol=1e-6)
    assert a.lnl == pytest.approx(b.lnl, rel=1e-12)
    pd.testing.assert_series_equal(a.ngroups, b.ngroups)
    pd.testing.assert_frame_equal(a.wgtStats, b.wgtStats, rtol=1e-12)
    for name, table in b.ranef.items():
        pd.testing.assert_frame_equal(a.ranef[name], table, rtol=1e-6, atol=1e-8)


def assert_equal_rows(a, b, rtol=1e-8):
    """``resid`` and ``fitted`` of a Dask fit are Dask Series equal to the pandas fit's."""
    names = ["resid", "fitted"] + (["linear_predictor"] if b.family is not None else [])
    for name in names:
        lazy = getattr(a, name)
        assert isinstance(lazy, dd.Series), name
        computed = lazy.compute(scheduler="sync").sort_index()
        expected = getattr(b, name).sort_index()
        pd.testing.assert_index_equal(computed.index, expected.index, exact="equiv")
        np.testing.assert_allclose(
            computed.to_numpy(), expected.to_numpy(), rtol=rtol, atol=1e-10, err_msg=name
        )


@pytest.mark.parametrize(
    "formula",
    [
        "pv1math ~ escs + st04q01 + (1|schoolid)",
        "pv1math ~ escs + st04q01 + sc14q02 + (1 + escs|schoolid)",
    ],
)
def test_equals_pandas_fit(pisa, formula):
    ref = wemix_nb.mix(formula, pisa, weights=WEIGHTS)
    fit = wemix_nb.mix_dask(formula, by_school(pisa, 4), WEIGHTS, compute_kwargs={"scheduler": "sync"})
    assert_equal_fits(fit, ref)
    assert_equal_rows(fit, ref)
    pearson = fit.residuals(type="pearson").compute(scheduler="sync").sort_index()
    pd.testing.assert_series_equal(pearson, ref.residuals(type="pearson").sort_index(), rtol=1e-8)
    pd.testing.assert_series_equal(fit.predict(pisa.head(50)), ref.predict(pisa.head(50)), rtol=1e-8)


def test_shuffled_partitions_and_threads(pisa):
    formula = "pv1math ~ escs + (1|schoolid)"
    ref = wemix_nb.mix(formula, pisa, weights=WEIGHTS)
    ddf = dd.from_pandas(pisa, npartitions=3).shuffle(on="schoolid", npartitions=3)
    assert_equal_fits(wemix_nb.mix_dask(formula, ddf, WEIGHTS), ref)


def test_three_levels_and_missing_rows():
    data = wemix_nb.datasets.sleepstudy()
    data["grp"] = (data["Subject"].cat.codes // 6).astype(int)
    data.loc[[3, 50], "Reaction"] = np.nan
    formula = "Reaction ~ Days + (1|grp) + (1|grp:Subject)"
    with pytest.warns(wemix_nb.errors.DroppedRowsWarning):
        ref = wemix_nb.mix(formula, data)
    parts = [data[data["grp"] == g] for g in range(3)]
    ddf = dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])
    with pytest.warns(wemix_nb.errors.DroppedRowsWarning):
        fit = wemix_nb.mix_dask(formula, ddf, compute_kwargs={"scheduler": "sync"})
    assert_equal_fits(fit, ref, rtol=1e-7)
    assert fit.frame.n_dropped_missing == 2


def test_split_groups_are_refused(pisa):
    ddf = dd.from_pandas(pisa.sample(frac=1, random_state=1), npartitions=3)
    with pytest.raises(wemix_nb.errors.NestingError, match="more than one partition"):
        wemix_nb.mix_dask("pv1math ~ escs + (1|schoolid)", ddf, WEIGHTS, compute_kwargs={"scheduler": "sync"})
    with pytest.raises(wemix_nb.errors.ArgumentError):
        wemix_nb.mix_dask("pv1math ~ escs + (1|schoolid)", pisa, WEIGHTS)


def test_rank_deficiency_of_the_whole_design(pisa):
    data = pisa.assign(escs2=2 * pisa["escs"] + 1)
    with pytest.raises(wemix_nb.errors.RankDeficiencyError, match="escs"):
        wemix_nb.mix_dask(
            "pv1math ~ escs + escs2 + (1|schoolid)",
            by_school(data, 2),
            WEIGHTS,
            compute_kwargs={"scheduler": "sync"},
        )


def test_levels_are_ordered_by_the_whole_data_not_by_a_partition():
    """A partition holding one school with one class cannot tell the levels apart by itself."""
    rng = np.random.default_rng(0)
    rows = []
    for school in range(7):
        u = rng.normal()
        for klass in range(1 if school == 6 else 2):
            v = 0.5 * rng.normal()
            for _ in range(8):
                x = rng.normal()
                rows.append((school, f"{school}_{klass}", x, 1 + x + u + v + rng.normal()))
    data = pd.DataFrame(rows, columns=["school", "klass", "x", "y"])
    formula = "y ~ x + (1|school) + (1|klass)"
    ddf = dd.concat(
        [dd.from_pandas(part, npartitions=1) for part in (data[data.school < 6], data[data.school == 6])]
    )
    ours = wemix_nb.mix_dask(formula, ddf)
    reference = wemix_nb.mix(formula, data)
    assert ours.lnl == pytest.approx(reference.lnl, rel=1e-12)
    np.testing.assert_allclose(ours.coef.to_numpy(), reference.coef.to_numpy(), rtol=1e-10)
