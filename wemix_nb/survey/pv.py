"""Plausible values: one fit per plausible value, combined with Rubin's rules.

Large-scale assessments (PISA, TIMSS, NAEP...) report proficiency as ``M`` plausible values
(multiple imputations) per student. A model of proficiency is fitted once per plausible value and
the ``M`` fits are combined (Rubin 1987; Barnard & Rubin 1999):

* estimate ``Q = mean_m Q_m``;
* within-imputation (sampling) covariance ``U = mean_m U_m`` (the robust ``cov_mat`` of each fit);
* between-imputation covariance ``B = sum_m (Q_m - Q)(Q_m - Q)' / (M - 1)``;
* total covariance ``T = U + (1 + 1/M) B``;
* per coefficient: relative increase in variance ``r = (1 + 1/M) B_jj / U_jj``, proportion of the
  variance due to the imputation ``lambda = (1 + 1/M) B_jj / T_jj``, Barnard-Rubin degrees of
  freedom ``nu = (1/nu_old + 1/nu_obs)^-1`` with ``nu_old = (M - 1) / lambda^2`` and
  ``nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lambda)``, where the complete-data
  degrees of freedom ``nu_com`` are the number of top-level groups minus the number of fixed
  effects, and the fraction of missing information ``fmi = (r + 2 / (nu + 3)) / (r + 1)``.

Variance components are averaged over the fits, and their standard errors combined by the same
rule on the variances (``SE^2 = mean SE_m^2 + (1 + 1/M) var_m(estimate)``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from wemix_nb.distributed.parallel import map_fits
from wemix_nb.errors import ArgumentError, DroppedRowsWarning, FormulaError
from wemix_nb.model.variance import RESIDUAL, VarianceComponents
from wemix_nb.options import FitOptions, check_column_names
from wemix_nb.pipeline import fit_single
from wemix_nb.results.assemble import variance_views
from wemix_nb.results.ranef import RandomEffectPredictions
from wemix_nb.results.result import MixResult

_RANGE = re.compile(r"\{\s*(\d+)\s*\.\.\s*(\d+)\s*\}")


# -------------------------------------------------------------------------------------------------
# formulas


def has_pv_range(formula: str) -> bool:
    """True if the response of ``formula`` contains a ``{i..j}`` range, e.g. ``"pv{1..5}math ~ x"``."""
    if not isinstance(formula, str) or "~" not in formula:
        return False
    return bool(_RANGE.search(formula.split("~", 1)[0]))


def expand_pv(text: str) -> list[str]:
    """Expand one ``{i..j}`` range: ``"pv{1..5}math"`` -> ``["pv1math", ..., "pv5math"]``."""
    matches = list(_RANGE.finditer(text))
    if len(matches) != 1:
        raise FormulaError(
            f"The response {text!r} must contain exactly one '{{i..j}}' range, e.g. 'pv{{1..5}}math'."
        )
    match = matches[0]
    first, last = int(match.group(1)), int(match.group(2))
    step = 1 if last >= first else -1
    return [text[: match.start()] + str(k) + text[match.end() :] for k in range(first, last + step, step)]


def pv_formulas(formula: str, pv: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The plausible-value column names and one formula per plausible value.

    The response of ``formula`` is replaced by each name in ``pv``; without ``pv`` it must contain
    a ``{i..j}`` range that is expanded.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(f"The formula {formula!r} needs a response: 'pv{{1..5}}math ~ x + (1|g)'.")
    lhs, rhs = formula.split("~", 1)
    lhs = lhs.strip()
    if pv is not None:
        names = list(check_column_names(pv, "pv", "['pv1math', ..., 'pv5math']"))
        if _RANGE.search(lhs) and expand_pv(lhs) != names:
            raise ArgumentError(
                f"The response {lhs!r} expands to {expand_pv(lhs)}, which differs from pv={names}."
            )
    else:
        names = expand_pv(lhs)
    if len(names) < 2:
        raise ArgumentError(f"Combining plausible values needs at least 2 of them; got {names}.")
    if len(set(names)) != len(names):
        raise ArgumentError(f"pv has repeated names: {names}.")
    return names, [f"{name} ~{rhs}" for name in names]


# -------------------------------------------------------------------------------------------------
# the combined result


@dataclass(eq=False)
class PVResult(MixResult):
    """A model fitted once per plausible value and combined with Rubin's rules.

    It is a :class:`~wemix_nb.MixResult` whose estimates are the combined ones: ``coef`` the mean
    of the per-PV estimates, ``cov_mat`` the total covariance ``U + (1 + 1/M) B`` (so ``SE``,
    Wald tests, summaries and charts account for the imputation), ``vars``/``varDF``/``theta``
    the mean variance components (``SEvcov`` combined by Rubin's rules), ``lnl`` and ``ICC`` the
    means over fits, ``ranef`` the mean modes (``ranef_sd`` including the between-PV spread),
    ``resid``/``fitted`` the means.

    Attributes
    ----------
    fits
        The per-PV :class:`~wemix_nb.MixResult` objects.
    pv
        The plausible-value column names.
    rubin
        Per coefficient: ``estimate``, ``SE``, ``within`` (mean sampling variance), ``between``
        (variance of the estimates over PVs), ``total``, ``riv`` (relative increase in variance),
        ``lambda``, ``df`` (Barnard-Rubin) and ``fmi`` (fraction of missing information).
    rubin_vars
        The same for the variance components, indexed by parameter name in ``varDF``'s order:
        ``estimate``, ``within``, ``between``, ``total``, ``SE`` (see :func:`pool_variance`).
    df_complete
        ``nu_com``: number of top-level groups minus the number of fixed effects.
    replicates
        With replicate weights: the replicate estimates of every plausible value, a tidy DataFrame
        (``pv``, ``replicate``, ``term``, ``kind``, ``estimate``); else ``None``.
    ICC_SE
        With replicate weights: the standard error of the ICC by Rubin's rules; else ``None``.
    n_dropped_pv
        Rows left out of every fit because a plausible value was missing (the fits' own frames
        count the rows dropped for other reasons).
    """

    fits: list = field(default_factory=list, repr=False)
    pv: list = field(default_factory=list)
    rubin: pd.DataFrame | None = field(default=None, repr=False)
    rubin_vars: pd.DataFrame | None = field(default=None, repr=False)
    df_complete: float | None = None
    replicates: pd.DataFrame | None = field(default=None, repr=False)
    ICC_SE: float | None = None
    n_dropped_pv: int = 0

    @property
    def n_pv(self) -> int:
        """Number of plausible values (fits) combined."""
        return len(self.fits)

    @property
    def df(self) -> pd.Series:
        """Barnard-Rubin degrees of freedom per coefficient."""
        return self.rubin["df"]

    @property
    def fmi(self) -> pd.Series:
        """Fraction of missing information per coefficient."""
        return self.rubin["fmi"]

    def __repr__(self) -> str:
        replicates = getattr(self.options, "replicates", None)
        with_replicates = "" if replicates is None else f", {replicates.describe()}"
        return (
            f"<PVResult {self.formula!r}: {self.n_pv} plausible values combined by Rubin's rules"
            f"{with_replicates}; "
            f"{self.nobs} rows, "
            f"{', '.join(f'{k} {v}' for k, v in self.ngroups.iloc[1:].items())} groups; "
            f"mean lnl={self.lnl:.6g}>"
        )

    def random_effect_predictions(self, raw: bool = False) -> RandomEffectPredictions:
        """Each plausible value's predictions (see :meth:`MixResult.random_effect_predictions`),
        combined like ``ranef``: mean modes, SDs including the between-PV spread."""
        cache = self.__dict__.setdefault("_predictions", {})
        if raw not in cache:
            each = [fit.random_effect_predictions(raw) for fit in self.fits]
            modes, sd = pool_modes([p.modes for p in each], [p.sd for p in each])
            cache[raw] = RandomEffectPredictions(modes, sd, each[0].rescaled, each[0].weights)
        return cache[raw]

    def r_squared(self) -> pd.Series:
        """Marginal and conditional R^2, averaged over the plausible values."""
        return pd.concat([fit.r_squared() for fit in self.fits], axis=1).mean(axis=1).rename("r_squared")


def _barnard_rubin(within: np.ndarray, between: np.ndarray, M: int, df_complete: float) -> pd.DataFrame:
    factor = 1.0 + 1.0 / M
    total = within + factor * between
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = np.where(within > 0, factor * between / within, np.inf)
        lam = np.where(total > 0, factor * between / total, 0.0)
        nu_old = np.where(lam > 0, (M - 1) / lam**2, np.inf)
        if df_complete is not None and np.isfinite(df_complete) and df_complete > 0:
            nu_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
            df = np.where(np.isinf(nu_old), nu_obs, 1.0 / (1.0 / nu_old + 1.0 / nu_obs))
        else:
            df = nu_old
        fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    return pd.DataFrame(
        {
            "within": within,
            "between": between,
            "total": total,
            "riv": riv,
            "lambda": lam,
            "df": df,
            "fmi": fmi,
        }
    )


def _mean_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames).groupby(level=0, sort=False).mean().reindex(frames[0].index)


def pool_modes(
    modes: Sequence[dict[str, pd.DataFrame]], sds: Sequence[dict[str, pd.DataFrame]]
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Random-effect modes of several fits combined: the mean mode, and an SD combining the mean
    conditional variance with ``(1 + 1/M)`` times the between-fit variance of the modes."""
    factor = 1.0 + 1.0 / len(modes)
    pooled, pooled_sd = {}, {}
    for level, table in modes[0].items():
        tables = [m[level] for m in modes]
        pooled[level] = _mean_frames(tables)
        if level in sds[0]:
            spread = pd.concat(tables).groupby(level=0, sort=False).var(ddof=1).reindex(table.index)
            within = _mean_frames([sd[level] ** 2 for sd in sds])
            pooled_sd[level] = np.sqrt(within + factor * spread.fillna(0.0))
    return pooled, pooled_sd


def _parameter_names(variance: VarianceComponents) -> list[str]:
    return [p.name for p in variance.table_parameters()]


def pool_variance(
    values: Sequence[VarianceComponents], within: str = "all"
) -> tuple[VarianceComponents, pd.DataFrame]:
    """Variance components of several fits of one model, combined by Rubin's rules.

    Each ``Sigma_l`` (and the residual variance) is the mean over the fits; the standard error of
    each entry combines the mean squared standard error and the between-fit variance,
    ``SE^2 = mean SE_m^2 + (1 + 1/M) var_m(estimate)``, and the covariance of the free entries is
    ``mean var_theta_m + (1 + 1/M) cov_m(estimates)``. With ``within="first"`` the sampling part
    is the first fit's (``SE_1^2``, ``var_theta_1``) instead of the mean.

    Returns
    -------
    VarianceComponents, pandas.DataFrame
        The combined value, and per parameter (WeMix's order) ``estimate``, ``within``,
        ``between``, ``total`` and ``SE``.
    """
    first, M = values[0], len(values)
    factor = 1.0 + 1.0 / M
    k = first.size
    names = first.names
    est = np.array([v.estimates.to_numpy() for v in values])
    se = np.array([v.std_errors.to_numpy() for v in values])
    if first.residual is not None:
        est = np.column_stack([est, [v.residual for v in values]])
        se = np.column_stack([se, [v.residual_se for v in values]])
        names = [*names, RESIDUAL]
    first_only = within == "first"
    within = se[0] ** 2 if first_only else np.mean(se**2, axis=0)
    between = est.var(axis=0, ddof=1)
    total = within + factor * between
    mean = est.mean(axis=0)
    cov = np.array(values[0].cov) if first_only else np.mean([v.cov for v in values], axis=0)
    cov = cov + factor * np.atleast_2d(np.cov(est[:, :k], rowvar=False, ddof=1))
    linear = first.residual is not None
    pooled = first.with_estimates(
        mean[:k],
        np.sqrt(total[:k]),
        cov,
        residual=float(mean[k]) if linear else None,
        residual_se=float(np.sqrt(total[k])) if linear else float("nan"),
    )
    table = pd.DataFrame(
        {"estimate": mean, "within": within, "between": between, "total": total, "SE": np.sqrt(total)},
        index=pd.Index(names),
    )
    return pooled, table.reindex(_parameter_names(pooled))


def combine_pv(
    fits: Sequence[MixResult],
    pv: Sequence[str] | None = None,
    formula: str | None = None,
    options: FitOptions | None = None,
    within: str = "all",
) -> PVResult:
    """Combine fits of the same model to different plausible values by Rubin's rules.

    Parameters
    ----------
    fits
        Two or more :class:`~wemix_nb.MixResult` of the same model, one per plausible value: the
        same family and link, the same fixed effects in the same order, and the same variance
        components (grouping factors and random-effect terms).
    pv
        Names of the plausible values (default: the fits' responses).
    formula
        The formula to report (default: the first fit's).
    options
        The options of the fits, to report (default: the first fit's).
    within
        The sampling (within-imputation) covariance ``U``: the mean of the fits' covariances
        (``"all"``, Rubin's rule) or the first fit's (``"first"``, as some TIMSS reports compute
        the replicate variance on the first plausible value only).

    Returns
    -------
    PVResult
        The combined estimates (see :class:`PVResult` and this module's rules), with the fits in
        ``.fits`` and the per-coefficient Rubin table in ``.rubin``.

    Raises
    ------
    ArgumentError
        Fewer than two fits; an entry that is not a single fit (a :class:`PVResult` included);
        fits of other families or links, with other fixed effects (names or their order) or other
        variance components than the first fit.

    Examples
    --------
    >>> fits = [wemix_nb.mix(f"pv{m}math ~ escs + (1|schoolid)", data, weights=w) for m in (1, 2, 3)]
    >>> combined = wemix_nb.combine_pv(fits)
    >>> combined.rubin[["estimate", "SE", "fmi"]]
    """
    if isinstance(fits, str | Mapping) or not isinstance(fits, Iterable):
        raise ArgumentError(f"fits must be a list of fits (MixResult), got {type(fits).__name__}.")
    fits = list(fits)
    M = len(fits)
    if M < 2:
        raise ArgumentError(f"Rubin's rules need at least 2 fits; got {M}.")
    _check_same_model(fits)
    first = fits[0]
    names = list(first.coef.index)
    factor = 1.0 + 1.0 / M
    Q = np.array([fit.coef.to_numpy() for fit in fits])
    coef = Q.mean(axis=0)
    if within not in ("all", "first"):
        raise ArgumentError(f"within must be 'all' or 'first'; got {within!r}.")
    U = (
        fits[0].cov_mat.to_numpy()
        if within == "first"
        else np.mean([fit.cov_mat.to_numpy() for fit in fits], axis=0)
    )
    B = np.atleast_2d(np.cov(Q, rowvar=False, ddof=1))
    T = U + factor * B
    n_top = int(first.ngroups.iloc[-1])
    df_complete = float(n_top - len(names))
    rubin = _barnard_rubin(np.diag(U), np.diag(B), M, df_complete)
    rubin.index = pd.Index(names)
    rubin.insert(0, "SE", np.sqrt(np.diag(T)))
    rubin.insert(0, "estimate", coef)

    # variance components: means, and Rubin's rule on their sampling variances
    variance, rubin_vars = pool_variance([fit.variance for fit in fits], within)
    sigma = (
        math.sqrt(variance.residual)
        if variance.residual is not None
        else float(np.mean([f.sigma for f in fits]))
    )
    iccs = [fit.ICC for fit in fits]

    ranef, ranef_sd = pool_modes([fit.ranef for fit in fits], [fit.ranef_sd for fit in fits])

    def mean_series(attribute: str) -> pd.Series:
        series = [getattr(fit, attribute) for fit in fits]
        out = pd.concat(series, axis=1).mean(axis=1)
        return out.rename(series[0].name)

    pv_names = (
        list(pv)
        if pv is not None
        else [fit.frame.parsed.response if fit.frame else str(k) for k, fit in enumerate(fits, start=1)]
    )
    converged = all(fit.converged for fit in fits)
    not_converged = [name for name, fit in zip(pv_names, fits, strict=True) if not fit.converged]
    message = f"{M} plausible values combined by Rubin's rules" + (
        f"; not converged: {', '.join(not_converged)}" if not_converged else ""
    )
    base = {f.name: getattr(first, f.name) for f in fields(MixResult)}
    base.update(
        formula=formula if formula is not None else first.formula,
        coef=pd.Series(coef, index=names, name="coef"),
        SE=pd.Series(np.sqrt(np.diag(T)), index=names, name="SE"),
        cov_mat=pd.DataFrame(T, index=names, columns=names),
        model_cov=pd.DataFrame(
            np.mean([f.model_cov.to_numpy() for f in fits], axis=0) + factor * B, index=names, columns=names
        ),
        theta=pd.Series(
            variance.theta(sigma**2 if first.family is None else 1.0), index=variance.names, name="theta"
        ),
        sigma=sigma,
        lnl=float(np.mean([fit.lnl for fit in fits])),
        ICC=None if any(v is None for v in iccs) else float(np.mean(iccs)),
        ranef=ranef,
        ranef_sd=ranef_sd,
        resid=mean_series("resid"),
        fitted=mean_series("fitted"),
        linear_predictor=None if first.linear_predictor is None else mean_series("linear_predictor"),
        converged=converged,
        n_iterations=max(fit.n_iterations for fit in fits),
        message=message,
        options=(options if options is not None else _options_of(first)).with_changes(pv=tuple(pv_names)),
        details=None,
        extra={},
        **variance_views(variance),
    )
    return PVResult(
        **base,
        fits=fits,
        pv=pv_names,
        rubin=rubin,
        rubin_vars=rubin_vars,
        df_complete=df_complete,
        replicates=_pv_replicates(fits, pv_names),
        ICC_SE=_pooled_icc_se(fits, within),
    )


def _check_same_model(fits: list) -> None:
    """Refuse fits that are not one model fitted to different plausible values: anything but a
    single fit, another family or link, other fixed effects (names or order) or other variance
    components."""
    for k, fit in enumerate(fits, start=1):
        if not isinstance(fit, MixResult):
            raise ArgumentError(f"Fit {k} is a {type(fit).__name__}, not a MixResult.")
        if isinstance(fit, PVResult):
            raise ArgumentError(f"Fit {k} is already combined over plausible values; pass its .fits.")
    first = fits[0]
    names = list(first.coef.index)
    for k, fit in enumerate(fits[1:], start=2):
        if (fit.family_name, fit.link) != (first.family_name, first.link):
            raise ArgumentError(
                f"Fit {k} is a {fit.family_name} ({fit.link}) model, fit 1 a {first.family_name} "
                f"({first.link}) model."
            )
        other = list(fit.coef.index)
        if other != names:
            detail = (
                "the same names in another order; fit every plausible value with the same formula"
                if sorted(other) == sorted(names)
                else f"only fit {k} has {[n for n in other if n not in names]}, only fit 1 has "
                f"{[n for n in names if n not in other]}"
            )
            raise ArgumentError(f"Fit {k} has fixed effects {other}, fit 1 has {names}: {detail}.")
        if _parameter_names(fit.variance) != _parameter_names(first.variance):
            raise ArgumentError(
                f"Fit {k} has variance components {_parameter_names(fit.variance)}, fit 1 has "
                f"{_parameter_names(first.variance)}."
            )


def _pv_replicates(fits: Sequence[MixResult], names: Sequence[str]) -> pd.DataFrame | None:
    """The replicate estimates of every plausible value, when the fits carry them."""
    tables = [getattr(fit, "replicates", None) for fit in fits]
    if any(table is None for table in tables):
        return None
    return pd.concat(
        [table.assign(pv=name)[["pv", *table.columns]] for table, name in zip(tables, names, strict=True)],
        ignore_index=True,
    )


def _pooled_icc_se(fits: Sequence[MixResult], within: str) -> float | None:
    """Rubin's rule on the ICC when every fit has a standard error of it (replicate weights)."""
    se = [getattr(fit, "ICC_SE", None) for fit in fits]
    if any(s is None for s in se) or any(fit.ICC is None for fit in fits):
        return None
    icc = np.array([fit.ICC for fit in fits])
    sampling = se[0] ** 2 if within == "first" else float(np.mean(np.square(se)))
    return float(np.sqrt(sampling + (1 + 1 / len(fits)) * icc.var(ddof=1)))


def complete_pv_rows(data: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The rows with every plausible value (a :class:`~wemix_nb.errors.DroppedRowsWarning` counts
    the others): Rubin's rules combine fits of the same units, so a row missing one plausible value
    is left out of every fit, not only of that one."""
    present = [name for name in names if name in data.columns]
    incomplete = data[present].isna().any(axis=1).to_numpy() if present else np.zeros(len(data), bool)
    if not incomplete.any():
        return data
    counts = ", ".join(f"{c!r}: {int(k)}" for c, k in data[present].isna().sum().items() if k)
    warnings.warn(
        f"{int(incomplete.sum())} row(s) with a missing plausible value were removed from every "
        f"fit ({counts}).",
        DroppedRowsWarning,
        stacklevel=5,
    )
    return data.loc[~incomplete]


def _fit_one(data: pd.DataFrame, formula: str, options: FitOptions) -> MixResult:
    """One plausible value's fit (module level, so worker processes can run it)."""
    return fit_single(formula, data, options)


def _options_of(fit: MixResult) -> FitOptions:
    options = fit.options
    return options if isinstance(options, FitOptions) else FitOptions()


def worker_processes(n_jobs: Any, client: Any) -> int | None:
    """Local worker processes for ``n_jobs`` (``-1`` or any negative: one per CPU)."""
    if n_jobs is None:
        return 1 if client is None else None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs == 0:
        raise ArgumentError(
            f"n_jobs must be a positive integer, or -1 for one process per CPU; got {n_jobs!r}."
        )
    return None if n_jobs < 0 else int(n_jobs)


def fit_plausible_values(
    formula: str,
    data: pd.DataFrame,
    options: FitOptions,
    *,
    n_jobs: int | None = None,
    client=None,
) -> PVResult:
    """Fit ``formula`` once per plausible value and combine the fits by Rubin's rules.

    Parameters
    ----------
    formula
        The model; its response is replaced by each plausible value in ``options.pv`` (a response
        with a ``{i..j}`` range, ``"pv{1..5}math ~ escs + (1|schoolid)"``, is expanded by
        :func:`pv_formulas`).
    data
        As for :func:`~wemix_nb.mix`.
    options
        Validated options; ``options.pv`` names the plausible-value columns.
    n_jobs
        Fit the plausible values on this many local processes (``-1``: one per CPU); ``None``
        fits them one after the other in this process.
    client
        A Dask ``distributed.Client`` to fit them on.

    Returns
    -------
    PVResult
    """
    names, formulas = pv_formulas(formula, options.pv)
    complete = complete_pv_rows(data, names)
    dropped, data = len(data) - len(complete), complete
    single = options.with_changes(pv=None, progress=False)  # no nested bars inside the fits
    tasks = [(data, f, single) for f in formulas]
    processes = worker_processes(n_jobs, client)
    fits = map_fits(
        _fit_one,
        tasks,
        client=client,
        processes=processes,
        progress=options.progress,
        desc="plausible values",
    )
    result = combine_pv(fits, pv=names, formula=formula, options=options)
    result.n_dropped_pv = dropped
    return result
