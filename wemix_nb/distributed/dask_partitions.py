"""What every Dask fit shares: one partition's model frame and summary, and the whole model's frame
assembled from the partitions' summaries.

Partitions hold whole top-level groups. Each builds its own model frame on its worker; what travels
back is small: the group labels and weights of every level, row counts, weight totals and warnings
(:func:`partition_summary`). :func:`combine_levels` concatenates the partitions' groups and puts
them in the order a pandas fit uses (sorted labels), and :func:`whole_frame` builds the model frame
of the whole data without its rows: levels, names and centering, what the estimators and the
result need besides the per-row arrays.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from wemix_nb.errors import DataError, DroppedRowsWarning, FormulaError, NestingError
from wemix_nb.model.frame import ModelFrame, build_model_frame
from wemix_nb.results.assemble import WeightTotals


@dataclass(frozen=True)
class FrameSpec:
    """How every partition builds its model frame (picklable, sent to the workers)."""

    formula: str
    weights: list[str] | None
    cweights: bool
    center_group: Mapping[str, str] | None
    level_order: list[str]
    binomial_response: bool = False

    def build(self, pdf: pd.DataFrame) -> tuple[ModelFrame | None, list]:
        """The partition's model frame (``None`` if no usable rows are left) and the warnings raised
        while building it. Response and rank are checked on the whole data, not per partition."""
        if len(pdf) == 0:
            return None, []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                frame = build_model_frame(
                    self.formula,
                    pdf,
                    self.weights,
                    cweights=self.cweights,
                    center_group=self.center_group,
                    binomial_response=self.binomial_response,
                    check_response=False,
                    check_rank=False,
                    drop_unused_categories=False,
                    level_order=self.level_order,
                )
            except DataError as exc:
                if "No rows are left" in str(exc):
                    return None, []
                raise
        return frame, caught


def partition_summary(frame: ModelFrame, caught: list) -> dict:
    """The small facts of one partition's frame that the driver combines."""
    levels = [
        {
            "name": lv.name,
            "labels": lv.labels,
            "parent_index": lv.parent_index,
            "weight": lv.weight,
            "cond_weight": lv.cond_weight,
            "n_rows": lv.n_rows,
            "terms": list(lv.terms),
            "q": lv.q,
        }
        for lv in frame.levels
    ]
    w1, y = frame.weight1, frame.y
    return {
        "n": frame.n,
        "w1": (float(w1.sum()), float(w1.min()), float(w1.max())),
        "wy": float(w1 @ y),
        "y_range": (float(y.min()), float(y.max())),
        "levels": levels,
        "fixed_names": list(frame.fixed_names),
        "skeleton": skeleton(frame),
        "dropped": (frame.n_dropped_missing, frame.n_dropped_zero_weight),
        "warnings": [(w.category, str(w.message)) for w in caught if w.category is not DroppedRowsWarning],
    }


def skeleton(frame: ModelFrame) -> ModelFrame:
    """The frame without its rows (levels keep their groups)."""
    empty_levels = [
        replace(lv, group_index=np.empty(0, dtype=np.int64), Z=np.empty((0, lv.q))) for lv in frame.levels
    ]
    return replace(
        frame,
        y=np.empty(0),
        X=np.empty((0, frame.X.shape[1])),
        levels=empty_levels,
        weight1=np.empty(0),
        cond_weight1=np.empty(0),
        row_index=pd.RangeIndex(0),
        offset=None if frame.offset is None else np.empty(0),
        trials=None if frame.trials is None else np.empty(0),
    )


def report_partition_warnings(parts: list[dict]) -> tuple[int, int]:
    """Re-raise the partitions' warnings once each, and the dropped-row warnings for the whole
    data; returns the numbers of rows dropped for missing values and for zero weights."""
    seen = set()
    for part in parts:
        for category, message in part["warnings"]:
            if (category, message) not in seen:
                seen.add((category, message))
                warnings.warn(message, category, stacklevel=3)
    dropped_missing = sum(part["dropped"][0] for part in parts)
    dropped_zero = sum(part["dropped"][1] for part in parts)
    if dropped_missing:
        warnings.warn(
            f"{dropped_missing} row(s) with missing values in the model's columns were removed.",
            DroppedRowsWarning,
            stacklevel=3,
        )
    if dropped_zero:
        warnings.warn(
            f"{dropped_zero} row(s) with a zero weight were removed.", DroppedRowsWarning, stacklevel=3
        )
    return dropped_missing, dropped_zero


def row_weight_totals(parts: list[dict]) -> WeightTotals:
    """Count, sum, min and max of the level-1 weights over the partitions."""
    return WeightTotals(
        n=sum(part["n"] for part in parts),
        sum=float(sum(part["w1"][0] for part in parts)),
        min=min(part["w1"][1] for part in parts),
        max=max(part["w1"][2] for part in parts),
    )


def check_nonconstant_response(parts: list[dict]) -> None:
    """Refuse a response that is constant over the whole data."""
    y_low = min(part["y_range"][0] for part in parts)
    y_high = max(part["y_range"][1] for part in parts)
    if y_low == y_high:
        name = parts[0]["skeleton"].parsed.response
        raise DataError(f"The response {name!r} is constant ({y_low!r}); nothing to model.")


def _order(labels: pd.Index) -> np.ndarray:
    """Positions that sort the labels like the model frame's factorisation (fallback: as is)."""
    try:
        _, uniques = pd.factorize(labels, sort=True)
        return pd.Index(labels).get_indexer(uniques)
    except TypeError:
        return np.arange(len(labels))


def combine_levels(parts: list[dict]) -> tuple[list[dict], list[np.ndarray]]:
    """The levels of the whole data from the partitions' summaries, in the pandas fit's group order.

    Returns per level a dict (``labels``, ``parent``, ``weight``, ``cond_weight``, ``n_rows``) and
    the permutation that takes the partitions' concatenated groups to that order.
    """
    first = parts[0]
    n_levels = len(first["levels"])
    # parent indices shift by the parent level's groups in the partitions before
    offsets = [
        np.cumsum([0] + [len(part["levels"][k]["labels"]) for part in parts])[:-1] for k in range(n_levels)
    ]
    levels = []
    for k in range(n_levels):
        pieces = [part["levels"][k] for part in parts]
        labels = pieces[0]["labels"].append([pc["labels"] for pc in pieces[1:]])
        labels = labels.rename(first["levels"][k]["name"])
        if labels.has_duplicates:
            dup = labels[labels.duplicated()][:5]
            raise NestingError(
                f"Group(s) {', '.join(map(repr, map(str, dup)))} of {labels.name!r} appear in more than one "
                "partition. mix_dask needs every top-level group inside one partition: e.g. "
                "ddf.shuffle(on=<top-level group column>) or set_index on it."
            )
        parent = None
        if k < n_levels - 1:
            parent = np.concatenate([pc["parent_index"] + offsets[k + 1][j] for j, pc in enumerate(pieces)])
        levels.append(
            {
                "labels": labels,
                "parent": parent,
                "weight": np.concatenate([pc["weight"] for pc in pieces]),
                "cond_weight": np.concatenate([pc["cond_weight"] for pc in pieces]),
                "n_rows": np.concatenate([pc["n_rows"] for pc in pieces]),
            }
        )
    orders = [_order(lv["labels"]) for lv in levels]
    inverse = []
    for order in orders:
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        inverse.append(inv)
    for k, (lv, order) in enumerate(zip(levels, orders, strict=True)):
        for key in ("weight", "cond_weight", "n_rows"):
            lv[key] = lv[key][order]
        lv["labels"] = lv["labels"][order]
        if lv["parent"] is not None:
            lv["parent"] = inverse[k + 1][lv["parent"][order]]
    return levels, orders


def whole_frame(parts: list[dict], levels: list[dict], dropped: tuple[int, int]) -> ModelFrame:
    """The model frame of the whole data, without its rows: the first partition's skeleton with
    the combined levels, group-centering means and dropped-row counts."""
    skeleton = parts[0]["skeleton"]
    new_levels = [
        replace(
            lv,
            labels=info["labels"],
            parent_index=info["parent"],
            weight=info["weight"],
            cond_weight=info["cond_weight"],
            n_rows=info["n_rows"],
        )
        for lv, info in zip(skeleton.levels, levels, strict=True)
    ]
    centering = skeleton.centering
    if centering.group:
        merged = {
            factor: {
                var: pd.concat([part["skeleton"].centering.group[factor][var] for part in parts])
                for var in means
            }
            for factor, means in centering.group.items()
        }
        centering = replace(centering, group=merged)
    return replace(
        skeleton,
        levels=new_levels,
        centering=centering,
        n_dropped_missing=dropped[0],
        n_dropped_zero_weight=dropped[1],
    )


def check_same_design(parts: list[dict]) -> None:
    """Every partition must build the same fixed and random designs."""
    first = parts[0]
    names = first["fixed_names"]
    for k, part in enumerate(parts[1:], start=2):
        if part["fixed_names"] != names:
            raise FormulaError(
                f"Partition {k} gives fixed-effect columns {part['fixed_names']}, partition 1 gives {names}. "
                "Make categorical columns pandas Categoricals with the same categories in every partition "
                "(e.g. ddf.categorize()) so that each partition builds the same design."
            )
        for a, b in zip(part["levels"], first["levels"], strict=True):
            if a["terms"] != b["terms"]:
                raise FormulaError(f"Partitions give different random-effect terms for {a['name']!r}.")
