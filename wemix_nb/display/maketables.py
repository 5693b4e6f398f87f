"""The maketables plug-in protocol for :class:`~wemix_nb.MixResult` (no dependency on maketables).

maketables (``maketables.ETable``) detects result objects by duck typing on ``__maketables_*__``
attributes. ``MixResult`` defines them as thin wrappers around the functions here:

- ``__maketables_coef_table__`` (property): DataFrame indexed by coefficient name with the
  canonical columns ``b``, ``se``, ``t``, ``p`` and ``ci95l``/``ci95u`` (robust SEs);
- ``__maketables_stat__(key)``: ``N``, ``ll``, ``se_type``, ``n_clusters`` (top-level groups),
  ``icc``, ``sigma``, ``family``, ``link`` and ``groups:<factor>``; ``None`` for anything else;
- ``__maketables_depvar__`` (property): the response name;
- ``__maketables_vcov_info__`` (property): ``{"vcov_type": "sandwich", "clustervar": <top factor>}``;
- ``__maketables_default_stat_keys__`` and ``__maketables_stat_labels__`` (properties).

>>> import maketables as mt                                  # doctest: +SKIP
>>> mt.ETable([fit1, fit2])                                  # doctest: +SKIP

maketables tries its registered extractors before the plug-in format, and its statsmodels
extractor takes any object with ``params``, ``bse`` and ``pvalues``. ``MixResult`` therefore has
no ``pvalues`` attribute (its p-values are in ``tidy()``), so that maketables uses these hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from wemix_nb.display.tables import coef_frame

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["coef_table", "default_stat_keys", "depvar", "stat", "stat_labels", "vcov_info"]


def coef_table(result: MixResult) -> pd.DataFrame:
    """Canonical coefficient table: ``b``, ``se``, ``t``, ``p``, ``ci95l``, ``ci95u``."""
    tidy = coef_frame(result, 0.95)
    table = pd.DataFrame(
        {
            "b": tidy["estimate"].to_numpy(float),
            "se": tidy["std_error"].to_numpy(float),
            "t": tidy["statistic"].to_numpy(float),
            "p": tidy["p_value"].to_numpy(float),
            "ci95l": tidy["conf_low"].to_numpy(float),
            "ci95u": tidy["conf_high"].to_numpy(float),
        },
        index=pd.Index(tidy["term"].astype(str), name="Coefficient"),
    )
    return table


def _top_factor(result: MixResult) -> str | None:
    return str(result.ngroups.index[-1]) if len(result.ngroups) > 1 else None


def stat(result: MixResult, key: str) -> int | float | str | None:
    """A model statistic by maketables key, or ``None``."""
    if key == "N":
        return int(result.ngroups.iloc[0])
    if key == "ll":
        return float(result.lnl)
    if key == "se_type":
        top = _top_factor(result)
        return f"robust, by: {top}" if top else "robust"
    if key == "n_clusters":
        return int(result.ngroups.iloc[-1]) if len(result.ngroups) > 1 else None
    if key == "icc":  # as the report shows it (with random slopes: at covariate values 0)
        icc = result.diagnostics.icc
        return None if icc is None else float(icc)
    if key == "sigma":
        return float(result.sigma) if result.family is None else None
    if key == "family":
        return result.family_name
    if key == "link":
        return result.link
    if key.startswith("groups:"):
        factor = key.split(":", 1)[1]
        return int(result.ngroups[factor]) if factor in result.ngroups.index[1:] else None
    return None


def depvar(result: MixResult) -> str:
    """The response's name (the formula's left-hand side)."""
    frame = getattr(result, "frame", None)
    parsed = getattr(frame, "parsed", None)
    response = getattr(parsed, "response", None)
    if response:
        return str(response)
    return str(result.formula).split("~", 1)[0].strip() or "Dependent Variable"


def vcov_info(result: MixResult) -> dict:
    """The kind of covariance: sandwich, clustered on the top-level grouping factor."""
    return {"vcov_type": "sandwich", "clustervar": _top_factor(result)}


def default_stat_keys(result: MixResult) -> list[str]:
    """The statistics maketables shows by default: N, clusters, log-likelihood, ICC."""
    return ["N", "n_clusters", "ll", "icc"]


def stat_labels(result: MixResult) -> dict[str, str]:
    """Row labels of the statistics."""
    top = _top_factor(result)
    labels = {
        "ll": "Log pseudo-likelihood",
        "icc": "ICC",
        "sigma": "Residual SD",
        "n_clusters": f"Groups ({top})" if top else "Groups",
        "family": "Family",
        "link": "Link",
    }
    labels.update({f"groups:{k}": f"Groups ({k})" for k in result.ngroups.index[1:]})
    return labels
