"""The weights of every replicate on the rows and groups of one model frame.

Replicate columns (``W_FSTR1..80``) hold level-1 *unconditional* weights, whatever ``cweights``
says of the fit's own columns. Replicate ``r`` multiplies each row's full-sample weight by the
factor ``f_ir = replicate_ir / w_i``; the replicate weight of a group of a higher level is its
full-sample weight times the factor of its rows, which must therefore be constant within the group
(:func:`wemix_nb.model.weights.replicate_group_factors` names the group and the replicate where it
is not). Then every conditional weight below the top level is the full sample's, and a replicate
changes only the top-level weights (the fast path of
:func:`~wemix_nb.estimation.linear.refit.reweighted_problem`).

Explicit per-level columns, ``replicate_weights={1: "W_FSTR{1..80}", 2: "W_FSCH{1..80}"}``, give a
level its own replicate weights (unconditional too); the conditional weights of every level are then
derived per replicate (and scaled, with ``scale_weights``), as for a fit with those weight columns.
A group whose replicate weight is 0 drops out of that replicate with everything in it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from wemix_nb.errors import ColumnNotFoundError, DroppedRowsWarning, WeightError, WeightWarning
from wemix_nb.model import weights as weight_rules
from wemix_nb.model.frame import ModelFrame
from wemix_nb.options import FitOptions, ReplicateSpec
from wemix_nb.pipeline import model_frame, rows_of_fit


@dataclass(frozen=True, eq=False)
class ReplicateFrames:
    """The replicate weights of one model frame's rows and groups.

    Attributes
    ----------
    frame
        The full-sample model frame.
    rows
        ``(n, R)`` unconditional level-1 weights of each replicate.
    groups
        Per grouping level (level 2 first), ``(G_l, R)`` unconditional weights.
    cond_rows, cond_groups
        The conditional weights of each replicate (same layouts; the top level's are its
        unconditional weights), or ``None`` when they are the full sample's (derived replicates).
    """

    frame: ModelFrame
    rows: np.ndarray
    groups: list[np.ndarray]
    cond_rows: np.ndarray | None = None
    cond_groups: list[np.ndarray] | None = None

    @property
    def n_replicates(self) -> int:
        """The number of replicates ``R``."""
        return self.rows.shape[1]

    @property
    def same_conditional(self) -> bool:
        """True when every replicate keeps the full sample's conditional weights below the top."""
        return self.cond_rows is None

    def frame_of(self, r: int) -> ModelFrame:
        """The full-sample frame with the weights of replicate ``r`` (0-based)."""
        top = len(self.frame.levels) - 1
        levels = []
        for k, level in enumerate(self.frame.levels):
            weight = self.groups[k][:, r]
            if self.cond_groups is not None:
                cond = self.cond_groups[k][:, r]
            else:
                cond = weight if k == top else level.cond_weight
            levels.append(replace(level, weight=weight, cond_weight=cond))
        cond1 = self.frame.cond_weight1 if self.cond_rows is None else self.cond_rows[:, r]
        return replace(self.frame, weight1=self.rows[:, r], cond_weight1=cond1, levels=levels)

    def with_frame(self, frame: ModelFrame) -> ReplicateFrames:
        """The same weights on another frame of the same rows and weights (another plausible value)."""
        return replace(self, frame=frame)


@dataclass(frozen=True, eq=False)
class Recentred:
    """Replicate frames rebuilt from the data, for models that centre covariates at weighted means.

    A grand mean (or, when a replicate changes the level-1 conditional weights, a group mean)
    computed with the replicate's weights differs from the full sample's, so such a replicate's
    design is not the full sample's: its frame is built again from the fit's rows with the
    replicate's weights, as a plain fit with those weights would be.

    Attributes
    ----------
    rows
        The data rows of the full-sample fit.
    formula
        The model (of this plausible value).
    options
        The options of one full-sample fit.
    """

    rows: pd.DataFrame
    formula: str
    options: FitOptions

    def frame_of(self, frames: ReplicateFrames, r: int) -> ModelFrame:
        """The model frame of replicate ``r``: its weights (in the fit's convention, already scaled)
        as columns of the fit's rows, centred with them; rows of zero weight are left out."""
        weighted = frames.frame_of(r)
        conditional = self.options.cweights
        columns = {"__replicate_w1": weighted.cond_weight1 if conditional else weighted.weight1}
        index = weighted.levels[0].group_index
        for k, level in enumerate(weighted.levels):
            values = level.cond_weight if conditional else level.weight
            columns[f"__replicate_w{k + 2}"] = values[index]
            if level.parent_index is not None:
                index = level.parent_index[index]
        data = self.rows.assign(**columns)
        options = self.options.with_changes(weights=tuple(columns), scale_weights="none")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DroppedRowsWarning)
            warnings.simplefilter("ignore", WeightWarning)
            return model_frame(self.formula, data, options)


def recentred(data: pd.DataFrame, frame: ModelFrame, formula: str, options: FitOptions) -> Recentred | None:
    """A :class:`Recentred` when replicates change the centring of the covariates, else ``None``:
    grand-mean centring always (the weighted grand means move with the weights); group-mean
    centring only with explicit per-level replicate columns (derived replicates keep the
    conditional weights, so the group means)."""
    spec = options.replicates
    if options.center_grand is None and (options.center_group is None or spec.levels == (1,)):
        return None
    rows = data.loc[frame.row_index]
    return Recentred(rows, formula, options.with_changes(replicates=None, pv=None, start=None))


def _unit_parents(frame: ModelFrame) -> list[np.ndarray]:
    levels = frame.levels
    return [levels[0].group_index, *[level.parent_index for level in levels[:-1]]]


def _check_columns(data: pd.DataFrame, frame: ModelFrame, spec: ReplicateSpec) -> pd.DataFrame:
    """The replicate columns on the rows of the fit: present, numeric, finite, >= 0, not all 0."""
    columns = spec.all_columns
    missing = [c for c in columns if c not in data.columns]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (
            f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        )
        raise ColumnNotFoundError(f"Replicate weight column(s) {shown} not in the data.")
    weight_rules.check_weight_dtypes(data, columns)
    rows = rows_of_fit(data, frame, columns)
    values = rows.to_numpy(dtype=float)
    for bad, what in (
        (np.isnan(values), "missing"),
        (np.isinf(values), "infinite"),
        (values < 0, "negative"),
    ):
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise WeightError(
                f"Replicate weight column {columns[j]!r} has {what} values on {int(bad[:, j].sum())} "
                f"row(s) of the fit (first at row {rows.index[i]!r}); replicate weights must be finite "
                "and non-negative on every row the model uses."
            )
    zero = np.flatnonzero(~(values > 0).any(axis=0))
    if zero.size:
        raise WeightError(f"Replicate weight column {columns[zero[0]]!r} is zero on every row of the fit.")
    return rows


def full_sample_weights(data: pd.DataFrame, frame: ModelFrame, options: FitOptions) -> list[np.ndarray]:
    """The full-sample unconditional weights of every level as given (before any scaling)."""
    if frame.weight_scaling == "none":
        return [frame.weight1, *[level.weight for level in frame.levels]]
    columns = frame.weight_columns
    W = rows_of_fit(data, frame, columns)
    given = [W[columns[0]].to_numpy(dtype=float)]
    for k, level in enumerate(frame.levels, start=1):
        if len(columns) == 1:
            given.append(np.ones(level.n_groups))
            continue
        values = W[columns[k]].to_numpy(dtype=float)
        given.append(
            weight_rules.group_weight(
                values, level.group_index, level.labels, level=k + 1, column=columns[k], factor=level.name
            )
        )
    return weight_rules.level_weights(given, _unit_parents(frame), conditional=options.cweights)[0]


def _explicit_group_weights(rows: pd.DataFrame, columns: tuple[str, ...], level, number: int) -> np.ndarray:
    """``(G, R)`` a level's own replicate weights, each constant within the level's groups."""
    return np.column_stack(
        [
            weight_rules.group_weight(
                rows[c].to_numpy(dtype=float),
                level.group_index,
                level.labels,
                level=number,
                column=c,
                factor=level.name,
            )
            for c in columns
        ]
    )


def _conditional(
    rows: np.ndarray, groups: list[np.ndarray], frame: ModelFrame
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Per replicate, unconditional and conditional weights of every level from the given
    unconditional ones (scaled as the full-sample fit); a unit of a zero-weight group gets 0."""
    up = _unit_parents(frame)
    R = rows.shape[1]
    unc = [np.empty_like(rows)] + [np.empty_like(g) for g in groups]
    cond = [np.empty_like(rows)] + [np.empty_like(g) for g in groups]
    for r in range(R):
        given = [rows[:, r], *[g[:, r] for g in groups]]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, c = weight_rules.level_weights(given, up, conditional=False, scaling=frame.weight_scaling)
        for k in range(len(given)):
            unc[k][:, r] = np.nan_to_num(u[k], nan=0.0)
            cond[k][:, r] = np.nan_to_num(c[k], nan=0.0)
    for k in range(len(up)):
        inf = np.isinf(cond[k])
        if inf.any():
            unit, r = np.argwhere(inf)[0]
            level = frame.levels[k]
            raise WeightError(
                f"Replicate {r + 1} gives group {str(level.labels[up[k][unit]])!r} of {level.name!r} a "
                f"level-{k + 2} weight of 0 but some of its units a positive weight."
            )
    return unc[0], unc[1:], cond


def replicate_frames(data: pd.DataFrame, frame: ModelFrame, options: FitOptions) -> ReplicateFrames:
    """The :class:`ReplicateFrames` of a full-sample frame.

    Raises
    ------
    ColumnNotFoundError, WeightError
        Missing, non-numeric, missing-valued, negative or all-zero replicate columns; a replicate
        factor that varies within a group (naming the group and the replicate); replicate columns
        for a level the model does not have.
    """
    spec = options.replicates
    extra = [lv for lv in spec.levels if lv > frame.n_levels]
    if extra:
        raise WeightError(
            f"replicate_weights gives columns for level {extra[0]}, but the model has "
            f"{frame.n_levels} levels."
        )
    rows = _check_columns(data, frame, spec)
    rep1 = rows[list(spec.columns[0])].to_numpy(dtype=float)
    base = full_sample_weights(data, frame, options)
    factors = rep1 / base[0][:, None]
    weight = frame.weight_columns[0] if frame.weight_columns else "1"
    groups, explicit = [], False
    for k, level in enumerate(frame.levels):
        columns = spec.level_columns(k + 2)
        if columns is not None:
            groups.append(_explicit_group_weights(rows, columns, level, k + 2))
            explicit = True
            continue
        F = weight_rules.replicate_group_factors(
            factors,
            level.group_index if k == 0 else _row_groups(frame, k),
            level.labels,
            level=k + 2,
            factor=level.name,
            replicates=spec.columns[0],
            weight=weight,
        )
        groups.append(base[k + 1][:, None] * F)
    if explicit:
        unc_rows, unc_groups, cond = _conditional(rep1, groups, frame)
        return ReplicateFrames(frame, unc_rows, unc_groups, cond[0], cond[1:])
    if frame.weight_scaling == "none":
        return ReplicateFrames(frame, rep1, groups)
    # scaling multiplies the conditional weights within groups: a factor constant within the groups
    # leaves them as they are, and the scaled unconditional weights take the factor too
    scaled = [frame.levels[k].weight[:, None] * g / base[k + 1][:, None] for k, g in enumerate(groups)]
    return ReplicateFrames(frame, frame.weight1[:, None] * factors, scaled)


def _row_groups(frame: ModelFrame, k: int) -> np.ndarray:
    """The group of level ``k + 2`` of every row."""
    index = frame.levels[0].group_index
    for level in frame.levels[:k]:
        index = level.parent_index[index]
    return index
