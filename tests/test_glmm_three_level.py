"""The 3-level GLMM likelihood's exact gradient, its fast quadrature paths, and the families'
cumulants it relies on.

The gradient is checked against central differences of the likelihood, group by group (the
per-top-group scores of the sandwich), at several points, for the logit, probit and Poisson
families, random intercepts and random slopes at either level, with AGHQ and Laplace. The values
themselves are checked against brute-force nested integration in ``test_glmm.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import WEMIX_REFERENCE, require_shared

from wemix_nb.estimation.families import Binomial, Poisson, get_family
from wemix_nb.estimation.glmm import fit_glmm
from wemix_nb.estimation.glmm.optimize import _Objective
from wemix_nb.estimation.glmm.quadrature import _chunks, quadrature_threads
from wemix_nb.estimation.glmm.three_level import _ThreeLevel
from wemix_nb.estimation.glmm.three_level_quadrature import chunk_indices
from wemix_nb.model.frame import build_model_frame


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    require_shared()
    return pd.read_csv(WEMIX_REFERENCE / "wemix_ref_data.csv")


def _model(data, formula, family, link, nquad, rounding=False):
    frame = build_model_frame(formula, data, ["w1", "w2", "w3"], binomial_response=family == "binomial")
    return frame, _ThreeLevel(frame, get_family(family, link), nquad, rounding)


def _finite_difference_scores(model, x, p, rel=1e-5):
    """Central differences of the per-level-3-group contributions, each from the modes at ``x``."""
    saved = model.save_modes()
    columns = []
    for j in range(len(x)):
        h = rel * (1.0 + abs(x[j]))
        e = np.zeros(len(x))
        e[j] = h
        model.restore_modes(saved)
        up = model.evaluate((x + e)[:p], (x + e)[p:])["by_group"]
        model.restore_modes(saved)
        down = model.evaluate((x - e)[:p], (x - e)[p:])["by_group"]
        columns.append((up - down) / (2 * h))
    model.restore_modes(saved)
    return np.stack(columns, axis=1)


CASES = [
    # family, link, nquad, formula, laplace_rounding
    ("binomial", "logit", 5, "ybin ~ x + (1|class) + (1|school)", False),
    ("binomial", "logit", 1, "ybin ~ x + (1|class) + (1|school)", True),
    ("binomial", "probit", 3, "ybin ~ x + (1 + x|class) + (1|school)", False),
    ("poisson", "log", 3, "ycount ~ x + z + (1 + x|class) + (1|school)", False),
    ("poisson", "log", 1, "ycount ~ x + (1|class) + (1 + x|school)", False),
    ("binomial", "logit", 2, "ybin ~ x + (1 + x|class) + (1 + x|school)", False),
]


@pytest.mark.parametrize("family,link,nquad,formula,rounding", CASES)
def test_gradient_matches_finite_differences(data, family, link, nquad, formula, rounding):
    frame, model = _model(data, formula, family, link, nquad, rounding)
    assert model.analytic_gradient
    p, k = frame.X.shape[1], model.k
    rng = np.random.default_rng(7)
    diagonal = model.structure.diagonal
    for _ in range(3):
        beta = rng.normal(0.0, 0.4, p)
        theta = np.where(diagonal, rng.uniform(0.3, 1.2, k), rng.normal(0.0, 0.3, k))
        x = np.r_[beta, theta]
        ev = model.evaluate(beta, theta, grad=True)
        fd = _finite_difference_scores(model, x, p)
        scale = np.max(np.abs(fd))
        assert np.max(np.abs(ev["grad_by_group"] - fd)) < 1e-6 * scale
        assert np.allclose(ev["grad"], ev["grad_by_group"].sum(axis=0), rtol=1e-12, atol=1e-10 * scale)
        assert ev["grad_by_group"].shape == (model.G3, p + k)


def test_gradient_is_zero_at_the_fitted_estimate(data):
    """At the estimate the exact gradient is ~0, and so are differences of the likelihood: the
    optimiser found a stationary point of the likelihood itself, not of a wrong gradient."""
    frame, model = _model(data, "ybin ~ x + (1|class) + (1|school)", "binomial", "logit", 5)
    fit = fit_glmm(frame, "binomial", nquad=5)
    assert fit.converged and fit.gradient_norm < 1e-6
    obj = _Objective(model, 2)
    x = np.r_[fit.beta, fit.theta]
    model.analytic_gradient = False  # the objective falls back to differences of the values
    fd = _Objective(model, 2).value_grad(x)[1]
    assert np.max(np.abs(fd)) < 1e-5
    model.analytic_gradient = True
    assert np.max(np.abs(obj.value_grad(x)[1])) < 1e-6


def test_chunks_and_threads_do_not_change_the_result(data):
    """The pass over the nodes, cut into many chunks and run on two threads, gives the same
    values and gradients as one chunk on one thread (for a canonical and a non-canonical link)."""
    for family, link, formula in (
        ("binomial", "logit", "ybin ~ x + (1|class) + (1 + x|school)"),
        ("binomial", "probit", "ybin ~ x + (1|class) + (1|school)"),
    ):
        _, model = _model(data, formula, family, link, 4)
        beta, theta = np.array([-0.3, 0.5]), np.linspace(0.9, 0.4, model.k)
        whole = model.evaluate(beta, theta, grad=True)
        model.chunk_index = chunk_indices(model, _chunks(model.row_starts3, len(model.y), model.grid.K, 300))
        assert len(model.chunk_index) > 4
        model.threads = 2
        cut = model.evaluate(beta, theta, grad=True)
        assert cut["value"] == pytest.approx(whole["value"], rel=1e-13)
        assert np.allclose(cut["by_group"], whole["by_group"], rtol=1e-12, atol=0)
        assert np.allclose(cut["grad_by_group"], whole["grad_by_group"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", [Binomial("logit"), Poisson()])
def test_cumulant_gives_the_log_density(family):
    """``y eta - b(eta) + cumulant_offset(y)`` is the family's log-density relative to the
    saturated model (what the quadrature sums), that plus ``log_constant(y)`` the log-density,
    and ``b'(eta)`` its mean, also where ``exp(eta)`` overflows."""
    rng = np.random.default_rng(3)
    eta = np.r_[rng.normal(0.0, 3.0, 200), -750.0, -40.0, 40.0, 650.0, 750.0]
    if family.name == "binomial":
        y = rng.integers(0, 2, len(eta)).astype(float)
    else:
        y = rng.poisson(2.0, len(eta)).astype(float)
        eta = np.minimum(eta, 20.0)  # counts: a mean of e^20 is already absurd
    b, mu = family.cumulant(eta.copy(), mean=True)
    expected = family.eta_derivatives(y, eta)
    relative = y * eta - b + family.cumulant_offset(y)
    assert np.allclose(relative, expected["ll"], rtol=1e-13, atol=1e-13)
    assert np.allclose(relative + family.log_constant(y), family.loglik_eta(y, eta), rtol=1e-13, atol=1e-13)
    assert np.allclose(y - mu, expected["d1"], rtol=1e-12, atol=1e-15)
    assert family.has_cumulant()
    assert not Binomial("probit").has_cumulant()


def test_quadrature_threads_follow_omp_num_threads(monkeypatch):
    """Worker processes (Dask's nanny, fit_many's pool) set OMP_NUM_THREADS=1: one thread each."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert quadrature_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert quadrature_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= quadrature_threads() <= 4
