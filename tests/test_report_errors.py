"""The bad inputs of report drafting (docs/errors.md, "Reports"): each row's situation, its
exception and the words of its message; nothing is written when saving fails."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import wemix_nb
from wemix_nb import errors as E

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
SECTION = "## Reports"
F = "Reaction ~ Days + (1|Subject)"
W = ["W1", "W2"]


@pytest.fixture(scope="module")
def data():
    d = wemix_nb.datasets.sleepstudy()
    return d.assign(W1=1.0, W2=1.0, B=(d["Reaction"] > 300).astype(int))


@pytest.fixture(scope="module")
def fit(data):
    return wemix_nb.mix(F, data, W)


@pytest.fixture(scope="module")
def drafted(fit):
    return wemix_nb.report(fit, figures=False)


# what a case finds in its folder before the call
SETUP = {
    "report-folder-is-a-file": lambda tmp_path: (tmp_path / "notes.txt").write_text("not a folder"),
    "report-folder-in-the-way": lambda tmp_path: (tmp_path / "analysis.html").mkdir(),
}


def _docx_missing(drafted, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "docx", None)
    return drafted.save(tmp_path / "analysis.docx")


# id -> (call(data, fit, drafted, tmp_path, monkeypatch), exception, words of the message)
ERRORS = {
    "report-not-a-fit": (
        lambda d, f, r, t, m: wemix_nb.report(d),
        E.ArgumentError,
        ["takes a fitted model", "DataFrame"],
    ),
    "report-entry-not-a-fit": (
        lambda d, f, r, t, m: wemix_nb.report([f, "x"]),
        E.ArgumentError,
        ["entry 1 is a str"],
    ),
    "report-names": (
        lambda d, f, r, t, m: wemix_nb.report([f, f], names=["a"]),
        E.ArgumentError,
        ["2 distinct labels", "['a']"],
    ),
    "report-mixed-scales": (
        lambda d, f, r, t, m: wemix_nb.report(
            [f, wemix_nb.mix("B ~ Days + (1|Subject)", d, W, family="binomial")]
        ),
        E.ReportError,
        ["cannot share a table", "Model 1: linear model", "Model 2: binomial GLMM, logit link"],
    ),
    "report-df": (lambda d, f, r, t, m: wemix_nb.report(f, df="t"), E.ArgumentError, ["df must be", "'t'"]),
    "report-unknown-extension": (
        lambda d, f, r, t, m: r.save(t / "analysis.pdf"),
        E.ArgumentError,
        ["Unknown report format '.pdf'", ".html, .docx, .tex, .md"],
    ),
    "report-folder-missing": (
        lambda d, f, r, t, m: r.save(t / "missing" / "analysis.html"),
        E.ReportWriteError,
        ["missing", "does not exist"],
    ),
    "report-folder-is-a-file": (
        lambda d, f, r, t, m: r.save(t / "notes.txt" / "analysis.html"),
        E.ReportWriteError,
        ["notes.txt' is not a folder"],
    ),
    "report-folder-in-the-way": (
        lambda d, f, r, t, m: r.save(t / "analysis.html"),
        E.ReportWriteError,
        ["a folder of that name is in the way"],
    ),
    "report-docx-missing": (
        lambda d, f, r, t, m: _docx_missing(r, t, m),
        ImportError,
        ["needs python-docx", "pip install 'wemix_nb[report]'"],
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error(case, data, fit, drafted, tmp_path, monkeypatch):
    call, exception, words = ERRORS[case]
    SETUP.get(case, lambda _: None)(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(exception) as info:
        call(data, fit, drafted, tmp_path, monkeypatch)
    for word in words:
        assert word in str(info.value), (case, str(info.value))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing is written when saving fails"


def test_write_errors_are_also_os_errors(drafted, tmp_path):
    with pytest.raises(OSError):
        drafted.save(tmp_path / "missing" / "analysis.html")
    with pytest.raises(ValueError):
        drafted.save(tmp_path / "analysis.rtf")


def test_every_documented_row_is_tested():
    section = DOC.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\|[^|\n]*\|\s*`([a-z0-9-]+)`\s*\|", section, flags=re.M)
    assert len(documented) == len(set(documented))
    assert set(documented) == set(ERRORS)
