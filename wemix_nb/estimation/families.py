"""Response families of the generalised linear mixed models: binomial (logit, probit), Poisson (log).

Each family knows its inverse link, the derivative of the inverse link, the variance function and
the log-density of one observation. The estimator in :mod:`wemix_nb._glmm` also needs, per row,
the first and second derivatives of the log-density with respect to the linear predictor and the
Fisher weight ``mu'(eta)^2 / V(mu)`` with its derivative; :meth:`Family.eta_derivatives` returns
them in one pass, computed in numerically stable forms (softplus for the logit, ``log_ndtr`` and
the inverse Mills ratio for the probit) so that extreme linear predictors do not produce
``log(0)``.

The estimator's objective leaves out the part of the log-density that does not depend on the
parameters: :meth:`Family.loglik_d1` and :meth:`Family.eta_derivatives` return the log-density
*relative to the saturated model* (``mu = y``), ``log f(y | eta) - log f(y | mu = y)``, which is
close to 0 near a good fit whatever the size of ``y``; :meth:`Family.log_constant` is the part
left out, added back once to the reported log-likelihood. Without this split a Poisson model of
counts near 1e11 sums terms of 1e12 that cancel to O(1), and the rounding noise of the sum (1e-4)
swamps the differences the optimiser must see.

A binomial response with trials (``cbind(successes, failures)``) is carried as the proportion
``y = successes / trials`` per trial: the log-density of a row is ``trials`` times the per-trial
one plus the log binomial coefficient (in :meth:`Binomial.log_constant`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, gammaln, log_ndtr, ndtr, xlog1py, xlogy

from wemix_nb.errors import FamilyError

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_ETA_MAX = 700.0  # exp(700) is finite; beyond that a Poisson mean is meaningless anyway


class Family:
    """Base class of the response families.

    Attributes
    ----------
    name
        ``"binomial"`` or ``"poisson"``.
    link
        The link function's name.
    canonical
        True when the link is canonical, so that the observed and expected information agree.
    """

    name: str = ""
    link: str = ""
    canonical: bool = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Family) and (self.name, self.link) == (other.name, other.link)

    def __hash__(self) -> int:
        return hash((self.name, self.link))

    # -- the public, R-like interface -----------------------------------------------------------
    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """The link ``eta = g(mu)``."""
        raise NotImplementedError

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """The inverse link ``mu = g^{-1}(eta)``."""
        raise NotImplementedError

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """``d mu / d eta``."""
        raise NotImplementedError

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """The variance function ``V(mu)``."""
        raise NotImplementedError

    def log_density(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """``log f(y | mu)`` of one observation (vectorised)."""
        raise NotImplementedError

    def loglik_eta(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """``log f(y | mu(eta))`` (the full log-density) evaluated stably from the linear predictor."""
        return self.loglik_d1(y, eta)[0] + self.log_constant(y)

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """``d(y, mu) = 2 [log f(y | y) - log f(y | mu)]``, one row's deviance (>= 0): the
        log-density of the saturated model (the mean equal to the observation) minus the fitted
        one (R's ``family$dev.resids`` with unit weights)."""
        y = np.asarray(y, dtype=float)
        deviance = 2.0 * (self.log_density(y, y) - self.log_density(y, mu))
        return np.maximum(deviance, 0.0)  # 0 up to rounding where mu equals y

    # -- what the estimator needs ---------------------------------------------------------------
    def log_constant(self, y: np.ndarray, trials: np.ndarray | None = None) -> np.ndarray:
        """The log-density of the saturated model, ``log f(y | mu = y)``: the part of the
        log-density that :meth:`loglik_d1` leaves out (it does not depend on the parameters).

        With ``trials`` (binomial responses with trials), the whole row's constant: ``trials``
        times the per-trial one plus the log binomial coefficient.
        """
        return np.zeros(np.shape(y))

    def loglik_d1(self, y: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log f - log_constant, d log f / d eta)`` at ``eta`` (``y`` broadcasts against
        ``eta``): the log-density relative to the saturated model, and its derivative."""
        raise NotImplementedError

    def eta_derivatives(self, y: np.ndarray, eta: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row derivatives with respect to the linear predictor.

        Returns a dict with ``ll`` (log-density relative to the saturated model, as in
        :meth:`loglik_d1`), ``d1``, ``d2`` (first and second derivatives of the log-density),
        ``w`` (Fisher weight ``mu'^2 / V``) and ``dw`` (its derivative in eta).
        """
        raise NotImplementedError

    def has_cumulant(self) -> bool:
        """Whether :meth:`cumulant` is available (canonical links of exponential families)."""
        return False

    def cumulant(
        self, eta: np.ndarray, mean: bool = False, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """For a canonical link, the log-density relative to the saturated model (what
        :meth:`loglik_d1` returns) is ``y eta - b(eta) + cumulant_offset(y)``: returns ``b(eta)``
        and, with ``mean``, ``b'(eta) = mu`` (possibly the same array: read them, do not modify
        them).

        The quadrature uses it to sum the part linear in ``eta`` per group instead of per node.
        ``eta`` is overwritten and ``mu`` written to ``out`` if given (both temporaries of the
        caller, so that no large array is allocated). Only when :meth:`has_cumulant` is true.
        """
        raise NotImplementedError

    def cumulant_offset(self, y: np.ndarray) -> np.ndarray:
        """With :meth:`cumulant`: the term free of ``eta`` that turns ``y eta - b(eta)`` into the
        log-density relative to the saturated model (per trial for a binomial proportion)."""
        raise NotImplementedError

    def check_response(self, y: np.ndarray, column: str) -> None:
        """Raise :class:`~wemix_nb.errors.DataError` if ``y`` is not valid for this family."""


def _is_binary(y: np.ndarray) -> bool:
    """True if every value is 0 or 1 (``y`` is a per-row array, so this costs O(rows))."""
    return bool(np.all((y == 0.0) | (y == 1.0)))


def _bernoulli_saturated(y: np.ndarray) -> np.ndarray:
    """``y log y + (1 - y) log(1 - y)``: the per-trial log-density at ``mu = y`` (0 for 0/1)."""
    return xlogy(y, y) + xlog1py(1.0 - y, -y)


class Binomial(Family):
    """Binomial responses with a logit or probit link: 0/1 outcomes, or proportions of successes
    per trial (``cbind(successes, failures)``, the trials multiplying each row's log-density).

    Parameters
    ----------
    link
        ``"logit"`` (default) or ``"probit"``.
    """

    name = "binomial"

    def __init__(self, link: str = "logit"):
        if link not in ("logit", "probit"):
            raise FamilyError(f"Unsupported link {link!r} for the binomial family; use 'logit' or 'probit'.")
        self.link = link
        self.canonical = link == "logit"

    def linkfun(self, mu):
        mu = np.asarray(mu, dtype=float)
        if self.link == "logit":
            return np.log(mu) - np.log1p(-mu)
        from scipy.special import ndtri

        return ndtri(mu)

    def linkinv(self, eta):
        eta = np.asarray(eta, dtype=float)
        return expit(eta) if self.link == "logit" else ndtr(eta)

    def mu_eta(self, eta):
        eta = np.asarray(eta, dtype=float)
        if self.link == "logit":
            p = expit(eta)
            return p * (1.0 - p)
        return np.exp(-0.5 * eta * eta - _LOG_SQRT_2PI)

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu)

    def log_density(self, y, mu):
        """Per-trial ``y log mu + (1 - y) log(1 - mu)`` (for 0/1 outcomes the Bernoulli density)."""
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return xlogy(y, mu) + xlog1py(1.0 - y, -mu)

    def log_constant(self, y, trials=None):
        y = np.asarray(y, dtype=float)
        per_trial = _bernoulli_saturated(y)
        if trials is None:
            return per_trial
        n = np.asarray(trials, dtype=float)
        k = n * y
        return n * per_trial + gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)

    def loglik_d1(self, y, eta):
        eta = np.asarray(eta, dtype=float)
        binary = _is_binary(y)
        if self.link == "logit":
            ll, d1, _, _ = self._logit_parts(y, eta, binary)
            return ll, d1
        if binary:
            s = 2.0 * np.asarray(y, dtype=float) - 1.0  # +1 for successes, -1 for failures
            x = s * eta
            ll = log_ndtr(x)
            mills = np.exp(-0.5 * x * x - _LOG_SQRT_2PI - ll)  # phi(x) / Phi(x), stable in the tails
            return ll, s * mills
        parts = self._probit_parts(y, eta)
        return parts["ll"], parts["d1"]

    @staticmethod
    def _logit_parts(y, eta, binary: bool):
        """``(ll, d1, mu, 1 - mu)`` of the logit link, with one exp and one log1p.

        ``log f = y eta - softplus(eta)`` is computed as ``-(y relu(-eta) + (1 - y) relu(eta)) -
        log1p(exp(-|eta|))`` and ``y - mu`` as ``y (1 - mu) - (1 - y) mu``: no cancellation in
        the tails, where the direct forms lose all digits of a log-density of -1e-8 (which a
        level-1 weight of 1e8 turns into an O(1) term whose noise stalls the modes).
        """
        e = np.exp(-np.abs(eta))
        one_e = 1.0 + e
        mu = np.where(eta >= 0.0, 1.0, e) / one_e
        mu_c = np.where(eta >= 0.0, e, 1.0) / one_e  # 1 - mu
        ll = -(y * np.maximum(-eta, 0.0) + (1.0 - y) * np.maximum(eta, 0.0)) - np.log1p(e)
        if not binary:
            ll = ll - _bernoulli_saturated(y)
        return ll, y * mu_c - (1.0 - y) * mu, mu, mu_c

    @staticmethod
    def _probit_parts(y, eta) -> dict[str, np.ndarray]:
        """Probit log-density relative to the saturated model and its first two derivatives,
        for proportions ``y`` (both tails, each in its stable form)."""
        log_phi = -0.5 * eta * eta - _LOG_SQRT_2PI
        log_p, log_q = log_ndtr(eta), log_ndtr(-eta)
        mp, mq = np.exp(log_phi - log_p), np.exp(log_phi - log_q)  # phi/Phi(eta), phi/Phi(-eta)
        return {
            "ll": y * log_p + (1.0 - y) * log_q - _bernoulli_saturated(y),
            "d1": y * mp - (1.0 - y) * mq,
            "d2": -y * mp * (eta + mp) - (1.0 - y) * mq * (mq - eta),
        }

    def eta_derivatives(self, y, eta):
        eta = np.asarray(eta, dtype=float)
        if self.link == "logit":
            ll, d1, mu, mu_c = self._logit_parts(y, eta, _is_binary(y))
            w = mu * mu_c
            return {"ll": ll, "d1": d1, "d2": -w, "w": w, "dw": w * (mu_c - mu)}
        if _is_binary(y):
            s = 2.0 * np.asarray(y, dtype=float) - 1.0
            x = s * eta
            ll = log_ndtr(x)
            mills = np.exp(-0.5 * x * x - _LOG_SQRT_2PI - ll)
            out = {"ll": ll, "d1": s * mills, "d2": -mills * (x + mills)}
        else:
            out = self._probit_parts(y, eta)
        # Fisher weight phi^2 / (Phi (1 - Phi)), in logs so the tails do not underflow to 0/0
        log_phi = -0.5 * eta * eta - _LOG_SQRT_2PI
        log_p, log_q = log_ndtr(eta), log_ndtr(-eta)
        w = np.exp(2.0 * log_phi - log_p - log_q)
        # d log w / d eta = -2 eta - phi/Phi + phi/(1 - Phi)
        dlogw = -2.0 * eta - np.exp(log_phi - log_p) + np.exp(log_phi - log_q)
        return {**out, "w": w, "dw": w * dlogw}

    def has_cumulant(self) -> bool:
        return self.link == "logit"

    def cumulant(self, eta, mean=False, out=None):
        # b = softplus(eta) = log1p(exp(eta)): exact while exp(eta) is finite; beyond, the slower
        # max(eta, 0) + log1p(exp(-|eta|))
        if eta.size and np.max(eta) > _ETA_MAX:
            mu = expit(eta, out=out) if mean else None
            return np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta))), mu
        ex = np.exp(eta, out=eta)
        mu = None
        if mean:
            mu = np.add(ex, 1.0, out=out)
            np.divide(ex, mu, out=mu)
        return np.log1p(ex, out=ex), mu

    def cumulant_offset(self, y):
        return -_bernoulli_saturated(np.asarray(y, dtype=float))

    def check_response(self, y, column):
        from wemix_nb.errors import DataError

        y = np.asarray(y, dtype=float)
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            examples = list(dict.fromkeys(y[bad].tolist()))[:5]
            raise DataError(
                f"For a binomial model the response {column!r} must be 0 or 1; found other "
                f"values, e.g. {examples}."
            )


class Poisson(Family):
    """Counts with a log link.

    Parameters
    ----------
    link
        Only ``"log"`` is supported.

    Notes
    -----
    The log-density relative to the saturated model is computed as
    ``-y (expm1(r) - r)`` with ``r = eta - log y`` (``-exp(eta)`` for ``y = 0``): accurate to a
    few ulps of the result, however large the counts.
    """

    name = "poisson"

    def __init__(self, link: str = "log"):
        if link != "log":
            raise FamilyError(f"Unsupported link {link!r} for the poisson family; use 'log'.")
        self.link = link
        self.canonical = True
        # the per-row constants of the last response array (the modes' Newton iterations pass
        # the same array every time); keyed by identity, so a new array is simply recomputed
        self._counts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_counts": None}  # no cached arrays in pickles (Dask workers)

    def _count_constants(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(y > 0, s, log s)`` with ``s = y`` where positive, else 1; cached for the last ``y``."""
        cached = self._counts  # one read: another thread may replace it meanwhile
        if cached is not None and cached[0] is y:
            return cached[1], cached[2], cached[3]
        positive = y > 0
        s = np.where(positive, y, 1.0)
        log_s = np.log(s)
        if isinstance(y, np.ndarray) and y.ndim == 1:  # the rows of a model, not a broadcast slice
            self._counts = (y, positive, s, log_s)
        return positive, s, log_s

    def linkfun(self, mu):
        return np.log(np.asarray(mu, dtype=float))

    def linkinv(self, eta):
        return np.exp(np.minimum(np.asarray(eta, dtype=float), _ETA_MAX))

    def mu_eta(self, eta):
        return self.linkinv(eta)

    def variance(self, mu):
        return np.asarray(mu, dtype=float)

    def log_density(self, y, mu):
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, y * np.log(mu), 0.0) - mu - gammaln(y + 1.0)

    def log_constant(self, y, trials=None):
        """``y log y - y - log(y!)``, the log-density at ``mu = y`` (``trials`` does not apply)."""
        y = np.asarray(y, dtype=float)
        return xlogy(y, y) - y - gammaln(y + 1.0)

    def _relative(self, y, eta):
        """``(ll, d1, mu)``: log-density relative to the saturated model, its derivative, mean."""
        eta = np.minimum(np.asarray(eta, dtype=float), _ETA_MAX)
        y = np.asarray(y, dtype=float)
        # y = 0 rows: s = 1, r = eta, and the terms below give -exp(eta)
        positive, s, log_s = self._count_constants(y)
        r = eta - log_s
        em = np.expm1(r)  # mu / s - 1, accurate near the saturated fit
        ll = y * r - s * em - (~positive)
        return ll, (y - s) - s * em, s + s * em

    def loglik_d1(self, y, eta):
        ll, d1, _ = self._relative(y, eta)
        return ll, d1

    def eta_derivatives(self, y, eta):
        ll, d1, mu = self._relative(y, eta)
        return {"ll": ll, "d1": d1, "d2": -mu, "w": mu, "dw": mu}

    def unit_deviance(self, y, mu):
        # R's form 2 [y log(y / mu) - (y - mu)]: the log(y!) terms of the log-densities cancel
        # exactly here instead of in floating point (they are large for large counts)
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore"):
            return np.maximum(2.0 * (xlogy(y, y / mu) - (y - mu)), 0.0)

    def has_cumulant(self) -> bool:
        return True

    def cumulant(self, eta, mean=False, out=None):
        mu = np.exp(np.minimum(eta, _ETA_MAX, out=eta), out=eta)
        return mu, (mu if mean else None)

    def cumulant_offset(self, y):
        y = np.asarray(y, dtype=float)
        return y - xlogy(y, y)

    def check_response(self, y, column):
        from wemix_nb.errors import DataError

        y = np.asarray(y, dtype=float)
        bad = ~np.isfinite(y) | (y < 0) | (y != np.round(y))
        if bad.any():
            examples = list(dict.fromkeys(y[bad].tolist()))[:5]
            raise DataError(
                f"For a poisson model the response {column!r} must hold non-negative integer "
                f"counts; found e.g. {examples}."
            )


_FAMILIES = {"binomial": Binomial, "poisson": Poisson}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """Return a :class:`Family` from a name or an instance.

    Parameters
    ----------
    family
        ``"binomial"``, ``"poisson"`` (case-insensitive), or a :class:`Family` instance.
    link
        Optional link name; with an instance it must agree with the instance's link.

    Raises
    ------
    FamilyError
        For an unknown family (including ``"gaussian"``, which is fitted without ``family``) or a
        link the family does not support.
    """
    if isinstance(family, Family):
        if link is not None and link != family.link:
            raise FamilyError(f"link={link!r} conflicts with the family object {family!r}; pass one of them.")
        return family
    if not isinstance(family, str):
        raise FamilyError(
            "family must be 'binomial', 'poisson' or a wemix_nb.families.Family instance, "
            f"got {type(family).__name__}."
        )
    key = family.strip().lower()
    if key not in _FAMILIES:
        hint = (
            " Linear (gaussian) models are fitted by leaving family unset."
            if key in ("gaussian", "normal")
            else ""
        )
        raise FamilyError(
            f"Unimplemented family {family!r}; supported families: 'binomial' (links 'logit', "
            f"'probit') and 'poisson' (link 'log').{hint}"
        )
    cls = _FAMILIES[key]
    return cls() if link is None else cls(link=link)


__all__ = ["Binomial", "Family", "Poisson", "get_family"]
