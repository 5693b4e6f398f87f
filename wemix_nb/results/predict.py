"""Predictions of a fit: conditional on the groups' random effects, or population-level with
delta-method standard errors of the fixed part.

The linear predictor of a row is ``eta = x'beta + sum_l z_l'b_l``: its fixed part comes from
:func:`fixed_link` and its random part from :func:`random_link`, so that a term added to the
linear predictor (an offset, say) has one place to go. New data are read by
:func:`prepare_newdata`, which checks them and repeats the fit's centering.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from wemix_nb.errors import ArgumentError, ColumnNotFoundError, NewLevelError
from wemix_nb.model.design import OFFSET_COLUMN, offset_argument, offset_values, real_values
from wemix_nb.model.dtypes import numpy_counterparts
from wemix_nb.model.formula import variables_of
from wemix_nb.model.frame import ModelFrame
from wemix_nb.model.levels import group_columns_of, group_labels, match_labels
from wemix_nb.options import check_flag

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["PREDICTION_COLUMNS", "fixed_link", "newdata_offset", "predict", "prepare_newdata", "random_link"]

#: columns of ``predict(..., se=True)``
PREDICTION_COLUMNS = ["predicted", "std_error", "conf_low", "conf_high"]


def predict(
    result: MixResult,
    newdata: pd.DataFrame | None = None,
    type: str = "link",
    allow_new_levels: bool = False,
    include_random: bool = True,
    se: bool = False,
    conf_level: float = 0.95,
    offset=None,
) -> pd.Series | pd.DataFrame:
    """Predictions of a fit; see :meth:`MixResult.predict <wemix_nb.MixResult.predict>`."""
    from wemix_nb.results.report import check_conf_level

    if type not in ("link", "response"):
        raise ArgumentError(f"type must be 'link' or 'response', got {type!r}.")
    for flag, name in (
        (allow_new_levels, "allow_new_levels"),
        (include_random, "include_random"),
        (se, "se"),
    ):
        check_flag(flag, name)
    if se and include_random:
        raise ArgumentError(
            "se=True gives the uncertainty of the fixed part only, so it needs include_random=False "
            "(a population-level prediction)."
        )
    if se:
        check_conf_level(conf_level)
    if newdata is None and offset is not None:
        raise ArgumentError("offset= goes with newdata: the fitting rows have the fit's offset.")
    if newdata is None and include_random:
        stored = result.fitted if result.linear_predictor is None else result.linear_predictor
        if not isinstance(stored, pd.Series):  # a Dask fit: lazily, partition by partition
            return stored.map_partitions(
                _stored_on_scale, result.family, type, meta=pd.Series(dtype=float, name="predicted")
            )
        return _on_scale(result, stored.to_numpy(), type, stored.index)
    frame = _frame_of(result)
    if newdata is None:  # the fitting rows, population level
        X = frame.X
        if len(X) != len(result.fitted):
            raise ArgumentError("This result does not hold its fitting rows; pass newdata.")
        eta, index = fixed_link(result, X, frame.offset), result.fitted.index
    else:
        columns = frame.covariate_columns if include_random else fixed_columns(frame)
        if isinstance(offset, str):  # the offset of these rows, from a column of newdata
            columns = [*columns, offset]
        data, incomplete = prepare_newdata(frame, newdata, columns)
        # a missing covariate or group label: no prediction
        X = np.full((len(newdata), len(frame.fixed_names)), np.nan)
        eta = np.full(len(newdata), np.nan)
        offset_rows = newdata_offset(frame, data, _complete_rows(offset, newdata, incomplete))
        if len(data):
            X[~incomplete] = fixed_design(frame, data)
            eta[~incomplete] = fixed_link(result, X[~incomplete], offset_rows)
            if include_random:
                eta[~incomplete] += random_link(result, data, allow_new_levels)
        index = newdata.index
    if not se:
        return _on_scale(result, eta, type, index)
    return _with_standard_errors(result, X, eta, type, conf_level, index)


def _frame_of(result: MixResult) -> ModelFrame:
    if result.frame is None:
        raise ArgumentError("This result carries no model frame, so it cannot predict on new data.")
    return result.frame


def _on_scale(result: MixResult, eta: np.ndarray, type: str, index: pd.Index) -> pd.Series:
    values = eta if type == "link" or result.family is None else result.family.linkinv(eta)
    return pd.Series(values, index=index, name="predicted")


def _stored_on_scale(stored: pd.Series, family, type: str) -> pd.Series:
    """One partition of a Dask fit's stored linear predictor (or fitted values) on ``type``'s scale."""
    eta = stored.to_numpy(dtype=float)
    values = eta if type == "link" or family is None else family.linkinv(eta)
    return pd.Series(values, index=stored.index, name="predicted")


def _with_standard_errors(
    result: MixResult, X: np.ndarray, eta: np.ndarray, type: str, conf_level: float, index: pd.Index
) -> pd.DataFrame:
    """Delta-method SEs of the fixed part with the robust ``cov_mat``: on the link scale
    ``sqrt(x' V x)``, on the response scale that times ``|d mu / d eta|``; the interval on the
    response scale is the link-scale interval transformed (so it stays inside the mean's range)."""
    V = result.cov_mat.loc[result.coef.index, result.coef.index].to_numpy(dtype=float)
    se_eta = np.sqrt(np.clip(np.einsum("ni,ij,nj->n", X, V, X), 0.0, None))
    z = stats.norm.ppf(0.5 + conf_level / 2)
    low, high = eta - z * se_eta, eta + z * se_eta
    if type == "link" or result.family is None:
        table = {"predicted": eta, "std_error": se_eta, "conf_low": low, "conf_high": high}
    else:
        family = result.family
        table = {
            "predicted": family.linkinv(eta),
            "std_error": np.abs(family.mu_eta(eta)) * se_eta,
            "conf_low": family.linkinv(low),
            "conf_high": family.linkinv(high),
        }
    return pd.DataFrame(table, index=index, columns=PREDICTION_COLUMNS)


# -------------------------------------------------------------------------------------------------
# the pieces of the linear predictor


def fixed_columns(frame: ModelFrame) -> list[str]:
    """The data columns a population-level prediction needs: the fixed part's covariates and the
    grouping columns of group-mean centering (whose group means are subtracted again)."""
    names = variables_of(frame.parsed.fixed) + frame.offset_columns
    names += [col for factor in frame.centering.group for col in group_columns_of(factor)]
    return list(dict.fromkeys(names))


def _newdata_design(spec: Any, data: pd.DataFrame, what: str) -> pd.DataFrame:
    """A design of the fit (formulaic's ``spec``) built on prepared new data."""
    with warnings.catch_warnings():
        # categories were checked by prepare_newdata: formulaic has nothing left to warn about
        warnings.filterwarnings("ignore", message="Data has categories outside")
        try:
            return spec.get_model_matrix(data, na_action="ignore")
        except Exception as exc:  # formulaic's errors have many types
            raise ArgumentError(
                f"newdata cannot build the fit's {what}; are its columns of the same kinds as in the "
                f"fit (numbers, categories)? {exc}"
            ) from exc


def fixed_design(frame: ModelFrame, data: pd.DataFrame) -> np.ndarray:
    """``X`` of prepared new data (:func:`prepare_newdata`), the fitted columns in their order."""
    X = _newdata_design(frame.fixed_spec, data, "fixed-effect design")
    missing = [name for name in frame.fixed_names if name not in X.columns]
    if missing:
        raise ArgumentError(f"newdata does not produce the fitted columns {missing}.")
    return real_values(X[frame.fixed_names], "newdata's fixed-effect design")


def fixed_link(result: MixResult, X: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """The fixed part of the linear predictor, ``X beta`` plus the offset (if any)."""
    eta = X @ result.coef.to_numpy(dtype=float)
    return eta if offset is None else eta + offset


def _complete_rows(offset, newdata: pd.DataFrame, incomplete: np.ndarray):
    """A ``predict(offset=...)`` given as values, restricted to the complete rows of newdata."""
    if offset is None or isinstance(offset, str):
        return offset
    if isinstance(offset, pd.Series):
        offset = offset.reindex(newdata.index)
    values = np.asarray(offset, dtype=float)
    if values.ndim != 1 or len(values) != len(newdata):
        raise ArgumentError(
            f"offset must hold one value per row of newdata ({len(newdata)}); got shape {values.shape}."
        )
    return values[~incomplete]


def newdata_offset(frame: ModelFrame, data: pd.DataFrame, offset=None) -> np.ndarray | None:
    """The offset of prepared new data: the formula's ``offset(...)`` terms evaluated on it, plus
    the ``offset`` argument's column read from it, or ``offset`` given here (a column name of
    ``newdata``, or one value per row of it; it replaces the fit's ``offset`` argument).

    Raises
    ------
    ArgumentError
        The fit took its ``offset`` as an array and none is given here.
    """
    source = frame.offset_source
    if offset is None and source == OFFSET_COLUMN:
        raise ArgumentError(
            "The model was fitted with an offset given as values, which newdata cannot supply: pass "
            "predict(newdata, offset=...) with one value per row of newdata (or a column name)."
        )
    column, values = offset_argument(source if offset is None else offset, data)
    if values is not None:
        data = data.assign(**{OFFSET_COLUMN: values})
    return offset_values(data, frame.parsed, column)


def random_link(result: MixResult, data: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
    """``sum_l Z_l b_l`` of prepared new data: each row's group's conditional modes (0 for a group
    not seen in the fit when ``allow_new_levels``; else :class:`NewLevelError`)."""
    frame = _frame_of(result)
    eta = np.zeros(len(data))
    for level in frame.levels:
        effects = result.ranef[level.name]
        labels = group_labels(data, level.name)
        position = match_labels(pd.Index(level.labels), labels)
        unseen = position < 0
        if unseen.any() and not allow_new_levels:
            new = pd.unique(labels[unseen])[:5]
            raise NewLevelError(
                f"newdata has group(s) of {level.name!r} not seen in the fit: "
                f"{', '.join(map(repr, map(str, new)))}. Set allow_new_levels=True to predict them "
                "with a random effect of 0, or include_random=False for population-level predictions."
            )
        what = f"random-effect design of {level.name!r}"
        Z = np.hstack(
            [
                real_values(_newdata_design(spec, data, what), f"newdata's {what}")
                for spec in frame.random_specs[level.name]
            ]
        )
        b = np.zeros((len(data), level.q))
        seen = ~unseen
        b[seen] = effects.to_numpy()[position[seen]]
        eta = eta + np.einsum("nq,nq->n", Z, b)
    return eta


# -------------------------------------------------------------------------------------------------
# reading new data


def _check_newdata(frame: ModelFrame, newdata, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Refuse newdata the model cannot read.

    Returns the complete rows' ``columns``, read as in the fit (NumPy counterparts of nullable and
    pyarrow dtypes), and the mask of the rows with a missing value (predicted NaN).
    """
    if not isinstance(newdata, pd.DataFrame):
        raise ArgumentError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
    missing = [col for col in columns if col not in newdata.columns]
    if missing:
        raise ColumnNotFoundError(
            f"newdata lacks the column(s) {', '.join(map(repr, missing))} that the model uses."
        )
    incomplete = newdata[columns].isna().any(axis=1).to_numpy()
    data = numpy_counterparts(newdata.loc[~incomplete, columns])
    for col, seen in frame.categories.items():
        if col not in columns:
            continue
        values = data[col]
        unseen = ~values.isin(list(seen))
        if unseen.any():
            new = pd.unique(values[unseen])[:5]
            raise ArgumentError(
                f"newdata column {col!r} has value(s) not seen in the fit: "
                f"{', '.join(repr(str(v)) for v in new)} (fitted categories: "
                f"{', '.join(repr(str(v)) for v in seen[:10])})."
            )
    return data, incomplete


def prepare_newdata(
    frame: ModelFrame, newdata: pd.DataFrame, columns: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """New data checked (``columns`` present, categories seen in the fit), read as in the fit and
    centred as in the fit (groups unseen in the fit: their own mean).

    Returns the prepared complete rows (those without a missing value in ``columns``) and the mask
    of the rows with a missing value.
    """
    data, incomplete = _check_newdata(frame, newdata, columns)
    if frame.parsed.response not in data.columns:
        data[frame.parsed.response] = 0.0
    for factor, means in frame.centering.group.items():
        labels = group_labels(data, factor)
        for var, by_group in means.items():
            values = pd.to_numeric(data[var], errors="coerce")
            own = values.groupby(labels).transform("mean")
            data[var] = values - labels.map(by_group).astype(float).fillna(own)
    for var, mean in frame.centering.grand.items():
        data[var] = pd.to_numeric(data[var], errors="coerce") - mean
    return data, incomplete
