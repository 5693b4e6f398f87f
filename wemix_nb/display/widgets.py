"""ipywidgets front ends: an interactive Wald test of a fit, and a point-and-click model builder.

Both return ``ipywidgets.VBox`` subclasses whose parts are attributes, so they can be driven from
Python as well as by clicking (set ``.value`` of a control, then ``.button.click()``):

>>> w = fit.wald_widget()                                        # doctest: +SKIP
>>> w.coefs.value = ("Days",); w.values.value = "10"; w.button.click()
>>> w.output.value      # the test's HTML table                  # doctest: +SKIP
"""

from __future__ import annotations

import html as _html
from typing import TYPE_CHECKING

import ipywidgets as widgets
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
    (co)variances, by the names :func:`~wemix_nb.wald_test` takes), ``legend`` (HTML: for the
    (co)variances, each name with its label in the report, e.g. ``Subject.Days.Intercept`` is
    ``Subject: Intercept × Days``), ``values`` (Text of comma-separated hypothesised values, one per
    selected parameter; blank means all zero), ``button`` ("Test") with ``kind`` beside it
    (ToggleButtons ``beta``/``Lambda``; switching it lists the other parameters in ``coefs``), and
    ``output`` (HTML showing the test table or the error). ``test`` holds the last
    :class:`~wemix_nb.WaldTest`.
    """

    def __init__(self, result: MixResult, **kwargs):
        self.result = result
        self.test = None
        self._names = {"beta": [str(n) for n in result.coef.index], "Lambda": list(result.variance.names)}
        self._labels = result.variance.labels
        self.kind = widgets.ToggleButtons(
            options=["beta", "Lambda"],
            value="beta",
            description="type",
            tooltips=["fixed effects", "random-effect (co)variances"],
        )
        beta = self._names["beta"]
        self.coefs = widgets.SelectMultiple(
            options=beta, value=tuple(beta[-1:]), description="Parameters", rows=min(8, max(3, len(beta)))
        )
        self.legend = widgets.HTML(value="")
        self.values = widgets.Text(
            value="", description="H0 values", placeholder="e.g. 10, 0 (blank: all zero)"
        )
        self.button = widgets.Button(description="Test", button_style="primary", icon="check")
        self.output = widgets.HTML(value="<i>Choose parameters and click Test.</i>")
        self.kind.observe(self._on_kind, names="value")
        self.button.on_click(self._on_click)
        # the Test button comes first in its row (and before the toggle in the page), so the first
        # button of the widget is the action, not the test-type switch
        self.kind.style.button_width = "80px"
        self.kind.style.description_width = "40px"
        row = widgets.HBox([self.button, self.kind])
        super().__init__(children=[self.coefs, self.legend, self.values, row, self.output], **kwargs)

    def _legend_html(self, kind: str) -> str:
        """Each (co)variance name with the report's label (empty for fixed effects)."""
        if kind != "Lambda":
            return ""
        lines = [
            f"<code>{_html.escape(name)}</code> = {_html.escape(self._labels[name])}"
            for name in self._names["Lambda"]
        ]
        # indented under the list; ipywidgets' HTML widget sets a tall inline line-height otherwise
        style = "font-size:smaller;line-height:1.5;margin-left:var(--jp-widgets-inline-label-width, 80px);"
        return f'<div class="wemix-legend" style="{style}">' + "<br>".join(lines) + "</div>"

    def _on_kind(self, change) -> None:
        names = self._names[change["new"]]
        self.coefs.options = names
        self.coefs.value = tuple(names[:1])
        self.values.value = ""
        self.legend.value = self._legend_html(change["new"])

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


def wald_widget(result: MixResult) -> WaldWidget:
    """An interactive Wald test of ``result`` (see :class:`WaldWidget`)."""
    return WaldWidget(result)


# -------------------------------------------------------------------------------------------------


class ModelBuilder(widgets.VBox):
    """Point-and-click model fitting for a DataFrame.

    Parts: ``outcome`` (Dropdown), ``predictors`` (SelectMultiple), ``groups`` (SelectMultiple of
    grouping factors; nesting order is found from the data: most groups = level 2), ``row_weight``
    (Dropdown, ``None`` = unweighted) and one Dropdown per grouping level in ``group_weights``
    (built when groups are chosen), ``family`` (Dropdown), ``formula`` (Text, filled from the
    choices and editable, e.g. to add random slopes), ``button`` ("Fit"), ``progress`` (shown while
    fitting), ``output`` (HTML: the fitted model's report or the error). ``result`` holds the last
    :class:`~wemix_nb.MixResult`.
    """

    def __init__(self, data: pd.DataFrame, **kwargs):
        self.data = data
        self.result = None
        columns = [str(c) for c in data.columns]
        numeric = [
            str(c)
            for c in data.columns
            if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])
        ]
        self.outcome = widgets.Dropdown(options=numeric or columns, description="Outcome")
        self.predictors = widgets.SelectMultiple(
            options=columns, description="Predictors", rows=min(8, max(3, len(columns)))
        )
        self.groups = widgets.SelectMultiple(
            options=columns, description="Groups", rows=min(6, max(3, len(columns)))
        )
        weight_options = [("(none: unweighted)", None)] + [(c, c) for c in numeric]
        self._weight_options = weight_options
        self.row_weight = widgets.Dropdown(options=weight_options, value=None, description="Row weight")
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
        self.button.on_click(self._on_click)
        self._update_formula()
        super().__init__(
            children=[
                self.outcome,
                self.predictors,
                self.groups,
                self.row_weight,
                self._weights_box,
                self.family,
                self.formula,
                widgets.HBox([self.button, self.progress, self.status]),
                self.output,
            ],
            **kwargs,
        )

    # -- choices ---------------------------------------------------------------------------------

    def ordered_groups(self) -> list[str]:
        """Chosen grouping factors from the lowest level (most groups) to the top."""
        chosen = list(self.groups.value)
        return sorted(chosen, key=lambda g: -self.data[g].nunique())

    def _on_groups(self, _change=None) -> None:
        old = {g: d.value for g, d in self.group_weights.items()}
        self.group_weights = {}
        for k, g in enumerate(self.ordered_groups()):
            self.group_weights[g] = widgets.Dropdown(
                options=self._weight_options,
                value=old.get(g),
                description=f"L{k + 2} weight",
                tooltip=f"weight of each {g} group",
            )
        self._weights_box.children = [
            widgets.HBox([d, widgets.Label(f"({g})")]) for g, d in self.group_weights.items()
        ]

    def _on_spec(self, _change=None) -> None:
        self._update_formula()

    def _update_formula(self) -> None:
        y = self.outcome.value
        xs = [x for x in self.predictors.value if x != y]
        rhs = " + ".join(xs) if xs else "1"
        bars = " + ".join(f"(1|{g})" for g in self.ordered_groups())
        self.formula.value = f"{y} ~ {rhs}" + (f" + {bars}" if bars else "") if y is not None else ""

    def weights(self) -> list[str] | None:
        """Weight columns in :func:`wemix_nb.mix` order, or None (unweighted)."""
        if self.row_weight.value is None:
            if any(d.value is not None for d in self.group_weights.values()):
                from wemix_nb.errors import ArgumentError

                raise ArgumentError("Choose a row weight too, or no weights at all.")
            return None
        missing = [g for g, d in self.group_weights.items() if d.value is None]
        if missing:
            from wemix_nb.errors import ArgumentError

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
            import warnings

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
            self.output.value = _error_html(exc)
            self.status.value = "Failed."
        finally:
            self.progress.layout.visibility = "hidden"
            self.button.disabled = False


def model_builder(data: pd.DataFrame) -> ModelBuilder:
    """Widgets to choose outcome, predictors, grouping factors, weights and family, and fit.

    See :class:`ModelBuilder`. The fitted model is ``builder.result``; its report is shown below
    the controls.
    """
    if not isinstance(data, pd.DataFrame):
        from wemix_nb.errors import ArgumentError

        raise ArgumentError(f"model_builder needs a pandas DataFrame, got {type(data).__name__}.")
    return ModelBuilder(data)
