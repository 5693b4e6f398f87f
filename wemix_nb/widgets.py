"""Notebook widgets (needs ipywidgets): ``model_builder(df)`` and ``wald_widget(result)``.

>>> import wemix_nb.widgets                                          # doctest: +SKIP
>>> wemix_nb.widgets.model_builder(wemix_nb.datasets.pisa2012_like())  # doctest: +SKIP

The implementation lives in :mod:`wemix_nb.display.widgets`.
"""

from __future__ import annotations

from .display.widgets import ModelBuilder, WaldWidget, model_builder, wald_widget

__all__ = ["ModelBuilder", "WaldWidget", "model_builder", "wald_widget"]
