"""fit_many on local processes and on a Dask cluster: results identical to sequential fits."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from reference import pisa_with_plausible_values

import wemix_nb
from wemix_nb._progress import _NoBar, progress_bar, wants_progress

WEIGHTS = ["w_fstuwt", "w_fschwt"]
RHS = "escs + st04q01 + (1|schoolid)"


@pytest.fixture(scope="module")
def pisa_pv() -> pd.DataFrame:
    return pisa_with_plausible_values(4, seed=11)


@pytest.fixture(scope="module")
def specs(pisa_pv):
    return [{"formula": f"pv{k}math ~ {RHS}", "data": pisa_pv, "weights": WEIGHTS} for k in range(1, 5)]


@pytest.fixture(scope="module")
def sequential(specs):
    return wemix_nb.fit_many(specs, processes=1)


def assert_same(a: wemix_nb.MixResult, b: wemix_nb.MixResult) -> None:
    pd.testing.assert_series_equal(a.coef, b.coef, rtol=0, atol=0)
    pd.testing.assert_frame_equal(a.cov_mat, b.cov_mat, rtol=0, atol=0)
    pd.testing.assert_series_equal(a.vars, b.vars, rtol=0, atol=0)
    assert a.lnl == b.lnl


def test_pickle_round_trip(sequential, pisa_pv):
    fit = sequential[0]
    back = pickle.loads(pickle.dumps(fit))
    assert_same(fit, back)
    assert back.frame is not None
    pd.testing.assert_series_equal(back.predict(pisa_pv.head(20)), fit.predict(pisa_pv.head(20)))


def test_local_processes_equal_sequential(specs, sequential):
    parallel = wemix_nb.fit_many(specs, processes=2)
    assert len(parallel) == len(sequential)
    for a, b in zip(parallel, sequential, strict=True):
        assert_same(a, b)


def test_spec_forms_and_worker_warnings(pisa_pv):
    holes = pisa_pv.copy()
    holes.loc[holes.index[:10], "escs"] = np.nan
    specs = [(f"pv1math ~ {RHS}", holes, {"weights": WEIGHTS}), (f"pv2math ~ {RHS}", holes)]
    with pytest.warns(wemix_nb.errors.DroppedRowsWarning):
        fits = wemix_nb.fit_many(specs, processes=2)
    assert fits[0].nobs == len(holes) - 10
    assert fits[1].options["weights"] is None
    with pytest.raises(wemix_nb.errors.ArgumentError):
        wemix_nb.fit_many([("only a formula",)])
    with pytest.raises(wemix_nb.errors.ArgumentError):
        wemix_nb.fit_many([{"formula": "y ~ x"}])
    assert wemix_nb.fit_many([]) == []


def test_worker_errors_propagate(pisa_pv):
    with pytest.raises(wemix_nb.errors.ColumnNotFoundError):
        wemix_nb.fit_many(
            [{"formula": f"nope ~ {RHS}", "data": pisa_pv, "weights": WEIGHTS}] * 2, processes=2
        )


def test_pv_with_n_jobs(pisa_pv):
    seq = wemix_nb.mix(f"pv{{1..4}}math ~ {RHS}", pisa_pv, weights=WEIGHTS)
    par = wemix_nb.mix(f"pv{{1..4}}math ~ {RHS}", pisa_pv, weights=WEIGHTS, n_jobs=2)
    assert_same(seq, par)
    pd.testing.assert_frame_equal(seq.rubin, par.rubin)


def test_progress_switch(capsys):
    assert not wants_progress(False)
    assert not wants_progress(None)  # pytest captures stderr: not interactive
    assert isinstance(progress_bar(3, "x", progress=False), _NoBar)
    pytest.importorskip("tqdm")
    with progress_bar(3, "fits", progress=True) as bar:
        bar.update(3)
    assert "fits" in capsys.readouterr().err


def test_dask_cluster_equals_sequential(specs, sequential, pisa_pv):
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's port / resource warnings
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
        client = distributed.Client(cluster)
    try:
        fits = wemix_nb.fit_many(specs, client=client)
        for a, b in zip(fits, sequential, strict=True):
            assert_same(a, b)
        pv = wemix_nb.mix(f"pv{{1..4}}math ~ {RHS}", pisa_pv, weights=WEIGHTS, client=client)
        for a, b in zip(pv.fits, sequential, strict=True):
            assert_same(a, b)
        # replicate fits: the same stacks of replicates on the workers as here
        design = wemix_nb.datasets.pisa2012_like(design=True)
        replicates = {"weights": WEIGHTS, "replicate_weights": "W_FSTR{1..12}", "replicate_method": "brr"}
        on_dask = wemix_nb.mix("PV{1..2}MATH ~ escs + (1|schoolid)", design, client=client, **replicates)
        here = wemix_nb.mix("PV{1..2}MATH ~ escs + (1|schoolid)", design, **replicates)
        pd.testing.assert_frame_equal(on_dask.replicates, here.replicates)
        pd.testing.assert_frame_equal(on_dask.cov_mat, here.cov_mat)
    finally:
        client.close()
        cluster.close()
