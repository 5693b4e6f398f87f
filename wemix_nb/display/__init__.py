"""The notebook layer: great-tables reports, Altair charts and ipywidgets for wemix_nb results.

Nothing here is imported by ``import wemix_nb``; the heavy libraries (great_tables, altair,
ipywidgets) load on first use, from the submodules:

- :mod:`wemix_nb.display.tables` -- the numbers shown, as DataFrames (``coef_frame``,
  ``variance_frame``, ``level_frame``), shared by the tables, charts and maketables hooks;
- :mod:`wemix_nb.display.html` -- ``result_html``/``result_gt`` (a result's report),
  ``wald_html``, ``weights_html`` and :func:`compare` (side-by-side models);
- :mod:`wemix_nb.display.plots` -- ``ranef_plot`` (caterpillar), ``coef_plot`` (forest),
  ``compare_plot``;
- :mod:`wemix_nb.display.widgets` -- ``wald_widget`` and ``model_builder``.

How charts reach the screen
---------------------------
wemix_nb returns ordinary ``altair.Chart`` objects and never changes Altair's renderer on import.
Altair 6's default renderer loads Vega from a CDN, so with no internet (a classroom, a laptop on a
plane, an air-gapped server) charts stay blank. Call :func:`enable_offline_charts` once per
session to draw them offline: it switches Altair to its ``"jupyter"`` renderer with
``offline=True`` (an anywidget that bundles Vega; needs the ``anywidget`` and
``vl-convert-python`` packages, both in ``wemix_nb[notebook]``). With internet access the default
renderer works and nothing needs to be done.
"""

from __future__ import annotations

__all__ = ["compare", "enable_offline_charts"]


def enable_offline_charts() -> str:
    """Draw Altair charts without internet access, for this Python session.

    Calls ``altair.renderers.enable("jupyter", offline=True)``: charts are rendered by Altair's
    anywidget-based renderer with Vega bundled locally (the ``anywidget`` and
    ``vl-convert-python`` packages must be installed). This changes Altair's *global* renderer,
    which is why wemix_nb only does it when you call this function -- never on import. Undo with
    ``altair.renderers.enable("default")``.

    Returns
    -------
    str
        The name of the renderer that was active before (so you can restore it).
    """
    try:
        import altair as alt
        import anywidget  # noqa: F401  (the offline renderer needs it; fail early with a clear message)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Offline charts need altair, anywidget and vl-convert-python: pip install 'wemix_nb[notebook]'."
        ) from exc
    previous = alt.renderers.active
    alt.renderers.enable("jupyter", offline=True)
    return previous


def __getattr__(name: str):
    if name == "compare":
        from wemix_nb.display.html import compare

        return compare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
