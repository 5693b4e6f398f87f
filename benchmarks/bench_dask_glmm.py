"""A two-level binomial GLMM of a Dask DataFrame on a local cluster: time and memory per worker.

    python benchmarks/bench_dask_glmm.py [--rows 2000000] [--groups 40000] [--partitions 20]
                                         [--workers 2] [--nquad 13] [--compare]

The data are generated on the workers, partition by partition (whole groups in each; the layout of
``benchmarks/_data.py: two_level_sample``: unequal groups, weights at both levels), and fitted with
``wemix_nb.mix_dask(..., family="binomial")``, ``y ~ x1 + x2 + (1|g)``, standard errors included.
Prints the wall time of the fit, likelihood evaluations, and per worker process its peak resident
memory (its whole life: data, partitions, fit) and the CPU time it spent during the fit (less
sensitive to other load on the machine than wall times). ``--compare`` also fits the same data with
``wemix_nb.mix`` in this process and prints the largest relative differences.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wemix_nb  # noqa: E402


def make_partition(index: int, n_rows: int, n_groups: int) -> pd.DataFrame:
    """Partition ``index``: ``n_groups`` groups with ``n_rows`` rows in all (ids unique overall)."""
    rng = np.random.default_rng(1000 + index)
    sizes = rng.multinomial(n_rows - n_groups, np.full(n_groups, 1 / n_groups)) + 1
    g = np.repeat(np.arange(n_groups), sizes)
    n = len(g)
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, n).astype(float)
    eta = -0.4 + 0.6 * x1 - 0.3 * x2 + rng.normal(0.0, 0.8, n_groups)[g]
    w2 = rng.uniform(1.0, 5.0, n_groups)
    return pd.DataFrame(
        {
            "g": index * n_groups + g,
            "x1": x1,
            "x2": x2,
            "y": (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float),
            "w1": w2[g] * rng.uniform(1.0, 3.0, n),
            "w2": w2[g],
        }
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--groups", type=int, default=40_000)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nquad", type=int, default=13)
    parser.add_argument("--compare", action="store_true", help="also fit with mix() in this process")
    args = parser.parse_args()

    import dask.dataframe as dd
    import distributed

    parts = args.partitions
    meta = make_partition(0, 20, 2).iloc[:0]
    ddf = dd.from_map(
        make_partition, range(parts), n_rows=args.rows // parts, n_groups=args.groups // parts, meta=meta
    )
    formula, weights = "y ~ x1 + x2 + (1|g)", ["w1", "w2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's port / resource warnings
        cluster = distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(cluster)
    try:
        client.run(lambda: __import__("wemix_nb"))  # the workers' imports are not the fit's time
        print(
            f"{args.rows:,} rows, {args.groups:,} groups, {parts} partitions, {args.workers} workers x 1 "
            f"thread; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        cpu_before = client.run(_cpu_seconds)
        start = time.perf_counter()
        fit = wemix_nb.mix_dask(formula, ddf, weights, family="binomial", nquad=args.nquad, progress=False)
        seconds = time.perf_counter() - start
        peaks, cpu = client.run(_peak_rss_mb), client.run(_cpu_seconds)
        evaluations = fit.details.fit.n_evaluations
        print(f"fit (standard errors included): {seconds:.1f} s wall, {evaluations} evaluations")
        for address, peak in sorted(peaks.items()):
            print(
                f"  worker {address}: peak resident memory {peak:,.0f} MB, "
                f"{cpu[address] - cpu_before[address]:.1f} CPU s in the fit"
            )
        coef, variances = np.round(fit.coef.to_numpy(), 5), np.round(fit.vars.to_numpy(), 5)
        print(f"lnl {fit.lnl:.6f}; coef {coef}; vars {variances}")
        if args.compare:
            data = ddf.compute()
            start, cpu_start = time.perf_counter(), time.process_time()
            ref = wemix_nb.mix(
                formula, data, weights=weights, family="binomial", nquad=args.nquad, progress=False
            )
            wall, cpu_used = time.perf_counter() - start, time.process_time() - cpu_start
            print(f"mix() on the same data in this process: {wall:.1f} s wall, {cpu_used:.1f} CPU s")
            for name in ("coef", "SE", "vars"):
                a, b = getattr(fit, name).to_numpy(), getattr(ref, name).to_numpy()
                print(f"  max relative difference of {name}: {np.max(np.abs(a - b) / np.abs(b)):.1e}")
            print(f"  relative difference of lnl: {abs(fit.lnl - ref.lnl) / abs(ref.lnl):.1e}")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
