"""Diagnostics where the user looks: few top-level groups behind the sandwich, boundary (singular)
fits, what the ICC means; as structured facts (``fit.diagnostics``) and in the report, summary(),
tidy() and a warning at fit time."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _html_tables import parse_tables
from scipy import stats

import wemix_nb
from wemix_nb.display.html import significance_stars
from wemix_nb.errors import FewGroupsWarning, SingularFitWarning
from wemix_nb.model.variance import VarianceLevel
from wemix_nb.results.diagnostics import FEW_GROUPS, diagnose


def _quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewGroupsWarning)
        warnings.simplefilter("ignore", SingularFitWarning)
        return wemix_nb.mix(*args, **kwargs)


@pytest.fixture(scope="module")
def sleep():
    return wemix_nb.datasets.sleepstudy()


@pytest.fixture(scope="module")
def three_schools():
    """A 3-level sample whose robust SEs rest on 3 schools."""
    rng = np.random.default_rng(11)
    rows = []
    for school in range(3):
        u_s = rng.normal(0, 1.0)
        for klass in range(8):
            u_c = rng.normal(0, 0.5)
            for _ in range(15):
                x = rng.normal()
                rows.append((school, f"{school}-{klass}", x, 1 + 0.3 * x + u_s + u_c + rng.normal()))
    return pd.DataFrame(rows, columns=["school", "klass", "x", "y"])


# -------------------------------------------------------------------------------------------------
# few top-level groups


def test_few_top_level_groups_use_t_and_say_so(three_schools):
    with pytest.warns(FewGroupsWarning, match=r"Only 3 top-level groups \(school\)"):
        fit = wemix_nb.mix("y ~ x + (1|school) + (1|klass)", three_schools)
    d = fit.diagnostics
    assert (d.top_group, d.n_top_groups, d.n_fixed) == ("school", 3, 2)
    assert d.few_groups and d.reference_df == 1.0 and d.default_df == "groups"
    tidy = fit.tidy()
    assert (tidy["df"] == 1).all()
    z = fit.coef / fit.SE
    np.testing.assert_allclose(tidy["p_value"], 2 * stats.t.sf(np.abs(z), 1))
    normal = fit.tidy(df="normal")  # df= still overrides
    np.testing.assert_allclose(normal["p_value"], 2 * stats.norm.sf(np.abs(z)))
    assert np.isinf(normal["df"]).all()
    # the report's stars follow the t reference, and its note says why
    fixed = parse_tables(fit._repr_html_())[0]
    for r in tidy.itertuples():
        assert fixed.row(r.term)[5] == significance_stars(r.p_value)
    (note,) = [n for n in fixed.notes if "Robust (sandwich)" in n]
    assert "t reference distribution with 1 df (3 top-level groups − 2 fixed effects)" in note
    assert "Only 3 top-level groups" in note
    text = str(fit.summary())
    assert "Only 3 top-level groups (school)" in text.split("Notes:")[1]


def test_many_top_level_groups_keep_the_normal_reference():
    data = wemix_nb.datasets.pisa2012_like()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewGroupsWarning)
        fit = wemix_nb.mix("pv1math ~ escs + (1|schoolid)", data, weights=["w_fstuwt", "w_fschwt"])
    d = fit.diagnostics
    assert d.n_top_groups == 150 >= FEW_GROUPS and not d.few_groups
    assert math.isinf(d.reference_df) and d.few_groups_note is None
    assert np.isinf(fit.tidy()["df"]).all()
    assert "Notes:" not in str(fit.summary())


# -------------------------------------------------------------------------------------------------
# few PSUs behind design-based (linearized) standard errors

PISA_F = "pv1math ~ escs + (1|schoolid)"
PISA_W = ["w_fstuwt", "w_fschwt"]


@pytest.fixture(scope="module")
def coarse_design():
    """The PISA-like sample with a made-up coarse design: 12 strata x 2 PSUs of schools, and 20
    PSUs without strata."""
    data = wemix_nb.datasets.pisa2012_like(design=True)
    school = data["schoolid"].map({s: i for i, s in enumerate(np.sort(data["schoolid"].unique()))})
    return data.assign(S=school % 12, P=(school // 12) % 2, P20=school % 20)


def test_few_psus_use_t_with_psus_minus_strata(coarse_design):
    with pytest.warns(FewGroupsWarning, match=r"Only 24 PSUs in 12 strata behind the design-based") as rec:
        fit = wemix_nb.mix(PISA_F, coarse_design, weights=PISA_W, strata="S", psu="P", nest=True)
    assert "t distribution with 12 df (PSUs − strata)" in str(rec[0].message)
    d = fit.diagnostics
    assert (d.n_top_groups, d.n_psu, d.n_strata, d.n_clusters) == (150, 24, 12, 24)
    assert d.design_based and d.cluster_label == "PSUs"
    assert d.few_groups and d.reference_df == 12.0 and d.default_df == "groups"
    assert d.reference == "t reference distribution with 12 df (24 PSUs − 12 strata)"
    assert d.few_groups_note.startswith("Only 24 PSUs in 12 strata behind the design-based standard errors")
    assert "top-level groups" not in d.few_groups_note
    tidy = fit.tidy()
    assert (tidy["df"] == 12).all()
    z = (fit.coef / fit.SE).to_numpy()
    np.testing.assert_allclose(tidy["p_value"], 2 * stats.t.sf(np.abs(z), 12))
    crit = stats.t.ppf(0.975, 12)
    np.testing.assert_allclose(tidy["conf_low"], fit.coef.to_numpy() - crit * fit.SE.to_numpy())
    np.testing.assert_allclose(tidy["conf_high"], fit.coef.to_numpy() + crit * fit.SE.to_numpy())
    np.testing.assert_allclose(fit.tidy(df="normal")["p_value"], 2 * stats.norm.sf(np.abs(z)))
    # the notebook view and the summary speak of PSUs and strata
    fixed = parse_tables(fit._repr_html_())[0]
    (note,) = [n for n in fixed.notes if "Design-based" in n]
    assert "t reference distribution with 12 df (24 PSUs − 12 strata)" in note
    assert "Only 24 PSUs in 12 strata" in note and "top-level groups" not in note
    assert "Only 24 PSUs in 12 strata" in str(fit.summary()).split("Notes:")[1]
    table = parse_tables(wemix_nb.compare([fit], names=["design"])._repr_html_())[0]
    assert (
        "Stars of design: t reference with (PSUs − strata) df (fewer than 30 design degrees of freedom)."
        in (table.notes)
    )


def test_few_psus_without_strata_use_psus_minus_one(coarse_design):
    with pytest.warns(FewGroupsWarning, match=r"Only 20 PSUs in 1 stratum"):
        fit = wemix_nb.mix(PISA_F, coarse_design, weights=PISA_W, psu="P20")
    d = fit.diagnostics
    assert (d.n_psu, d.n_strata, d.reference_df) == (20, 1, 19.0)
    assert (fit.tidy()["df"] == 19).all()


def test_many_psus_keep_the_normal_reference(coarse_design):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewGroupsWarning)
        fit = wemix_nb.mix(PISA_F, coarse_design, weights=PISA_W, strata="VARSTRAT", psu="VARUNIT", nest=True)
    d = fit.diagnostics
    assert (d.n_psu, d.n_strata) == (150, 75) and not d.few_groups
    assert math.isinf(d.reference_df) and d.few_groups_note is None
    assert np.isinf(fit.tidy()["df"]).all()
    # asked for, the t reference has the design's degrees of freedom (survey's degf())
    assert (fit.tidy(df="groups")["df"] == 75).all()


def test_clustered_and_replicate_fits_are_not_design_based(three_schools, coarse_design):
    clustered = _quiet_fit("y ~ x + (1|school) + (1|klass)", three_schools).diagnostics
    assert not clustered.design_based and clustered.n_psu is None and clustered.n_clusters == 3
    assert clustered.reference == "t reference distribution with 1 df (3 top-level groups − 2 fixed effects)"
    few = coarse_design[coarse_design["schoolid"].isin(np.sort(coarse_design["schoolid"].unique())[:20])]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewGroupsWarning)
        fit = wemix_nb.mix(
            PISA_F,
            few,
            weights=PISA_W,
            replicate_weights="W_FSTR{1..80}",
            replicate_method="fay",
            progress=False,
        )
    d = fit.diagnostics
    assert d.n_top_groups == 20 and not d.few_groups and not d.design_based
    assert math.isinf(d.reference_df)


# -------------------------------------------------------------------------------------------------
# boundary fits


def test_zero_variance_is_a_boundary_fit(sleep):
    noise = sleep["Reaction"] - sleep.groupby("Subject", observed=True)["Reaction"].transform("mean")
    data = sleep.assign(Reaction=250 + 10 * sleep["Days"] + noise)
    with pytest.warns(SingularFitWarning, match="Subject: the variance of Intercept is numerically 0"):
        fit = wemix_nb.mix("Reaction ~ Days + (1|Subject)", data)
    assert fit.is_singular
    (b,) = fit.diagnostics.boundary
    assert (b.group, b.kind, b.label) == ("Subject", "variance", "Intercept")
    variance = parse_tables(fit._repr_html_())[1]
    assert any(n.startswith("⚠ Boundary (singular) fit") for n in variance.notes)
    assert "wemix-singular" in fit._repr_html_()
    assert "Boundary (singular) fit" in str(fit.summary())


def test_correlation_at_one_is_a_boundary_fit(sleep):
    """Three subjects cannot estimate a 2 x 2 covariance matrix: the correlation goes to +1."""
    three = sleep[sleep["Subject"].isin(sleep["Subject"].unique()[:3])]
    with pytest.warns(SingularFitWarning, match=r"correlation Intercept × Days is \+1.000"):
        fit = wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", three)
    assert fit.is_singular
    (b,) = fit.diagnostics.boundary
    assert b.kind == "correlation" and b.value == pytest.approx(1.0, abs=1e-6)
    assert "consider dropping the term or its correlation" in fit.diagnostics.singular_note


def test_interior_fits_are_not_singular(sleep):
    fit = _quiet_fit("Reaction ~ Days + (1 + Days|Subject)", sleep)
    assert not fit.is_singular and fit.diagnostics.boundary == ()
    assert "wemix-singular" not in fit._repr_html_()


def test_singular_rule_is_lme4s_on_the_relative_factor(sleep):
    """A covariance matrix with correlation -1 exactly, and one with a tiny variance relative to
    the residual variance, are singular; the same tiny variance on a tiny residual scale is not."""
    fit = _quiet_fit("Reaction ~ Days + (1 + Days|Subject)", sleep)
    level = fit.variance.levels[0]
    perfect = dataclasses.replace(level, sigma=np.array([[4.0, -2.0], [-2.0, 1.0]]))
    fake = dataclasses.replace(fit, variance=dataclasses.replace(fit.variance, levels=(perfect,)))
    (b,) = diagnose(fake).boundary
    assert b.kind == "correlation" and b.value == pytest.approx(-1.0)
    small = VarianceLevel(2, "Subject", 18, ("Intercept",), ((0,),), np.array([[1e-7]]), np.array([1.0]))
    ri = _quiet_fit("Reaction ~ Days + (1|Subject)", sleep)  # sigma^2 ~ 960: sd ratio 1e-5 < 1e-4
    tiny = dataclasses.replace(ri, variance=dataclasses.replace(ri.variance, levels=(small,)))
    assert diagnose(tiny).is_singular
    scaled = dataclasses.replace(ri.variance, levels=(small,), residual=1e-6)
    assert not diagnose(dataclasses.replace(ri, variance=scaled)).is_singular


# -------------------------------------------------------------------------------------------------
# the ICC


def test_icc_of_random_slopes_is_the_share_at_covariate_zero(sleep):
    fit = _quiet_fit("Reaction ~ Days + (1 + Days|Subject)", sleep)
    d = fit.diagnostics
    tau0, sigma2 = fit.vars["Subject.Intercept"], fit.sigma**2
    assert d.icc == pytest.approx(tau0 / (tau0 + sigma2))
    assert d.icc_label == "ICC at covariate values 0" and d.random_slopes == ("Days",)
    assert "at covariate values 0 (Days = 0)" in d.icc_note
    assert fit.ICC != pytest.approx(d.icc)  # WeMix's own number is kept as ICC
    text = str(fit.summary())
    assert f"Intraclass Correlation= {fit.ICC:.4f}" in text and "Days = 0" in text


def test_glmm_icc_is_on_the_latent_scale(sleep):
    data = sleep.assign(slow=(sleep["Reaction"] > 300).astype(int))
    fit = _quiet_fit("slow ~ Days + (1|Subject)", data, family="binomial", nquad=5)
    d = fit.diagnostics
    assert d.icc == pytest.approx(fit.ICC) and d.icc_label == "ICC (latent logit scale)"
    assert d.icc_note.startswith("ICC (latent logit scale) = ") and "3.29" in d.icc_note
    variance = parse_tables(fit._repr_html_())[1]
    (note,) = [n for n in variance.notes if n.startswith("Intraclass correlation")]
    assert note.startswith(f"Intraclass correlation (ICC) on the latent logit scale: {fit.ICC:.3f}")
    assert "latent residual variance π²/3" in note
    # the convergence note says "converged" once
    groups = parse_tables(fit._repr_html_())[2]
    (note,) = [n for n in groups.notes if "onverged" in n]
    assert note.lower().count("converged") == 1 and note.startswith("Converged after")


def test_diagnostics_are_plain_data(sleep):
    fit = _quiet_fit("Reaction ~ Days + (1 + Days|Subject)", sleep)
    d = fit.diagnostics
    assert fit.diagnostics is d  # computed once
    assert dataclasses.is_dataclass(d)
    fields = {f.name for f in dataclasses.fields(d)}
    assert {"n_top_groups", "few_groups", "reference_df", "boundary", "icc", "icc_label"} <= fields
    assert d.notes() == [n for n in (d.few_groups_note, d.singular_note, d.icc_note) if n]


def test_a_loop_of_fits_warns_once(sleep):
    """Fitting changes the warning filters, which resets Python's own once-per-line registry."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            wemix_nb.mix("Reaction ~ Days + (1|Subject)", sleep)
        wemix_nb.mix("Reaction ~ Days + (1|Subject)", sleep)  # another line: said again
    few = [w for w in caught if issubclass(w.category, FewGroupsWarning)]
    assert len(few) == 2 and few[0].lineno != few[1].lineno
    assert few[0].filename == __file__


def test_always_filter_gets_every_warning(sleep):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            wemix_nb.mix("Reaction ~ Days + (1|Subject)", sleep)
    assert sum(issubclass(w.category, FewGroupsWarning) for w in caught) == 3
