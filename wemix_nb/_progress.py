"""Progress bars (tqdm.auto) for long runs: many fits, plausible values, slow GLMM fits.

``progress=None`` (the default everywhere) shows a bar only in an interactive session -- a
terminal on stderr or a Jupyter kernel -- and only if tqdm is installed; ``True`` forces it (when
tqdm is installed), ``False`` silences it.
"""

from __future__ import annotations

import sys


class _NoBar:
    """Does nothing; stands in for a tqdm bar when progress is off."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def in_jupyter() -> bool:
    """True inside a Jupyter (IPython kernel) session."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def interactive() -> bool:
    """An interactive session: stderr is a terminal, or we run in a Jupyter kernel."""
    try:
        tty = sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or in_jupyter()


def wants_progress(progress: bool | None) -> bool:
    """Resolve ``progress`` (``None`` = automatic) to show/hide."""
    if progress is False:
        return False
    if progress is None and not interactive():
        return False
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:
        return False
    return True


def progress_bar(total: int | None, desc: str, progress: bool | None = None, delay: float = 0.0, **kwargs):
    """A ``tqdm.auto`` bar, or a silent stand-in.

    Parameters
    ----------
    total
        Number of steps (``None``: unknown).
    desc
        Label of the bar.
    progress
        ``None`` automatic, ``True`` show, ``False`` hide.
    delay
        Seconds before the bar appears (tqdm's ``delay``): a run that finishes sooner shows
        nothing. GLMM fits use ``delay=2``.
    """
    if not wants_progress(progress):
        return _NoBar()
    if delay > 0:
        # tqdm's own ``delay`` only holds back terminal bars; the notebook widget is drawn at once
        return _DelayedBar(total, desc, delay, kwargs)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, **kwargs)


class _DelayedBar:
    """A tqdm bar created only once ``delay`` seconds have passed (in terminals and notebooks)."""

    def __init__(self, total: int | None, desc: str, delay: float, kwargs: dict):
        import time

        self._clock = time.monotonic
        self._start = self._clock()
        self._args = (total, desc, delay, kwargs)
        self._bar = None
        self._done = 0
        self._postfix = ""

    def _ensure(self):
        if self._bar is None and self._clock() - self._start >= self._args[2]:
            from tqdm.auto import tqdm

            total, desc, _, kwargs = self._args
            self._bar = tqdm(total=total, desc=desc, initial=self._done, **kwargs)
        return self._bar

    def update(self, n: int = 1) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
        else:
            self._ensure()  # a new bar starts at the steps already done

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = s
        bar = self._ensure()
        if bar is not None:
            bar.set_postfix_str(s, refresh=refresh)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        if self._bar is not None:
            self._bar.set_description(desc, refresh=refresh)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iteration_bar(max_iteration: int, desc: str = "GLMM fit", progress: bool | None = None):
    """Bar for an iterative optimiser: appears only if the fit takes longer than ~2 seconds.

    Call ``bar.update()`` once per iteration, optionally ``bar.set_postfix_str(f"lnl={lnl:.6g}")``,
    and ``bar.close()`` at the end (or use it as a context manager).
    """
    return progress_bar(max_iteration, desc, progress, delay=2.0, leave=False)
