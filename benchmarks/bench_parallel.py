"""Speed-up of 10 plausible-value fits on 2 local worker processes (and 2 Dask workers) vs sequential.

    python benchmarks/bench_parallel.py [--rows-factor 4] [--dask]

The data are pisa2012_like with pv2..pv10math = pv1math + N(0, 20^2); ``--rows-factor k`` stacks k
copies of the schools (new school ids) to make each fit heavier. Times are the best of 3 runs
(the local pool is started inside the timed call, as a user would run it).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import wemix_nb


def make_data(factor: int) -> pd.DataFrame:
    base = wemix_nb.datasets.pisa2012_like()
    copies = []
    for k in range(factor):
        part = base.copy()
        part["schoolid"] = part["schoolid"] + 10_000 * k
        copies.append(part)
    data = pd.concat(copies, ignore_index=True)
    rng = np.random.default_rng(1)
    for k in range(2, 11):
        data[f"pv{k}math"] = data["pv1math"] + rng.normal(0, 20, len(data))
    return data


def best_of(fn, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-factor", type=int, default=1)
    parser.add_argument("--dask", action="store_true", help="also time a LocalCluster with 2 workers")
    parser.add_argument("--formula-rhs", default="escs + st04q01 + sc14q02 + (1 + escs|schoolid)")
    args = parser.parse_args()
    data = make_data(args.rows_factor)
    formula = f"pv{{1..10}}math ~ {args.formula_rhs}"
    weights = ["w_fstuwt", "w_fschwt"]
    print(f"{len(data)} rows, {data['schoolid'].nunique()} schools, 10 PVs; {os.cpu_count()} CPUs")
    print(f"model: {formula}")

    def sequential():
        return wemix_nb.mix(formula, data, weights=weights, progress=False)

    def local():
        return wemix_nb.mix(formula, data, weights=weights, n_jobs=2, progress=False)

    seq = sequential()
    assert np.array_equal(seq.coef, local().coef)
    t_seq = best_of(sequential)
    t_loc = best_of(local)
    print(f"sequential            {t_seq:8.3f} s")
    print(f"2 local processes     {t_loc:8.3f} s   speed-up {t_seq / t_loc:5.2f}x")
    if args.dask:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):

            def on_dask():
                return wemix_nb.mix(formula, data, weights=weights, client=client, progress=False)

            assert np.array_equal(seq.coef, on_dask().coef)
            t_dask = best_of(on_dask)
            print(f"2 Dask workers        {t_dask:8.3f} s   speed-up {t_seq / t_dask:5.2f}x")


if __name__ == "__main__":
    main()
