"""Progress bars appear only for slow runs, in terminals and notebooks alike."""

from __future__ import annotations

import pytest

from wemix_nb import _progress

tqdm_auto = pytest.importorskip("tqdm.auto")


def test_delayed_bar_is_not_created_for_a_quick_run(monkeypatch):
    created = []
    monkeypatch.setattr(tqdm_auto, "tqdm", lambda *a, **k: created.append(k))
    bar = _progress.progress_bar(10, "fit", progress=True, delay=60.0)
    for _ in range(5):
        bar.update()
        bar.set_postfix_str("lnl=1")
    bar.close()
    assert created == []


def test_delayed_bar_appears_after_the_delay_with_the_steps_done(monkeypatch):
    made = []

    class FakeBar:
        def __init__(self, *args, **kwargs):
            self.kwargs, self.n = kwargs, kwargs.get("initial", 0)
            made.append(self)

        def update(self, n=1):
            self.n += n

        def set_postfix_str(self, s="", refresh=True):
            self.postfix = s

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm_auto, "tqdm", FakeBar)
    bar = _progress.progress_bar(10, "fit", progress=True, delay=0.5)
    clock = iter([100.1, 100.2, 101.0, 101.5])
    bar._clock = lambda: next(clock)
    bar._start = 100.0
    bar.update()  # 0.1 s: no bar yet
    bar.update()  # 0.2 s: no bar yet
    bar.update()  # 1.0 s: the bar appears, starting at 3 steps done
    assert len(made) == 1 and made[0].n == 3
    bar.update()
    assert made[0].n == 4
    bar.close()
    assert made[0].closed


def test_progress_false_is_silent():
    assert isinstance(_progress.progress_bar(3, "x", progress=False), _progress._NoBar)
