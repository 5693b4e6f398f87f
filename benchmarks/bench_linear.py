"""Speed of weighted linear fits (standard errors included), against the targets of the project.

Run: ``python benchmarks/bench_linear.py`` (add ``--quick`` to skip the 1,000,000-row case).
Each case runs in a fresh process so that peak memory is its own; the table reports the best of
five fits and its ratio to the target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

CASES = [
    # name, rows, groups, fixed effects, random slope, target seconds
    ("pisa2012_like, random intercept", None, None, None, False, 0.020),
    ("100,000 rows / 5,000 groups, random intercept", 100_000, 5_000, 2, False, 0.15),
    ("500,000 rows / 20,000 groups, random intercept", 500_000, 20_000, 2, False, 0.8),
    ("1,000,000 rows / 20,000 groups, 5 fixed, correlated slope", 1_000_000, 20_000, 5, True, 3.0),
]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {bench!r})
import wemix_nb
from _data import two_level_sample
rows, groups, n_fixed, slope = {args}
if rows is None:
    data = wemix_nb.datasets.pisa2012_like()
    formula = "pv1math ~ st29q03 + sc14q02 + st04q01 + escs + (1|schoolid)"
    weights = ["w_fstuwt", "w_fschwt"]
else:
    data = two_level_sample(rows, groups, n_fixed, slope)
    fixed = " + ".join(f"x{{j}}" for j in range(1, n_fixed))
    formula = f"y ~ {{fixed}} + " + ("(1 + x1|g)" if slope else "(1|g)")
    weights = ["w1", "w2"]
wemix_nb.mix(formula, data, weights=weights)  # warm-up
times = []
for _ in range(5):
    start = time.perf_counter()
    wemix_nb.mix(formula, data, weights=weights)
    times.append(time.perf_counter() - start)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": min(times), "peak_mb": peak_mb}}))
"""


def main() -> None:
    quick = "--quick" in sys.argv
    bench = str(Path(__file__).parent)
    print(f"{'case':60s} {'seconds':>9s} {'target':>8s} {'ratio':>7s} {'peak MB':>9s}")
    for name, rows, groups, n_fixed, slope, target in CASES:
        if quick and rows == 1_000_000:
            continue
        code = CHILD.format(bench=bench, args=(rows, groups, n_fixed, slope))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{name:60s} {result['seconds']:9.3f} {target:8.3f} {result['seconds'] / target:7.2f} "
            f"{result['peak_mb']:9.0f}"
        )
    time.sleep(0)


if __name__ == "__main__":
    main()
