"""Altair charts that draw themselves: offline, with no set-up, without Altair's global settings.

An Altair chart is displayed through Altair's *global* renderer; Altair 6's default one loads Vega
from a CDN (blank with no internet) and its ``"mimetype"`` renderer emits Vega-Lite 6, which
JupyterLab 4 does not draw. :func:`self_rendering` returns the chart as an instance of a subclass
(:class:`Chart`, :class:`LayerChart`, ... here) whose ``_repr_mimebundle_`` does not consult the
renderer registry. The display bundle holds:

``application/vnd.vega.v5+json``
    The chart compiled to Vega 5 in Python by ``vl-convert-python`` (data inline). JupyterLab 4,
    Notebook 7 and VS Code (its Jupyter renderers extension) draw it with the Vega they bundle:
    interactive, with tooltips, no network, and also in an untrusted notebook (the renderer is
    "safe"). JupyterLab ranks it above SVG and PNG, so it is what a live notebook shows.
``image/svg+xml`` or ``image/png``
    A static picture (``vl-convert``) for everything that does not run Vega: GitHub, nbviewer,
    ``nbconvert --to html``, Sphinx/myst-nb, a front end without a Vega renderer. SVG while it is
    at most :data:`SVG_MAX_BYTES`, else PNG (a 1,000-group caterpillar is 0.84 MB as SVG, 0.13 MB
    as PNG).
``text/plain``
    The chart's title and subtitle; if drawing failed, also why.

Nothing here changes ``altair.renderers`` or ``altair.data_transformers``: the data of a
self-rendering chart are embedded as inline values whatever transformer is active (see
:func:`vegalite_spec`), so users' own charts display exactly as before.

Composition keeps the self-rendering: ``.properties()``, ``.configure_*()``, ``.interactive()``,
``+``, ``|``, ``&``, ``.facet()`` and ``.repeat()`` on a self-rendering chart return one, and so
does ``plain + ours`` when ``plain`` is of the same Altair class. Functions that build a new chart
(``alt.layer``, ``alt.hconcat``, ...) and ``plain_chart | ours`` with a different class return an
ordinary Altair chart, displayed by the active renderer as usual; wrap it with
:func:`self_rendering` to draw it offline. :func:`plain` goes the other way.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import altair as alt
from altair.utils.data import is_data_type

from wemix_nb.errors import ArgumentError

__all__ = [
    "MIME_VEGA",
    "SVG_MAX_BYTES",
    "Chart",
    "ConcatChart",
    "FacetChart",
    "HConcatChart",
    "LayerChart",
    "RepeatChart",
    "SelfRendering",
    "VConcatChart",
    "chart_bundle",
    "plain",
    "self_rendering",
    "vegalite_spec",
]

#: the Vega mimetype that JupyterLab 4, Notebook 7 and VS Code render with their bundled Vega 5
MIME_VEGA = "application/vnd.vega.v5+json"
MIME_SVG = "image/svg+xml"
MIME_PNG = "image/png"
MIME_TEXT = "text/plain"
#: above this size (bytes) the static picture is a PNG instead of an SVG
SVG_MAX_BYTES = 150_000
#: rows embedded per data set when a data transformer other than Altair's default one is active
DEFAULT_MAX_ROWS = 5000
#: vega-embed options for the live view: export to SVG/PNG, no links to the online Vega editor
EMBED_OPTIONS = {"actions": {"export": True, "source": False, "compiled": False, "editor": False}}

T = TypeVar("T")


# -------------------------------------------------------------------------------------------------
# the self-rendering chart classes


def _adopt(chart: T) -> T:
    """Make a freshly built chart self-rendering in place (no copy); other objects pass through."""
    if isinstance(chart, alt.TopLevelMixin) and not isinstance(chart, SelfRendering):
        # Altair routes attribute assignment to the schema properties; set the class directly
        object.__setattr__(chart, "__class__", _self_rendering_class(type(chart)))
    return chart


class SelfRendering:
    """Mixin for Altair top-level charts whose notebook display does not use Altair's renderer.

    See the module documentation; instances are made by :func:`self_rendering`.
    """

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            return chart_bundle(self, include=include, exclude=exclude)
        except Exception as exc:  # last resort: IPython would print a traceback and show nothing
            return {MIME_TEXT: f"Altair {type(self).__name__}\n[chart not drawn: {_reason(exc)}]"}, {}

    # composition returns self-rendering charts
    def __add__(self, other):
        return _adopt(super().__add__(other))

    def __and__(self, other):
        return _adopt(super().__and__(other))

    def __or__(self, other):
        return _adopt(super().__or__(other))

    # `plain + ours` when type(ours) subclasses type(plain): Python asks these first
    def __radd__(self, other):
        return _reflected(other, "__add__", self)

    def __rand__(self, other):
        return _reflected(other, "__and__", self)

    def __ror__(self, other):
        return _reflected(other, "__or__", self)

    def repeat(self, *args, **kwargs):
        return _adopt(super().repeat(*args, **kwargs))


def _reflected(left, method: str, right):
    if not isinstance(left, alt.TopLevelMixin):
        return NotImplemented
    return _adopt(getattr(type(left), method)(left, right))


class _Faceting:
    def facet(self, *args, **kwargs):
        return _adopt(super().facet(*args, **kwargs))


# Same class names as Altair's, so that repr() and Altair's view names stay as for a plain chart.
class Chart(SelfRendering, _Faceting, alt.Chart):
    """An ``altair.Chart`` that draws itself (see :mod:`wemix_nb.display.render`)."""


class LayerChart(SelfRendering, _Faceting, alt.LayerChart):
    """An ``altair.LayerChart`` that draws itself (see :mod:`wemix_nb.display.render`)."""


class HConcatChart(SelfRendering, alt.HConcatChart):
    """An ``altair.HConcatChart`` that draws itself (see :mod:`wemix_nb.display.render`)."""


class VConcatChart(SelfRendering, alt.VConcatChart):
    """An ``altair.VConcatChart`` that draws itself (see :mod:`wemix_nb.display.render`)."""


class ConcatChart(SelfRendering, alt.ConcatChart):
    """An ``altair.ConcatChart`` that draws itself (see :mod:`wemix_nb.display.render`)."""


class FacetChart(SelfRendering, alt.FacetChart):
    """An ``altair.FacetChart`` that draws itself (see :mod:`wemix_nb.display.render`)."""


class RepeatChart(SelfRendering, alt.RepeatChart):
    """An ``altair.RepeatChart`` that draws itself (see :mod:`wemix_nb.display.render`)."""


_CLASSES: dict[type, type] = {
    alt.Chart: Chart,
    alt.LayerChart: LayerChart,
    alt.HConcatChart: HConcatChart,
    alt.VConcatChart: VConcatChart,
    alt.ConcatChart: ConcatChart,
    alt.FacetChart: FacetChart,
    alt.RepeatChart: RepeatChart,
}


def _self_rendering_class(cls: type) -> type:
    if cls not in _CLASSES:  # a user's subclass of an Altair chart class
        _CLASSES[cls] = type(cls.__name__, (SelfRendering, cls), {"__module__": __name__})
    return _CLASSES[cls]


def self_rendering(chart: T) -> T:
    """The chart as one that draws itself in notebooks, offline, without Altair's renderer.

    Parameters
    ----------
    chart
        Any Altair top-level chart (``alt.Chart``, ``alt.LayerChart``, concatenations, facets...).

    Returns
    -------
    A shallow copy of ``chart`` whose class is the matching subclass defined in this module (an
    instance of the original Altair class too); ``chart`` itself is left as it was. A chart that
    is already self-rendering is returned as is.

    Raises
    ------
    ArgumentError
        If ``chart`` is not an Altair top-level chart.
    """
    if isinstance(chart, SelfRendering):
        return chart
    if not isinstance(chart, alt.TopLevelMixin):
        raise ArgumentError(f"self_rendering() takes an Altair chart, got {type(chart).__name__}.")
    return _adopt(chart.copy(deep=False))


def plain(chart: T) -> T:
    """A shallow copy of a self-rendering chart as its ordinary Altair class (shown by the active
    Altair renderer, e.g. to use ``alt.renderers.enable("jupyter")`` for selections)."""
    if not isinstance(chart, SelfRendering):
        return chart
    base = next(
        c
        for c in type(chart).__mro__
        if issubclass(c, alt.TopLevelMixin) and not issubclass(c, SelfRendering)
    )
    copy = chart.copy(deep=False)
    object.__setattr__(copy, "__class__", base)
    return copy


# -------------------------------------------------------------------------------------------------
# the display bundle


def _inline_data(node) -> None:
    """Replace, in place, every data frame held as ``data`` in the chart tree by inline values."""
    if isinstance(node, alt.SchemaBase):
        kwds = node._kwds  # Altair keeps a schema object's properties here
        data = kwds.get("data")
        if data is not None and not isinstance(data, dict | alt.SchemaBase) and is_data_type(data):
            kwds["data"] = alt.to_values(alt.limit_rows(data, max_rows=DEFAULT_MAX_ROWS))
        for key, value in kwds.items():
            if key != "data" or isinstance(value, alt.SchemaBase):
                _inline_data(value)
    elif isinstance(node, list | tuple):
        for value in node:
            _inline_data(value)
    elif isinstance(node, dict):
        for value in node.values():
            _inline_data(value)


def vegalite_spec(chart) -> dict[str, Any]:
    """The chart's Vega-Lite specification with all data inline, whatever data transformer is
    active (``chart`` is unchanged).

    With Altair's ``"default"`` transformer active (inline values, at most ``max_rows`` rows) this
    is ``chart.to_dict()``. With another one (``"json"`` writes files, ``"vegafusion"``...) the
    data frames of a deep copy are embedded first, at most 5,000 rows each; column types are
    then not inferred from the data, so encodings need explicit types (``"x:Q"``), as all of
    wemix_nb's charts have.
    """
    # pre_transform=False: never hand the spec to VegaFusion (as Altair's own display does)
    context = {"pre_transform": False}
    if alt.data_transformers.active == "default":
        return chart.to_dict(context=context)
    copy = chart.copy(deep=True)
    _inline_data(copy)
    return copy.to_dict(context=context)


def _vl_versions() -> tuple[str | None, str | None]:
    """(newest Vega-Lite 5 in vl-convert, the Vega-Lite version this Altair writes) as vl-convert
    names them, e.g. ("5.21", "6.4"); None where vl-convert has no such compiler."""
    import vl_convert as vlc

    known = list(vlc.get_vegalite_versions())
    fives = [v for v in known if v.startswith("5.")]
    newest5 = max(fives, key=lambda v: tuple(int(p) for p in v.split("."))) if fives else None
    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    own = f"{major}.{minor}"
    return newest5, own if own in known else None


def to_vega5(spec: dict[str, Any]) -> dict[str, Any]:
    """Compile a Vega-Lite spec to Vega for the Vega 5 runtimes of JupyterLab, Notebook 7 and
    VS Code: with Vega-Lite 5 (whose output is Vega 5) when it accepts the spec, else with the
    Vega-Lite version Altair wrote it for."""
    import vl_convert as vlc

    v5, own = _vl_versions()
    if v5 is not None:
        try:
            return vlc.vegalite_to_vega(spec, vl_version=v5)
        except Exception:  # a Vega-Lite 6 feature: compile with Altair's own version below
            pass
    return vlc.vegalite_to_vega(spec, vl_version=own)


def static_image(spec: dict[str, Any], svg: bool = True, png: bool = True) -> tuple[str, str]:
    """(mimetype, data) of a static picture of the chart: SVG text while it is at most
    :data:`SVG_MAX_BYTES` (or PNG is not wanted), else a base64 PNG."""
    import vl_convert as vlc

    own = _vl_versions()[1]
    image = vlc.vegalite_to_svg(spec, vl_version=own)
    if svg and (not png or len(image.encode()) <= SVG_MAX_BYTES):
        return MIME_SVG, image
    return MIME_PNG, base64.b64encode(vlc.svg_to_png(image, scale=1)).decode("ascii")


def _text_lines(value) -> list[str]:
    if value is None or value is alt.Undefined:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _title_lines(title) -> list[str]:
    if isinstance(title, alt.SchemaBase):
        title = title.to_dict(validate=False)
    if isinstance(title, dict):
        return _text_lines(title.get("text")) + _text_lines(title.get("subtitle"))
    return _text_lines(title)


def _spec_titles(spec: dict[str, Any]) -> list[str]:
    """The spec's title lines, else the titles of its parts (layers, concatenated views)."""
    lines = _title_lines(spec.get("title"))
    if lines:
        return lines
    parts = [spec.get("spec")] if isinstance(spec.get("spec"), dict) else []
    for key in ("layer", "hconcat", "vconcat", "concat"):
        parts += [p for p in spec.get(key, []) if isinstance(p, dict)]
    return [line for part in parts for line in _spec_titles(part)]


def describe(chart, spec: dict[str, Any] | None = None) -> str:
    """Plain-text stand-in for the chart: its title and subtitle lines (or those of its parts),
    else its kind."""
    lines = _spec_titles(spec) if spec is not None else _title_lines(getattr(chart, "title", None))
    return "\n".join(lines) if lines else f"Altair {type(chart).__name__}"


def _wants(include, exclude):
    return lambda mime: (not include or mime in include) and not (exclude and mime in exclude)


def chart_bundle(chart, include=None, exclude=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (data, metadata) display bundle of ``chart`` (see the module documentation).

    Never raises: whatever cannot be produced is left out and named, with the reason, in the
    ``text/plain`` entry, which is then what a front end shows if nothing else was produced.
    ``include``/``exclude`` are IPython's mimetype filters.
    """
    wants = _wants(include, exclude)
    try:
        spec = vegalite_spec(chart)
    except Exception as exc:
        return {MIME_TEXT: _not_drawn(chart, None, [f"no specification: {_reason(exc)}"])}, {}
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    problems = []
    if wants(MIME_VEGA):
        try:
            data[MIME_VEGA] = to_vega5(spec)
            metadata[MIME_VEGA] = {"embed_options": EMBED_OPTIONS}
        except Exception as exc:
            problems.append(f"no interactive view: {_reason(exc)}")
    if wants(MIME_SVG) or wants(MIME_PNG):
        try:
            mime, image = static_image(spec, svg=wants(MIME_SVG), png=wants(MIME_PNG))
            data[mime] = image
        except Exception as exc:
            problems.append(f"no static picture: {_reason(exc)}")
    data[MIME_TEXT] = _not_drawn(chart, spec, problems) if problems else _safe_describe(chart, spec)
    return data, metadata


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _safe_describe(chart, spec) -> str:
    try:
        return describe(chart, spec)
    except Exception:  # a title that cannot be read must not stop the display
        return f"Altair {type(chart).__name__}"


def _not_drawn(chart, spec, problems: list[str]) -> str:
    return _safe_describe(chart, spec) + "\n" + "\n".join(f"[chart {p}]" for p in problems)
