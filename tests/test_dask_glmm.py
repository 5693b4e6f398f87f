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
