"""Altair charts of fitted models: caterpillar plots of random effects and coefficient (forest) plots.

The functions return Altair charts that draw themselves in a notebook with no set-up and no
internet (:func:`wemix_nb.display.render.self_rendering`: Vega 5 for JupyterLab, Notebook 7 and
VS Code, an SVG or PNG for static views); they never change Altair's renderer or its data
transformers.

Caterpillar plots
-----------------
:func:`ranef_plot` draws the modes and conditional SDs of
:meth:`~wemix_nb.MixResult.random_effect_predictions`: with unscaled survey weights they are
computed with each group's weights rescaled to its number of sampled units, so that each interval
reflects what was sampled (``raw=True`` draws the pseudo-likelihood ones, too narrow when the
weights sum to more than the sample). Intervals are coloured by whether they lie above 0, below 0
or include 0, and the subtitle counts them.

Forest plots
------------
:func:`coef_plot` and :func:`compare_plot` give each coefficient one band (shaded every other
one), the models side by side inside it, at most about 25 px per coefficient and model. The
intercept is left out unless ``intercept=True`` (it is usually on another scale and would squash
the other intervals).

Many groups
-----------
Altair refuses to embed more than 5,000 rows of data in a chart (``MaxRowsError``), and a
caterpillar plot of 20,000 groups would be 20,000 overplotted intervals in a few hundred pixels
anyway. :func:`ranef_plot` therefore passes its data deliberately: with more than ``max_groups``
groups (default 1,000, at most 5,000) it keeps an even thinning of the groups *by rank* of their
conditional mode -- always including the lowest and the highest -- so the shape of the
distribution is preserved, and says so in the chart's subtitle ("1,000 of 20,000 groups shown").
``top=N`` instead shows only the N groups with the largest absolute mode. The global row limit is
never raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wemix_nb.display.render import self_rendering
from wemix_nb.display.tables import coef_frame
from wemix_nb.errors import ArgumentError
from wemix_nb.results.ranef import UNWEIGHTED
from wemix_nb.results.report import resolve_conf_level

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.display.html import Comparison
    from wemix_nb.results.result import MixResult

__all__ = ["ALTAIR_MAX_ROWS", "LABELLED_GROUPS", "coef_plot", "compare_plot", "ranef_data", "ranef_plot"]

#: Altair's default limit on rows embedded in one chart
ALTAIR_MAX_ROWS = 5000
#: up to this many groups the caterpillar plot labels every group on the y axis; above, it uses ranks
LABELLED_GROUPS = 60


def _level_sizes(result, factor: str) -> np.ndarray | None:
    frame = getattr(result, "frame", None)
    if frame is None:
        return None
    for level in frame.levels:
        if level.name == factor:
            return np.asarray(level.n_rows)
    return None


def ranef_data(
    result, term: str | None = None, group: str | None = None, z: float = 1.96, raw: bool = False
) -> pd.DataFrame:
    """All groups' conditional modes of one random-effect term, sorted by mode.

    The modes and SDs are the result's :meth:`~wemix_nb.MixResult.random_effect_predictions`:
    with unscaled survey weights, computed with each group's weights rescaled to its sample size
    (``raw=True``: the fit's own pseudo-likelihood modes).

    Columns: ``group`` (label as text), ``mode``, ``sd`` (conditional SD), ``lower``/``upper``
    (``mode -/+ z * sd``), ``n`` (rows in the group), ``side`` (``"above 0"``, ``"below 0"`` or
    ``"includes 0"``: where the interval lies) and ``rank`` (1 = lowest mode). ``attrs`` holds
    ``factor``, ``term``, ``z`` and ``weights`` (how the weights were treated, in words).
    """
    predictions = _predictions(result, raw)
    if not predictions.modes:
        raise ArgumentError("This result has no random effects to plot.")
    factors = list(predictions.modes)
    factor = factors[0] if group is None else group
    if factor not in predictions.modes:
        raise ArgumentError(f"group must be one of the grouping factors {factors}, got {group!r}.")
    modes = predictions.modes[factor]
    terms = [str(c) for c in modes.columns]
    name = terms[0] if term is None else term
    if name not in terms:
        raise ArgumentError(f"term must be one of {factor!r}'s random-effect terms {terms}, got {term!r}.")
    column = modes.columns[terms.index(name)]
    b = modes[column].to_numpy(dtype=float)
    sd_frame = predictions.sd.get(factor)
    sd = sd_frame[column].to_numpy(dtype=float) if sd_frame is not None else np.full(b.shape, np.nan)
    sizes = _level_sizes(result, factor)
    lower, upper = b - z * sd, b + z * sd
    data = pd.DataFrame(
        {
            "group": [str(g) for g in modes.index],
            "mode": b,
            "sd": sd,
            "lower": lower,
            "upper": upper,
            "n": sizes if sizes is not None and len(sizes) == len(b) else np.full(b.shape, -1),
            "side": np.where(lower > 0, "above 0", np.where(upper < 0, "below 0", "includes 0")),
        }
    )
    data = data.sort_values(["mode", "group"], kind="stable").reset_index(drop=True)
    data["rank"] = np.arange(1, len(data) + 1)
    data.attrs.update(factor=factor, term=name, z=z, weights=predictions.weights)
    return data


def _predictions(result, raw: bool):
    """The result's random-effect predictions (duck-typed results: their ``ranef`` as is)."""
    if hasattr(result, "random_effect_predictions"):
        return result.random_effect_predictions(raw)
    from wemix_nb.results.ranef import RandomEffectPredictions

    sd = dict(getattr(result, "ranef_sd", None) or {})
    return RandomEffectPredictions(dict(result.ranef), sd, False, "")


#: colours of the caterpillar's intervals by where they lie relative to 0
SIDE_COLOURS = {"below 0": "#c4493c", "includes 0": "#8c8c8c", "above 0": "#2f6db3"}


def _thin(data: pd.DataFrame, top: int | None, max_groups: int) -> tuple[pd.DataFrame, list[str]]:
    """The groups drawn (``top`` largest |mode|, then an even thinning by rank) and notes on it."""
    total = len(data)
    notes = []
    if top is not None:
        if not isinstance(top, int | np.integer) or top < 1:
            raise ArgumentError(f"top must be a positive integer, got {top!r}.")
        if top < total:
            keep = data["mode"].abs().sort_values(ascending=False, kind="stable").index[:top]
            data = data.loc[sorted(keep)]
            notes.append(f"the {top:,} groups with the largest |mode| of {total:,}")
    if len(data) > max_groups:
        positions = np.unique(np.round(np.linspace(0, len(data) - 1, max_groups)).astype(int))
        notes.append(f"{len(positions):,} of {len(data):,} groups shown, evenly by rank (extremes kept)")
        data = data.iloc[positions]
    return data.reset_index(drop=True), notes


def _ranef_subtitle(data: pd.DataFrame, notes: list[str], z: float) -> list[str]:
    factor = data.attrs["factor"]
    lines = [f"{len(data):,} groups ({factor})"]
    if np.isfinite(data["sd"]).any():
        counts = data["side"].value_counts()
        lines[0] += (
            f"; intervals: mode ± {z:g} conditional SD: {counts.get('above 0', 0):,} above 0, "
            f"{counts.get('below 0', 0):,} below 0, {counts.get('includes 0', 0):,} include 0"
        )
    weights = data.attrs.get("weights")
    if weights and weights != UNWEIGHTED:  # nothing to say about unit weights
        lines.append(weights[0].upper() + weights[1:])
    return lines + notes


def ranef_plot(
    result,
    term: str | None = None,
    group: str | None = None,
    top: int | None = None,
    max_groups: int = 1000,
    z: float = 1.96,
    width: int = 420,
    raw: bool = False,
):
    """Caterpillar plot: each group's conditional mode with a ``± z`` conditional-SD interval.

    With unscaled survey weights the modes and SDs are computed at the fitted parameters with each
    group's conditional weights rescaled to sum to its number of sampled units (Pfeffermann et al.
    1998; Stata's ``pwscale(size)``), so a group's interval reflects the units actually sampled;
    the subtitle says so. ``raw=True`` draws the fit's own pseudo-likelihood modes (WeMix's
    ``ranef``), whose intervals are too narrow when a group's weights sum to more than its
    sample. See :mod:`wemix_nb.results.ranef`.

    Parameters
    ----------
    term
        Random-effect term (column of ``result.ranef[group]``); default the first (the intercept).
    group
        Grouping factor; default the first (the level with the most groups).
    top
        Show only the ``top`` groups with the largest absolute mode (still sorted by mode).
    max_groups
        Most groups drawn (at most 5,000, Altair's row limit). With more, an even thinning by rank
        (keeping the extremes) is drawn and the subtitle says how many of how many are shown.
    z
        Interval half-width in conditional SDs (1.96: approximate 95% intervals).
    width
        Width of the plot in pixels.
    raw
        Draw the fit's own modes instead of rescaling the weights.

    Intervals are coloured by where they lie (above 0, below 0, including 0) and the subtitle
    counts them. The y axis names each group when at most 60 are drawn, else shows their rank.
    Tooltips give the group label, its number of rows ``n``, the mode, conditional SD and the
    interval.
    """
    import altair as alt

    if not isinstance(max_groups, int | np.integer) or not 1 <= max_groups <= ALTAIR_MAX_ROWS:
        raise ArgumentError(f"max_groups must be an integer from 1 to {ALTAIR_MAX_ROWS}, got {max_groups!r}.")
    data = ranef_data(result, term=term, group=group, z=z, raw=raw)
    factor, name = data.attrs["factor"], data.attrs["term"]
    shown, notes = _thin(data, top, max_groups)
    labelled = len(shown) <= LABELLED_GROUPS
    if labelled:
        y = alt.Y("group:N", sort=list(shown["group"]), title=factor)
        height = alt.Step(14)
    else:
        y = alt.Y(
            "rank:Q",
            title=f"rank of the mode among {len(data):,} groups ({factor})",
            scale=alt.Scale(zero=False, nice=False),
        )
        height = 420
    tooltip = [
        alt.Tooltip("group:N", title=factor),
        alt.Tooltip("n:Q", title="n (rows)"),
        alt.Tooltip("mode:Q", title="mode", format=".4g"),
        alt.Tooltip("sd:Q", title="conditional SD", format=".4g"),
        alt.Tooltip("lower:Q", format=".4g"),
        alt.Tooltip("upper:Q", format=".4g"),
        alt.Tooltip("rank:Q"),
    ]
    sides = [side for side in SIDE_COLOURS if side in set(shown["side"])]
    color = alt.Color(
        "side:N",
        title="interval",
        scale=alt.Scale(domain=sides, range=[SIDE_COLOURS[s] for s in sides]),
        legend=alt.Legend(orient="bottom"),
    )
    base = alt.Chart(shown)
    x_title = f"conditional mode of {name}"
    layers = [
        alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#999", strokeDash=[4, 3]).encode(x="zero:Q")
    ]
    if np.isfinite(shown["sd"]).any():
        layers.append(
            base.mark_rule(opacity=0.8 if labelled else 0.45).encode(
                x=alt.X("lower:Q", title=x_title), x2="upper:Q", y=y, color=color, tooltip=tooltip
            )
        )
    layers.append(
        base.mark_point(filled=True, opacity=1, size=30 if labelled else 8).encode(
            x=alt.X("mode:Q", title=x_title), y=y, color=color, tooltip=tooltip
        )
    )
    return self_rendering(alt.layer(*layers)).properties(
        title=alt.TitleParams(
            f"Random effects: {name} by {factor}", subtitle=_ranef_subtitle(data, notes, z)
        ),
        width=width,
        height=height,
    )


#: pixels per coefficient of a one-model forest plot
TERM_STEP = 22
#: pixels per model within a coefficient's band of a comparison plot, and the band's padding
MODEL_STEP = 18
BAND_PADDING = 6
#: names of the intercept, left out of forest plots unless asked for
INTERCEPT_NAMES = ("Intercept", "(Intercept)")


def coef_plot(
    result: MixResult,
    conf_level: float = 0.95,
    intercept: bool = False,
    terms: list[str] | None = None,
    width: int = 420,
    *,
    level: float | None = None,
):
    """Forest plot of the fixed effects: estimates with ``conf_level`` confidence intervals
    (robust SEs; the same p-values and intervals as the report, see :meth:`MixResult.tidy`).

    Parameters
    ----------
    result
        A fitted model.
    conf_level
        Confidence level of the intervals.
    intercept
        Include the intercept. Left out by default: it is usually on another scale than the
        slopes and would squash their intervals.
    terms
        Keep only these coefficients.
    width
        Width of the plot in pixels.
    level
        Deprecated alias of ``conf_level``.

    Terms are listed top to bottom in the model's order, one band each.
    """
    conf_level = resolve_conf_level(conf_level, level)
    data = coef_frame(result, conf_level)
    data = _select_terms(data, intercept, terms)
    return _forest(data, conf_level, title=f"Fixed effects: {result.formula}", width=width)


def compare_plot(
    comparison: Comparison,
    conf_level: float = 0.95,
    intercept: bool = False,
    width: int = 420,
    *,
    level: float | None = None,
):
    """Coefficients of several models on one forest plot: one band per coefficient, the models
    side by side inside it and coloured (``intercept=True`` adds the intercept; ``level``:
    deprecated alias of ``conf_level``)."""
    conf_level = resolve_conf_level(conf_level, level)
    frames = []
    for name, model in zip(comparison.names, comparison.models, strict=True):
        frame = coef_frame(model, conf_level)
        frame.insert(0, "model", name)
        frames.append(frame)
    data = _select_terms(pd.concat(frames, ignore_index=True), intercept, None)
    return _forest(
        data, conf_level, title="Model comparison: fixed effects", width=width, models=list(comparison.names)
    )


def _select_terms(data: pd.DataFrame, intercept: bool, terms) -> pd.DataFrame:
    if not intercept:
        without = data[~data["term"].isin(INTERCEPT_NAMES)]
        if without.empty and terms is None:
            raise ArgumentError("The model has only an intercept; plot it with intercept=True.")
        data = without
    if terms is not None:
        unknown = sorted(set(terms) - set(data["term"]))
        if unknown:
            raise ArgumentError(f"terms not in the model: {unknown}.")
        data = data[data["term"].isin(terms)]
    if data.empty:
        raise ArgumentError("No coefficients left to plot.")
    return data.reset_index(drop=True)


def _term_bands(order: list[str], y):
    """Light bands behind every other coefficient, so each coefficient's models read as one group."""
    import altair as alt

    shaded = pd.DataFrame({"term": order[::2]})
    return alt.Chart(shaded).mark_rect(color="#f0f0f0").encode(y=y)


def _forest(data: pd.DataFrame, conf_level: float, title: str, width: int, models: list[str] | None = None):
    import altair as alt

    pct = f"{100 * conf_level:g}%"
    order = list(dict.fromkeys(data["term"]))
    y = alt.Y("term:N", sort=order, title=None, scale=alt.Scale(paddingInner=0, paddingOuter=0))
    tooltip = [
        alt.Tooltip("term:N"),
        alt.Tooltip("estimate:Q", format=".4g"),
        alt.Tooltip("std_error:Q", title="robust SE", format=".4g"),
        alt.Tooltip("p_value:Q", title="p", format=".3g"),
        alt.Tooltip("conf_low:Q", title=f"{pct} CI low", format=".4g"),
        alt.Tooltip("conf_high:Q", title=f"{pct} CI high", format=".4g"),
    ]
    encode = {"y": y}
    if models is not None:
        tooltip.insert(0, alt.Tooltip("model:N"))
        # the models share their coefficient's band, each on its own line (padding around the group)
        encode["yOffset"] = alt.YOffset("model:N", sort=models, scale=alt.Scale(paddingOuter=0.2))
        encode["color"] = alt.Color("model:N", sort=models, title="model", legend=alt.Legend(orient="bottom"))
    base = alt.Chart(data)
    zero = (
        alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#999", strokeDash=[4, 3]).encode(x="zero:Q")
    )
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("conf_low:Q", title=f"estimate with {pct} confidence interval"),
        x2="conf_high:Q",
        tooltip=tooltip,
        **encode,
    )
    points = base.mark_point(filled=True, size=50, opacity=1)
    points = points.encode(x="estimate:Q", tooltip=tooltip, **encode)
    if models is None:
        bars = bars.encode(color=alt.value("#4c78a8"))
        points = points.encode(color=alt.value("#1f3b73"))
        band = TERM_STEP
    else:
        band = MODEL_STEP * len(models) + BAND_PADDING  # a line per model, a little padding
    # an explicit height: a step would be read per model by some layers and per band by others
    height = band * len(order)
    return self_rendering(alt.layer(_term_bands(order, y), zero, bars, points)).properties(
        title=alt.TitleParams(title, subtitle=[f"{pct} intervals from robust (sandwich) standard errors"]),
        width=width,
        height=height,
    )
