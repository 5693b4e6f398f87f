"""Many fits at once: local worker processes or a Dask cluster.

:func:`fit_many` runs a list of :func:`~wemix_nb.mix` calls -- plausible values, a grid of
specifications, bootstrap replicates -- on local processes (``concurrent.futures``) or on a Dask
``distributed.Client``. Every data set is shipped to each worker once (not once per fit), the
fits are the same computations as in the calling process so the results are identical to a
sequential run, and warnings raised in the workers are re-raised in the caller.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from wemix_nb._progress import progress_bar
from wemix_nb.errors import ArgumentError

# data sets of the current worker process, keyed by their position in the caller's list
_WORKER_DATA: dict[int, pd.DataFrame] = {}


def _normalise(spec: Any, position: int) -> dict:
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
    elif isinstance(spec, tuple | list) and len(spec) in (2, 3):
        kwargs = {"formula": spec[0], "data": spec[1], **(dict(spec[2]) if len(spec) == 3 else {})}
    else:
        raise ArgumentError(
            f"specs[{position}] must be a dict of mix() arguments or a (formula, data[, kwargs]) tuple; "
            f"got {type(spec).__name__}."
        )
    for key in ("formula", "data"):
        if key not in kwargs:
            raise ArgumentError(f"specs[{position}] has no {key!r}.")
    return kwargs


def _split_data(specs: Sequence[Any]) -> tuple[list[pd.DataFrame], list[int], list[dict]]:
    """Unique data sets (by identity), the data key of each spec, and the specs without data."""
    datasets: list[pd.DataFrame] = []
    seen: dict[int, int] = {}
    keys, calls = [], []
    for position, spec in enumerate(specs):
        kwargs = _normalise(spec, position)
        data = kwargs.pop("data")
        if id(data) not in seen:
            seen[id(data)] = len(datasets)
            datasets.append(data)
        keys.append(seen[id(data)])
        kwargs.setdefault("progress", False)  # no nested bars inside workers
        calls.append(kwargs)
    return datasets, keys, calls


def _run(kwargs: dict, data: pd.DataFrame):
    """One fit; returns the result and the warnings it raised (to re-raise in the caller)."""
    from wemix_nb.api import mix

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mix(data=data, **kwargs)
    return result, [(w.category, str(w.message)) for w in caught]


def _init_worker(datasets: list[pd.DataFrame]) -> None:
    _WORKER_DATA.clear()
    _WORKER_DATA.update(enumerate(datasets))


def _run_keyed(kwargs: dict, key: int):
    return _run(kwargs, _WORKER_DATA[key])


def _context():
    if sys.platform == "win32" or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    # a fork server that has imported wemix_nb forks cheap, thread-safe workers
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["wemix_nb"])
    return context


_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class _SingleThreadedChildren:
    """Start worker processes with one BLAS thread each (as Dask's nanny does).

    The fits batch many tiny matrix products; BLAS threads on top of worker processes only
    oversubscribe the CPUs. The variables are read when a child process starts NumPy (the fork
    server, started on first use, or a spawned worker); the caller's environment is restored after.
    """

    def __enter__(self):
        self.saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
        for name in _THREAD_VARIABLES:
            os.environ[name] = "1"
        return self

    def __exit__(self, *exc) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _reraise(caught) -> None:
    for category, message in caught:
        warnings.warn(message, category, stacklevel=3)


def fit_many(
    specs: Sequence[Mapping[str, Any] | tuple],
    client: Any = None,
    processes: int | None = None,
    progress: bool | None = None,
    *,
    desc: str = "fits",
) -> list:
    """Fit many models, in parallel.

    Parameters
    ----------
    specs
        One entry per fit: a dict of :func:`~wemix_nb.mix` keyword arguments (with ``formula``
        and ``data``), or a ``(formula, data)`` / ``(formula, data, kwargs)`` tuple.
    client
        A Dask ``distributed.Client``: the fits run on its workers (``client.map``; each data set
        is scattered once). ``None``: local worker processes.
    processes
        Number of local worker processes (default: one per CPU, at most one per fit). ``1`` fits
        sequentially in this process. Ignored when ``client`` is given.
    progress
        Show a progress bar (``None``: only in an interactive session).
    desc
        Label of the progress bar.

    Returns
    -------
    list of MixResult
        In the order of ``specs``; identical to fitting them one by one.

    Examples
    --------
    >>> specs = [{"formula": f"{pv} ~ escs + (1|schoolid)", "data": data,
    ...           "weights": ["w_fstuwt", "w_fschwt"]} for pv in pvs]
    >>> fits = wemix_nb.fit_many(specs, processes=4)
    >>> from distributed import Client
    >>> fits = wemix_nb.fit_many(specs, client=Client())
    """
    datasets, keys, calls = _split_data(specs)
    n = len(calls)
    results: list = [None] * n
    if n == 0:
        return results
    if processes is not None and (isinstance(processes, bool) or int(processes) < 1):
        raise ArgumentError(f"processes must be a positive integer or None; got {processes!r}.")
    with progress_bar(n, desc, progress) as bar:
        if client is not None:
            _fit_dask(client, datasets, keys, calls, results, bar)
        else:
            workers = min(n, int(processes) if processes is not None else (os.cpu_count() or 1))
            if workers <= 1:
                for i, (kwargs, key) in enumerate(zip(calls, keys, strict=True)):
                    results[i] = _run(kwargs, datasets[key])
                    bar.update()
            else:
                _fit_local(workers, datasets, keys, calls, results, bar)
    out = []
    for result, caught in results:
        _reraise(caught)
        out.append(result)
    return out


def _fit_local(workers, datasets, keys, calls, results, bar) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_init_worker, initargs=(datasets,)
    ) as pool:
        with _SingleThreadedChildren():  # the workers start with the first submissions
            futures = {
                pool.submit(_run_keyed, kwargs, key): i
                for i, (kwargs, key) in enumerate(zip(calls, keys, strict=True))
            }
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _fit_dask(client, datasets, keys, calls, results, bar) -> None:
    try:
        from distributed import as_completed
    except ImportError as exc:  # pragma: no cover - a client implies distributed
        raise ArgumentError(
            "client= needs the 'distributed' package (pip install 'wemix_nb[parallel]')."
        ) from exc
    scattered = client.scatter(datasets, broadcast=False, hash=False)
    futures = client.map(_run, calls, [scattered[key] for key in keys], pure=False)
    position = {future.key: i for i, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            results[position[future.key]] = future.result()
            bar.update()
    except BaseException:
        client.cancel(futures)
        raise
