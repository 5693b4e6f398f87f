"""``python -m wemix_nb``: fit the built-in examples and print their summaries."""

from __future__ import annotations

import time

from wemix_nb import datasets, mix


def main() -> None:
    sleep = datasets.sleepstudy()
    start = time.perf_counter()
    fit = mix("Reaction ~ Days + (1 + Days | Subject)", sleep)
    print(f"sleepstudy, unweighted random slope model ({time.perf_counter() - start:.3f} s)")
    print(fit.summary() if hasattr(fit, "summary") else fit)
    pisa = datasets.pisa2012_like()
    start = time.perf_counter()
    fit = mix(
        "pv1math ~ st29q03 + sc14q02 + st04q01 + escs + (1 | schoolid)",
        pisa,
        weights=["w_fstuwt", "w_fschwt"],
    )
    print(f"\npisa2012_like, weighted random intercept model ({time.perf_counter() - start:.3f} s)")
    print(fit.summary() if hasattr(fit, "summary") else fit)


if __name__ == "__main__":
    main()
