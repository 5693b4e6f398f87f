"""Properties of every fit, over random data shapes, weights and dtypes (hypothesis).

For any data, ``mix`` either refuses with a :class:`~wemix_nb.errors.WemixError`, warns with a
:class:`~wemix_nb.errors.WemixWarning`, or returns a finite fit with the invariances of
pseudo-likelihood:

* integer level-1 (conditional) weights are the same as replicated rows;
* multiplying the top-level weights by a constant changes only the log-likelihood (by that factor);
* conditional weights and the unconditional weights they imply give the same fit.

The examples are bounded by the ``wemix`` hypothesis profile of ``tests/conftest.py``
(``HYPOTHESIS_PROFILE=wemix-long`` explores more).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb import errors as E

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, note  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Relative agreement of the invariances. The problems compared differ only by rounding (weights
# written another way, rows replicated), so the estimates should agree to rounding. The linear
# estimator's Newton polish (estimation/linear/optimize.py) judges its last steps by the exact
# gradient where the deviance no longer resolves them, so equivalent problems stop at the same point.
RTOL = 1e-8
LNL_RTOL = 1e-10
# GLMMs: variances and standard errors come from quasi-Newton iterations and numerical second
# derivatives (estimation/glmm) and agree to ~1e-5 between equivalent weightings
GLMM_RTOL = 1e-4


@dataclass(frozen=True)
class Case:
    """Random data with conditional weights ``c1`` (rows), ``c2`` (level 2) [, ``c3`` (top)]."""

    data: pd.DataFrame
    formula: str
    levels: int
    family: str | None

    @property
    def conditional(self) -> list[str]:
        return ["c1", "c2", "c3"][: self.levels]

    def unconditional(self) -> pd.DataFrame:
        """The same weights as unconditional columns ``u1``, ``u2`` [, ``u3``]."""
        d = self.data
        if self.levels == 2:
            return d.assign(u2=d["c2"], u1=d["c1"] * d["c2"])
        return d.assign(u3=d["c3"], u2=d["c2"] * d["c3"], u1=d["c1"] * d["c2"] * d["c3"])


@st.composite
def cases(
    draw,
    family: str | None = None,
    groups: tuple[int, int] = (2, 30),
    rows: tuple[int, int] = (1, 20),
    levels: tuple[int, ...] = (2, 3),
    integer: bool | None = None,
) -> Case:
    """A data set: ``groups`` level-2 groups of ``rows`` rows each, 1-3 predictors (float, int,
    nullable Int64, or a category), 2 or 3 levels, positive weights of any scale (integers or not;
    ``integer=True``: integer level-1 weights)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_groups = draw(st.integers(*groups))
    sizes = np.array(draw(st.lists(st.integers(*rows), min_size=n_groups, max_size=n_groups)))
    levels = draw(st.sampled_from(levels))
    group = np.repeat(np.arange(n_groups), sizes)
    n = len(group)
    columns, kinds = (
        {},
        draw(st.lists(st.sampled_from(["float", "int", "Int64", "category"]), min_size=1, max_size=3)),
    )
    eta = np.zeros(n)
    for j, kind in enumerate(kinds):
        name = f"x{j}"
        if kind == "category":
            values = rng.integers(0, 3, n)
            columns[name] = pd.Categorical(np.array(["a", "b", "c"])[values])
            eta += np.array([0.0, 0.5, -0.3])[values]
        else:
            values = rng.integers(-5, 6, n) if kind != "float" else rng.normal(size=n)
            columns[name] = pd.array(values, dtype="Int64") if kind == "Int64" else values
            eta += 0.4 * values
    eta += rng.normal(scale=0.8, size=n_groups)[group]
    top = rng.integers(0, draw(st.integers(2, max(2, n_groups // 2))), n_groups)
    if levels == 3:
        eta += rng.normal(scale=0.5, size=top.max() + 1)[top][group]
    if family is None:
        y = 1.0 + eta + rng.normal(size=n)
    else:
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    scale1, scale2, scale3 = (10.0 ** draw(st.integers(-6, 6)) for _ in range(3))
    integer = draw(st.booleans()) if integer is None else integer
    c1 = rng.integers(1, 4, n).astype(float) if integer else scale1 * rng.uniform(0.5, 2.0, n)
    data = pd.DataFrame(
        {
            "y": y,
            **columns,
            "g": group,
            "c1": c1,
            "c2": (scale2 * rng.uniform(0.5, 2.0, n_groups))[group],
        }
    )
    bars = "(1|g)"
    if levels == 3:
        data["t"] = top[group]
        data["c3"] = (scale3 * rng.uniform(0.5, 2.0, top.max() + 1))[top][group]
        bars = "(1|t) + (1|t:g)"
    formula = f"y ~ {' + '.join(columns)} + {bars}"
    return Case(data=data, formula=formula, levels=levels, family=family)


WARNED = "warned"


def fit_or_none(case: Case, data: pd.DataFrame, weights: list[str], *, cweights: bool):
    """The fit; None when mix refuses (WemixError), :data:`WARNED` when it warns (WemixWarning):
    then the fit is not held to the invariances. Any other exception fails the test."""
    options = {"family": case.family, "nquad": 1} if case.family else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = wemix_nb.mix(case.formula, data, weights, cweights=cweights, **options)
        except E.WemixError as exc:
            note(f"refused: {type(exc).__name__}: {exc}")
            return None
    # conditional weights below 1 are drawn on purpose: the warning about them is not about the fit;
    # nor is the one about few top-level groups (it is about the reference distribution of p-values)
    ours = [
        w
        for w in caught
        if issubclass(w.category, E.WemixWarning)
        and not issubclass(w.category, E.WeightWarning | E.FewGroupsWarning)
    ]
    if ours:
        note(f"warned: {ours[0].category.__name__}: {ours[0].message}")
        return WARNED
    assert np.all(np.isfinite(fit.coef)) and np.all(np.isfinite(fit.SE)), (fit.coef, fit.SE)
    assert np.all(np.isfinite(fit.vars)) and np.all(fit.vars >= 0), fit.vars
    assert np.isfinite(fit.lnl)
    return fit


def comparable(fit, refused: str) -> None:
    """A fit of the same model written another way: refusing it while the first fit passed is a
    failure; a warning (e.g. a variance at 0 up to rounding on one side) exempts the pair."""
    assert fit is not None, refused
    assume(fit is not WARNED)


def assert_close(a: pd.Series, b: pd.Series, what: str, rtol: float = RTOL, floor: float = 0.0) -> None:
    """Relative agreement, on the scale of the largest entry (estimates near 0 included), or of
    ``floor`` if that is larger."""
    scale = max(float(np.max(np.abs(b))), floor, np.finfo(float).tiny)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_same_estimates(a, b) -> None:
    assert list(a.coef.index) == list(b.coef.index)
    assert_close(a.coef, b.coef, "coef")
    assert_close(a.SE, b.SE, "SE")
    assert_close(a.vars, b.vars, "vars")


@given(case=cases(), factor=st.sampled_from([1e-6, 1e-3, 0.5, 3.0, 1e4, 1e6]))
def test_linear_fit_invariances(case: Case, factor: float):
    base = fit_or_none(case, case.data, case.conditional, cweights=True)
    assume(base is not None and base is not WARNED)
    # conditional and unconditional weights
    unconditional = fit_or_none(case, case.unconditional(), ["u1", "u2", "u3"][: case.levels], cweights=False)
    comparable(unconditional, "the unconditional weights of a fit were refused")
    assert_same_estimates(unconditional, base)
    assert unconditional.lnl == pytest.approx(base.lnl, rel=LNL_RTOL)
    # the top-level weights times a constant: only lnl changes, by that factor
    top = case.conditional[-1]
    scaled = fit_or_none(
        case, case.data.assign(**{top: case.data[top] * factor}), case.conditional, cweights=True
    )
    comparable(scaled, "rescaled top-level weights were refused")
    assert_same_estimates(scaled, base)
    assert scaled.lnl == pytest.approx(base.lnl * factor, rel=LNL_RTOL)


# integer level-1 weights drawn, not filtered for: boundary fits (SingularFitWarning) are already
# left out, and filtering both would leave too few examples
@given(case=cases(integer=True))
def test_integer_weights_are_replicated_rows(case: Case):
    d = case.data
    assume(np.all(d["c1"] == np.round(d["c1"])))
    base = fit_or_none(case, d, case.conditional, cweights=True)
    assume(base is not None and base is not WARNED)
    replicated = d.loc[d.index.repeat(d["c1"].astype(int))].assign(c1=1.0).reset_index(drop=True)
    copies = fit_or_none(case, replicated, case.conditional, cweights=True)
    comparable(copies, "the replicated rows were refused")
    assert_same_estimates(copies, base)
    assert copies.lnl == pytest.approx(base.lnl, rel=LNL_RTOL)


@hypothesis.settings(max_examples=8)
@given(data=st.data())
def test_glmm_fit_invariances(data):
    """Binomial, two levels: binary responses need groups of several rows (one Bernoulli row per
    group does not identify the random-intercept variance). Three-level GLMMs are left out: with
    few top-level groups their estimates still depend on how equivalent weights are written."""
    case = data.draw(cases(family="binomial", groups=(4, 12), rows=(2, 12), levels=(2,)))
    base = fit_or_none(case, case.data, case.conditional, cweights=True)
    assume(base is not None and base is not WARNED)
    unconditional = fit_or_none(case, case.unconditional(), ["u1", "u2"], cweights=False)
    comparable(unconditional, "the unconditional weights of a fit were refused")
    top = case.conditional[-1]
    factor = data.draw(st.sampled_from([1e-4, 0.5, 1e4]))
    scaled = fit_or_none(
        case, case.data.assign(**{top: case.data[top] * factor}), case.conditional, cweights=True
    )
    comparable(scaled, "rescaled top-level weights were refused")
    for other in (unconditional, scaled):
        assert_close(other.coef, base.coef, "coef")
        assert_close(other.SE, base.SE, "SE", GLMM_RTOL)
        # a variance at its boundary is 0 up to ~1e-30 either way: compared on the scale of the
        # latent residual variance (pi^2/3 for the logit link)
        assert_close(other.vars, base.vars, "vars", GLMM_RTOL, floor=1.0)
    assert scaled.lnl == pytest.approx(base.lnl * factor, rel=LNL_RTOL)
