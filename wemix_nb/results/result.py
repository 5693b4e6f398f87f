"""The result of a fit: estimates, their robust covariances, random effects, and prediction.

A :class:`MixResult` holds data only; text reports live in :mod:`wemix_nb.results.report`, and the
notebook layer (HTML tables, charts, widgets) is imported lazily from :mod:`wemix_nb.display`, so
the estimation core never needs great-tables, Altair or ipywidgets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError
from wemix_nb.model.frame import ModelFrame
from wemix_nb.model.variance import VARDF_COLUMNS, VarianceComponents
from wemix_nb.options import FitOptions
from wemix_nb.results.details import GlmmDetails, LinearDetails

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.display.html import ResultTables
    from wemix_nb.display.widgets import WaldWidget
    from wemix_nb.results.diagnostics import Diagnostics
    from wemix_nb.results.inference import WaldTest
    from wemix_nb.results.ranef import RandomEffectPredictions
    from wemix_nb.results.report import MixSummary

__all__ = ["VARDF_COLUMNS", "GlmmDetails", "LinearDetails", "MixResult"]


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
        Random-effect variances of every level (and ``Residual`` for linear models), named
        ``"<group>.<term>"``. Covariances are not listed, for GLMMs as for linear models: WeMix's
        GLMM ``vars`` also holds them (``"school:(Intercept):x1"``, with ``:`` names), its linear
        ``vars`` does not. Here ``vars`` means the same for every model; the covariances are in
        ``varDF``, :meth:`variance_components` and ``variance.estimates`` (every free entry,
        covariances named ``"<group>.<row term>.<column term>"``, e.g. ``"school.x1.Intercept"``).
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
        Conditional modes ``b`` of the random effects as fitted (WeMix's): a DataFrame per grouping
        factor, indexed by group label, one column per term (see also :meth:`random_effects`).
    ranef_sd
        Conditional standard deviations of ``ranef`` (same layout).
    resid, fitted
        Response residuals ``y - fitted`` and fitted values on the response scale (for GLMMs the
        mean ``mu``), both conditional on the random effects' modes, indexed like the data.
    linear_predictor
        GLMMs: the linear predictor ``eta = X beta + Z b`` of the fitting rows (``None`` for linear
        models, where it equals ``fitted``).
    trials
        A ``cbind(successes, failures)`` response: the numbers of trials of the fitting rows,
        indexed like ``resid`` (a Dask Series for :func:`~wemix_nb.mix_dask` fits); ``None``
        otherwise.
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
    trials: pd.Series | None = field(default=None, repr=False)
    details: LinearDetails | GlmmDetails | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)

    # -- basic facts -----------------------------------------------------------------------------

    @property
    def levels(self) -> int:
        """Number of levels ``L`` (rows are level 1)."""
        return len(self.ngroups)

    @property
    def family_name(self) -> str:
        """``"gaussian"`` for a linear model, else the GLMM family's name."""
        return "gaussian" if self.family is None else self.family.name

    @property
    def link(self) -> str:
        """The link function's name (``"identity"`` for a linear model)."""
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

    @cached_property
    def diagnostics(self) -> Diagnostics:
        """What qualifies this fit's inference: few top-level groups (or PSUs) behind the SEs, boundary
        (co)variances, the ICC's meaning (:class:`~wemix_nb.results.diagnostics.Diagnostics`)."""
        from wemix_nb.results.diagnostics import diagnose

        return diagnose(self)

    @property
    def is_singular(self) -> bool:
        """A boundary (singular) fit, as lme4's ``isSingular``: a variance numerically zero or a
        correlation at +/-1 (``diagnostics.boundary`` says which)."""
        return self.diagnostics.is_singular

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
        self, conf_level: float = 0.95, df: str | None = None, *, level: float | None = None
    ) -> pd.DataFrame:
        """Fixed effects as a tidy table: term, estimate, std_error, statistic, df, p_value,
        conf_low, conf_high (robust SEs; interval at ``conf_level``).

        Parameters
        ----------
        conf_level
            Confidence level of the interval.
        df
            ``"normal"`` (WeMix's), ``"groups"`` (t with top-level groups minus fixed effects, or
            PSUs minus strata for design-based SEs; Barnard-Rubin for plausible values),
            ``"rubin"``; ``None``: ``"groups"`` below 30 top-level groups (or PSUs - strata), else
            ``"normal"`` (:attr:`diagnostics`).
        level
            Deprecated alias of ``conf_level`` (``level`` names hierarchy levels).
        """
        from wemix_nb.results.report import resolve_conf_level, tidy

        return tidy(self, resolve_conf_level(conf_level, level), df)

    def confint(
        self,
        conf_level: float = 0.95,
        df: str | None = None,
        *,
        which: str = "fixed",
        level: float | None = None,
    ) -> pd.DataFrame:
        """Confidence intervals of the fixed effects, of the variance components, or of both.

        Parameters
        ----------
        conf_level
            Confidence level of the intervals.
        df
            Reference distribution of the fixed effects' intervals, as in :meth:`tidy`; the
            variance components' intervals use the normal one.
        which
            ``"fixed"`` (default): the fixed effects, columns ``lower`` and ``upper``.
            ``"variances"``: every variance (random effects' and the residual) and, for each
            covariance, the correlation of its two effects, from the robust covariance of their
            estimates (``var_theta``) by the delta method: Wald intervals on the log standard
            deviation for a variance and on Fisher's ``atanh`` of a correlation, transformed back
            (so a variance's interval is positive and a correlation's inside (-1, 1)).
            ``"all"``: the fixed effects, then the variance components.
        level
            Deprecated alias of ``conf_level`` (``level`` names hierarchy levels).

        Returns
        -------
        pandas.DataFrame
            For ``"fixed"``: indexed by coefficient, columns ``lower`` and ``upper``. Otherwise
            indexed by parameter name (coefficients, then the names of ``vars``/``varDF``:
            ``"Subject.Days"``, ``"Subject.Days.Intercept"`` for a covariance's correlation,
            ``"Residual"``), columns ``parameter`` (``"coefficient"``, ``"variance"`` or
            ``"correlation"``), ``estimate``, ``std_error`` (on that parameter's scale),
            ``lower``, ``upper`` and ``method`` (how the interval was built). A variance
            estimated at 0 gets no interval (NaN).
        """
        from wemix_nb.results.report import confint, resolve_conf_level

        return confint(self, resolve_conf_level(conf_level, level), df, which)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """statsmodels-style alias: ``confint(conf_level=1 - alpha)``."""
        if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.number) or not 0 < alpha < 1:
            raise ArgumentError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}.")
        return self.confint(1 - alpha)

    def variance_components(self) -> pd.DataFrame:
        """One row per random-effect variance and covariance (and the residual variance):
        level, group, term1, term2, kind, estimate, std_error, std_dev, correlation.

        Their confidence intervals are ``confint(which="variances")``."""
        from wemix_nb.results.report import variance_components

        return variance_components(self)

    def random_effects(self, with_sd: bool = True, raw: bool = False) -> dict[str, pd.DataFrame]:
        """Per grouping factor, a DataFrame indexed by group: the conditional modes (one column per
        term) and, with ``with_sd``, their conditional SDs (``<term>_sd``).

        With unscaled survey weights they are computed at the fitted parameters with each group's
        weights rescaled to sum to its number of sampled units (:mod:`wemix_nb.results.ranef`);
        ``raw=True`` gives the pseudo-likelihood ones as fitted (``ranef``, ``ranef_sd``).
        """
        from wemix_nb.results.report import random_effects

        return random_effects(self, with_sd, raw)

    def random_effect_predictions(self, raw: bool = False) -> RandomEffectPredictions:
        """The modes and SDs behind :meth:`random_effects` and :meth:`plot_ranef`, with how the
        weights were treated (:class:`~wemix_nb.results.ranef.RandomEffectPredictions`)."""
        from wemix_nb.results.ranef import random_effect_predictions

        return random_effect_predictions(self, raw)

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

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        type: str = "link",
        allow_new_levels: bool = False,
        *,
        include_random: bool = True,
        se: bool = False,
        conf_level: float = 0.95,
        offset=None,
    ) -> pd.Series | pd.DataFrame:
        """Predictions: conditional on the groups' random effects (default) or population-level.

        Parameters
        ----------
        newdata
            Data to predict for; ``None`` predicts the fitting rows (in the data's row labels).
            It needs the formula's covariates and grouping columns, not the response; a
            population-level prediction needs no grouping columns (except those of
            ``center_group``).
        type
            ``"link"`` (linear predictor) or ``"response"`` (inverse link applied).
        allow_new_levels
            If False, a group label not seen in the fit raises :class:`NewLevelError`; if True,
            such groups get random effect 0 (a population-level prediction for them).
        include_random
            True: ``eta = x'beta + z'b`` with each group's conditional modes ``b``. False: the
            population-level ``eta = x'beta`` (lme4's ``re.form = NA``); new groups need no
            ``allow_new_levels``.
        se
            Population level only (``include_random=False``): return a DataFrame with the
            delta-method standard error of the fixed part and a confidence interval.
        conf_level
            Confidence level of the interval when ``se=True``.
        offset
            With ``newdata`` only: the offset of its rows, a column name of ``newdata`` or one
            value per row, replacing the fit's ``offset`` argument. By default the offset is
            rebuilt from ``newdata``: the formula's ``offset(...)`` terms and the column the fit's
            ``offset`` named must be in it; a fit whose ``offset`` was an array needs this
            argument. The offset is part of every prediction (link and response scale; it adds
            nothing to ``std_error``).

        Returns
        -------
        pandas.Series or pandas.DataFrame
            Indexed like ``newdata`` (or the fitting rows); rows with a missing covariate or group
            label are NaN. With ``se=False`` a Series named ``predicted``. With ``se=True`` a
            DataFrame with columns

            ``predicted``
                ``eta = x'beta`` (``type="link"``) or ``mu = g^-1(eta)`` (``type="response"``).
            ``std_error``
                Link scale: ``sqrt(x' V x)`` with ``V`` the robust ``cov_mat``; response scale:
                that times ``|d mu / d eta|`` (delta method).
            ``conf_low``, ``conf_high``
                ``eta -/+ z se`` with ``z`` the normal quantile of ``conf_level``; on the response
                scale these link-scale bounds transformed by ``g^-1``, so the interval stays
                inside the mean's range (it is not ``mu -/+ z se``).
        """
        from wemix_nb.results.predict import predict

        return predict(self, newdata, type, allow_new_levels, include_random, se, conf_level, offset)

    def residuals(self, type: str = "response") -> pd.Series:
        """Residuals of the fitting rows, conditional on the random effects' modes (as ``fitted``).

        With ``y`` the response, ``mu`` the fitted mean (:attr:`fitted`: ``mu = g^-1(eta)``,
        ``eta = x'beta + z'b`` at the modes ``b``), ``V(mu)`` the family's variance function and
        ``d(y, mu) = 2 [log f(y | y) - log f(y | mu)]`` the unit deviance:

        ``"response"`` (default)
            ``y - mu`` (:attr:`resid`).
        ``"pearson"``
            ``(y - mu) / sqrt(V(mu))``; for linear models ``(y - mu) / sigma``.
        ``"deviance"``
            ``sign(y - mu) sqrt(d(y, mu))``; for linear models ``y - mu`` (R's gaussian family).
            WeMix's GLMM deviance residuals lack the sign (a WeMix bug).
        ``"working"``
            ``(y - mu) / (d mu / d eta)``; for linear models ``y - mu``.

        The survey weights do not enter: R's ``residuals.glm`` multiplies Pearson and deviance
        residuals by the square root of the prior weights, which are precision weights, while
        sampling weights say how many population units a row stands for. With unit weights
        these are R's and statsmodels' GLM residuals at the same ``mu``. WeMix's default for
        GLMMs is ``"deviance"``; here it is ``"response"`` for every model. A
        ``cbind(successes, failures)`` response is the proportion of successes, and its
        trials are precision weights: Pearson and deviance residuals are multiplied by
        ``sqrt(trials)``, as R's ``residuals.glm`` does.

        Parameters
        ----------
        type
            ``"response"``, ``"pearson"``, ``"deviance"`` or ``"working"``.

        Returns
        -------
        pandas.Series
            Indexed like :attr:`resid`, named ``"<type>_resid"``.
        """
        from wemix_nb.results.residuals import residuals

        return residuals(self, type)

    def r_squared(self) -> pd.Series:
        """Marginal and conditional R^2 (Nakagawa & Schielzeth 2013); see :mod:`wemix_nb.results.extras`."""
        from wemix_nb.results.extras import r_squared

        return r_squared(self)

    # -- the notebook layer (imported lazily: the core does not depend on it) ---------------------

    def _repr_html_(self) -> str:
        """The HTML report; if it cannot be built, the text summary (never raises)."""
        from wemix_nb.results.fallback import report_html

        return report_html(self)

    # thin wrappers around the notebook layer (wemix_nb.display), imported on first use

    def to_gt(
        self, conf_level: float = 0.95, digits: int = 3, *, df: str | None = None, level: float | None = None
    ) -> ResultTables:
        """The HTML report's great-tables tables (``.fixed``, ``.variance``, ``.groups``) to
        restyle or save; ``df`` as in :meth:`tidy`; ``level`` is a deprecated alias of
        ``conf_level``."""
        from wemix_nb.display.html import result_gt
        from wemix_nb.results.report import resolve_conf_level

        return result_gt(self, conf_level=resolve_conf_level(conf_level, level), digits=digits, df=df)

    def plot_ranef(
        self,
        term: str | None = None,
        group: str | None = None,
        top: int | None = None,
        raw: bool = False,
        **kwargs,
    ):
        """Altair caterpillar plot of the conditional modes, with each group's weights rescaled to
        its sample size unless ``raw`` (see :meth:`random_effects` and
        :func:`wemix_nb.display.plots.ranef_plot`)."""
        from wemix_nb.display.plots import ranef_plot

        return ranef_plot(self, term=term, group=group, top=top, raw=raw, **kwargs)

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
