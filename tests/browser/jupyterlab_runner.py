"""Run a notebook in a real JupyterLab + headless Chromium and report what a reader would see.

JupyterLab is started on 127.0.0.1 (random free port, random token, throw-away settings and
runtime folders, autosave off so the notebook file is never rewritten) with the notebook's folder
as its root. Chromium (/usr/bin/chromium, Debian's package; never `playwright install`) opens the
notebook with a fresh profile; every request to a non-loopback host is aborted and recorded. All
cells are run from the Run menu (fallback: the `notebook:run-all-cells` command), then the page is
inspected once the kernel is idle and the front-end renderers have settled.

From a test, use the `run_notebook_in_browser` fixture of tests/conftest.py:

    def test_tutorial(run_notebook_in_browser):
        run_notebook_in_browser(NOTEBOOK, expect={"tables": 1, "charts": 2, "widgets": 1})

From a shell:

    python tests/browser/jupyterlab_runner.py NOTEBOOK.ipynb --expect tables=1,charts=1 \
        --screenshot /tmp/nb.png
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
EXPECT_KEYS = ("tables", "charts", "widgets")

# JupyterLab user settings for the throw-away settings folder.
LAB_SETTINGS = {
    # never write outputs back into the notebook under test
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # keep every cell in the DOM (windowing would drop off-screen outputs); no padding below
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "scrollPastEnd": False,
    },
    # no news / update checks (both would go to the internet)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

# Text that an output area shows when something did NOT render.
RENDER_FAILURE_MARKERS = [
    "Error loading script",  # Altair html renderer: vega not reachable (CDN)
    "Javascript Error",  # Altair html renderer: vega-embed failed
    "renderer has not been properly enabled",  # Altair text fallback
    "Error displaying widget",  # ipywidgets manager
    "Failed to load model class",  # widget front-end code missing
    "Loading widget...",  # widget never rendered
    "No renderer could be found",  # JupyterLab: unknown mime type
]

# Counts what the page shows. Outputs nested in Output widgets are included (de-duplicated).
_INSPECT_JS = """
(markers) => {
  const outs = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output'));
  const find = sel => Array.from(new Set(outs.flatMap(
      o => (o.matches(sel) ? [o] : []).concat(Array.from(o.querySelectorAll(sel))))));
  const shown = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const drawn = el => {
    if (el.tagName.toLowerCase() === 'svg')
      return el.querySelectorAll('path, rect, line, circle, text, image').length > 0;
    try {
      const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
      for (let k = 0; k < d.length; k += 4)
        if (d[k + 3] > 0 && (d[k] < 240 || d[k + 1] < 240 || d[k + 2] < 240)) return true;
    } catch (e) { return true; }  // tainted canvas: cannot look, assume drawn
    return false;
  };
  const views = find('.vega-embed svg.marks, .vega-embed canvas.marks').filter(shown);
  const embeds = find('.vega-embed').filter(shown);
  const widgets = find('.jupyter-widgets').filter(shown);
  const failures = [];
  outs.forEach(o => {
    const text = o.innerText || '';
    markers.forEach(m => { if (text.includes(m)) failures.push(m + ': ' + text.slice(0, 200)); });
  });
  // tracebacks written into Output widgets (not part of the notebook model)
  const widgetErrors = find('.widget-output .jp-OutputArea-output')
      .filter(o => /Traceback \\(most recent call last\\)/.test(o.innerText || ''))
      .map(o => o.innerText.slice(0, 500));
  return {
    running: Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-InputArea-prompt'))
        .some(p => p.textContent.includes('*')),
    tables: find('table.gt_table').filter(shown).length,
    charts: views.filter(drawn).length,
    empty_charts: views.length - views.filter(drawn).length,
    undrawn_embeds: embeds.filter(e => !e.querySelector('svg.marks, canvas.marks')).length,
    widgets: widgets.filter(w => !w.parentElement.closest('.jupyter-widgets')).length,
    widget_parts: widgets.length,
    loading_widgets: failures.some(f => f.startsWith('Loading widget...')),
    failures, widget_errors: widgetErrors,
  };
}
"""

# The notebook model as JupyterLab holds it (outputs included), found by path.
_MODEL_JS = """
(path) => {
  for (const w of window.jupyterapp.shell.widgets('main'))
    if (w.context && w.context.path === path) return w.context.model.toJSON();
  return null;
}
"""

# All cell outputs of the notebook, to see whether a button click changed any of them.
_OUTPUTS_HTML_JS = """
() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-Cell-outputArea'))
          .map(o => o.innerHTML).join('\\n')
"""

_BUTTON = ".jp-OutputArea-output button.jupyter-button, .jp-OutputArea-output .widget-button"


class RunnerError(RuntimeError):
    """The harness itself failed (server or browser did not start, notebook did not load...)."""


@dataclass
class NotebookRun:
    """What the browser showed after running every cell (and clicking the first button)."""

    notebook: str
    run_via: str = ""
    code_cells: int = 0
    unexecuted_cells: int = 0
    errors: int = 0  # error outputs (tracebacks), in cells or inside Output widgets
    tables: int = 0  # rendered great_tables tables (table.gt_table)
    charts: int = 0  # drawn vega views (svg/canvas marks inside .vega-embed)
    widgets: int = 0  # top-level rendered ipywidgets views
    widget_parts: int = 0  # every rendered widget view, nested ones included
    button_clicked: bool = False
    click_changed_output: bool | None = None  # None when there is no widget button
    render_failures: list[str] = field(default_factory=list)
    error_texts: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    screenshot: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return json.dumps(asdict(self), indent=2)


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: the server gets SIGTERM if the process that started it dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child_pids(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


def _write_kernelspec(path_dir: Path, python: str) -> None:
    """A "python3" kernel that runs `python` (another environment's interpreter, which needs
    ipykernel), with no PYTHONPATH: it imports what that environment installed. `path_dir` goes
    on JUPYTER_PATH, which comes first in Jupyter's search path (before the data folders of the
    user and of the running environment), so this spec replaces the default one."""
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "env": {"PYTHONPATH": ""},
    }
    target = path_dir / "kernels" / "python3" / "kernel.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(spec))


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 with a random port and token, stopped by its own pid."""

    def __init__(self, root: Path, scratch: Path, kernel_python: str | None = None):
        self.port, self.token = _free_port(), secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}"
        for name, value in LAB_SETTINGS.items():
            target = scratch / "settings" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(value))
        extra_env = {}
        if kernel_python is not None:
            _write_kernelspec(scratch / "kernel-path", kernel_python)
            extra_env["JUPYTER_PATH"] = str(scratch / "kernel-path")
        env = dict(
            os.environ,
            JUPYTERLAB_SETTINGS_DIR=str(scratch / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(scratch / "workspaces"),
            JUPYTER_CONFIG_DIR=str(scratch / "config"),
            JUPYTER_DATA_DIR=str(scratch / "data"),
            JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
            IPYTHONDIR=str(scratch / "ipython"),
            PYDEVD_DISABLE_FILE_VALIDATION="1",
            **extra_env,
        )
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            f"--FileCheckpoints.checkpoint_dir={scratch / 'checkpoints'}",  # none beside the notebook
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to read the notebook model
            "--LabApp.extension_manager=readonly",  # no PyPI queries
            "--ServerApp.log_level=WARN",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = scratch / "jupyterlab.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=5) as r:
            return json.loads(r.read())

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RunnerError(f"jupyter lab exited ({self.proc.returncode}): {self.log_tail()}")
            with contextlib.suppress(OSError):
                self.api("/api/status")
                return
            time.sleep(0.2)
        raise RunnerError(f"jupyter lab did not answer within {timeout:.0f} s: {self.log_tail()}")

    def kernels_idle(self) -> bool:
        try:
            states = [k["execution_state"] for k in self.api("/api/kernels")]
        except OSError:
            return False
        return bool(states) and all(s == "idle" for s in states)

    def log_tail(self, n: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        kernels = _child_pids(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in kernels:  # kernels run in their own session; end any left over
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _is_loopback(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in ("127.0.0.1", "localhost", "::1")


def _accept_dialogs(page) -> None:
    """A kernel picker or another modal: take the default choice."""
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    if accept.count():
        accept.first.click()


def _run_all(page) -> str:
    try:
        page.locator(".lm-MenuBar-item", has_text="Run").first.click(timeout=5000)
        item = page.locator(".lm-Menu-item").filter(has=page.get_by_text("Run All Cells", exact=True))
        item.first.click(timeout=5000)
        return "menu Run > Run All Cells"
    except Exception:  # any UI hiccup: run the command directly
        page.keyboard.press("Escape")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        return "command notebook:run-all-cells"


def _wait(page, end: float, done, poll_ms: int = 250, stable_s: float = 1.0):
    """Poll until done() has held for stable_s seconds; False on reaching `end`."""
    since = None
    while time.monotonic() < end:
        _accept_dialogs(page)
        if done():
            since = since or time.monotonic()
            if time.monotonic() - since >= stable_s:
                return True
        else:
            since = None
        page.wait_for_timeout(poll_ms)
    return False


def _shoot(page, path: Path) -> str:
    """Grow the viewport to the notebook's height (JupyterLab scrolls inside its own panel)."""
    height = page.evaluate(
        """() => { const cells = document.querySelectorAll('.jp-NotebookPanel .jp-Cell');
                   return cells.length ? cells[cells.length - 1].getBoundingClientRect().bottom + 80
                                       : 1000; }"""
    )
    page.set_viewport_size({"width": 1280, "height": int(min(max(height, 800), 12000))})
    page.wait_for_timeout(300)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return str(path)


def expectation_problems(run: NotebookRun, expect: dict[str, int] | None) -> list[str]:
    """Everything that keeps `run` from passing; expect = minimum counts of tables/charts/widgets."""
    problems = []
    if run.unexecuted_cells:
        problems.append(f"{run.unexecuted_cells} code cell(s) did not run")
    if run.errors:
        problems.append(f"{run.errors} error output(s)")
    problems += [f"did not render: {f}" for f in run.render_failures]
    if run.button_clicked and not run.click_changed_output:
        problems.append("clicking the first widget button changed no output")
    for key, n in (expect or {}).items():
        if key not in EXPECT_KEYS:
            raise ValueError(f"unknown expectation {key!r}; use {EXPECT_KEYS}")
        if getattr(run, key) < n:
            problems.append(f"expected at least {n} {key}, saw {getattr(run, key)}")
    return problems


def run_notebook(
    notebook: str | os.PathLike,
    expect: dict[str, int] | None = None,
    *,
    timeout: float = 120,
    click_first_button: bool = True,
    screenshot: str | os.PathLike | None = None,
    screenshot_on_failure_only: bool = False,
    kernel_python: str | os.PathLike | None = None,
) -> NotebookRun:
    """Run every cell of `notebook` in JupyterLab + Chromium and report what rendered.

    Render problems are listed in the result's `problems` (`ok` is False); a failure of the
    harness itself raises RunnerError. `kernel_python`: run the notebook's kernel with that
    interpreter (of another environment, with ipykernel installed) instead of this one's.
    """
    from playwright.sync_api import sync_playwright

    nb = Path(notebook).resolve()
    if not nb.is_file():
        raise FileNotFoundError(nb)
    if not chromium_available():
        raise RunnerError(f"{CHROMIUM} not found: apt-get install -y chromium")
    run = NotebookRun(notebook=str(nb))
    t0 = time.monotonic()
    end = t0 + timeout
    scratch = Path(tempfile.mkdtemp(prefix="wemix-lab-"))
    lab = JupyterLab(nb.parent, scratch, None if kernel_python is None else str(kernel_python))
    try:
        lab.wait_ready(min(60, timeout))
        run.timings["server_s"] = round(time.monotonic() - t0, 1)
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(scratch / "chromium-profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 1000},
            )
            try:
                _drive(context, lab, nb, run, end, t0, click_first_button)
                run.problems = expectation_problems(run, expect)
                if screenshot and (run.problems or not screenshot_on_failure_only):
                    run.screenshot = _shoot(context.pages[-1], Path(screenshot))
            finally:
                context.close()
    except RunnerError:
        raise
    except Exception as exc:
        raise RunnerError(f"{type(exc).__name__}: {exc}\n--- jupyter lab log ---\n{lab.log_tail()}") from exc
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    run.timings["total_s"] = round(time.monotonic() - t0, 1)
    return run


def _drive(context, lab, nb, run, end, t0, click_first_button) -> None:
    def route(r):
        if _is_loopback(r.request.url):
            r.continue_()
        else:
            run.blocked_requests.append(r.request.url[:200])
            r.abort("internetdisconnected")

    context.route("**/*", route)
    page = context.pages[0] if context.pages else context.new_page()
    t1 = time.monotonic()
    page.goto(
        f"{lab.url}/lab/tree/{urllib.parse.quote(nb.name)}?reset&token={lab.token}",
        wait_until="domcontentloaded",
        timeout=60_000,
    )
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    if not _wait(page, end, lab.kernels_idle, stable_s=0.5):
        raise RunnerError("the kernel never became idle after the notebook opened")
    run.timings["open_s"] = round(time.monotonic() - t1, 1)

    t2 = time.monotonic()
    run.run_via = _run_all(page)
    page.wait_for_timeout(500)
    finished = _wait(
        page,
        end,
        lambda: not page.evaluate(_INSPECT_JS, RENDER_FAILURE_MARKERS)["running"] and lab.kernels_idle(),
    )
    if not finished:
        raise RunnerError(f"cells still running after the {end - t0:.0f} s budget")
    run.timings["run_all_s"] = round(time.monotonic() - t2, 1)

    # front-end renderers (vega-embed, widget views) finish after the kernel is idle
    t3 = time.monotonic()
    previous = [None]

    def settled():
        seen = page.evaluate(_INSPECT_JS, RENDER_FAILURE_MARKERS)
        key = (seen["tables"], seen["charts"], seen["widget_parts"])
        unchanged, previous[0] = key == previous[0], key
        return unchanged and not seen["loading_widgets"] and not seen["undrawn_embeds"]

    _wait(page, min(end, t3 + 15), settled, poll_ms=500, stable_s=1.0)
    run.timings["settle_s"] = round(time.monotonic() - t3, 1)

    if click_first_button:
        button = page.locator(_BUTTON).first
        if button.count():
            before = page.evaluate(_OUTPUTS_HTML_JS)
            button.scroll_into_view_if_needed()
            button.click()
            run.button_clicked = True
            # changed: done; unchanged: give up once the kernel has been idle for 2 s (the
            # callback ran and sent nothing) or after 15 s
            clicked_at, idle_since, changed = time.monotonic(), None, False
            while time.monotonic() < min(end, clicked_at + 15):
                page.wait_for_timeout(250)
                if page.evaluate(_OUTPUTS_HTML_JS) != before:
                    changed = True
                    break
                idle_since = (idle_since or time.monotonic()) if lab.kernels_idle() else None
                if idle_since and time.monotonic() - idle_since >= 2:
                    break
            run.click_changed_output = changed
            # let the callback finish before the final look
            _wait(page, min(end, time.monotonic() + 10), lab.kernels_idle, stable_s=0.5)

    seen = page.evaluate(_INSPECT_JS, RENDER_FAILURE_MARKERS)
    model = page.evaluate(_MODEL_JS, nb.name)
    if model is None:
        raise RunnerError(f"JupyterLab has no open notebook at {nb.name!r}")
    code = [c for c in model["cells"] if c["cell_type"] == "code"]
    run.code_cells = len(code)
    run.unexecuted_cells = sum(
        1 for c in code if c.get("execution_count") is None and "".join(c.get("source", "")).strip()
    )
    cell_errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    run.error_texts = [f"{o['ename']}: {o['evalue']}"[:500] for o in cell_errors]
    run.error_texts += seen["widget_errors"]
    run.errors = len(run.error_texts)
    run.tables, run.charts = seen["tables"], seen["charts"]
    run.widgets, run.widget_parts = seen["widgets"], seen["widget_parts"]
    run.render_failures = list(seen["failures"])
    if seen["empty_charts"]:
        run.render_failures.append(f"{seen['empty_charts']} chart(s) with nothing drawn")
    if seen["undrawn_embeds"]:
        run.render_failures.append(f"{seen['undrawn_embeds']} vega-embed(s) without a view")


def run_notebook_in_browser(
    notebook: str | os.PathLike,
    expect: dict[str, int] | None = None,
    *,
    check: bool = True,
    **kwargs,
) -> NotebookRun:
    """run_notebook(); with check (default) raise AssertionError, with the full report, unless
    every cell ran without error, everything rendered and `expect` was met."""
    run = run_notebook(notebook, expect, **kwargs)
    if check and not run.ok:
        raise AssertionError(
            f"{Path(notebook).name} did not render as expected: {'; '.join(run.problems)}\n" + run.summary()
        )
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--expect", default="", help="minimum counts, e.g. tables=1,charts=2,widgets=1")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--screenshot", type=Path, help="PNG of the whole notebook after the run")
    ap.add_argument("--no-click", action="store_true", help="do not click the first widget button")
    args = ap.parse_args(argv)
    expect = {
        k.strip(): int(v) for k, _, v in (p.partition("=") for p in args.expect.split(",") if p.strip())
    }
    try:
        run = run_notebook(
            args.notebook,
            expect,
            timeout=args.timeout,
            click_first_button=not args.no_click,
            screenshot=args.screenshot,
        )
    except RunnerError as exc:
        print(f"harness failure: {exc}", file=sys.stderr)
        return 2
    print(run.summary())
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
