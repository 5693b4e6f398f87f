"""The result of a fit: estimates, their robust covariances, random effects, and prediction.

A :class:`MixResult` holds data only; text reports live in :mod:`wemix_nb.results.report`, and the
notebook layer (HTML tables, charts, widgets) is imported lazily from :mod:`wemix_nb.display`, so
the estimation core never needs great-tables, Altair or ipywidgets.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, ColumnNotFoundError, NewLevelError
from wemix_nb.model.frame import ModelFrame
from wemix_nb.model.levels import group_labels
from wemix_nb.model.variance import VARDF_COLUMNS, VarianceComponents
from wemix_nb.options import FitOptions

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.display.html import ResultTables
    from wemix_nb.display.widgets import WaldWidget
    from wemix_nb.estimation.glmm import GlmmFit
    from wemix_nb.estimation.linear import LinearProblem, LinearSolution
    from wemix_nb.results.inference import WaldTest
    from wemix_nb.results.report import MixSummary

__all__ = ["VARDF_COLUMNS", "GlmmDetails", "LinearDetails", "MixResult"]


@dataclass(frozen=True, eq=False)
class LinearDetails:
    """What the linear estimator leaves besides the estimates.

    Attributes
    ----------
    problem
        The :class:`~wemix_nb.estimation.linear.LinearProblem`: the model's cross-products, its
        covariance structure and likelihood (e.g. to profile the likelihood in theta).
    solution
        The raw :class:`~wemix_nb.estimation.linear.LinearSolution` at the estimate.
    """

    problem: LinearProblem
    solution: LinearSolution

    def legacy_extra(self) -> dict[str, Any]:
        """The same objects under the keys of the former ``MixResult.extra``."""
        return {"problem": self.problem, "solution": self.solution}


@dataclass(frozen=True, eq=False)
class GlmmDetails:
    """What the GLMM estimator leaves besides the estimates.

    Attributes
    ----------
    fit
        The raw :class:`~wemix_nb.estimation.glmm.GlmmFit`.
    vcov_full
        The joint sandwich covariance of ``(beta, variance parameters)``, labelled by coefficient
        and parameter names; the variance parameters come in the estimator's order (per level the
        variances, then the covariances). Its blocks are ``cov_mat`` and ``var_theta``.
    gradient_norm
        Largest absolute gradient of the log-likelihood at the estimate.
    """

    fit: GlmmFit
    vcov_full: pd.DataFrame
    gradient_norm: float

    @property
    def var_params(self) -> list[str]:
        """Names of the variance parameters, in ``vcov_full``'s order."""
        return [str(n) for n in self.vcov_full.index[len(self.fit.beta) :]]

    def legacy_extra(self) -> dict[str, Any]:
        """The same objects under the keys of the former ``MixResult.extra``."""
        return {
            "glmm_fit": self.fit,
            "vcov_full": self.vcov_full,
            "var_param_names": self.var_params,
            "gradient_norm": self.gradient_norm,
        }


class LegacyExtra(dict):
    """``MixResult.extra`` as it was: estimator internals by string key. Deprecated: reading a key
    warns and names the typed attribute to use instead."""

    _USE = {
        "problem": "details.problem",
        "solution": "details.solution",
        "glmm_fit": "details.fit",
        "vcov_full": "details.vcov_full",
        "var_param_names": "details.var_params",
        "gradient_norm": "details.gradient_norm",
    }

    def __getitem__(self, key: str) -> Any:
        use = self._USE.get(key)
        if use is not None:
            warnings.warn(
                f"result.extra[{key!r}] is deprecated; use result.{use}.", FutureWarning, stacklevel=2
            )
        return super().__getitem__(key)


@dataclass(eq=False)
class MixResult:
    """A fitted weighted mixed model.

    The attribute names follow WeMix (``coef``, ``SE``, ``vars``, ``lnl``...); statsmodels-style
    aliases (``params``, ``bse``, ``llf``, ``nobs``) are provided as properties.

    Attributes
    ----------
    formula
        The model formula.
    family
        ``None`` for the linear (Gaussian) model, else the GLMM family object.
    coef
        Fixed-effect estimates (pandas Series indexed by coefficient name).
    SE
        Robust (sandwich, clustered on the top level) standard errors of ``coef``.
    cov_mat
        Robust covariance matrix of ``coef``.
    model_cov
        Model-based covariance of ``coef`` (WeMix's ``invHessian`` for linear models).
    theta
        Cholesky-factor parameters in lme4 order: relative to ``sigma`` for linear models,
        absolute for GLMMs.
    vars
        Random-effect variances of every level (and ``Residual`` for linear models).
    sigma
        Residual standard deviation (1 for GLMMs).
    lnl
        Weighted pseudo-log-likelihood at the estimate.
    ICC
        Intraclass correlation: random-effect variance over total (latent scale for GLMMs).
    ngroups
        Number of rows and of groups per grouping factor.
    wgtStats
        Mean, sum, min and max of the unconditional weights per level.
    var_theta
        Covariance matrix of the (co)variance estimates, labelled with the theta names.
    varDF
        One row per variance and free covariance (and the residual): estimate and robust SE.
    variance
        The :class:`~wemix_nb.model.variance.VarianceComponents` that ``vars``, ``varDF`` and
        ``var_theta`` are views of; reports, Wald tests and R^2 read it.
    ranef
        Conditional modes ``b`` of the random effects: a DataFrame per grouping factor, indexed
        by group label, one column per random-effect term.
    ranef_sd
        Conditional standard deviations of ``ranef`` (same layout).
    resid, fitted
        Response residuals ``y - fitted`` and fitted values on the response scale (for GLMMs the
        mean ``mu``), both conditional on the random effects' modes, indexed like the data.
    linear_predictor
        GLMMs: the linear predictor ``eta = X beta + Z b`` of the fitting rows (``None`` for linear
        models, where it equals ``fitted``).
    details
        The estimator's own output (:class:`LinearDetails` or :class:`GlmmDetails`; ``None`` for a
        result combined over plausible values).
    extra
        Deprecated: ``details``' objects under their former string keys.
    """

    formula: str
    family: Any
    coef: pd.Series
    SE: pd.Series
    cov_mat: pd.DataFrame
    model_cov: pd.DataFrame
    theta: pd.Series
    vars: pd.Series
    sigma: float
    lnl: float
    ICC: float | None
    ngroups: pd.Series
    wgtStats: pd.DataFrame
    var_theta: pd.DataFrame
    varDF: pd.DataFrame
    variance: VarianceComponents
    ranef: dict[str, pd.DataFrame]
    ranef_sd: dict[str, pd.DataFrame]
    resid: pd.Series
    fitted: pd.Series
    converged: bool
    n_iterations: int
    message: str
    nquad: int | None = None
    is_adaptive: bool = False
    options: FitOptions = field(default_factory=FitOptions)
    frame: ModelFrame | None = field(default=None, repr=False)
    linear_predictor: pd.Series | None = field(default=None, repr=False)
    details: LinearDetails | GlmmDetails | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)

    # -- basic facts -----------------------------------------------------------------------------

    @property
    def levels(self) -> int:
        """Number of levels ``L`` (rows are level 1)."""
        return len(self.ngroups)

    @property
    def family_name(self) -> str:
        return "gaussian" if self.family is None else self.family.name

    @property
    def link(self) -> str:
        return "identity" if self.family is None else self.family.link

    @property
    def params(self) -> pd.Series:
        """Alias of :attr:`coef`."""
        return self.coef

    @property
    def bse(self) -> pd.Series:
        """Alias of :attr:`SE`."""
        return self.SE

    @property
    def llf(self) -> float:
        """Alias of :attr:`lnl`."""
        return self.lnl

    @property
    def nobs(self) -> int:
        """Number of rows used in the fit."""
        return int(self.ngroups.iloc[0])

    def __repr__(self) -> str:
        family = "" if self.family is None else f", family={self.family!r}"
        return (
            f"<MixResult {self.formula!r}{family}: {self.nobs} rows, "
            f"{', '.join(f'{k} {v}' for k, v in self.ngroups.iloc[1:].items())} groups; "
            f"lnl={self.lnl:.6g}>"
        )

    def __str__(self) -> str:
        from wemix_nb.results.report import short_text

        return short_text(self)

    # -- reports and tidy tables (wemix_nb.results.report) ----------------------------------------

    def summary(self, digits: int = 4) -> MixSummary:
        """WeMix's summary: call, variance terms, groups and weights, fixed effects, lnl, ICC.

        Returns a :class:`~wemix_nb.MixSummary`; ``print()`` it for the text layout. Its
        tables (``.variance``, ``.groups``, ``.coef``) are DataFrames.
        """
        from wemix_nb.results.report import summary

        return summary(self, digits)

    @property
    def tvalues(self) -> pd.Series:
        """``coef / SE`` (WeMix's ``t value``; referred to the normal distribution)."""
        return (self.coef / self.SE).rename("t value")

    def tidy(
        self, conf_level: float = 0.95, df: str = "normal", *, level: float | None = None
    ) -> pd.DataFrame:
        """Fixed effects as a tidy table: term, estimate, std_error, statistic, df, p_value,
        conf_low, conf_high (robust SEs; interval at ``conf_level``).

        Parameters
        ----------
        conf_level
            Confidence level of the interval.
        df
            ``"normal"`` (default, as WeMix), ``"groups"`` (t with top-level groups minus fixed
            effects; Barnard-Rubin for plausible-value results) or ``"rubin"``.
        level
            Deprecated alias of ``conf_level`` (``level`` names hierarchy levels).
        """
        from wemix_nb.results.report import resolve_conf_level, tidy

        return tidy(self, resolve_conf_level(conf_level, level), df)

    def confint(
        self, conf_level: float = 0.95, df: str = "normal", *, level: float | None = None
    ) -> pd.DataFrame:
        """Confidence intervals of the fixed effects (columns ``lower``, ``upper``); arguments as in
        :meth:`tidy`."""
        from wemix_nb.results.report import confint, resolve_conf_level

        return confint(self, resolve_conf_level(conf_level, level), df)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """statsmodels-style alias: ``confint(conf_level=1 - alpha)``."""
        return self.confint(1 - alpha)

    def variance_components(self) -> pd.DataFrame:
        """One row per random-effect variance and covariance (and the residual variance):
        level, group, term1, term2, kind, estimate, std_error, std_dev, correlation."""
        from wemix_nb.results.report import variance_components

        return variance_components(self)

    def random_effects(self, with_sd: bool = True) -> dict[str, pd.DataFrame]:
        """Per grouping factor, a DataFrame indexed by group: the conditional modes (one column per
        term) and, with ``with_sd``, their conditional SDs (``<term>_sd``)."""
        from wemix_nb.results.report import random_effects

        return random_effects(self, with_sd)

    def to_dict(self) -> dict:
        """The estimates as a JSON-serialisable dict (NaN becomes ``None``)."""
        from wemix_nb.results.report import to_dict

        return to_dict(self)

    def wald_test(
        self,
        type: str = "beta",
        coefs: str | Sequence[str] | None = None,
        hypothesis: float | Sequence[float] | Mapping[str, float] | str | None = None,
    ) -> WaldTest:
        """Shortcut for :func:`wemix_nb.wald_test` on this result."""
        from wemix_nb.results.inference import wald_test

        return wald_test(self, type=type, coefs=coefs, hypothesis=hypothesis)

    # -- prediction ------------------------------------------------------------------------------

    def _inverse_link(self, eta: np.ndarray) -> np.ndarray:
        return eta if self.family is None else self.family.linkinv(eta)

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        type: str = "link",
        allow_new_levels: bool = False,
    ) -> pd.Series:
        """Predictions including the random effects (conditional on the groups' modes).

        Parameters
        ----------
        newdata
            Data to predict for; ``None`` predicts the fitting rows (in the data's row labels).
            It needs the formula's covariates and grouping columns, not the response.
        type
            ``"link"`` (linear predictor) or ``"response"`` (inverse link applied).
        allow_new_levels
            If False, a group label not seen in the fit raises :class:`NewLevelError`; if True,
            such groups get random effect 0 (a population-level prediction for them).

        Returns
        -------
        pandas.Series
            Indexed like ``newdata`` (rows with missing covariates are NaN).
        """
        if type not in ("link", "response"):
            raise ArgumentError(f"type must be 'link' or 'response', got {type!r}.")
        if newdata is None:
            eta = (self.fitted if self.linear_predictor is None else self.linear_predictor).to_numpy()
            return pd.Series(
                eta if type == "link" else self._inverse_link(eta), index=self.fitted.index, name="predicted"
            )
        if self.frame is None:
            raise ArgumentError("This result carries no model frame, so it cannot predict on new data.")
        eta = _predict_link(self, newdata, allow_new_levels)
        values = eta if type == "link" else self._inverse_link(eta)
        return pd.Series(values, index=newdata.index, name="predicted")

    def r_squared(self) -> pd.Series:
        """Marginal and conditional R^2 (Nakagawa & Schielzeth 2013); see :mod:`wemix_nb.results.extras`."""
        from wemix_nb.results.extras import r_squared

        return r_squared(self)

    # -- the notebook layer (imported lazily: the core does not depend on it) ---------------------

    def _repr_html_(self) -> str:
        from wemix_nb.display.html import result_html

        return result_html(self)

    # thin wrappers around the notebook layer (wemix_nb.display), imported on first use

    def to_gt(self, conf_level: float = 0.95, digits: int = 3, *, level: float | None = None) -> ResultTables:
        """The HTML report's great-tables tables (``.fixed``, ``.variance``, ``.groups``) to
        restyle or save; ``level`` is a deprecated alias of ``conf_level``."""
        from wemix_nb.display.html import result_gt
        from wemix_nb.results.report import resolve_conf_level

        return result_gt(self, conf_level=resolve_conf_level(conf_level, level), digits=digits)

    def plot_ranef(self, term: str | None = None, group: str | None = None, top: int | None = None, **kwargs):
        """Altair caterpillar plot of the conditional modes (:func:`wemix_nb.display.plots.ranef_plot`)."""
        from wemix_nb.display.plots import ranef_plot

        return ranef_plot(self, term=term, group=group, top=top, **kwargs)

    def plot_coef(self, conf_level: float = 0.95, *, level: float | None = None, **kwargs):
        """Altair forest plot of the fixed effects (see :func:`wemix_nb.display.plots.coef_plot`);
        ``level`` is a deprecated alias of ``conf_level``."""
        from wemix_nb.display.plots import coef_plot
        from wemix_nb.results.report import resolve_conf_level

        return coef_plot(self, conf_level=resolve_conf_level(conf_level, level), **kwargs)

    def wald_widget(self) -> WaldWidget:
        """ipywidgets front end to :func:`wemix_nb.wald_test` (see :mod:`wemix_nb.display.widgets`)."""
        from wemix_nb.display.widgets import wald_widget

        return wald_widget(self)

    # maketables plug-in protocol (wemix_nb.display.maketables; maketables itself is not needed)

    @property
    def __maketables_coef_table__(self) -> pd.DataFrame:
        from wemix_nb.display.maketables import coef_table

        return coef_table(self)

    def __maketables_stat__(self, key: str):
        from wemix_nb.display.maketables import stat

        return stat(self, key)

    @property
    def __maketables_depvar__(self) -> str:
        from wemix_nb.display.maketables import depvar

        return depvar(self)

    @property
    def __maketables_vcov_info__(self) -> dict:
        from wemix_nb.display.maketables import vcov_info

        return vcov_info(self)

    @property
    def __maketables_default_stat_keys__(self) -> list[str]:
        from wemix_nb.display.maketables import default_stat_keys

        return default_stat_keys(self)

    @property
    def __maketables_stat_labels__(self) -> dict[str, str]:
        from wemix_nb.display.maketables import stat_labels

        return stat_labels(self)


def _check_newdata(frame: ModelFrame, newdata) -> np.ndarray:
    """Refuse newdata the model cannot read; return the rows with a missing value (predicted NaN)."""
    if not isinstance(newdata, pd.DataFrame):
        raise ArgumentError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
    needed = frame.covariate_columns
    missing = [col for col in needed if col not in newdata.columns]
    if missing:
        raise ColumnNotFoundError(
            f"newdata lacks the column(s) {', '.join(map(repr, missing))} that the model uses."
        )
    for col, seen in frame.categories.items():
        values = newdata[col]
        unseen = values.notna() & ~values.isin(list(seen))
        if unseen.any():
            new = pd.unique(values[unseen])[:5]
            raise ArgumentError(
                f"newdata column {col!r} has value(s) not seen in the fit: "
                f"{', '.join(repr(str(v)) for v in new)} (fitted categories: "
                f"{', '.join(repr(str(v)) for v in seen[:10])})."
            )
    return newdata[needed].isna().any(axis=1).to_numpy()


def _predict_link(result: MixResult, newdata: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
    frame = result.frame
    incomplete = _check_newdata(frame, newdata)
    data = newdata.copy()
    if frame.parsed.response not in data.columns:
        data[frame.parsed.response] = 0.0
    # repeat the fit's centering with the fit's means (groups unseen in the fit: their own mean)
    for factor, means in frame.centering.group.items():
        labels = group_labels(data, factor)
        for var, by_group in means.items():
            values = pd.to_numeric(data[var], errors="coerce")
            own = values.groupby(labels).transform("mean")
            data[var] = values - labels.map(by_group).astype(float).fillna(own)
    for var, mean in frame.centering.grand.items():
        data[var] = pd.to_numeric(data[var], errors="coerce") - mean

    with warnings.catch_warnings():
        # categories were checked above: what formulaic would warn about here is only a missing
        # value, and those rows are set to NaN below
        warnings.filterwarnings("ignore", message="Data has categories outside")
        X = frame.fixed_spec.get_model_matrix(data, na_action="ignore")
    missing = [name for name in frame.fixed_names if name not in X.columns]
    if missing:
        raise ArgumentError(f"newdata does not produce the fitted columns {missing}.")
    eta = X[frame.fixed_names].to_numpy(dtype=float) @ result.coef.to_numpy()
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
                "with a random effect of 0."
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
    eta[incomplete] = np.nan  # a missing covariate or group label: no prediction
    return eta
