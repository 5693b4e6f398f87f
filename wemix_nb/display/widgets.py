"""ipywidgets front ends: an interactive Wald test of a fit, and a point-and-click model builder.

Both return ``ipywidgets.VBox`` subclasses whose parts are attributes, so they can be driven from
Python as well as by clicking (set ``.value`` of a control, then ``.button.click()``):

>>> w = fit.wald_widget()                                        # doctest: +SKIP
>>> w.coefs.value = ("Days",); w.values.value = "10"; w.button.click()
>>> w.output.value      # the test's HTML table                  # doctest: +SKIP
"""

from __future__ import annotations

import html as _html
import re
import warnings
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["ModelBuilder", "WaldWidget", "model_builder", "wald_widget"]

FAMILIES = ("gaussian", "binomial", "poisson")


def _error_html(exc: BaseException) -> str:
    return (
        '<div class="wemix-error" style="color:#b00020;white-space:pre-wrap;">'
        f"<b>{_html.escape(type(exc).__name__)}</b>: {_html.escape(str(exc))}</div>"
    )


def _parse_values(text: str) -> list[float] | None:
    """``"10, 0"`` -> [10.0, 0.0]; blank -> None (zeros)."""
    text = text.strip()
    if not text:
        return None
    from wemix_nb.errors import ArgumentError

    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ArgumentError(
            f"Hypothesised values must be numbers separated by commas (e.g. '10, 0'), got {text!r}."
        ) from None


class WaldWidget(widgets.VBox):
    """Interactive Wald test of a :class:`~wemix_nb.MixResult`.

    Parts (top to bottom): ``coefs`` (SelectMultiple of the fixed effects or of the random-effect
    (co)variances; the (co)variances are listed by the labels of the report, e.g. ``Subject:
    Intercept × Days``, and their values are the names :func:`~wemix_nb.wald_test` takes, e.g.
    ``Subject.Days.Intercept``), ``values`` (Text of comma-separated hypothesised values, one per
    selected parameter; blank means all zero), a row with ``button`` ("Test") and the ``kind``
    toggle (``beta``/``Lambda``) with its label beside it; switching it lists the other parameters
    in ``coefs``, and ``output`` (HTML showing the test table or the error). ``test`` holds the
    last :class:`~wemix_nb.WaldTest`. The list starts at its top, with the first parameter that
    is not the intercept selected.

    Below them, ``report_path`` (Text, default ``"report.html"``), ``save_button`` ("Save report")
    and ``save_status`` (HTML) save the fit's report (:func:`wemix_nb.report`) as HTML, Word, LaTeX
    or Markdown, by the path's extension, relative to the kernel's working folder.
    """

    def __init__(self, result: MixResult, **kwargs):
        self.result = result
        self.test = None
        labels = result.variance.labels
        self._options = {
            "beta": [(str(n), str(n)) for n in result.coef.index],
            "Lambda": [(labels.get(name, name), name) for name in result.variance.names],
        }
        beta = self._options["beta"]
        self.coefs = widgets.SelectMultiple(
            options=beta,
            value=_first_selection(beta),
            description="Parameters",
            rows=min(8, max(3, len(beta))),
            layout=widgets.Layout(width="max-content", min_width="300px"),
        )
        self.values = widgets.Text(
            value="", description="H0 values", placeholder="e.g. 10, 0 (blank: all zero)"
        )
        self.button = widgets.Button(description="Test", button_style="primary", icon="check")
        # the label as its own widget: a ToggleButtons description wraps above the buttons
        self.kind = widgets.ToggleButtons(
            options=["beta", "Lambda"],
            value="beta",
            tooltips=["fixed effects", "random-effect (co)variances"],
            style={"button_width": "80px"},
        )
        kind_label = widgets.Label("type:", layout=widgets.Layout(margin="0 4px 0 16px"))
        self.output = widgets.HTML(value="<i>Choose parameters and click Test.</i>")
        self.kind.observe(self._on_kind, names="value")
        self.button.on_click(self._on_click)
        # the Test button comes first in its row, so the first button of the widget is the action
        row = widgets.HBox([self.button, kind_label, self.kind], layout=widgets.Layout(align_items="center"))
        self.report_path = widgets.Text(
            value="report.html", description="Report", placeholder="analysis.html, .docx, .tex or .md"
        )
        self.save_button = widgets.Button(description="Save report", icon="download")
        self.save_status = widgets.HTML(value="")
        self.save_button.on_click(self._on_save)
        # a plain flex row (not an HBox: the HBox of the panel is the Test button's row)
        row_layout = widgets.Layout(display="flex", flex_flow="row", align_items="center")
        saving = widgets.Box([self.report_path, self.save_button], layout=row_layout)
        super().__init__(
            children=[self.coefs, self.values, row, self.output, saving, self.save_status], **kwargs
        )

    def _on_kind(self, change) -> None:
        options = self._options[change["new"]]
        self.coefs.options = options
        self.coefs.rows = min(8, max(3, len(options)))
        self.coefs.value = _first_selection(options)
        self.values.value = ""

    def _on_click(self, _button=None) -> None:
        from wemix_nb.results.inference import wald_test

        try:
            coefs = list(self.coefs.value)
            if not coefs:
                from wemix_nb.errors import ArgumentError

                raise ArgumentError("Select at least one parameter to test.")
            self.test = wald_test(
                self.result, type=self.kind.value, coefs=coefs, hypothesis=_parse_values(self.values.value)
            )
            from wemix_nb.display.html import wald_html

            self.output.value = wald_html(self.test)
        except Exception as exc:  # shown to the user, not raised into the event loop
            self.test = None
            self.output.value = _error_html(exc)

    def _on_save(self, _button=None) -> None:
        from wemix_nb.display.report import report

        try:
            path = report(self.result).save(self.report_path.value.strip())
            size = path.stat().st_size / 1000
            where = _html.escape(str(path))
            self.save_status.value = (
                f'<div class="wemix-saved">Saved <code>{where}</code> ({size:,.0f} kB).</div>'
            )
        except Exception as exc:  # shown to the user, not raised into the event loop
            self.save_status.value = _error_html(exc)


def _first_selection(options: list[tuple[str, str]]) -> tuple[str, ...]:
    """The first parameter that is not the intercept (or the first): near the top of the list, so
    the browser shows the list from its top."""
    values = [value for _, value in options]
    rest = [v for v in values if v not in ("Intercept", "(Intercept)")]
    return tuple((rest or values)[:1])


def wald_widget(result: MixResult) -> WaldWidget:
    """An interactive Wald test of ``result`` (see :class:`WaldWidget`)."""
    return WaldWidget(result)


# -------------------------------------------------------------------------------------------------


#: the "no weight" choice of the weight dropdowns (a string, so that the dropdown shows its label)
NO_WEIGHT = ""
#: a random-effect term such as ``(1|g)`` or ``(1 + x || g)``
RANDOM_TERM = re.compile(r"\([^()|]+\|\|?[^()|]+\)")
#: column names of identifiers and of weights (not outcomes)
_ID_NAME = re.compile(r"(^id|id$)", re.IGNORECASE)
_WEIGHT_NAME = re.compile(r"(^w_|wt$|wgt|weight)", re.IGNORECASE)


def _numeric_columns(data: pd.DataFrame) -> list[str]:
    return [
        str(c)
        for c in data.columns
        if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])
    ]


def _weight_columns(data: pd.DataFrame) -> list[str]:
    """Numeric columns whose values are all positive (missing values aside), identifiers aside:
    possible weights."""
    out = []
    for c in _numeric_columns(data):
        if _ID_NAME.search(c) and not _WEIGHT_NAME.search(c):
            continue
        values = pd.to_numeric(data[c], errors="coerce").dropna()
        if len(values) and np.isfinite(values).all() and (values > 0).all():
            out.append(c)
    return out


def _looks_like_id(data: pd.DataFrame, column: str) -> bool:
    """A weight by its name, an identifier (named ``...id`` with whole-number values) or sorted
    integer codes shared by several rows (groups)."""
    if _WEIGHT_NAME.search(column):
        return True
    values = data[column].dropna()
    if values.empty:
        return False
    whole = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if _ID_NAME.search(column) and whole:
        return True
    distinct = values.nunique()
    return whole and 10 < distinct < len(values) / 2 and values.is_monotonic_increasing


def _default_outcome(data: pd.DataFrame, numeric: list[str]) -> str | None:
    """The first numeric column that is not an identifier or a weight (else the first numeric)."""
    candidates = [c for c in numeric if not _looks_like_id(data, c)]
    return (candidates or numeric or [None])[0]


class ModelBuilder(widgets.VBox):
    """Point-and-click model fitting for a DataFrame.

    Parts: ``outcome`` (Dropdown of the numeric columns, starting on the first that does not look
    like an identifier or a weight), ``predictors`` (SelectMultiple), ``groups`` (SelectMultiple
    of grouping factors; nesting order is found from the data: most groups = level 2),
    ``row_weight`` (Dropdown of the numeric columns with positive values, ``"(none)"`` =
    unweighted) and one such Dropdown per grouping level in ``group_weights`` (built when groups
    are chosen), ``family`` (Dropdown), ``formula`` (Text, filled from the choices and editable,
    e.g. to add random slopes), ``button`` ("Fit", disabled until the formula has a random effect
    such as ``(1|group)``), ``progress`` (shown while fitting), ``status`` (beside the button: what
    is missing, the fit's state or the error in one line), ``output`` (HTML: the fitted model's
    report, or the full error). ``result`` holds the last :class:`~wemix_nb.MixResult`. Errors of
    any control are shown in the widget, never raised into the notebook's log.
    """

    def __init__(self, data: pd.DataFrame, **kwargs):
        self.data = data
        self.result = None
        columns = [str(c) for c in data.columns]
        numeric = _numeric_columns(data)
        outcomes = numeric or columns
        self.outcome = widgets.Dropdown(
            options=outcomes, value=_default_outcome(data, outcomes), description="Outcome"
        )
        self.predictors = widgets.SelectMultiple(
            options=columns, description="Predictors", rows=min(8, max(3, len(columns)))
        )
        self.groups = widgets.SelectMultiple(
            options=columns, description="Groups", rows=min(6, max(3, len(columns)))
        )
        weight_options = [("(none)", NO_WEIGHT)] + [(c, c) for c in _weight_columns(data)]
        self._weight_options = weight_options
        self.row_weight = widgets.Dropdown(options=weight_options, value=NO_WEIGHT, description="Row weight")
        self.group_weights: dict[str, widgets.Dropdown] = {}
        self._weights_box = widgets.VBox([])
        self.family = widgets.Dropdown(options=list(FAMILIES), value="gaussian", description="Family")
        self.formula = widgets.Text(
            value="",
            description="Formula",
            layout=widgets.Layout(width="95%"),
            placeholder="y ~ x + (1|group)",
        )
        self.button = widgets.Button(description="Fit", button_style="primary", icon="play")
        # a full "busy" bar shown while the (synchronous) fit runs; the fit reports no fraction done
        self.progress = widgets.IntProgress(
            value=1,
            min=0,
            max=1,
            description="",
            bar_style="info",
            layout=widgets.Layout(visibility="hidden", width="120px"),
        )
        self.status = widgets.HTML(value="")
        self.output = widgets.HTML(value="<i>Choose an outcome, predictors and groups, then click Fit.</i>")
        for control in (self.outcome, self.predictors, self.groups):
            control.observe(self._on_spec, names="value")
        self.groups.observe(self._on_groups, names="value")
        self.formula.observe(self._on_formula, names="value")
        self.button.on_click(self._on_click)
        self._update_formula()
        self._on_formula()
        super().__init__(
            children=[
                self.outcome,
                self.predictors,
                self.groups,
                self.row_weight,
                self._weights_box,
                self.family,
                self.formula,
                widgets.HBox(
                    [self.button, self.progress, self.status], layout=widgets.Layout(align_items="center")
                ),
                self.output,
            ],
            **kwargs,
        )

    # -- choices ---------------------------------------------------------------------------------

    def ordered_groups(self) -> list[str]:
        """Chosen grouping factors from the lowest level (most groups) to the top."""
        chosen = list(self.groups.value)
        return sorted(chosen, key=lambda g: -self.data[g].nunique())

    def _show_error(self, exc: BaseException) -> None:
        """An error of any control: one line beside the Fit button, the whole message below."""
        self.status.value = _status_html(exc)
        self.output.value = _error_html(exc)

    def _on_groups(self, _change=None) -> None:
        try:
            old = {g: d.value for g, d in self.group_weights.items()}
            self.group_weights = {}
            for k, g in enumerate(self.ordered_groups()):
                self.group_weights[g] = widgets.Dropdown(
                    options=self._weight_options,
                    value=old.get(g, NO_WEIGHT),
                    description=f"L{k + 2} weight",
                    tooltip=f"weight of each {g} group",
                )
            self._weights_box.children = [
                widgets.HBox([d, widgets.Label(f"({g})")]) for g, d in self.group_weights.items()
            ]
        except Exception as exc:  # shown, not lost in the kernel's log
            self._show_error(exc)

    def _on_spec(self, _change=None) -> None:
        try:
            self._update_formula()
        except Exception as exc:
            self._show_error(exc)

    def _on_formula(self, _change=None) -> None:
        """Fit is enabled only for a formula with a random effect; say what is missing."""
        has_random = bool(RANDOM_TERM.search(self.formula.value or ""))
        self.button.disabled = not has_random
        if not has_random:
            self.status.value = (
                '<span class="wemix-hint" style="color:#555;">Choose a grouping factor or add a random '
                "effect such as (1|group) to the formula to fit.</span>"
            )
        elif "wemix-hint" in self.status.value:
            self.status.value = ""

    def _update_formula(self) -> None:
        y = self.outcome.value
        xs = [x for x in self.predictors.value if x != y]
        rhs = " + ".join(xs) if xs else "1"
        bars = " + ".join(f"(1|{g})" for g in self.ordered_groups())
        self.formula.value = f"{y} ~ {rhs}" + (f" + {bars}" if bars else "") if y is not None else ""

    def weights(self) -> list[str] | None:
        """Weight columns in :func:`wemix_nb.mix` order, or None (unweighted)."""
        from wemix_nb.errors import ArgumentError

        if self.row_weight.value == NO_WEIGHT:
            if any(d.value != NO_WEIGHT for d in self.group_weights.values()):
                raise ArgumentError("Choose a row weight too, or no weights at all.")
            return None
        missing = [g for g, d in self.group_weights.items() if d.value == NO_WEIGHT]
        if missing:
            raise ArgumentError(f"Choose a weight for every grouping level; missing: {missing}.")
        return [self.row_weight.value] + [self.group_weights[g].value for g in self.ordered_groups()]

    # -- fitting ---------------------------------------------------------------------------------

    def _on_click(self, _button=None) -> None:
        from wemix_nb.api import mix
        from wemix_nb.display.html import result_html

        self.button.disabled = True
        self.progress.layout.visibility = "visible"
        self.status.value = "<i>Fitting…</i>"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.result = mix(self.formula.value, self.data, self.weights(), family=self.family.value)
            notes = "".join(
                f'<div class="wemix-warning" style="color:#8a6d00;">{_html.escape(str(w.message))}</div>'
                for w in caught
            )
            self.output.value = notes + result_html(self.result)
            self.status.value = "Fitted." if self.result.converged else "<b>Not converged.</b>"
        except Exception as exc:
            self.result = None
            self._show_error(exc)
        finally:
            self.progress.layout.visibility = "hidden"
            self._on_formula()


def _status_html(exc: BaseException) -> str:
    """One line for the status beside the Fit button."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = first if len(first) <= 160 else first[:159] + "…"
    return (
        '<span class="wemix-error-line" style="color:#b00020;">'
        f"⚠ {_html.escape(type(exc).__name__)}: {_html.escape(text)}</span>"
    )


def model_builder(data: pd.DataFrame) -> ModelBuilder:
    """Widgets to choose outcome, predictors, grouping factors, weights and family, and fit.

    See :class:`ModelBuilder`. The fitted model is ``builder.result``; its report is shown below
    the controls.
    """
    if not isinstance(data, pd.DataFrame):
        from wemix_nb.errors import ArgumentError

        raise ArgumentError(f"model_builder needs a pandas DataFrame, got {type(data).__name__}.")
    return ModelBuilder(data)
