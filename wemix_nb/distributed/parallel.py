"""Many fits at once: local worker processes or a Dask cluster.

:func:`map_fits` runs one function over many ``(data, *arguments)`` tasks -- plausible values, a
grid of specifications, replicate weights -- on local processes (``concurrent.futures``) or on a
Dask ``distributed.Client``. Every data set is shipped to each worker once (not once per task),
the tasks run the same computations as in the calling process so the results are identical to a
sequential run, and warnings raised in the workers are re-raised in the caller.

The function must be defined at module level (worker processes import it by name). This module
knows nothing of what the tasks fit, so any stage above it can use it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from wemix_nb._progress import progress_bar
from wemix_nb.errors import ArgumentError

# data sets of the current worker process, keyed by their position in the caller's list
_WORKER_DATA: dict[int, pd.DataFrame] = {}


def _split_data(tasks: Sequence[tuple]) -> tuple[list[pd.DataFrame], list[int], list[tuple]]:
    """Unique data sets (by identity), the data key of each task, and the tasks' other arguments."""
    datasets: list[pd.DataFrame] = []
    seen: dict[int, int] = {}
    keys, arguments = [], []
    for data, *rest in tasks:
        if id(data) not in seen:
            seen[id(data)] = len(datasets)
            datasets.append(data)
        keys.append(seen[id(data)])
        arguments.append(tuple(rest))
    return datasets, keys, arguments


def _run(func: Callable, arguments: tuple, data: pd.DataFrame):
    """One task; returns its result and the warnings it raised (to re-raise in the caller)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func(data, *arguments)
    return result, [(w.category, str(w.message)) for w in caught]


def _init_worker(datasets: list[pd.DataFrame]) -> None:
    _WORKER_DATA.clear()
    _WORKER_DATA.update(enumerate(datasets))


def _run_keyed(func: Callable, arguments: tuple, key: int):
    return _run(func, arguments, _WORKER_DATA[key])


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


def _check_arguments(client: Any, processes: Any, progress: Any, desc: Any) -> None:
    if client is not None and not (hasattr(client, "scatter") and hasattr(client, "map")):
        raise ArgumentError(f"client must be a Dask distributed.Client, got {type(client).__name__}.")
    if processes is not None and (
        isinstance(processes, bool) or not isinstance(processes, int | np.integer) or processes < 1
    ):
        raise ArgumentError(f"processes must be a positive integer or None; got {processes!r}.")
    if progress is not None and not isinstance(progress, bool | np.bool_):
        raise ArgumentError(f"progress must be True, False or None; got {progress!r}.")
    if not isinstance(desc, str):
        raise ArgumentError(f"desc must be a string, got {desc!r}.")


def map_fits(
    func: Callable,
    tasks: Sequence[tuple],
    client: Any = None,
    processes: int | None = None,
    progress: bool | None = None,
    desc: str = "fits",
    delay: float = 0.0,
) -> list:
    """Run ``func(data, *arguments)`` for every task ``(data, *arguments)``, in parallel.

    Parameters
    ----------
    func
        A module-level function (worker processes import it by name).
    tasks
        ``(data, *arguments)`` tuples; tasks sharing a data object (by identity) ship it once.
    client
        A Dask ``distributed.Client`` to run on (each data set is scattered once); ``None``: local
        worker processes.
    processes
        Number of local worker processes (default: one per CPU, at most one per task). ``1`` runs
        sequentially in this process. Ignored when ``client`` is given.
    progress
        Show a progress bar (``None``: only in an interactive session).
    desc
        Label of the progress bar.
    delay
        Seconds before the bar appears (a run that finishes sooner shows none).

    Returns
    -------
    list
        The results in the order of ``tasks``; warnings raised by the tasks are re-raised here.
    """
    _check_arguments(client, processes, progress, desc)
    datasets, keys, arguments = _split_data(tasks)
    n = len(arguments)
    results: list = [None] * n
    if n == 0:
        return results
    with progress_bar(n, desc, progress, delay=delay) as bar:
        if client is not None:
            _map_dask(client, func, datasets, keys, arguments, results, bar)
        else:
            workers = min(n, int(processes) if processes is not None else (os.cpu_count() or 1))
            if workers <= 1:
                for i, (args, key) in enumerate(zip(arguments, keys, strict=True)):
                    results[i] = _run(func, args, datasets[key])
                    bar.update()
            else:
                _map_local(workers, func, datasets, keys, arguments, results, bar)
    out = []
    for result, caught in results:
        _reraise(caught)
        out.append(result)
    return out


def _map_local(workers, func, datasets, keys, arguments, results, bar) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_init_worker, initargs=(datasets,)
    ) as pool:
        with _SingleThreadedChildren():  # the workers start with the first submissions
            futures = {
                pool.submit(_run_keyed, func, args, key): i
                for i, (args, key) in enumerate(zip(arguments, keys, strict=True))
            }
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _map_dask(client, func, datasets, keys, arguments, results, bar) -> None:
    try:
        from distributed import as_completed
    except ImportError as exc:  # pragma: no cover - a client implies distributed
        raise ArgumentError(
            "client= needs the 'distributed' package (pip install 'wemix_nb[parallel]')."
        ) from exc
    scattered = client.scatter(datasets, broadcast=False, hash=False)
    futures = client.map(
        _run, [func] * len(arguments), arguments, [scattered[key] for key in keys], pure=False
    )
    position = {future.key: i for i, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            results[position[future.key]] = future.result()
            bar.update()
    except BaseException:
        client.cancel(futures)
        raise
