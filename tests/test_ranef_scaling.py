"""Random-effect predictions with each group's weights rescaled to its sample size.

Checked against truth (the coverage of the drawn intervals in a simulated informative two-stage
sample), against a closed form, against the same computation from rebuilt rows, for GLMMs and
three levels, and for the results that keep their own modes (unit weights, scaled fits).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _informative_sample import coverage, informative_sample

import wemix_nb
from wemix_nb.errors import FewGroupsWarning
from wemix_nb.estimation.glmm.modes import modes_at
from wemix_nb.estimation.linear import LinearProblem
from wemix_nb.estimation.linear.modes import random_effects_at
from wemix_nb.model.rescaled import with_scaled_weights
from wemix_nb.pipeline import model_frame
from wemix_nb.results.ranef import RAW, RESCALED

PISA_WEIGHTS = ["w_fstuwt", "w_fschwt"]


@pytest.fixture(scope="module")
def pisa():
    return wemix_nb.datasets.pisa2012_like()


@pytest.fixture(scope="module")
def pisa_fit(pisa):
    return wemix_nb.mix("pv1math ~ escs + (1|schoolid)", pisa, weights=PISA_WEIGHTS)


# -------------------------------------------------------------------------------------------------
# against truth


def test_intervals_cover_the_true_group_effects_in_an_informative_sample():
    """175 PPS-sampled groups of 15-40 units with informative unit weights, three data sets: the
    rescaled 95% intervals cover 0.90-0.98 of the true effects, the raw pseudo-likelihood ones
    about a third (longer run: benchmarks/ranef_coverage.py)."""
    rescaled, raw = [], []
    for seed in (1, 2, 3):
        data = informative_sample(seed)
        sizes = data.groupby("group").size()
        assert data["group"].nunique() == 175 and sizes.min() >= 15 and sizes.max() <= 40
        fit = wemix_nb.mix("y ~ x + (1|group)", data, weights=["w1", "w2"])
        rescaled.append(coverage(data, fit.random_effects()["group"]))
        raw.append(coverage(data, fit.random_effects(raw=True)["group"]))
    print(f"coverage of the 95% intervals: rescaled {np.mean(rescaled):.3f}, raw {np.mean(raw):.3f}")
    assert 0.90 <= np.mean(rescaled) <= 0.98
    assert np.mean(raw) < 0.5


# -------------------------------------------------------------------------------------------------
# the computation


def test_random_intercept_closed_form(pisa_fit):
    """Random intercept: with weights c summing to n_j, b_j = tau2 sum(c r) / (sigma2 + tau2 n_j)
    and var(b_j | y) = tau2 sigma2 / (sigma2 + tau2 n_j), r = y - X beta."""
    frame = pisa_fit.frame
    level = frame.levels[0]
    g = level.group_index
    scaled = with_scaled_weights(frame)
    c = scaled.cond_weight1
    np.testing.assert_allclose(np.bincount(g, c), level.n_rows)
    tau2, sigma2 = pisa_fit.vars["schoolid.Intercept"], pisa_fit.sigma**2
    r = frame.y - frame.X @ pisa_fit.coef.to_numpy()
    n = level.n_rows
    expected = tau2 * np.bincount(g, c * r) / (sigma2 + tau2 * n)
    expected_sd = np.sqrt(tau2 * sigma2 / (sigma2 + tau2 * n))
    table = pisa_fit.random_effects()["schoolid"]
    np.testing.assert_allclose(table["Intercept"], expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(table["Intercept_sd"], expected_sd, rtol=1e-9)
    # the raw ones use the weights as fitted, summing to far more than n_j
    raw_sum = np.bincount(g, frame.cond_weight1)
    assert np.median(raw_sum / n) > 5
    raw = pisa_fit.random_effects(raw=True)["schoolid"]
    assert np.median(table["Intercept_sd"] / raw["Intercept_sd"]) > 2


def test_rescaled_cross_products_equal_rebuilt_rows(pisa, pisa_fit):
    """Scaling each group's cross-products equals rebuilding them from rescaled rows, and a model
    frame built with scale_weights='cluster' has the same weights."""
    details = pisa_fit.details
    sol = details.solution
    scaled = with_scaled_weights(pisa_fit.frame)
    b, cov = random_effects_at(details.problem, sol.theta, sol.beta, sol.sigma, scaled)
    rebuilt = model_frame(pisa_fit.formula, pisa, pisa_fit.options.with_changes(scale_weights="cluster"))
    np.testing.assert_allclose(rebuilt.cond_weight1, scaled.cond_weight1, rtol=1e-12)
    np.testing.assert_allclose(rebuilt.weight1, scaled.weight1, rtol=1e-12)
    b2, cov2 = random_effects_at(LinearProblem(rebuilt), sol.theta, sol.beta, sol.sigma)
    np.testing.assert_allclose(b[0], b2[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cov[0], cov2[0], rtol=1e-9)
    # with the fit's own weights the step reproduces the fit's modes
    own, own_cov = random_effects_at(details.problem, sol.theta, sol.beta, sol.sigma)
    np.testing.assert_allclose(own[0], sol.b[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(own_cov[0], sol.b_cov[0], rtol=1e-12)


def _three_level_data(seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for school in range(30):
        u_s = rng.normal(0, 0.6)
        for klass in range(rng.integers(2, 5)):
            u_c = rng.normal(0, 0.4)
            for _ in range(rng.integers(4, 12)):
                x = rng.normal()
                rows.append((school, f"{school}-{klass}", x, 1 + 0.5 * x + u_s + u_c + rng.normal()))
    data = pd.DataFrame(rows, columns=["school", "klass", "x", "y"])
    data["w3"] = 1 + data["school"] % 3
    data["w2"] = data["w3"] * (2 + data.groupby("klass")["x"].transform("size") % 4)
    data["w1"] = data["w2"] * rng.uniform(2, 20, len(data))
    return data


def test_three_levels_rescale_every_level_below_the_top():
    data = _three_level_data()
    fit = wemix_nb.mix("y ~ x + (1|school) + (1|klass)", data, weights=["w1", "w2", "w3"])
    options = fit.options.with_changes(scale_weights="cluster")
    rebuilt = model_frame(fit.formula, data, options)
    scaled = with_scaled_weights(fit.frame)
    for ours, theirs in zip(scaled.levels, rebuilt.levels, strict=True):
        np.testing.assert_allclose(ours.cond_weight, theirs.cond_weight, rtol=1e-12)
    klass = scaled.levels[0]
    np.testing.assert_allclose(
        np.bincount(klass.parent_index, klass.cond_weight), np.bincount(klass.parent_index)
    )
    sol = fit.details.solution
    b, cov = random_effects_at(LinearProblem(rebuilt), sol.theta, sol.beta, sol.sigma)
    predicted = fit.random_effect_predictions()
    assert predicted.rescaled
    for k, factor in enumerate(["klass", "school"]):
        np.testing.assert_allclose(predicted.modes[factor].to_numpy(), b[k], rtol=1e-9, atol=1e-9)
        sd = np.sqrt(np.diagonal(cov[k], axis1=1, axis2=2))
        np.testing.assert_allclose(predicted.sd[factor].to_numpy(), sd, rtol=1e-9)


def test_glmm_modes_with_rescaled_weights(pisa):
    data = pisa.assign(high=(pisa["pv1math"] > 500).astype(int))
    fit = wemix_nb.mix("high ~ escs + (1|schoolid)", data, weights=PISA_WEIGHTS, family="binomial", nquad=5)
    glmm = fit.details.fit
    # at the fit's own weights: the fit's modes (the modes do not depend on the quadrature points)
    (own,) = modes_at(fit.frame, fit.family, glmm.beta, glmm.theta)
    np.testing.assert_allclose(own.b, glmm.modes[0].b, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(own.b_sd, glmm.modes[0].b_sd, rtol=1e-6)
    predicted = fit.random_effect_predictions()
    assert predicted.rescaled and predicted.weights == RESCALED
    options = fit.options.with_changes(scale_weights="cluster")
    (rebuilt,) = modes_at(model_frame(fit.formula, data, options), fit.family, glmm.beta, glmm.theta)
    np.testing.assert_allclose(predicted.modes["schoolid"]["Intercept"], rebuilt.b[:, 0], rtol=1e-10)
    np.testing.assert_allclose(predicted.sd["schoolid"]["Intercept"], rebuilt.b_sd[:, 0], rtol=1e-10)
    ratio = predicted.sd["schoolid"]["Intercept"] / fit.ranef_sd["schoolid"]["Intercept"]
    assert np.median(ratio) > 1.5  # wider than the pseudo-likelihood's


def test_three_level_glmm_modes_with_rescaled_weights():
    data = _three_level_data()
    data["b"] = (data["y"] > data["y"].median()).astype(int)
    fit = wemix_nb.mix(
        "b ~ x + (1|school) + (1|klass)", data, weights=["w1", "w2", "w3"], family="binomial", nquad=3
    )
    glmm = fit.details.fit
    own = modes_at(fit.frame, fit.family, glmm.beta, glmm.theta)
    for ours, theirs in zip(own, glmm.modes, strict=True):
        np.testing.assert_allclose(ours.b, theirs.b, rtol=1e-6, atol=1e-8)
    rebuilt = model_frame(fit.formula, data, fit.options.with_changes(scale_weights="cluster"))
    expected = modes_at(rebuilt, fit.family, glmm.beta, glmm.theta)
    predicted = fit.random_effect_predictions()
    for level, factor in zip(expected, ["klass", "school"], strict=True):
        np.testing.assert_allclose(predicted.modes[factor].to_numpy(), level.b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(predicted.sd[factor].to_numpy(), level.b_sd, rtol=1e-10)
        # the weights summed to 2-20 times the units sampled: rescaled, the intervals widen
        assert np.median(predicted.sd[factor].to_numpy() / fit.ranef_sd[factor].to_numpy()) > 1.3


# -------------------------------------------------------------------------------------------------
# results that keep their own modes; plausible values; caching


def test_unit_weights_and_scaled_fits_keep_their_own_modes(pisa):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewGroupsWarning)
        unweighted = wemix_nb.mix("Reaction ~ Days + (1|Subject)", wemix_nb.datasets.sleepstudy())
    predicted = unweighted.random_effect_predictions()
    assert not predicted.rescaled and predicted.weights == "unweighted"
    pd.testing.assert_frame_equal(predicted.modes["Subject"], unweighted.ranef["Subject"])
    scaled = wemix_nb.mix(
        "pv1math ~ escs + (1|schoolid)", pisa, weights=PISA_WEIGHTS, scale_weights="cluster"
    )
    predicted = scaled.random_effect_predictions()
    assert not predicted.rescaled and "scale_weights='cluster'" in predicted.weights
    pd.testing.assert_frame_equal(predicted.sd["schoolid"], scaled.ranef_sd["schoolid"])


def test_rescaled_predictions_equal_those_of_a_cluster_scaled_fit_at_its_parameters(pisa, pisa_fit):
    """Not a refit: the unscaled fit's parameters with the cluster-scaled weights."""
    raw = pisa_fit.random_effect_predictions(raw=True)
    assert raw.weights == RAW and not raw.rescaled
    assert pisa_fit.random_effect_predictions() is pisa_fit.random_effect_predictions()  # cached
    scaled_fit = wemix_nb.mix(
        "pv1math ~ escs + (1|schoolid)", pisa, weights=PISA_WEIGHTS, scale_weights="cluster"
    )
    ours = pisa_fit.random_effects()["schoolid"]
    theirs = scaled_fit.random_effects()["schoolid"]
    # different parameters, the same scaling: close but not equal
    assert np.corrcoef(ours["Intercept"], theirs["Intercept"])[0, 1] > 0.99
    assert not np.allclose(ours["Intercept"], theirs["Intercept"])


def test_plausible_values_pool_the_rescaled_predictions(pisa):
    data = pisa.assign(pv2math=pisa["pv1math"] + np.random.default_rng(1).normal(0, 20, len(pisa)))
    pv_fit = wemix_nb.mix(
        "pv1math ~ escs + (1|schoolid)", data, weights=PISA_WEIGHTS, pv=["pv1math", "pv2math"]
    )
    pooled = pv_fit.random_effect_predictions()
    each = [fit.random_effect_predictions() for fit in pv_fit.fits]
    assert pooled.rescaled
    mean = (each[0].modes["schoolid"] + each[1].modes["schoolid"]) / 2
    np.testing.assert_allclose(pooled.modes["schoolid"], mean, rtol=1e-12)
    # SD^2 = mean conditional variance + (1 + 1/2) * the between-PV variance of the modes
    within = (each[0].sd["schoolid"] ** 2 + each[1].sd["schoolid"] ** 2) / 2
    between = (each[0].modes["schoolid"] - each[1].modes["schoolid"]) ** 2 / 2
    np.testing.assert_allclose(pooled.sd["schoolid"] ** 2, within + 1.5 * between, rtol=1e-10)


def test_dask_fit_rescales_without_the_rows(pisa, pisa_fit):
    dd = pytest.importorskip("dask.dataframe")
    schools = np.sort(pisa["schoolid"].unique())
    parts = [pisa[pisa["schoolid"].isin(chunk)] for chunk in np.array_split(schools, 3)]
    ddf = dd.concat([dd.from_pandas(part, npartitions=1) for part in parts])
    dask_fit = wemix_nb.mix_dask(
        "pv1math ~ escs + (1|schoolid)", ddf, weights=PISA_WEIGHTS, compute_kwargs={"scheduler": "sync"}
    )
    assert dask_fit.frame.n == 0  # the rows stayed in the partitions
    ours = dask_fit.random_effects()["schoolid"]
    theirs = pisa_fit.random_effects()["schoolid"]
    np.testing.assert_allclose(ours.to_numpy(), theirs.loc[ours.index].to_numpy(), rtol=1e-6, atol=1e-8)


def test_dask_glmm_says_its_modes_are_not_rescaled(pisa):
    dd = pytest.importorskip("dask.dataframe")
    data = pisa.assign(high=(pisa["pv1math"] > 500).astype(int))
    schools = np.sort(data["schoolid"].unique())
    parts = [data[data["schoolid"].isin(chunk)] for chunk in np.array_split(schools, 3)]
    ddf = dd.concat([dd.from_pandas(part, npartitions=1) for part in parts])
    fit = wemix_nb.mix_dask(
        "high ~ escs + (1|schoolid)",
        ddf,
        weights=PISA_WEIGHTS,
        family="binomial",
        nquad=3,
        compute_kwargs={"scheduler": "sync"},
    )
    predicted = fit.random_effect_predictions()
    assert not predicted.rescaled
    assert "not rescaled: the rows of a GLMM fitted on Dask partitions" in predicted.weights
    pd.testing.assert_frame_equal(predicted.sd["schoolid"], fit.ranef_sd["schoolid"])
    assert "not rescaled" in fit.plot_ranef().to_dict()["title"]["subtitle"][1]
