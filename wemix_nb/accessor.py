"""The ``DataFrame.wemix`` accessor, registered when :mod:`wemix_nb` is imported.

>>> import wemix_nb
>>> df = wemix_nb.datasets.pisa2012_like()
>>> fit = df.wemix.mix("pv1math ~ escs + (1|schoolid)", weights=["w_fstuwt", "w_fschwt"])
>>> df.wemix.describe_weights(weights=["w_fstuwt", "w_fschwt"], groups=["schoolid"])  # doctest: +SKIP

The accessor only delegates: the model is :func:`wemix_nb.mix`, the weight summary
:func:`wemix_nb._weights.describe_weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["WemixAccessor"]


@pd.api.extensions.register_dataframe_accessor("wemix")
class WemixAccessor:
    """Weighted mixed models and weight diagnostics for this DataFrame (``df.wemix``)."""

    def __init__(self, data: pd.DataFrame):
        self._data = data

    def mix(self, formula: str, weights: Sequence[str] | None = None, **options: Any):
        """Fit ``formula`` to this DataFrame: ``wemix_nb.mix(formula, df, weights, **options)``.

        Takes every option of :func:`wemix_nb.mix` (``family``, ``link``, ``cweights``,
        ``center_group``, ``center_grand``, ``nquad``...). Returns a :class:`~wemix_nb.MixResult`.
        """
        from wemix_nb.api import mix

        return mix(formula, self._data, weights, **options)

    def describe_weights(self, weights: Sequence[str], groups: Sequence[str] | None = None):
        """Per-level n, sum, mean, min, max, CV and Kish design effect of the weights.

        ``weights`` lists the row weight first, then one per grouping level (lowest first), and
        ``groups`` the grouping factors matching ``weights[1:]``. Returns a
        :class:`~wemix_nb._weights.WeightSummary` (``.table`` is a DataFrame; it shows as a
        great-tables table in notebooks).
        """
        from wemix_nb.survey.describe import describe_weights

        return describe_weights(self._data, weights, groups)
