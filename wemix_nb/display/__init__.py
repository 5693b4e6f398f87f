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
The charts wemix_nb returns (``plot_ranef``, ``plot_coef``, ``compare(...).plot()``) draw
themselves, with no set-up and no internet: each is an Altair chart made self-rendering by
:func:`self_rendering` (:mod:`wemix_nb.display.render`), whose notebook display carries the chart
compiled to Vega 5 (drawn by JupyterLab 4, Notebook 7 and VS Code with the Vega they bundle) and a
static SVG or PNG for everything else (GitHub, nbviewer, exported HTML). Altair's global renderer
and data transformer are never touched, so users' own charts display exactly as before.

Users' own Altair charts still go through Altair's renderer, whose default loads Vega from a CDN
(blank with no internet). Wrap one with :func:`self_rendering` to draw it offline too, or call
:func:`enable_offline_charts` once to switch Altair's renderer for the session.
"""

from __future__ import annotations

__all__ = ["compare", "enable_offline_charts", "self_rendering"]


def enable_offline_charts() -> str:
    """Draw your own Altair charts without internet access, for this Python session.

    wemix_nb's charts need nothing: they draw themselves offline (see the module documentation).
    This is for other Altair charts: it calls ``altair.renderers.enable("jupyter",
    offline=True)``, Altair's anywidget-based renderer with Vega bundled locally (``anywidget``
    and ``vl-convert-python`` are installed with wemix_nb). It changes Altair's *global* renderer,
    which is why wemix_nb only does it when you call this function -- never on import. Undo with
    ``altair.renderers.enable("default")``; or wrap single charts with :func:`self_rendering`.

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
            "Offline charts need altair, anywidget and vl-convert-python (installed with wemix_nb): "
            "pip install altair anywidget vl-convert-python."
        ) from exc
    previous = alt.renderers.active
    alt.renderers.enable("jupyter", offline=True)
    return previous


def __getattr__(name: str):
    if name == "compare":
        from wemix_nb.display.html import compare

        return compare
    if name == "self_rendering":  # imports Altair: only when asked for
        from wemix_nb.display.render import self_rendering

        return self_rendering
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
