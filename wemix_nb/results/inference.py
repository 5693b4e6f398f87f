"""Wald tests of fixed effects and of random-effect (co)variances.

>>> test = wemix_nb.wald_test(fit)                                   # all fixed effects = 0
>>> test = wemix_nb.wald_test(fit, coefs=["Days"], hypothesis=[10])
>>> test = wemix_nb.wald_test(fit, hypothesis="Days = 10, Intercept - 25 * Days = 0")
>>> test = wemix_nb.wald_test(fit, type="Lambda")                    # every (co)variance = 0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from wemix_nb.errors import ArgumentError, CoefficientNotFoundError
from wemix_nb.options import check_numbers, check_result

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["WaldTest", "wald_test"]


@dataclass(frozen=True)
class WaldTest:
    """The result of :func:`wald_test`.

    Attributes
    ----------
    statistic
        ``W = (R est - r)' (R V R')^{-1} (R est - r)``.
    df
        Degrees of freedom: the number of restrictions (rows of ``R``).
    p_value
        ``P(chi2_df > W)``.
    names
        One label per restriction: the parameter name, or the constraint (``"Intercept - 2*Days"``)
        when the hypothesis was given as a string.
    hypothesis
        The hypothesised values ``r`` (indexed by ``names``) -- the null hypothesis.
    estimate
        The estimates ``R est`` (indexed by ``names``).
    type
        ``"beta"`` (fixed effects) or ``"Lambda"`` (random-effect variances and covariances).
    covariance
        ``R V R'``: the covariance of ``estimate`` used in the statistic.
    restriction
        The restriction matrix ``R`` (columns = every parameter of that type).
    labels
        Display labels of ``names`` when they are (co)variance parameters
        (``"Subject: Intercept × Days"``, as in the result's report); ``None`` otherwise.
    """

    statistic: float
    df: int
    p_value: float
    names: list[str]
    hypothesis: pd.Series
    estimate: pd.Series
    type: str
    covariance: pd.DataFrame
    restriction: pd.DataFrame | None = None
    labels: list[str] | None = None

    @property
    def wald(self) -> float:
        """Alias of :attr:`statistic` (WeMix's ``Wald``)."""
        return self.statistic

    @property
    def pvalue(self) -> float:
        """Alias of :attr:`p_value`."""
        return self.p_value

    def table(self) -> pd.DataFrame:
        """Per restriction: estimate, hypothesised value, difference, and its standard error."""
        se = np.sqrt(np.clip(np.diag(self.covariance.to_numpy(dtype=float)), 0, None))
        return pd.DataFrame(
            {
                "estimate": self.estimate.to_numpy(float),
                "hypothesis": self.hypothesis.to_numpy(float),
                "difference": (self.estimate - self.hypothesis).to_numpy(float),
                "std_error": se,
            },
            index=pd.Index(self.names, name="parameter"),
        )

    def __str__(self) -> str:
        what = "fixed effects" if self.type == "beta" else "random-effect (co)variances"
        p = f"{self.p_value:.4g}" if self.p_value >= 1e-4 else f"{self.p_value:.3e}"
        if self.p_value < 2.2e-16:  # R's convention below machine precision (0 included)
            p = "< 2.2e-16"
        null = ", ".join(f"{n} = {v:.6g}" for n, v in zip(self.names, self.hypothesis, strict=True))
        lines = [
            f"Wald test of {what} (type={self.type!r})",
            f"  H0: {null}",
            f"  Wald statistic = {self.statistic:.6g}, df = {self.df}, p-value = {p}",
            "",
        ]
        table = self.table().to_string(float_format=lambda x: f"{x:.6g}")
        lines += ["  " + line for line in table.splitlines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<WaldTest type={self.type!r} W={self.statistic:.6g} df={self.df} "
            f"p={self.p_value:.4g} names={self.names}>"
        )

    def _repr_html_(self) -> str:
        """The test as an HTML table; if it cannot be built, the text form (never raises)."""
        from wemix_nb.results.fallback import html_or_text

        def table() -> str:
            from wemix_nb.display.html import wald_html

            return wald_html(self)

        return html_or_text(table, lambda: str(self), lambda: repr(self))


# -------------------------------------------------------------------------------------------------


def _intercept_alias(name: str) -> str:
    """R's spelling ``(Intercept)`` -> ours ``Intercept``."""
    return name.replace("(Intercept)", "Intercept")


def _resolve(names: Sequence[str], valid: list[str], what: str) -> list[str]:
    resolved, unknown = [], []
    for name in names:
        if not isinstance(name, str):
            raise ArgumentError(f"coefs must be names (strings); got {name!r}.")
        if name in valid:
            resolved.append(name)
        elif _intercept_alias(name) in valid:
            resolved.append(_intercept_alias(name))
        else:
            unknown.append(name)
    if unknown:
        raise CoefficientNotFoundError(
            f"{what} {', '.join(map(repr, unknown))} not found in the fitted model; "
            f"valid names: {', '.join(map(repr, valid))}."
        )
    if len(set(resolved)) != len(resolved):
        raise ArgumentError(f"coefs names a parameter twice: {list(names)}.")
    return resolved


def _beta_parameters(result: MixResult) -> tuple[pd.Series, pd.DataFrame]:
    """Fixed effects and their robust covariance ``cov_mat`` (for GLMMs the beta block of the joint
    sandwich of beta and the variance parameters)."""
    names = [str(n) for n in result.coef.index]
    est = pd.Series(result.coef.to_numpy(float), index=names)
    return est, pd.DataFrame(result.cov_mat.to_numpy(float), index=names, columns=names)


def _lambda_parameters(result: MixResult) -> tuple[pd.Series, pd.DataFrame]:
    """Random-effect (co)variance estimates and the covariance of those same estimates."""
    variance = result.variance
    if variance.size == 0:
        raise ArgumentError(
            "This result has no covariance matrix of its variance estimates, so a Lambda test "
            "cannot be computed."
        )
    return variance.estimates.rename(None), variance.var_theta


def _constraint_label(row: np.ndarray, names: list[str]) -> str:
    parts = []
    for coef, name in zip(row, names, strict=True):
        if coef == 0:
            continue
        mag = abs(coef)
        term = name if mag == 1 else f"{mag:g}*{name}"
        parts.append(("- " if coef < 0 else "+ ") + term)
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def _from_string(spec: str, valid: list[str], what: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from formulaic.utils.constraints import LinearConstraints

    # formulaic's tokenizer reads "= -30" as an operator "=-"; "= 0 - 30" means the same
    parsed_spec = re.sub(r"=\s*-", "= 0 -", spec)
    # a name that holds backticks itself ('`Intercept`', the coefficient of a column named like the
    # intercept) would lose them to formulaic's quoting: it is parsed under a plain placeholder
    names = list(valid)
    for k, name in enumerate(valid):
        if "`" in name:
            names[k] = f"_wemix_name_{k}_"
            parsed_spec = parsed_spec.replace(name, names[k])
    try:
        constraints = LinearConstraints.from_spec(parsed_spec, variable_names=names)
    except KeyError as exc:
        name = exc.args[0] if exc.args else str(exc)
        raise CoefficientNotFoundError(
            f"{what} {name!r} in the hypothesis {spec!r} not found in the fitted model; valid names: "
            f"{', '.join(map(repr, valid))} (quote names with brackets or spaces in backticks)."
        ) from None
    except Exception as exc:  # formulaic's syntax errors
        raise ArgumentError(f"Cannot parse the hypothesis {spec!r}: {exc}") from None
    R = np.asarray(constraints.constraint_matrix, dtype=float)
    r = np.asarray(constraints.constraint_values, dtype=float)
    return R, r, [_constraint_label(row, valid) for row in R]


def wald_test(
    result: MixResult,
    type: str = "beta",
    coefs: str | Sequence[str] | None = None,
    hypothesis: float | Sequence[float] | Mapping[str, float] | str | None = None,
) -> WaldTest:
    """Wald test that parameters of a fit equal hypothesised values.

    ``W = (R est - r)' (R V R')^{-1} (R est - r)``, referred to a chi-square distribution with
    ``q`` degrees of freedom (the number of restrictions).

    Parameters
    ----------
    result
        A :class:`~wemix_nb.MixResult`.
    type
        ``"beta"``: fixed effects, with their robust covariance ``cov_mat`` (for GLMMs, the beta
        block of the joint sandwich). ``"Lambda"``: the random-effect variances and covariances
        (see below).
    coefs
        Names of the parameters to test (a string for one); by default all of them. R's spelling
        ``"(Intercept)"`` is accepted for ``"Intercept"``.
    hypothesis
        Hypothesised values: ``None`` (zeros), a number or a sequence (one per name in ``coefs``),
        a mapping ``{name: value}`` (then ``coefs`` may be omitted), or a string of linear
        constraints in formulaic's syntax, e.g. ``"Days = 10, Intercept - 25 * Days = 0"``
        (then ``coefs`` must be omitted; back-quote names with brackets or spaces).

    Returns
    -------
    WaldTest

    Raises
    ------
    CoefficientNotFoundError
        A name in ``coefs`` (or the hypothesis) is not a parameter of that type; the message lists
        the valid names.
    ArgumentError
        ``hypothesis`` does not have one value per tested parameter, or ``type`` is unknown.

    Notes
    -----
    **type="beta"** gives exactly WeMix's ``waldTest(fit, type = "beta")`` for linear models. For
    GLMMs WeMix uses the first ``q + 1`` rows and columns of its joint sandwich whatever is tested
    (a bug); here the block of the tested coefficients is used.

    **type="Lambda"** tests the random-effect *variances and covariances* -- the free entries of each
    level's ``Sigma_l`` (linear models: ``sigma^2 Lambda_l Lambda_l'``) -- against hypothesised
    values of those same variances and covariances, with ``V`` their covariance matrix
    ``var_theta``: for linear models the delta-method sandwich of the variance estimates (each
    level's robust covariance of ``(theta_l, sigma)``, mapped to ``Sigma_l`` by the delta method;
    the residual variance is not included), for GLMMs the variance block of the joint sandwich of
    ``(beta, variance parameters)``.
    Names are those of ``var_theta``: ``"<group>.<term>"`` for a variance and
    ``"<group>.<row term>.<column term>"`` for a covariance, e.g. ``"Subject.Intercept"``,
    ``"Subject.Days.Intercept"``, ``"Subject.Days"``. Estimate and covariance are on the same scale,
    so the test is internally consistent.

    This differs from WeMix's ``waldTest(type = "Lambda")`` in three ways:

    1. WeMix compares ``theta`` -- the *relative Cholesky entries* ``Lambda_l`` (divided by sigma) --
       with ``var_theta``, the covariance of the *variance estimates*: the estimate and its
       covariance are on different scales, so WeMix's statistic is not a valid Wald statistic
       (e.g. 0.000378 for ``Subject.Days`` of the sleepstudy random-slope fit, where this
       function gives 8.27). To reproduce WeMix's number:
       ``theta[k]**2 / var_theta.loc[k, k]`` for one name ``k``.
    2. WeMix labels the estimates as ``H0`` and the hypothesised values as ``HA`` (swapped); here
       ``hypothesis`` is the null hypothesis and ``estimate`` the estimates.
    3. WeMix fails for GLMMs (theta is unnamed); here GLMMs use their joint sandwich.
    """
    check_result(result, "wald_test")
    if type not in ("beta", "Lambda"):
        raise ArgumentError(f"type must be 'beta' or 'Lambda', got {type!r}.")
    est, V = _beta_parameters(result) if type == "beta" else _lambda_parameters(result)
    valid = list(est.index)
    what = "Coefficient(s)" if type == "beta" else "Variance parameter(s)"

    R, r, names = _restrictions(coefs, hypothesis, valid, what)
    rank = np.linalg.matrix_rank(R)
    if rank < R.shape[0]:
        raise ArgumentError(
            f"The restrictions of the hypothesis are linearly dependent (rank {rank} of {R.shape[0]} "
            "rows): remove the repeated or contradictory ones."
        )
    diff = R @ est.to_numpy(float) - r
    # only the parameters the restrictions involve (another's variance may be inf: see
    # wemix_nb.results.conditioning)
    used = np.flatnonzero(np.any(R != 0, axis=0))
    RVR = R[:, used] @ V.to_numpy(float)[np.ix_(used, used)] @ R[:, used].T
    # a tested variance at its boundary (or an exactly known parameter) has no sampling variance:
    # the chi-square reference does not apply there, so the statistic is undefined
    finite = bool(np.all(np.isfinite(RVR)))
    eig = np.linalg.eigvalsh(0.5 * (RVR + RVR.T)) if finite else np.array([np.nan])
    if not finite or eig.min() <= 1e-12 * max(eig.max(), 0.0):
        statistic = float("nan")
    else:
        statistic = float(diff @ np.linalg.solve(RVR, diff))
    q = len(names)
    return WaldTest(
        statistic=statistic,
        df=q,
        p_value=float(stats.chi2.sf(statistic, q)),
        names=list(names),
        hypothesis=pd.Series(r, index=names, name="hypothesis"),
        estimate=pd.Series(R @ est.to_numpy(float), index=names, name="estimate"),
        type=type,
        covariance=pd.DataFrame(RVR, index=names, columns=names),
        restriction=pd.DataFrame(R, index=names, columns=valid),
        labels=_display_labels(result, type, names),
    )


def _restrictions(
    coefs: str | Sequence[str] | None,
    hypothesis: float | Sequence[float] | Mapping[str, float] | str | None,
    valid: list[str],
    what: str,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(R, r, names)`` of a hypothesis given as a constraint string, a mapping or values."""
    if isinstance(hypothesis, str):
        if coefs is not None:
            raise ArgumentError("Give either coefs or a hypothesis string of constraints, not both.")
        return _from_string(hypothesis, valid, what)
    if isinstance(hypothesis, Mapping):
        if coefs is not None:
            raise ArgumentError("Give either coefs or a hypothesis mapping {name: value}, not both.")
        coefs = list(hypothesis.keys())
        hypothesis = list(hypothesis.values())
    if coefs is None:
        names = valid
    elif isinstance(coefs, str):
        names = _resolve([coefs], valid, what)
    elif isinstance(coefs, Iterable) and not isinstance(coefs, Mapping):
        names = _resolve(list(coefs), valid, what)
    else:
        raise ArgumentError(f"coefs must be a name or a list of names, got {coefs!r}.")
    if not names:
        raise ArgumentError("coefs is empty: name at least one parameter to test.")
    if hypothesis is None:
        r = np.zeros(len(names))
    else:
        r = check_numbers(hypothesis, "hypothesis")
        if r.size != len(names):
            raise ArgumentError(
                f"hypothesis has {r.size} value(s) but {len(names)} parameter(s) are tested "
                f"({', '.join(map(repr, names))}); give one hypothesised value per parameter."
            )
    R = np.zeros((len(names), len(valid)))
    for i, name in enumerate(names):
        R[i, valid.index(name)] = 1.0
    return R, r, list(names)


def _display_labels(result: MixResult, type: str, names: list[str]) -> list[str] | None:
    """The report's labels of tested (co)variance parameters (``None`` for fixed effects and for
    constraints of several parameters)."""
    if type != "Lambda":
        return None
    labels = result.variance.labels
    return [labels[name] for name in names] if all(name in labels for name in names) else None
