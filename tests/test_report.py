"""Report drafting (wemix_nb.report): the methods paragraph from the fits' facts, the APA 7 number
style, the tables against tidy(), and the HTML, Word, LaTeX and Markdown files.

The paragraph is tested two ways: hand-written sentences for three representative fits (a linear
model with unconditional weights, a GLMM with cluster scaling, plausible values x Fay replicates),
and, for every option of FitOptions that changes a fit, a pair of fits that differ in that option
only, whose joint paragraph must state it for each of them.
"""

from __future__ import annotations

import dataclasses
import html
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb.display.report import facts as facts_module
from wemix_nb.display.report import method_facts, methods_sentences, report
from wemix_nb.display.report import style as S
from wemix_nb.display.report.methods import TOPICS
from wemix_nb.options import FitOptions

pytestmark = pytest.mark.filterwarnings("ignore::wemix_nb.errors.WemixWarning")

W = ["w_fstuwt", "w_fschwt"]
RHS = "escs + st04q01 + (1|schoolid)"


@pytest.fixture(scope="module")
def pisa() -> pd.DataFrame:
    data = wemix_nb.datasets.pisa2012_like(design=True)
    return data.assign(high=(data["pv1math"] > 500).astype(int))


@pytest.fixture(scope="module")
def linear(pisa):
    return wemix_nb.mix(f"pv1math ~ {RHS}", pisa, weights=W)


@pytest.fixture(scope="module")
def glmm(pisa):
    return wemix_nb.mix(f"high ~ {RHS}", pisa, weights=W, family="binomial", scale_weights="cluster")


@pytest.fixture(scope="module")
def pv_fay(pisa):
    return wemix_nb.mix(
        f"PV{{1..5}}MATH ~ {RHS}",
        pisa,
        weights=W,
        replicate_weights="W_FSTR{1..80}",
        replicate_method="fay",
        progress=False,
    )


def sentences_of(fits, names=None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in methods_sentences([method_facts(f) for f in fits], names):
        out.setdefault(s.topic, []).append(s.text)
    return out


# -------------------------------------------------------------------------------------------------
# the number style (APA 7)


def test_p_values_follow_apa():
    assert [S.p_value(p) for p in (1e-12, 0.0009999, 0.001, 0.0321, 0.5, 0.9996, np.nan)] == [
        "<.001",
        "<.001",
        ".001",
        ".032",
        ".500",
        ">.999",
        "\u2014",
    ]


def test_bounded_quantities_have_no_leading_zero_and_negatives_the_minus_sign():
    assert S.proportion(0.1768, 2) == ".18"
    assert S.proportion(-0.4512, 2) == "\u2212.45"
    assert S.proportion(-0.0001, 2) == ".00"
    assert S.proportion(1.0, 2) == "1.00"
    assert S.fixed(-1234.5678, 1) == "\u22121,234.6"
    assert S.fixed(-0.00004, 2) == "0.00"
    assert S.count(5057) == "5,057"
    assert S.df_value(18.0) == "18" and S.df_value(82.37) == "82.4" and S.df_value(np.inf) == "\u221e"


def test_decimals_are_chosen_per_column_from_the_smallest_standard_error():
    assert S.estimate_decimals([4.46, 2.15, 3.02]) == 1  # 2.2
    assert S.estimate_decimals([0.105, 0.0795, 0.0643]) == 3  # 0.064
    assert S.estimate_decimals([154.0, 121.0]) == 0  # 120
    assert S.estimate_decimals([0.0996]) == 2  # rounds up to 0.10
    assert S.estimate_decimals([1e-9]) == S.MAX_DECIMALS
    assert S.estimate_decimals([np.nan]) == 0
    assert S.proportion_decimals([0.18, 0.45]) == 2
    assert S.proportion_decimals([0.033, 0.15]) == 3
    assert S.proportion_decimals([0.18], [0.0187]) == 3
    assert S.column([77941.1, 2340.7]) == ["77,941", "2,341"]
    assert S.column([15.41, 15.6]) == ["15.4", "15.6"]
    assert S.column([1.747, 2.573]) == ["1.75", "2.57"]


# -------------------------------------------------------------------------------------------------
# hand-written sentences for three representative fits


def test_linear_model_with_unconditional_weights(linear):
    said = sentences_of([linear])
    assert said["model"] == [
        "The model was a two-level linear mixed model of pv1math with a random intercept for schoolid, "
        "estimated by multilevel pseudo-maximum likelihood (MPML; Rabe-Hesketh & Skrondal, 2006)."
    ]
    assert said["data"] == ["The analysis used 5,057 rows (level 1) in 150 groups of schoolid (level 2)."]
    assert said["weights"] == [
        "Survey weights entered the pseudo-likelihood at every level: w_fstuwt for the rows (level 1) and "
        "w_fschwt for schoolid (level 2). The weights below the top level were unconditional (inverse "
        "overall selection probabilities) and were divided by the weight of the unit one level up to give "
        "the conditional weights the likelihood uses."
    ]
    assert said["scaling"] == ["The conditional weights were used as given, without rescaling within groups."]
    assert said["errors"] == [
        "Standard errors are robust (sandwich) estimates clustered on the 150 groups of "
        "schoolid, the top level."
    ]
    assert said["inference"] == [
        "Tests and 95% confidence intervals of the fixed effects use the standard normal "
        "reference distribution."
    ]
    assert said["rows"] == ["All 5,057 rows of the data were used."]
    assert said["software"] == [
        f"Estimation used the Python package wemix_nb (version {wemix_nb.__version__}; Python "
        f"{facts_module.platform.python_version()}), which follows the R package WeMix."
    ]
    assert "centering" not in said and "pv" not in said  # defaults of every fit: not stated


def test_glmm_with_cluster_scaling(glmm):
    said = sentences_of([glmm])
    assert said["model"] == [
        "The model was a two-level generalized linear mixed model of high (binomial family, logit link) with "
        "a random intercept for schoolid, estimated by multilevel pseudo-maximum likelihood (MPML; "
        "Rabe-Hesketh & Skrondal, 2006). The likelihood was integrated over the random effects by adaptive "
        "Gauss\u2013Hermite quadrature with 13 points per random effect."
    ]
    assert said["scaling"] == [
        "The conditional weights of the units in each group one level up were rescaled to sum to its number "
        "of sampled units (cluster-size scaling; Pfeffermann et al., 1998; Asparouhov, 2006)."
    ]


def test_plausible_values_with_fay_replicates(pv_fay):
    said = sentences_of([pv_fay])
    assert said["model"][0].startswith(
        "The model was a two-level linear mixed model of the plausible values PV1MATH\u2013PV5MATH with a "
        "random intercept for schoolid"
    )
    assert said["errors"] == [
        "Standard errors come from 80 replicate weights (W_FSTR1\u2013W_FSTR80) by Fay's balanced repeated "
        "replication with k = 0.5 (Judkins, 1990): the model was refitted with each replicate "
        "weight, and the "
        "sampling variance is c times the sum of squared deviations of the replicate estimates from the "
        "full-sample estimate, with c = 1/(R(1 \u2212 k)\u00b2) = 1/20."
    ]
    fmi = pv_fay.rubin["fmi"]
    d = S.proportion_decimals([fmi.min(), fmi.max()])
    assert said["pv"] == [
        "Each of the five plausible values (PV1MATH\u2013PV5MATH) was analysed in turn, and the results were "
        "combined with Rubin's (1987) rules: the estimate is the mean over plausible values, "
        "and its variance "
        "the mean sampling variance plus (1 + 1/M) times the variance between plausible values. The fraction "
        f"of missing information ranged from {S.proportion(fmi.min(), d)} to "
        f"{S.proportion(fmi.max(), d)} over "
        "the fixed effects."
    ]
    assert said["inference"] == [
        "Tests and 95% confidence intervals of the fixed effects use the standard normal "
        "reference distribution."
    ]
    # the t reference with Barnard-Rubin degrees of freedom when asked for
    facts = method_facts(pv_fay, df="rubin")
    text = " ".join(s.text for s in methods_sentences([facts]) if s.topic == "inference")
    low, high = pv_fay.rubin["df"].min(), pv_fay.rubin["df"].max()
    assert text == (
        "Tests and 95% confidence intervals of the fixed effects use t distributions with Barnard\u2013Rubin "
        f"degrees of freedom (Barnard & Rubin, 1999), from {S.df_value(low)} to {S.df_value(high)}."
    )


def test_linearization_with_strata_and_psus(pisa):
    fit = wemix_nb.mix(f"pv1math ~ {RHS}", pisa, weights=W, strata="VARSTRAT", psu="VARUNIT", nest=True)
    assert sentences_of([fit])["errors"] == [
        "Standard errors are design-based (Taylor linearization; Binder, 1983): the pseudo-likelihood scores "
        "of the top-level groups were summed within 150 primary sampling units (VARUNIT, numbered within "
        "strata) in 75 strata (VARSTRAT)."
    ]


# -------------------------------------------------------------------------------------------------
# every option that differs between fits is stated


def small() -> pd.DataFrame:
    """sleepstudy with unequal weights (W2 constant within subjects), a binary outcome, three
    plausible values, Fay-like replicates R1..R4 (Q1..Q4 at level 2), strata S with PSUs P (Pn:
    numbered within strata) and an fpc N."""
    d = wemix_nb.datasets.sleepstudy()
    rng = np.random.default_rng(7)
    code = d["Subject"].cat.codes.to_numpy()
    w2 = (1 + code % 3).astype(float)
    w1 = w2 * rng.uniform(1, 3, len(d))
    d = d.assign(W1=w1, W2=w2, B=(d["Reaction"] > d["Reaction"].median()).astype(int))
    d = d.assign(S=code // 2, P=code, Pn=code % 2 + 1, N=20.0, Wc=w1 / w2)
    for m in range(1, 4):
        d[f"PV{m}"] = d["Reaction"] + rng.normal(0, 15, len(d))
    for r in range(1, 5):
        d[f"R{r}"] = w1 * np.where((code + r) % 2 == 0, 1.5, 0.5)
        d[f"Q{r}"] = w2 * np.where((code + r) % 2 == 0, 1.5, 0.5)
    return d


LIN = "Reaction ~ Days + (1|Subject)"
BIN = "B ~ Days + (1|Subject)"
REP = {"weights": ["W1", "W2"], "replicate_weights": "R{1..4}", "replicate_method": "fay"}
DESIGN = {"strata": "S", "psu": "P"}

# FitOptions field -> (topic that states it, formula and options of fit A, of fit B)
DIFFERENCES = {
    "weights": ("weights", (LIN, {}), (LIN, {"weights": ["W1", "W2"]})),
    "weights (level 1 only)": ("weights", (LIN, {"weights": ["W1"]}), (LIN, {"weights": ["W1", "W2"]})),
    "cweights": (
        "weights",
        (LIN, {"weights": ["Wc", "W2"], "cweights": True}),
        (LIN, {"weights": ["W1", "W2"]}),
    ),
    "center_group": ("centering", (LIN, {"center_group": {"Subject": "~ Days"}}), (LIN, {})),
    "center_grand": ("centering", (LIN, {"center_grand": "~ Days"}), (LIN, {})),
    "scale_weights": (
        "scaling",
        (LIN, {"weights": ["W1", "W2"], "scale_weights": "effective"}),
        (LIN, {"weights": ["W1", "W2"]}),
    ),
    "family": ("model", (LIN, {}), (BIN, {"family": "binomial"})),
    "family (link)": (
        "model",
        (BIN, {"family": "binomial"}),
        (BIN, {"family": "binomial", "link": "probit"}),
    ),
    "nquad": ("model", (BIN, {"family": "binomial"}), (BIN, {"family": "binomial", "nquad": 1})),
    "laplace_rounding": (
        "model",
        (BIN, {"family": "binomial", "nquad": 1}),
        (BIN, {"family": "binomial", "nquad": 1, "laplace_rounding": True}),
    ),
    "offset": ("model", (LIN, {}), (LIN, {"offset": "Days"})),
    "offset (values)": ("model", (LIN, {"offset": "Days"}), (LIN, {"offset": np.arange(180.0)})),
    "pv": ("pv", (LIN, {}), ("PV{1..3} ~ Days + (1|Subject)", {})),
    "replicates": ("errors", (LIN, {"weights": ["W1", "W2"]}), (LIN, REP)),
    "replicates (method)": ("errors", (LIN, REP), (LIN, {**REP, "replicate_method": "brr"})),
    "replicates (fay_k)": ("errors", (LIN, REP), (LIN, {**REP, "fay_k": 0.3})),
    "replicates (mse)": ("errors", (LIN, REP), (LIN, {**REP, "mse": False})),
    "replicates (scale)": (
        "errors",
        (LIN, REP),
        (LIN, {**REP, "replicate_method": None, "replicate_scale": 0.25}),
    ),
    "replicates (levels)": (
        "errors",
        (LIN, REP),
        (LIN, {**REP, "replicate_weights": {1: "R{1..4}", 2: "Q{1..4}"}}),
    ),
    "replicates (pv_sampling)": (
        "pv",
        ("PV{1..3} ~ Days + (1|Subject)", REP),
        ("PV{1..3} ~ Days + (1|Subject)", {**REP, "pv_sampling": "first"}),
    ),
    "design": ("errors", (LIN, {}), (LIN, DESIGN)),
    "design (fpc)": ("errors", (LIN, DESIGN), (LIN, {**DESIGN, "fpc": "N"})),
    "design (nest)": ("errors", (LIN, DESIGN), (LIN, {"strata": "S", "psu": "Pn", "nest": True})),
}
# options that do not change the model or its inference: in the appendix's call, not the paragraph
NOT_STATED = {"max_iteration", "start", "keep_adapting", "verbose", "progress"}


def test_every_option_of_a_fit_is_stated_or_deliberately_left_out():
    stated = {name.split(" ")[0] for name in DIFFERENCES}
    fields = {f.name for f in dataclasses.fields(FitOptions)}
    assert fields == stated | NOT_STATED, "a new FitOptions field needs a sentence (or a reason to omit it)"
    assert {topic for topic, _, _ in DIFFERENCES.values()} <= set(TOPICS)


@pytest.mark.parametrize("option", list(DIFFERENCES))
def test_the_paragraph_states_an_option_that_differs(option):
    topic, (formula_a, options_a), (formula_b, options_b) = DIFFERENCES[option]
    data = small()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [
            wemix_nb.mix(formula_a, data, progress=False, **options_a),
            wemix_nb.mix(formula_b, data, progress=False, **options_b),
        ]
    said = sentences_of(fits, ["Model A", "Model B"])[topic]
    led_a = [s for s in said if s.startswith("In Model A, ")]
    led_b = [s for s in said if s.startswith("In Model B, ")]
    assert len(led_a) == 1 and len(led_b) == 1, said
    assert led_a[0][len("In Model A, ") :] != led_b[0][len("In Model B, ") :]
    # the other topics agree and are said once, without a lead
    everything = methods_sentences([method_facts(f) for f in fits], ["Model A", "Model B"])
    for sentence in everything:
        if sentence.topic != topic and not sentence.text.startswith("In Model"):
            assert sentence.text[0].isupper()


def test_sentences_led_by_a_model_name_start_with_a_lower_case_word(linear, glmm):
    # every topic's text begins with an ordinary capitalised word, so "In Model 1, the ..." reads well
    said = methods_sentences([method_facts(linear), method_facts(glmm)])
    led = [s.text for s in said if s.text.startswith("In Model")]
    assert led and all(re.match(r"In Model \d, [a-z]", text) for text in led), led


def test_offsets_and_trials():
    data = small().assign(E=lambda d: np.log1p(d["Days"]), s=lambda d: (d["Reaction"] // 50).astype(int))
    data["f"] = 10 - data["s"].clip(upper=10)
    fit = wemix_nb.mix("Reaction ~ Days + offset(E) + (1|Subject)", data, weights=["W1", "W2"], offset="Days")
    assert sentences_of([fit])["model"][0].startswith(
        "The model was a two-level linear mixed model of Reaction with a random intercept for Subject, and E "
        "and Days as offsets (a known part of the linear predictor), estimated by"
    )
    rep = report(fit, figures=False)
    code = next(b.text for b in rep.blocks if type(b).__name__ == "Code")
    namespace = {"wemix_nb": wemix_nb, "data": data}
    exec(code, namespace)  # noqa: S102 - the appendix's own code
    assert np.allclose(namespace["fit"].coef, fit.coef)
    trials = wemix_nb.mix("cbind(s, f) ~ Days + (1|Subject)", data, family="binomial")
    assert report(trials, figures=False).tables["data"].rows[0].cells[3] == "s, f, Days, Subject"


def test_rows_dropped_and_why(pisa):
    data = pisa.copy()
    data.loc[data.index[:7], "escs"] = np.nan
    data.loc[data.index[10:12], "w_fstuwt"] = 0.0
    data.loc[data.index[20:23], "PV3MATH"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = wemix_nb.mix(f"PV{{1..5}}MATH ~ {RHS}", data, weights=W)
    said = sentences_of([fit])["rows"]
    assert said == [
        "Of the 5,057 rows of the data, 7 for missing values in the model's variables, 3 for a missing "
        "plausible value and 2 for a zero weight were excluded, leaving 5,045."
    ]
    assert fit.nobs == 5045


def test_few_groups_and_the_t_reference():
    data = small()
    fit = wemix_nb.mix(LIN, data, weights=["W1", "W2"])
    rep = report(fit, df="groups", figures=False)
    said = [s.text for s in rep.sentences if s.topic == "inference"]
    assert said == [
        "Tests and 95% confidence intervals of the fixed effects use a t distribution with 16 degrees of "
        "freedom (18 top-level groups minus 2 fixed effects), because the robust standard errors rest on "
        "fewer than 30 clusters."
    ]
    fixed = rep.tables["fixed"]
    assert [h[0].text for h in fixed.header][4] == "df"
    assert {row.cells[4] for row in fixed.rows} == {"16"}
    bullets = next(b for b in rep.blocks if type(b).__name__ == "Bullets")
    items = " ".join(" ".join(s.text for s in item) for item in bullets.items)
    assert "Only 18 top-level groups" in items


def test_few_psus_and_the_t_reference(pisa):
    school = pisa["schoolid"].map({s: i for i, s in enumerate(np.sort(pisa["schoolid"].unique()))})
    data = pisa.assign(S=school % 12, P=(school // 12) % 2)
    fit = wemix_nb.mix(f"pv1math ~ {RHS}", data, weights=W, strata="S", psu="P", nest=True)
    rep = report(fit, figures=False)
    said = [s.text for s in rep.sentences if s.topic == "inference"]
    assert said == [
        "Tests and 95% confidence intervals of the fixed effects use a t distribution with 12 degrees of "
        "freedom (24 PSUs minus 12 strata), because the design-based standard errors rest on fewer than 30 "
        "degrees of freedom."
    ]
    fixed = rep.tables["fixed"]
    assert {row.cells[4] for row in fixed.rows} == {"12"}
    bullets = next(b for b in rep.blocks if type(b).__name__ == "Bullets")
    items = " ".join(" ".join(s.text for s in item) for item in bullets.items)
    assert "Only 24 PSUs in 12 strata behind the design-based standard errors" in items
    normal = report(fit, df="normal", figures=False)
    bullets = next(b for b in normal.blocks if type(b).__name__ == "Bullets")
    items = " ".join(" ".join(s.text for s in item) for item in bullets.items)
    assert "Only 24 PSUs in 12 strata" in items
    assert (
        "behind the design-based standard errors: with fewer than 30 degrees of freedom (PSUs minus" in items
    )
    assert "top-level groups" not in items


def test_many_psus_are_said(pisa):
    fit = wemix_nb.mix(f"pv1math ~ {RHS}", pisa, weights=W, strata="VARSTRAT", psu="VARUNIT", nest=True)
    rep = report(fit, df="groups", figures=False)
    said = [s.text for s in rep.sentences if s.topic == "inference"]
    assert said == [
        "Tests and 95% confidence intervals of the fixed effects use a t distribution with 75 degrees of "
        "freedom (150 PSUs minus 75 strata)."
    ]
    bullets = next(b for b in rep.blocks if type(b).__name__ == "Bullets")
    items = " ".join(" ".join(s.text for s in item) for item in bullets.items)
    assert "The design-based standard errors rest on 150 PSUs in 75 strata (75 degrees of freedom)." in items


# -------------------------------------------------------------------------------------------------
# the tables carry tidy()'s numbers


def expected_fixed_rows(fit) -> list[list[str]]:
    tidy = fit.tidy()
    d = S.estimate_decimals(tidy["std_error"])
    return [
        [
            r.term,
            S.fixed(r.estimate, d),
            S.fixed(r.std_error, d),
            S.statistic(r.statistic),
            S.p_value(r.p_value),
            S.interval(r.conf_low, r.conf_high, d),
        ]
        for r in tidy.itertuples(index=False)
    ]


@pytest.mark.parametrize("which", ["linear", "glmm", "pv_fay"])
def test_fixed_table_is_tidy_formatted(which, request):
    fit = request.getfixturevalue(which)
    rep = report(fit, figures=False)
    table = rep.tables["fixed"]
    assert table.body() == expected_fixed_rows(fit)
    assert [h[0].text if len(h) == 1 else "".join(s.text for s in h) for h in table.header] == [
        "Term",
        "Estimate",
        "SE",
        "z" if which == "glmm" else "t",
        "p",
        "95% CI",
    ]
    # and the numbers are tidy's, rounded
    tidy = fit.tidy()
    for row, (_, r) in zip(table.rows, tidy.iterrows(), strict=True):
        d = S.estimate_decimals(tidy["std_error"])
        assert abs(float(row.cells[1].replace(",", "").replace(S.MINUS, "-")) - r.estimate) <= 0.5 * 10**-d


def test_variance_table_and_icc(pv_fay, glmm):
    table = report(pv_fay, figures=False).tables["variance"]
    params = pv_fay.variance.table_parameters()
    d = S.estimate_decimals([p.std_error for p in params])
    assert [row.cells[2] for row in table.rows] == [S.fixed(p.estimate, d) for p in params]
    assert [row.cells[3] for row in table.rows] == [S.fixed(p.std_error, d) for p in params]
    icc_d = S.proportion_decimals([pv_fay.ICC], [pv_fay.ICC_SE])
    note = " ".join("".join(s.text for s in n) for n in table.notes)
    assert f"Intraclass correlation (ICC): {S.proportion(pv_fay.ICC, icc_d)} (SE = " in note
    glmm_note = " ".join(
        "".join(s.text for s in n) for n in report(glmm, figures=False).tables["variance"].notes
    )
    assert f"Intraclass correlation (ICC) (latent {glmm.link} scale): " in glmm_note
    assert "latent residual variance \u03c0\u00b2/3" in glmm_note
    # said once: the note does not restate the value at more digits
    assert glmm_note.count("ICC") == 1


def test_several_fits_side_by_side_as_compare(linear, pv_fay):
    rep = report(wemix_nb.compare([linear, pv_fay], names=["Sandwich", "Fay x PV"]))
    assert rep.names == ["Sandwich", "Fay x PV"]
    table = rep.tables["fixed"]
    assert [h[0].text for h in table.header[1:]] == ["Sandwich", "Fay x PV"]
    body = table.body()
    for col, fit in enumerate([linear, pv_fay], start=1):
        tidy = fit.tidy()
        d = S.estimate_decimals(tidy["std_error"])
        for r in tidy.itertuples(index=False):
            at = next(i for i, row in enumerate(body) if row[0] == r.term)
            assert body[at][col].rstrip("*") == S.fixed(r.estimate, d)
            assert body[at + 1][col] == f"({S.fixed(r.std_error, d)})"
            assert body[at + 2][col] == S.interval(r.conf_low, r.conf_high, d)
    # the paragraph says what differs for each, once what they share
    said = sentences_of([linear, pv_fay], rep.names)
    assert len(said["errors"]) == 2 and said["errors"][0].startswith(
        "In Sandwich, standard errors are robust"
    )
    assert len(said["weights"]) == 1


# -------------------------------------------------------------------------------------------------
# the files


@pytest.fixture(scope="module")
def drafted(linear, pv_fay):
    return report([linear, pv_fay], names=["Sandwich", "Fay x PV"], title="Mathematics and ESCS")


def test_html_is_one_self_contained_file(drafted, tmp_path):
    path = drafted.save(tmp_path / "analysis.html")
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.html"]
    assert text.count("<svg") == len(drafted.figures) == 3
    assert text.count('<table class="wemix-apa">') == len(drafted.tables) == 5
    # nothing to fetch: no scripts, links, imports or remote sources
    assert not re.search(r"<script|<link|@import|<img|(src|href)=\"(https?:)?//", text)
    assert drafted.methods in html.unescape(re.sub(r"<[^>]+>", "", text))


def test_docx_tables_read_back_equal_tidy(linear, tmp_path):
    docx = pytest.importorskip("docx")
    rep = report(linear)
    path = rep.save(tmp_path / "analysis.docx")
    document = docx.Document(str(path))
    tables = [[[cell.text for cell in row.cells] for row in t.rows] for t in document.tables]
    assert len(tables) == 5
    fixed = tables[0]
    assert fixed[0] == ["Term", "Estimate", "SE", "t", "p", "95% CI"]
    assert fixed[1:] == expected_fixed_rows(linear)
    variance = rep.tables["variance"]
    assert tables[1][1:] == variance.body()
    assert len(document.inline_shapes) == len(rep.figures) == 2
    text = "\n".join(p.text for p in document.paragraphs)
    assert rep.methods in text and "Table 1" in text and "Figure 2" in text


def test_docx_without_python_docx_says_how_to_install_it(linear, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "docx", None)
    with pytest.raises(ImportError, match=r"pip install 'wemix_nb\[report\]'"):
        report(linear, figures=False).save(tmp_path / "analysis.docx")
    assert not (tmp_path / "analysis.docx").exists()


def test_latex_has_booktabs_tables_and_the_figure_files(drafted, tmp_path):
    path = drafted.save(tmp_path / "analysis.tex")
    text = path.read_text()
    assert "\\usepackage{booktabs}" in text and text.rstrip().endswith("\\end{document}")
    assert text.count("\\toprule") == text.count("\\bottomrule") == 5
    # LaTeX numbers the captions as the report does: 1, 2, 3, then A1, A2 in the appendix
    assert [str(t.number) for t in drafted.tables.values()] == ["1", "2", "3", "A1", "A2"]
    assert [f.number for f in drafted.figures] == [1, 2, 3]
    assert text.count("\\caption{") == 5 + 3
    assert text.index("\\renewcommand{\\thetable}{A\\arabic{table}}") < text.index(
        "\\caption{Data of each model}"
    )
    assert text.index("\\caption{Units and survey weights by level}") < text.index("\\setcounter{table}{0}")
    for figure in drafted.figures:
        name = f"analysis-figure-{figure.number}.png"
        assert f"\\includegraphics[width=0.85\\linewidth]{{{name}}}" in text
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "\\textless{} .001" in text  # the asterisks' note; no raw "<", "_" or "%" outside commands
    body = text.split("\\begin{document}", 1)[1]
    prose = re.sub(r"\\begin\{verbatim\}.*?\\end\{verbatim\}", "", body, flags=re.S)
    assert not re.search(r"(?<!\\)[%_<>#$]", prose)  # (& is a column separator)


def test_latex_compiles(drafted, glmm, tmp_path):
    """pdflatex (when installed) typesets the reports: the side-by-side one and a GLMM's."""
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    report(glmm).save(tmp_path / "glmm.tex")
    drafted.save(tmp_path / "multi.tex")
    for name in ("glmm", "multi"):
        run = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout[-3000:]
        assert (tmp_path / f"{name}.pdf").stat().st_size > 10_000


def test_markdown_with_figure_files(drafted, tmp_path):
    path = drafted.save(tmp_path / "analysis.md")
    text = path.read_text()
    assert text.startswith("# Mathematics and ESCS")
    assert "| *Fixed effects* |" in text
    for figure in drafted.figures:
        assert f"(analysis-figure-{figure.number}.png)" in text
        assert (tmp_path / f"analysis-figure-{figure.number}.png").exists()


def test_notebook_view_is_a_fragment(drafted):
    fragment = drafted._repr_html_()
    assert fragment.startswith("<style>") and "<html" not in fragment
    assert 'class="wemix-report"' in fragment and fragment.count("<svg") == 3


def test_appendix_call_refits_the_model(linear, pisa):
    rep = report(linear, figures=False)
    code = next(b.text for b in rep.blocks if type(b).__name__ == "Code")
    namespace = {"wemix_nb": wemix_nb, "data": pisa}
    exec(code, namespace)  # noqa: S102 - the appendix's own code
    assert np.allclose(namespace["fit"].coef, linear.coef)
    data_row = rep.tables["data"].rows[0].cells
    assert data_row[1:3] == ("5,057", "5,057")
    from wemix_nb.display.report.appendix import fingerprint

    assert data_row[4] == fingerprint(namespace["fit"]) == fingerprint(linear)


def test_replicate_columns_in_the_call_are_a_pattern(pv_fay):
    from wemix_nb.display.report.appendix import reproducible_call

    call = reproducible_call(pv_fay)
    assert "replicate_weights='W_FSTR{1..80}'" in call and "replicate_method='fay'" in call
    compile(call, "<call>", "exec")
