"""Predictions of a fit: conditional on the groups' random effects, or population-level with
delta-method standard errors of the fixed part.

The linear predictor of a row is ``eta = x'beta + sum_l z_l'b_l``: its fixed part comes from
:func:`fixed_link` and its random part from :func:`random_link`, so that a term added to the
linear predictor (an offset, say) has one place to go. New data are read by
:func:`prepare_newdata`, which checks them and repeats the fit's centering.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from wemix_nb.errors import ArgumentError, ColumnNotFoundError, NewLevelError
from wemix_nb.model.design import OFFSET_COLUMN, offset_argument, offset_values
from wemix_nb.model.formula import variables_of
from wemix_nb.model.frame import ModelFrame
from wemix_nb.model.levels import group_columns_of, group_labels

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
        return _on_scale(result, stored.to_numpy(), type, stored.index)
    frame = _frame_of(result)
    if newdata is None:  # the fitting rows, population level
        X = frame.X
        if len(X) != len(result.fitted):
            raise ArgumentError("This result does not hold its fitting rows; pass newdata.")
        eta, index = fixed_link(result, X, frame.offset), result.fitted.index
    else:
        columns = frame.covariate_columns if include_random else fixed_columns(frame)
        data, incomplete = prepare_newdata(frame, newdata, columns)
        X = fixed_design(frame, data)
        eta = fixed_link(result, X, newdata_offset(frame, data, offset))
        if include_random:
            eta = eta + random_link(result, data, allow_new_levels)
        eta[incomplete] = np.nan  # a missing covariate or group label: no prediction
        X[incomplete] = np.nan
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


def fixed_design(frame: ModelFrame, data: pd.DataFrame) -> np.ndarray:
    """``X`` of prepared new data (:func:`prepare_newdata`), the fitted columns in their order."""
    with warnings.catch_warnings():
        # categories were checked by prepare_newdata: what formulaic would warn about here is only
        # a missing value, and those rows are set to NaN by the caller
        warnings.filterwarnings("ignore", message="Data has categories outside")
        X = frame.fixed_spec.get_model_matrix(data, na_action="ignore")
    missing = [name for name in frame.fixed_names if name not in X.columns]
    if missing:
        raise ArgumentError(f"newdata does not produce the fitted columns {missing}.")
    return X[frame.fixed_names].to_numpy(dtype=float)


def fixed_link(result: MixResult, X: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """The fixed part of the linear predictor, ``X beta`` plus the offset (if any)."""
    eta = X @ result.coef.to_numpy(dtype=float)
    return eta if offset is None else eta + offset


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
        position = pd.Index(level.labels).get_indexer(labels.to_numpy())
        unseen = (position < 0) & labels.notna().to_numpy()
        if unseen.any() and not allow_new_levels:
            new = pd.unique(labels[unseen])[:5]
            raise NewLevelError(
                f"newdata has group(s) of {level.name!r} not seen in the fit: "
                f"{', '.join(map(repr, map(str, new)))}. Set allow_new_levels=True to predict them "
                "with a random effect of 0, or include_random=False for population-level predictions."
            )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Data has categories outside")
            Z = np.hstack(
                [
                    np.asarray(spec.get_model_matrix(data, na_action="ignore"), dtype=float)
                    for spec in frame.random_specs[level.name]
                ]
            )
        b = np.zeros((len(data), level.q))
        seen = position >= 0
        b[seen] = effects.to_numpy()[position[seen]]
        eta = eta + np.einsum("nq,nq->n", Z, b)
    return eta


# -------------------------------------------------------------------------------------------------
# reading new data


def _check_newdata(frame: ModelFrame, newdata, columns: list[str]) -> np.ndarray:
    """Refuse newdata the model cannot read; return the rows with a missing value (predicted NaN)."""
    if not isinstance(newdata, pd.DataFrame):
        raise ArgumentError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
    missing = [col for col in columns if col not in newdata.columns]
    if missing:
        raise ColumnNotFoundError(
            f"newdata lacks the column(s) {', '.join(map(repr, missing))} that the model uses."
        )
    for col, seen in frame.categories.items():
        if col not in columns:
            continue
        values = newdata[col]
        unseen = values.notna() & ~values.isin(list(seen))
        if unseen.any():
            new = pd.unique(values[unseen])[:5]
            raise ArgumentError(
                f"newdata column {col!r} has value(s) not seen in the fit: "
                f"{', '.join(repr(str(v)) for v in new)} (fitted categories: "
                f"{', '.join(repr(str(v)) for v in seen[:10])})."
            )
    return newdata[columns].isna().any(axis=1).to_numpy()


def prepare_newdata(
    frame: ModelFrame, newdata: pd.DataFrame, columns: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """New data checked (``columns`` present, categories seen in the fit) and centred as in the fit
    (groups unseen in the fit: their own mean); also the mask of rows with a missing value."""
    incomplete = _check_newdata(frame, newdata, columns)
    data = newdata.copy()
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
