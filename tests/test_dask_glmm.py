"""mix_dask for two-level GLMMs: the partitions keep their rows and modes, the driver optimises;
the fit equals the pandas fit."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_large import assert_equal_fits, assert_equal_rows

import wemix_nb

dd = pytest.importorskip("dask.dataframe")


def two_level(n_groups=60, seed=11) -> pd.DataFrame:
    """Unequal groups, a binary and a count response, weights at both levels."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 15, n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    x = rng.normal(size=len(g))
    u = rng.normal(0.0, 0.8, n_groups)[g]
    slope = rng.normal(0.0, 0.3, n_groups)[g]
    w2 = rng.uniform(1.0, 4.0, n_groups)[g]
    return pd.DataFrame(
        {
            "g": 1000 + 7 * g,
            "x": x,
            "yb": (rng.random(len(g)) < 1 / (1 + np.exp(-(-0.2 + 0.7 * x + u)))).astype(float),
            "yc": rng.poisson(np.exp(0.3 + 0.4 * x + 0.5 * u + slope * x)).astype(float),
            "w2": w2,
            "w1": w2 * rng.uniform(1.0, 2.0, len(g)),
        },
        index=rng.permutation(len(g)) + 1000,  # row labels that are not positions
    )


def by_group(data: pd.DataFrame, n: int):
    """Partitions of whole groups, in a shuffled group order."""
    groups = np.random.default_rng(5).permutation(data["g"].unique())
    parts = [data[data["g"].isin(chunk)] for chunk in np.array_split(groups, n)]
    return dd.concat([dd.from_pandas(part, npartitions=1) for part in parts])


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return two_level()


def test_binomial_on_a_local_cluster_equals_pandas(data):
    distributed = pytest.importorskip("distributed")
    formula = "yb ~ x + (1|g)"
    ref = wemix_nb.mix(formula, data, weights=["w1", "w2"], family="binomial", nquad=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's port / resource warnings
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
        client = distributed.Client(cluster)
    try:
        fit = wemix_nb.mix_dask(formula, by_group(data, 4), ["w1", "w2"], family="binomial", nquad=7)
        assert_equal_fits(fit, ref)
        np.testing.assert_allclose(fit.details.fit.scores, ref.details.fit.scores, rtol=1e-6, atol=1e-9)
        assert fit.converged and fit.nquad == 7
        assert_equal_rows(fit, ref)
        assert not client.futures  # the partitions were released
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize(
    "formula,family,kwargs",
    [
        ("yc ~ x + (1 + x|g)", "poisson", {"nquad": 5}),
        ("yb ~ x + (1|g)", "binomial", {"nquad": 1, "laplace_rounding": True}),
        ("yb ~ x + (1|g)", "binomial", {"nquad": 3, "link": "probit", "start": [0.0, 0.5, 1.0]}),
    ],
)
def test_in_process_partitions_equal_pandas(data, formula, family, kwargs):
    """Without a distributed client the partitions stay in this process; the Poisson random
    slope, WeMix's rounded Laplace objective and user start values take the same paths."""
    ref = wemix_nb.mix(formula, data, weights=["w1", "w2"], family=family, **kwargs)
    fit = wemix_nb.mix_dask(
        formula,
        by_group(data, 3),
        ["w1", "w2"],
        family=family,
        compute_kwargs={"scheduler": "sync"},
        **kwargs,
    )
    assert_equal_fits(fit, ref)
    assert_equal_rows(fit, ref)
    lazy = {kind: fit.residuals(type=kind) for kind in ("pearson", "deviance", "working")}
    lazy["predicted"] = fit.predict(type="response")
    expected = {kind: ref.residuals(type=kind) for kind in ("pearson", "deviance", "working")}
    expected["predicted"] = ref.predict(type="response")
    for kind, series in lazy.items():
        assert isinstance(series, dd.Series), kind
        computed = series.compute(scheduler="sync").sort_index()
        np.testing.assert_allclose(computed, expected[kind].sort_index(), rtol=1e-7, atol=1e-10, err_msg=kind)
        assert computed.name == expected[kind].name


def test_missing_rows_and_empty_partitions(data):
    data = data.copy()
    data.loc[data.index[[2, 9]], "x"] = np.nan
    parts = [data[data["g"] < 1200], data.iloc[:0], data[data["g"] >= 1200]]
    ddf = dd.concat([dd.from_pandas(part, npartitions=1) for part in parts])
    with pytest.warns(wemix_nb.errors.DroppedRowsWarning):
        ref = wemix_nb.mix("yb ~ x + (1|g)", data, weights=["w1", "w2"], family="binomial", nquad=3)
    with pytest.warns(wemix_nb.errors.DroppedRowsWarning):
        fit = wemix_nb.mix_dask(
            "yb ~ x + (1|g)",
            ddf,
            ["w1", "w2"],
            family="binomial",
            nquad=3,
            compute_kwargs={"scheduler": "sync"},
        )
    assert_equal_fits(fit, ref)
    assert fit.frame.n_dropped_missing == 2
    assert len(fit.resid.compute(scheduler="sync")) == len(ref.resid)


def test_refusals(data):
    three = data.assign(region=data["g"] // 100)
    with pytest.raises(wemix_nb.errors.FormulaError, match="two levels"):
        wemix_nb.mix_dask(
            "yb ~ x + (1|region) + (1|g)",
            by_group(three, 2),
            family="binomial",
            compute_kwargs={"scheduler": "sync"},
        )
    bad = data.assign(yb=data["yb"] * 2)
    with pytest.raises(wemix_nb.errors.DataError, match="'yb'"):
        wemix_nb.mix_dask(
            "yb ~ x + (1|g)", by_group(bad, 2), family="binomial", compute_kwargs={"scheduler": "sync"}
        )
    split = dd.from_pandas(data.sample(frac=1, random_state=2), npartitions=3)
    with pytest.raises(wemix_nb.errors.NestingError, match="more than one partition"):
        wemix_nb.mix_dask("yb ~ x + (1|g)", split, family="binomial", compute_kwargs={"scheduler": "sync"})


def test_heap_temporaries_nest_and_restore():
    """The allocator setting of Dask workers (MALLOC_TRIM_THRESHOLD_) is lifted inside the block,
    nested blocks share it, and it is restored after; without the variable nothing happens. (In a
    child process: the setting is process-wide.)"""
    code = """
import os, numpy as np
from wemix_nb.distributed import _allocator as a
with a.heap_temporaries():
    assert a._depth == 0
os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"
with a.heap_temporaries():
    with a.heap_temporaries():
        assert a._depth == (0 if a._LIBC is None else 2)
        np.exp(np.ones(1 << 20))
assert a._depth == 0
print("ok")
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


# -- the checks of degenerate models, cbind() and offsets, from per-partition summaries --------


def _sync(**options):
    return {"compute_kwargs": {"scheduler": "sync"}, **options}


def _constant_groups(n_groups: int = 30, size: int = 6, mixed: int = 0, seed: int = 3) -> pd.DataFrame:
    """Every group's binary outcome constant (0 or 1), except the first ``mixed`` groups."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    y = (rng.random(n_groups) < 0.4).astype(float)[g]
    for k in range(mixed):
        y[g == k] = np.arange(size) % 2
    return pd.DataFrame({"y": y, "x": rng.normal(size=len(g)), "g": g, "w1": 1.0, "w2": 1.0})


def test_group_separation_is_refused_on_partitions():
    data = _constant_groups()
    with pytest.raises(wemix_nb.errors.DataError, match="Every group of 'g'.*constant outcome"):
        wemix_nb.mix_dask("y ~ x + (1|g)", by_group(data, 3), ["w1", "w2"], **_sync(family="binomial"))


def test_running_away_variance_is_not_converged_on_partitions():
    data = _constant_groups(mixed=2)
    with pytest.warns(wemix_nb.errors.ConvergenceWarning, match="running away") as record:
        fit = wemix_nb.mix_dask("y ~ x + (1|g)", by_group(data, 3), ["w1", "w2"], **_sync(family="binomial"))
    assert not fit.converged and "running away" in fit.message
    assert any("28 of the 30 groups" in str(w.message) for w in record)


def test_binary_groups_of_one_row_are_refused_on_partitions():
    data = two_level().groupby("g").head(1)
    with pytest.raises(wemix_nb.errors.DataError, match="single row .* binary"):
        wemix_nb.mix_dask("yb ~ x + (1|g)", by_group(data, 3), ["w1", "w2"], **_sync(family="binomial"))


@pytest.mark.parametrize("offset", ["", " + offset(o)"])
def test_cbind_and_offsets_on_partitions_equal_pandas(offset):
    """A cbind() response on partitions (its partitions were dropped as empty, 'No rows are left'),
    its Pearson and deviance residuals scaled by sqrt(trials); offsets in the rows' predictor."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(40), 5)
    x = rng.normal(size=200)
    n = rng.integers(1, 8, 200)
    k = rng.binomial(n, 1 / (1 + np.exp(-(0.3 * x + rng.normal(scale=0.7, size=40)[g]))))
    data = pd.DataFrame(
        {"k": k, "n": n, "x": x, "g": g, "o": rng.normal(scale=0.3, size=200), "w1": 1.0, "w2": 1.0}
    )
    formula = f"cbind(k, n - k) ~ x{offset} + (1|g)"
    ref = wemix_nb.mix(formula, data, ["w1", "w2"], family="binomial", nquad=5)
    fit = wemix_nb.mix_dask(formula, by_group(data, 3), ["w1", "w2"], **_sync(family="binomial", nquad=5))
    assert_equal_fits(fit, ref)
    assert_equal_rows(fit, ref)
    for kind in ("response", "pearson", "deviance", "working"):
        lazy = fit.residuals(kind).compute(scheduler="sync").sort_index()
        np.testing.assert_allclose(
            lazy, ref.residuals(kind).sort_index(), rtol=1e-8, atol=1e-12, err_msg=kind
        )
    # R's Pearson residual of a proportion of n trials: (y - mu) sqrt(n / (mu (1 - mu)))
    mu = fit.fitted.compute(scheduler="sync").sort_index()
    pearson = (data["k"] / data["n"] - mu) * np.sqrt(data["n"] / (mu * (1 - mu)))
    np.testing.assert_allclose(fit.residuals("pearson").compute(scheduler="sync").sort_index(), pearson)
