"""Two-level GLMMs of Dask DataFrames: the likelihood as a sum over partitions kept on the workers.

Design
    Every partition (whole level-2 groups) becomes a :class:`GlmmPartition` on a worker: its model
    frame and, built on first use, the 2-level likelihoods (the Laplace pre-fit's and the
    quadrature's) with their groups' warm-start modes. The driver's :class:`PartitionedModel`
    implements :class:`~wemix_nb.estimation.glmm.protocol.QuadratureModel`, so
    :func:`~wemix_nb.estimation.glmm.fit_glmm` runs unchanged: quasi-Newton, Newton polish and the
    sandwich.
What travels
    Per evaluation, ``(beta, theta)`` to every partition and back ``1 + p + k`` numbers (the
    partition's log-likelihood and gradient). The per-group arrays -- contributions, scores for
    the sandwich, modes and their curvature for ``ranef`` -- are fetched once, when the fit reads
    them at the estimate (:class:`LazyEvaluation`). The modes the Laplace pre-fit hands to the
    quadrature phase are copied on the workers (``save_modes`` returns a token). The weighted-GLM
    start values come from IRLS with ``X'WX`` and ``X'Wz`` summed over partitions.
Where partitions live
    With a ``distributed.Client``, as futures pinned to the workers that built them (the tasks
    that evaluate them run there; nothing is moved); without one, in this process.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np

from wemix_nb.distributed._allocator import heap_temporaries
from wemix_nb.distributed.dask_partitions import (
    FrameSpec,
    check_nonconstant_response,
    check_same_design,
    combine_levels,
    partition_summary,
    report_partition_warnings,
    row_weight_totals,
    whole_frame,
)
from wemix_nb.errors import DataError, FormulaError
from wemix_nb.estimation.families import Family
from wemix_nb.estimation.glmm import fit_glmm
from wemix_nb.estimation.glmm.degenerate import OutcomeSummary
from wemix_nb.estimation.glmm.fit import warn_extreme_fitted
from wemix_nb.estimation.glmm.protocol import GlmmLevelModes
from wemix_nb.estimation.glmm.two_level import _TwoLevel, level2_modes
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame
from wemix_nb.options import FitOptions
from wemix_nb.results.assemble import glmm_result

_SNAPSHOTS_KEPT = 8  # warm-start snapshots a partition keeps (a fit hands over one or two)
_IDS = itertools.count()  # evaluation ids and snapshot tokens, unique among the models of a fit


class GlmmPartition:
    """One partition's rows and likelihoods, on the worker that holds it.

    Parameters
    ----------
    pdf
        The partition (whole level-2 groups).
    spec
        How to build its model frame.
    family
        The response family (its response check runs here, on the partition's rows).
    """

    def __init__(self, pdf, spec: FrameSpec, family: Family):
        frame, caught = spec.build(pdf)
        self.frame = frame
        self.family = family
        self.summary = None
        if frame is not None and frame.trials is None:  # proportions were checked in the frame
            family.check_response(frame.y, frame.parsed.response)
        if frame is not None:
            self.summary = partition_summary(frame, caught)
            self.summary["outcome"] = OutcomeSummary.of(frame, family)
        self.models: dict[tuple[int, bool], _TwoLevel] = {}
        self.last: dict[tuple[int, bool], tuple[int, dict]] = {}
        self.snapshots: dict[int, np.ndarray] = {}

    def model(self, key: tuple[int, bool]) -> _TwoLevel:
        """The likelihood with ``(nquad, laplace_rounding)``, built on first use."""
        if key not in self.models:
            self.models[key] = _TwoLevel(self.frame, self.family, *key)
        return self.models[key]

    def glm_step(self, beta: np.ndarray | None, ybar: float) -> tuple[np.ndarray, np.ndarray]:
        """``X'WX`` and ``X'Wz`` of one IRLS step of the weighted GLM at ``beta`` (``None``: the
        first step, from the response; ``ybar``: the weighted mean response of the whole data)."""
        frame, family = self.frame, self.family
        X, y = frame.X, frame.y
        w = frame.weight1 if frame.trials is None else frame.weight1 * frame.trials
        offset = 0.0 if frame.offset is None else frame.offset
        if beta is None:
            mu = 0.5 * (y + ybar) if family.name == "binomial" else y + 0.1 * max(ybar, 0.1)
            eta = family.linkfun(mu)
        else:
            eta = offset + X @ beta
        me = family.mu_eta(eta)
        mu = family.linkinv(eta)
        var = np.maximum(family.variance(mu), 1e-300)
        wk = w * me**2 / var
        zk = eta - offset + (y - mu) / np.maximum(me, 1e-300)
        XtW = (X * wk[:, None]).T
        return XtW @ X, XtW @ zk

    def constants(self, key) -> np.ndarray:
        """The groups' constant log-likelihood terms, left out of :meth:`evaluate`."""
        return self.model(key).constant_by_group

    def evaluate(self, key, eval_id: int, beta: np.ndarray, theta: np.ndarray, grad: bool) -> dict:
        """The partition's log-likelihood (and gradient); the per-group arrays are kept."""
        ev = self.model(key).evaluate(beta, theta, grad)
        self.last[key] = (eval_id, ev)
        return {name: ev[name] for name in ("value", "grad") if name in ev}

    def _evaluation(self, key, eval_id: int, beta: np.ndarray, theta: np.ndarray, grad: bool) -> dict:
        """Evaluation ``eval_id`` as kept, or again at ``(beta, theta)`` if a later one replaced it."""
        stored = self.last.get(key)
        if stored is not None and stored[0] == eval_id:
            return stored[1]
        return self.model(key).evaluate(beta, theta, grad)

    def group_arrays(self, key, eval_id: int, beta: np.ndarray, theta: np.ndarray, grad: bool) -> dict:
        """Per-group contributions, scores, modes and curvature of evaluation ``eval_id``."""
        ev = self._evaluation(key, eval_id, beta, theta, grad)
        return {name: ev[name] for name in ("by_group", "grad_by_group", "u", "Hf") if name in ev}

    def count_extreme(self, key, eval_id: int, beta: np.ndarray, theta: np.ndarray) -> int:
        """Rows whose fitted probability is numerically 0 or 1 at evaluation ``eval_id``."""
        mu = self.family.linkinv(self._evaluation(key, eval_id, beta, theta, False)["eta"])
        return int(np.sum((mu < 1e-8) | (mu > 1 - 1e-8)))

    def snapshot_modes(self, key, token: int) -> None:
        """Keep a copy of the modes of the likelihood ``key`` under ``token``."""
        self.snapshots[token] = self.model(key).save_modes()
        for old in sorted(self.snapshots)[:-_SNAPSHOTS_KEPT]:
            del self.snapshots[old]

    def restore_modes(self, key, token: int) -> None:
        """Start the likelihood ``key`` from the modes kept under ``token``."""
        self.model(key).restore_modes(self.snapshots[token])


def _call(part: GlmmPartition, method: str, *args):
    with heap_temporaries():
        return getattr(part, method)(*args)


def _build(pdf, spec: FrameSpec, family: Family) -> GlmmPartition:
    with heap_temporaries():
        return GlmmPartition(pdf, spec, family)


def _summary(part: GlmmPartition) -> dict | None:
    return part.summary


class LocalPartitions:
    """Partitions held in this process."""

    def __init__(self, parts: list[GlmmPartition]):
        self.parts = parts

    def call(self, method: str, *args) -> list:
        return [getattr(part, method)(*args) for part in self.parts]

    def close(self) -> None:
        self.parts = []


class ClusterPartitions:
    """Partitions held by the workers of a ``distributed.Client``, each task pinned to the worker
    that holds its partition (the partition never moves; only arguments and results travel)."""

    def __init__(self, client, futures: list):
        self.client = client
        self.futures = futures
        where = client.who_has(futures)
        self.workers = [where[future.key][0] for future in futures]

    def call(self, method: str, *args) -> list:
        tasks = [
            self.client.submit(
                _call, future, method, *args, workers=[worker], allow_other_workers=False, pure=False
            )
            for future, worker in zip(self.futures, self.workers, strict=True)
        ]
        return self.client.gather(tasks)

    def close(self) -> None:
        self.client.cancel(self.futures)
        self.futures = []


class LazyEvaluation(dict):
    """An evaluation's value and gradient; the per-group arrays are fetched on first access."""

    def __init__(self, fetch: Callable[[], dict], **items):
        super().__init__(items)
        self._fetch = fetch

    def __missing__(self, key):
        if self._fetch is not None:
            fetch, self._fetch = self._fetch, None
            self.update(fetch())
            if key in self:
                return self[key]
        raise KeyError(key)


class PartitionedModel:
    """The 2-level GLMM likelihood summed over partitions (a
    :class:`~wemix_nb.estimation.glmm.protocol.QuadratureModel`).

    Parameters
    ----------
    partitions
        :class:`LocalPartitions` or :class:`ClusterPartitions`.
    order
        Permutation from the partitions' concatenated groups to the whole frame's group order.
    structure
        The covariance structure of the whole frame.
    family, nquad, laplace_rounding
        As for the 2-level model.
    """

    analytic_gradient = True

    def __init__(
        self, partitions, order: np.ndarray, structure, family: Family, nquad: int, laplace_rounding: bool
    ):
        self.partitions, self.order, self.structure = partitions, order, structure
        self.nquad = nquad
        self.rounding = bool(laplace_rounding and nquad == 1 and family.name == "binomial")
        self.key = (nquad, bool(laplace_rounding))
        self.k = structure.size
        self.n_evaluations = 0
        self.last_evaluation: tuple[int, np.ndarray, np.ndarray] | None = None
        self.constant_by_group = np.concatenate(partitions.call("constants", self.key))[order]

    def evaluate(self, beta: np.ndarray, theta: np.ndarray, grad: bool = False) -> dict:
        self.n_evaluations += 1
        eval_id = next(_IDS)
        beta, theta = np.array(beta, dtype=float), np.array(theta, dtype=float)
        results = self.partitions.call("evaluate", self.key, eval_id, beta, theta, grad)
        value = float(sum(r["value"] for r in results))
        self.last_evaluation = (eval_id, beta, theta)
        if not np.isfinite(value):
            return {"value": -np.inf, "by_group": np.full(len(self.order), -np.inf)}

        def fetch() -> dict:
            parts = self.partitions.call("group_arrays", self.key, eval_id, beta, theta, grad)
            return {name: np.concatenate([part[name] for part in parts])[self.order] for name in parts[0]}

        ev = LazyEvaluation(fetch, value=value)
        if grad:
            ev["grad"] = np.sum([r["grad"] for r in results], axis=0)
        return ev

    def level_modes(self, frame: ModelFrame, theta: np.ndarray, ev: dict) -> list[GlmmLevelModes]:
        """The modes of the level-2 groups, with SDs from the Fisher curvature at the mode."""
        return level2_modes(self.structure, frame, theta, ev)

    def eta_rows(self, ev: dict) -> None:
        """``None``: the rows stay in the partitions."""
        return None

    def count_extreme(self) -> int:
        """Rows with fitted probabilities of numerically 0 or 1 at the last evaluation."""
        eval_id, beta, theta = self.last_evaluation
        return int(sum(self.partitions.call("count_extreme", self.key, eval_id, beta, theta)))

    def save_modes(self) -> int:
        """A token for a copy of the modes, kept on the workers."""
        token = next(_IDS)
        self.partitions.call("snapshot_modes", self.key, token)
        return token

    def restore_modes(self, saved: int) -> None:
        self.partitions.call("restore_modes", self.key, saved)


def _active_client(client):
    if client is not None:
        return client
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def _partitions(ddf, spec: FrameSpec, family: Family, client, compute_kwargs: Mapping | None):
    """Build the partitions where they will stay; returns them (without the empty ones) and
    their summaries."""
    if client is None:
        import dask

        tasks = [dask.delayed(GlmmPartition)(part, spec, family) for part in ddf.to_delayed()]
        parts = [p for p in dask.compute(*tasks, **dict(compute_kwargs or {})) if p.summary is not None]
        return LocalPartitions(parts), [p.summary for p in parts]
    # partitions dealt round the workers, so that every evaluation keeps them equally busy
    workers = sorted(client.scheduler_info()["workers"])
    futures = []
    for k, part in enumerate(ddf.to_delayed()):
        where = {"workers": [workers[k % len(workers)]], "allow_other_workers": False}
        data = client.compute(part, **where)
        futures.append(client.submit(_build, data, spec, family, pure=False, **where))
    del data  # the rows now live in their GlmmPartition (released, not cancelled)
    summaries = client.gather(client.map(_summary, futures, pure=False))
    futures = [f for f, s in zip(futures, summaries, strict=True) if s is not None]
    return ClusterPartitions(client, futures), [s for s in summaries if s is not None]


def _glm_start(partitions, summaries: list[dict], family: Family, p: int, max_iter: int = 50) -> np.ndarray:
    """The weighted GLM of the start values (as ``fit_glmm`` computes it on a pandas frame)."""
    ybar = sum(s["wy"] for s in summaries) / sum(s["w1"][0] for s in summaries)
    beta, current = np.zeros(p), None
    for _ in range(max_iter):
        steps = partitions.call("glm_step", current, ybar)
        new = np.linalg.lstsq(sum(s[0] for s in steps), sum(s[1] for s in steps), rcond=None)[0]
        done = np.max(np.abs(new - beta)) < 1e-10 * (1.0 + np.max(np.abs(new)))
        beta = current = new
        if done:
            break
    return beta if np.all(np.isfinite(beta)) else np.zeros(p)


def fit_glmm_dask(ddf, spec: FrameSpec, options: FitOptions, client, compute_kwargs: Mapping | None):
    """The GLMM path of :func:`~wemix_nb.mix_dask`: a :class:`~wemix_nb.MixResult` whose rows
    stayed in the partitions."""
    if len(spec.level_order) != 1:
        raise FormulaError(
            f"mix_dask fits GLMMs with two levels (one grouping factor); this model has "
            f"{len(spec.level_order) + 1} levels ({', '.join(map(repr, spec.level_order))}). Fit it "
            "with mix() on a pandas DataFrame."
        )
    family = options.family
    partitions, summaries = _partitions(ddf, spec, family, _active_client(client), compute_kwargs)
    try:
        if not summaries:
            raise DataError("No rows are left after removing rows with missing values or zero weights.")
        check_same_design(summaries)
        dropped = report_partition_warnings(summaries)
        check_nonconstant_response(summaries)
        levels, orders = combine_levels(summaries)
        frame = whole_frame(summaries, levels, dropped)
        structure = CovarianceStructure(frame.levels)
        p = frame.X.shape[1]
        start = options.start
        if start is None:
            start = np.r_[_glm_start(partitions, summaries, family, p), structure.start()]
        models = []

        def make(nquad: int, laplace_rounding: bool) -> PartitionedModel:
            models.append(PartitionedModel(partitions, orders[0], structure, family, nquad, laplace_rounding))
            return models[-1]

        fit = fit_glmm(
            frame,
            family,
            nquad=options.nquad,
            start=np.asarray(start, dtype=float),
            max_iteration=options.max_iteration,
            verbose=options.verbose,
            laplace_rounding=options.laplace_rounding,
            progress=options.progress,
            model_factory=make,
            outcome=OutcomeSummary.combine([s["outcome"] for s in summaries], orders[0]),
        )
        if family.name == "binomial":
            main = next(m for m in models if m.key == (options.nquad, bool(options.laplace_rounding)))
            warn_extreme_fitted(main.count_extreme(), stacklevel=4)
    finally:
        partitions.close()
    return glmm_result(spec.formula, frame, family, fit, options, row_weights=row_weight_totals(summaries))
