"""The reproducibility appendix: the calls that refit each model, the data each used (rows given
and used, columns, a fingerprint of the model's arrays) and the versions of the software."""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np

import wemix_nb.display.report.style as style
from wemix_nb.display.report.content import Row, Table, inline, italic
from wemix_nb.display.report.facts import MethodFacts, package_version

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.options import FitOptions
    from wemix_nb.results.result import MixResult

__all__ = ["PACKAGES", "data_table", "fingerprint", "reproducible_call", "software_table"]

#: distributions whose versions the appendix lists (those installed)
PACKAGES = (
    "wemix_nb",
    "numpy",
    "scipy",
    "pandas",
    "formulaic",
    "altair",
    "vl-convert-python",
    "great-tables",
    "python-docx",
)
WIDTH = 88


def _names_text(names: Sequence[str]) -> str:
    """A list of columns as code: the ``"W_FSTR{1..80}"`` pattern when the names are a numbered
    range, else the list."""
    match = [re.fullmatch(r"(.*?)(\d+)(\D*)", n) for n in names]
    if len(names) > 2 and all(match):
        heads = {(m.group(1), m.group(3)) for m in match}
        numbers = [int(m.group(2)) for m in match]
        if len(heads) == 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            head, tail = heads.pop()
            candidate = f"{head}{{{numbers[0]}..{numbers[-1]}}}{tail}"
            if [f"{head}{k}{tail}" for k in numbers] == list(names):
                return repr(candidate)
    return repr(list(names))


def _replicate_arguments(options: FitOptions) -> list[str]:
    spec = options.replicates
    if spec is None:
        return []
    if spec.levels == (1,):
        parts = [f"replicate_weights={_names_text(spec.columns[0])}"]
    else:
        levels = ", ".join(f"{lv}: {_names_text(c)}" for lv, c in zip(spec.levels, spec.columns, strict=True))
        parts = [f"replicate_weights={{{levels}}}"]
    if spec.method is not None:
        parts.append(f"replicate_method={spec.method!r}")
    if spec.method == "fay" and spec.fay_k != 0.5:
        parts.append(f"fay_k={spec.fay_k!r}")
    if spec.rscales is not None:
        values = [spec.scale * r for r in spec.rscales]
        shown = values[0] if np.allclose(values, values[0]) else values
        parts.append(f"replicate_scale={shown!r}")
    elif spec.scale is not None:
        parts.append(f"replicate_scale={spec.scale!r}")
    if not spec.mse:
        parts.append("mse=False")
    if spec.pv_sampling != "all":
        parts.append(f"pv_sampling={spec.pv_sampling!r}")
    return parts


def _design_arguments(options: FitOptions) -> list[str]:
    d = options.design
    if d is None:
        return []
    parts = [f"{k}={v!r}" for k, v in (("strata", d.strata), ("psu", d.psu), ("fpc", d.fpc)) if v]
    parts += ["nest=True"] if d.nest else []
    parts += [f"lonely_psu={d.lonely_psu!r}"] if d.lonely_psu != "fail" else []
    return parts


def _model_arguments(options: FitOptions) -> list[str]:
    parts = []
    if options.weights is not None:
        parts.append(f"weights={list(options.weights)!r}")
    if options.cweights:
        parts.append("cweights=True")
    if options.family is not None:
        parts.append(f"family={options.family.name!r}")
        parts.append(f"link={options.family.link!r}")
        if options.nquad != 13:
            parts.append(f"nquad={options.nquad}")
        if options.laplace_rounding:
            parts.append("laplace_rounding=True")
    if options.scale_weights != "none":
        parts.append(f"scale_weights={options.scale_weights!r}")
    if options.center_group:
        parts.append(f"center_group={dict(options.center_group)!r}")
    if options.center_grand:
        parts.append(f"center_grand={options.center_grand!r}")
    if isinstance(options.offset, str):
        parts.append(f"offset={options.offset!r}")
    elif options.offset is not None:  # values: the call names them
        parts.append("offset=offset")
    if options.max_iteration != 100:
        parts.append(f"max_iteration={options.max_iteration}")
    if options.start is not None:
        parts.append(f"start={list(options.start)!r}")
    return parts


def reproducible_call(result: MixResult, name: str = "fit") -> str:
    """The ``mix()`` call that refits the model from its data (named ``data``), wrapped at 88
    characters: every option that changes the fit, replicate columns as a ``{i..j}`` pattern."""
    from wemix_nb.options import FitOptions

    options = result.options if isinstance(result.options, FitOptions) else FitOptions()
    arguments = [repr(str(result.formula)), "data"]
    arguments += _model_arguments(options) + _replicate_arguments(options) + _design_arguments(options)
    prefix = f"{name} = wemix_nb.mix("
    one_line = prefix + ", ".join(arguments) + ")"
    if len(one_line) <= WIDTH:
        return one_line
    # arguments are never split (a string literal must stay on its line)
    lines, current = [], ""
    for argument in arguments:
        piece = argument + ","
        if current and len(current) + 1 + len(piece) > WIDTH - 4:
            lines.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    lines.append(current)
    return prefix + "\n" + "\n".join("    " + line for line in lines) + "\n)"


def fingerprint(result: MixResult) -> str:
    """The first 12 hex digits of a SHA-256 of the arrays the model was fitted to (response,
    fixed-effect design, weights and group memberships of every level): the same data and model
    give the same fingerprint."""
    frame = result.frame
    if frame is None:
        return style.MISSING
    digest = hashlib.sha256()
    arrays = [frame.y, frame.X, frame.weight1]
    arrays += [a for a in (getattr(frame, "offset", None), getattr(frame, "trials", None)) if a is not None]
    for level in frame.levels:
        arrays += [level.group_index, level.weight]
    for array in arrays:
        digest.update(np.ascontiguousarray(np.asarray(array, dtype=float)).tobytes())
    return digest.hexdigest()[:12]


def _response_columns(result: MixResult, response: str) -> list[str]:
    """The data columns of the response (``cbind(s, f)``: those of its two parts)."""
    from wemix_nb.errors import FormulaError
    from wemix_nb.model.formula import variables_of

    trials = getattr(result.frame.parsed, "trials", None) if result.frame is not None else None
    parts = list(trials) if trials else [response]
    try:
        return [v for part in parts for v in variables_of(part)] or [response]
    except FormulaError:
        return [response]


def data_table(
    fits: Sequence[MixResult], facts: Sequence[MethodFacts], names: Sequence[str], number: int
) -> Table:
    """Per model: rows of the data, rows used, the columns the model read and the fingerprint."""
    rows = []
    for result, f, name in zip(fits, facts, names, strict=True):
        frame = result.frame
        columns = list(frame.covariate_columns) if frame is not None else []
        response = list(f.pv.columns) if f.pv is not None else _response_columns(result, f.response)
        used = [*response, *columns, *(lv.weight for lv in f.levels if lv.weight)]
        rows.append(
            Row(
                (
                    name,
                    style.count(f.rows_given),
                    style.count(f.rows_used),
                    ", ".join(dict.fromkeys(used)),
                    fingerprint(result),
                )
            )
        )
    note = inline(
        italic("Note."),
        " Fingerprint: the first 12 hexadecimal digits of a SHA-256 hash of the model's response, "
        "design, weights and group memberships; refitting the call on the same data gives the same value.",
    )
    return Table(
        key="data",
        number=number,
        title="Data of each model",
        header=tuple(inline(h) for h in ("Model", "Rows given", "Rows used", "Columns", "Fingerprint")),
        rows=tuple(rows),
        align="lrrll",
        notes=(note,),
    )


def _version(distribution: str) -> str | None:
    if distribution == "wemix_nb":
        return package_version()
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def software_table(number: int) -> Table:
    """Python, the platform and the installed versions of :data:`PACKAGES`."""
    rows = [Row(("Python", platform.python_version())), Row(("Platform", platform.platform(terse=True)))]
    rows += [Row((name, v)) for name in PACKAGES if (v := _version(name)) is not None]
    return Table(
        key="software",
        number=number,
        title="Software",
        header=(inline("Package"), inline("Version")),
        rows=tuple(rows),
        align="ll",
    )
