"""The notebook layer: HTML reports (great-tables), comparison tables, Altair charts, maketables hooks.

Tables are parsed back from the HTML and the numbers shown checked against the result (rounded as
displayed); charts are checked through ``chart.to_dict()`` (data, encodings, sort order).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _html_tables import number, parse_tables, shown

import wemix_nb
from wemix_nb.display import html as display_html
from wemix_nb.display import plots
from wemix_nb.errors import ArgumentError

pytest.importorskip("great_tables")
alt = pytest.importorskip("altair")


@pytest.fixture(scope="module")
def sleep():
    return wemix_nb.datasets.sleepstudy()


@pytest.fixture(scope="module")
def slope_fit(sleep):
    return wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", sleep)


@pytest.fixture(scope="module")
def intercept_fit(sleep):
    return wemix_nb.mix("Reaction ~ Days + (1|Subject)", sleep)


@pytest.fixture(scope="module")
def pisa_fit():
    data = wemix_nb.datasets.pisa2012_like()
    return wemix_nb.mix("pv1math ~ escs + st04q01 + (1|schoolid)", data, weights=["w_fstuwt", "w_fschwt"])


def _datasets(spec: dict) -> dict[str, list[dict]]:
    return spec.get("datasets", {})


def _layer_data(spec: dict, layer: dict) -> list[dict]:
    return _datasets(spec)[layer["data"]["name"]]


def _layers(spec: dict, mark: str) -> list[dict]:
    """The layers drawing ``mark`` (``"rule"``, ``"point"``, ``"rect"``), in order."""
    return [layer for layer in spec["layer"] if layer["mark"]["type"] == mark]


# -------------------------------------------------------------------------------------------------
# import stays light


def test_import_does_not_load_the_notebook_libraries():
    code = (
        "import sys, wemix_nb, pandas as pd\n"
        "pd.DataFrame({'a': [1]}).wemix\n"
        "fit = wemix_nb.mix('Reaction ~ Days + (1|Subject)', wemix_nb.datasets.sleepstudy())\n"
        "heavy = [m for m in ('great_tables', 'altair', 'ipywidgets', 'anywidget', 'vl_convert')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
        "wemix_nb.compare\n"
        "print('great_tables' in sys.modules, 'altair' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "False False"  # even the compare function loads great_tables only when used


def test_importing_display_does_not_change_the_altair_renderer():
    code = (
        "import altair as alt\nbefore = alt.renderers.active\n"
        "import wemix_nb, wemix_nb.display, wemix_nb.display.plots, wemix_nb.display.html\n"
        "print(before == alt.renderers.active)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_enable_offline_charts_switches_to_the_offline_jupyter_renderer():
    pytest.importorskip("anywidget")
    previous = alt.renderers.active
    try:
        returned = wemix_nb.display.enable_offline_charts()
        assert returned == previous
        assert alt.renderers.active == "jupyter"
        assert alt.renderers.options.get("offline") is True
    finally:
        alt.renderers.enable(previous)


# -------------------------------------------------------------------------------------------------
# the result's report


def test_report_shows_the_fixed_effects(slope_fit):
    tables = parse_tables(slope_fit._repr_html_())
    assert len(tables) == 3 and all("gt_table" in t.classes for t in tables)
    fixed = tables[0]
    assert fixed.title == slope_fit.formula
    assert "Linear mixed model (gaussian, identity link)" in fixed.headings[1]
    assert fixed.header == ["Fixed effects", "Estimate", "Robust SE", "t value", "p", "", "95% CI"]
    tidy = slope_fit.tidy()
    assert [r[0] for r in fixed.rows] == list(tidy["term"])
    for r in tidy.itertuples():
        row = fixed.row(r.term)
        assert number(row[1]) == shown(r.estimate, 3)
        assert number(row[2]) == shown(r.std_error, 3)
        assert number(row[3]) == shown(r.statistic, 2)
        assert row[4] == ("<0.001" if r.p_value < 0.001 else f"{r.p_value:.3f}")
        assert row[5] == display_html.significance_stars(r.p_value)
        low, high = row[6].strip("[]").split(", ")
        assert (number(low), number(high)) == (shown(r.conf_low, 3), shown(r.conf_high, 3))
    assert any("Robust (sandwich)" in note and "Subject" in note for note in fixed.notes)


def test_report_shows_the_variance_components_and_icc(slope_fit):
    variance = parse_tables(slope_fit._repr_html_())[1]
    assert variance.title == "Variance components"
    var_df = slope_fit.varDF
    intercept = var_df[(var_df.grp == "Subject") & (var_df.var1 == "Intercept") & var_df.var2.isna()].iloc[0]
    row = variance.row("Intercept")
    assert number(row[1]) == shown(intercept.vcov, 3)
    assert number(row[2]) == shown(intercept.SEvcov, 3)
    assert number(row[3]) == shown(np.sqrt(intercept.vcov), 3)
    cov = var_df[var_df.var2.notna() & (var_df.grp == "Subject")].iloc[0]
    row = variance.row("Intercept × Days")
    assert number(row[1]) == shown(cov.vcov, 3)
    corr = cov.vcov / np.sqrt(slope_fit.vars["Subject.Intercept"] * slope_fit.vars["Subject.Days"])
    assert number(row[4]) == shown(corr, 3)
    residual = variance.row("Residual")
    assert number(residual[1]) == shown(slope_fit.vars["Residual"], 3)
    assert number(residual[3]) == shown(slope_fit.sigma, 3)
    # random slopes: the ICC shown is the share between subjects at Days = 0, and the note says so
    (icc_note,) = [n for n in variance.notes if n.startswith("Intraclass correlation")]
    at_zero = slope_fit.vars["Subject.Intercept"] / (slope_fit.vars["Subject.Intercept"] + slope_fit.sigma**2)
    assert icc_note.startswith("Intraclass correlation (ICC) at covariate values 0:")
    assert f"{at_zero:.3f}" in icc_note and slope_fit.diagnostics.icc == pytest.approx(at_zero)
    assert any("Days = 0" in n and "depends on the covariates" in n for n in variance.notes)
    # the residual row has no "Residual" group heading above it
    html = slope_fit._repr_html_()
    assert not re.search(r'class="gt_group_heading"[^>]*>\s*Residual\s*<', html)


def test_report_icc_of_a_random_intercept_model(intercept_fit):
    variance = parse_tables(intercept_fit._repr_html_())[1]
    (icc_note,) = [n for n in variance.notes if n.startswith("Intraclass correlation")]
    assert icc_note.startswith(f"Intraclass correlation (ICC): {intercept_fit.ICC:.3f}")


def test_report_subtitle_counts_groups(pisa_fit):
    fixed = parse_tables(pisa_fit._repr_html_())[0]
    assert "5,057 rows, 150 groups (schoolid)" in fixed.headings[1]
    # 150 schools: the normal reference, as WeMix, and no few-groups warning
    assert any("normal reference distribution" in n for n in fixed.notes)
    assert "wemix-few-groups" not in pisa_fit._repr_html_()


def test_report_uses_t_with_few_top_level_groups(slope_fit):
    tables = parse_tables(slope_fit._repr_html_())
    fixed = tables[0]
    (note,) = [n for n in fixed.notes if "Robust (sandwich)" in n]
    assert "t reference distribution with 16 df (18 top-level groups − 2 fixed effects)" in note
    assert "Only 18 top-level groups" in note
    t16 = slope_fit.tidy(df="groups").set_index("term")
    normal = slope_fit.tidy(df="normal").set_index("term")
    for term in ("Intercept", "Days"):
        assert fixed.row(term)[5] == display_html.significance_stars(t16.loc[term, "p_value"])
    assert t16.loc["Days", "p_value"] > normal.loc["Days", "p_value"]
    # df= overrides the default
    forced = parse_tables(slope_fit.to_gt(df="normal").fixed.as_raw_html())[0]
    (forced_note,) = [n for n in forced.notes if "Robust (sandwich)" in n]
    assert "normal reference distribution" in forced_note and "too small" in forced_note
    low, _ = forced.row("Days")[6].strip("[]").split(", ")
    assert number(low) == shown(normal.loc["Days", "conf_low"], 3)


def test_p_values_of_exactly_zero_print_as_below_0_001(slope_fit):
    import dataclasses

    tiny = dataclasses.replace(slope_fit, SE=slope_fit.SE * 1e-40)
    assert (tiny.tidy()["p_value"] == 0).all()
    fixed = parse_tables(display_html.result_html(tiny))[0]
    assert [fixed.row(t)[4] for t in ("Intercept", "Days")] == ["<0.001", "<0.001"]


def test_report_shows_groups_weights_and_convergence(pisa_fit):
    groups = parse_tables(pisa_fit._repr_html_())[2]
    assert groups.title == "Groups and weights"
    assert groups.header == [
        "Level",
        "Unit",
        "Weight",
        "N",
        "Sum of weights",
        "Mean",
        "Min",
        "Max",
        "Design effect",
    ]
    for k, row in enumerate(groups.rows, start=1):
        stats = pisa_fit.wgtStats.loc[k]
        assert int(row[0]) == k
        assert row[2] == ["w_fstuwt", "w_fschwt"][k - 1]
        assert int(number(row[3])) == int(pisa_fit.ngroups.iloc[k - 1])
        for col, name in zip((4, 5, 6, 7), ("sum", "mean", "min", "max"), strict=True):
            assert number(row[col]) == shown(stats[name], 3)
    assert groups.rows[1][1] == "schoolid"
    w2 = pisa_fit.frame.levels[0].weight
    assert number(groups.rows[1][8]) == shown(len(w2) * np.sum(w2**2) / np.sum(w2) ** 2, 3)
    assert any(note.startswith("Converged") for note in groups.notes)


def test_report_flags_non_convergence(slope_fit):
    import dataclasses

    stuck = dataclasses.replace(slope_fit, converged=False, message="ABNORMAL_TERMINATION")
    html = stuck._repr_html_()
    assert "Did not converge: ABNORMAL_TERMINATION" in html
    assert "wemix-not-converged" in html


def test_to_gt_returns_restylable_great_tables(slope_fit):
    from great_tables import GT

    tables = slope_fit.to_gt()
    assert tables._fields == ("fixed", "variance", "groups")
    assert all(isinstance(t, GT) for t in tables)
    restyled = tables.fixed.tab_options(table_font_size="10px").as_raw_html()
    assert "10px" in restyled
    assert len(parse_tables(tables.as_raw_html())) == 3
    wide = slope_fit.to_gt(level=0.9, digits=1)
    fixed = parse_tables(wide.fixed.as_raw_html())[0]
    assert fixed.header[-1] == "90% CI"
    assert fixed.row("Days")[1] == f"{slope_fit.coef['Days']:.1f}"


def test_glmm_style_result_uses_z(slope_fit):
    import dataclasses

    class Binomial:
        name, link = "binomial", "logit"

    fake = dataclasses.replace(slope_fit, family=Binomial())
    fixed = parse_tables(fake.to_gt(df="normal").fixed.as_raw_html())[0]
    assert "z value" in fixed.header
    assert "binomial, logit link" in fixed.headings[1]
    # 18 subjects: by default a t reference, and the column says t
    assert "t value" in parse_tables(fake._repr_html_())[0].header


# -------------------------------------------------------------------------------------------------
# Wald tests


def test_wald_html_matches_the_test(slope_fit):
    test = wemix_nb.wald_test(slope_fit, coefs=["Days"], hypothesis=[10])
    (table,) = parse_tables(test._repr_html_())
    assert table.title == "Wald test of fixed effects"
    assert table.headings[1].startswith(f"chi-square = {test.statistic:.3f}, df = 1, p = {test.p_value:.3f}")
    row = table.row("Days")
    assert number(row[1]) == shown(slope_fit.coef["Days"], 3)
    assert number(row[2]) == 10.0
    assert number(row[4]) == shown(slope_fit.SE["Days"], 3)
    joint = wemix_nb.wald_test(slope_fit, type="Lambda")
    (table,) = parse_tables(display_html.wald_html(joint))
    assert [r[0] for r in table.rows] == list(joint.names)
    assert "df = 3" in table.headings[1]


# -------------------------------------------------------------------------------------------------
# comparison


def test_compare_table(intercept_fit, slope_fit):
    comparison = wemix_nb.compare([intercept_fit, slope_fit], names=["RI", "RS"])
    (table,) = parse_tables(comparison._repr_html_())
    assert table.title == "Model comparison"
    assert table.header[1:] == ["RI", "RS"]
    rows = table.rows
    days = [i for i, r in enumerate(rows) if r[0] == "Days"][0]
    for j, fit in enumerate((intercept_fit, slope_fit), start=1):
        p = fit.tidy().set_index("term").loc["Days", "p_value"]
        assert rows[days][j] == f"{fit.coef['Days']:.3f}" + display_html.significance_stars(p)
        assert rows[days + 1][j] == f"({fit.SE['Days']:.3f})"
    slope_var = table.row("Subject: Days")
    assert slope_var[1] == "" and number(slope_var[2]) == shown(slope_fit.vars["Subject.Days"], 3)
    lnl = table.row("Log pseudo-likelihood")
    assert [number(v) for v in lnl[1:]] == [shown(intercept_fit.lnl, 3), shown(slope_fit.lnl, 3)]
    assert table.row("N (rows)")[1:] == ["180", "180"]
    assert table.row("Groups: Subject")[1:] == ["18", "18"]
    labels = [r[0] for r in rows]
    assert labels.index("Residual") > labels.index("Subject: Intercept × Days")
    assert any("RI: Reaction ~ Days + (1|Subject)" in n for n in table.notes)
    # the ICC row shows each model's ICC as its report does, and the notes say what qualifies them
    icc = table.row("ICC")
    assert icc[1:] == [f"{intercept_fit.ICC:.3f}", f"{slope_fit.diagnostics.icc:.3f}"]
    assert "ICC: at covariate values 0 with random slopes." in table.notes
    assert any(n.startswith("Stars of RI, RS: t reference") for n in table.notes)


def test_compare_default_names_and_errors(intercept_fit, slope_fit):
    comparison = wemix_nb.compare([intercept_fit, slope_fit])
    assert comparison.names == ["(1)", "(2)"]
    assert list(comparison.table.columns[-2:]) == ["(1)", "(2)"]
    with pytest.raises(ArgumentError):
        wemix_nb.compare([])
    with pytest.raises(ArgumentError):
        wemix_nb.compare([intercept_fit, slope_fit], names=["a", "a"])


def test_compare_plot(intercept_fit, slope_fit):
    comparison = wemix_nb.compare([intercept_fit, slope_fit], names=["RI", "RS"])
    spec = comparison.plot(intercept=True).to_dict()
    (points,) = _layers(spec, "point")
    assert points["encoding"]["yOffset"]["field"] == "model"
    assert points["encoding"]["color"]["sort"] == ["RI", "RS"]
    data = pd.DataFrame(_layer_data(spec, points))
    assert len(data) == 4
    got = data.set_index(["model", "term"])["estimate"]
    assert got[("RS", "Days")] == pytest.approx(slope_fit.coef["Days"])
    # one band per term, models side by side in it: at most 25 px per term and model
    assert spec["height"] <= 25 * 2 * 2
    (bands,) = _layers(spec, "rect")
    assert "yOffset" not in bands["encoding"] and bands["encoding"]["y"]["field"] == "term"
    # the intercept is left out by default
    default = comparison.plot().to_dict()
    (points,) = _layers(default, "point")
    assert {row["term"] for row in _layer_data(default, points)} == {"Days"}


def test_compare_plot_height_of_many_terms_and_models():
    rng = np.random.default_rng(3)
    n = 400
    data = pd.DataFrame({f"x{j}": rng.normal(size=n) for j in range(8)})
    data["g"] = np.repeat(np.arange(40), n // 40)
    data["y"] = data.sum(axis=1) + rng.normal(size=40)[data["g"]] + rng.normal(size=n)
    fit = wemix_nb.mix("y ~ " + " + ".join(f"x{j}" for j in range(8)) + " + (1|g)", data)
    spec = wemix_nb.compare([fit, fit, fit]).plot().to_dict()
    assert spec["height"] <= 25 * 8 * 3  # today's 1,612 px for 8 terms x 3 models was too tall
    terms = {row["term"] for row in _layer_data(spec, _layers(spec, "point")[0])}
    assert terms == {f"x{j}" for j in range(8)}


# -------------------------------------------------------------------------------------------------
# charts


def test_coef_plot(slope_fit):
    spec = slope_fit.plot_coef(intercept=True).to_dict()
    bands, zero, bars, points = spec["layer"]
    assert bands["mark"]["type"] == "rect"
    assert bars["mark"]["type"] == "rule" and bars["encoding"]["x"]["field"] == "conf_low"
    assert bars["encoding"]["x2"]["field"] == "conf_high"
    assert points["encoding"]["y"]["sort"] == ["Intercept", "Days"]
    data = pd.DataFrame(_layer_data(spec, points)).set_index("term")
    tidy = slope_fit.tidy().set_index("term")
    np.testing.assert_allclose(
        data.loc[tidy.index, ["estimate", "conf_low", "conf_high"]],
        tidy[["estimate", "conf_low", "conf_high"]],
    )
    assert _layer_data(spec, zero) == [{"zero": 0.0}]
    default = slope_fit.plot_coef().to_dict()  # the intercept is left out unless asked for
    assert default["layer"][3]["encoding"]["y"]["sort"] == ["Days"]
    with pytest.raises(ArgumentError):
        slope_fit.plot_coef(terms=["nope"])
    only_intercept = wemix_nb.mix("Reaction ~ 1 + (1|Subject)", wemix_nb.datasets.sleepstudy())
    with pytest.raises(ArgumentError, match="intercept=True"):
        only_intercept.plot_coef()


def test_caterpillar_plot_sorted_with_intervals_and_tooltips(slope_fit):
    spec = slope_fit.plot_ranef(term="Days").to_dict()
    rules, points = spec["layer"][1], spec["layer"][2]
    data = pd.DataFrame(_layer_data(spec, points))
    modes = slope_fit.ranef["Subject"]["Days"]
    sds = slope_fit.ranef_sd["Subject"]["Days"]
    expected_order = [str(g) for g in modes.sort_values(kind="stable").index]
    assert points["encoding"]["y"]["sort"] == expected_order
    assert list(data["group"]) == expected_order
    assert list(data["mode"]) == sorted(data["mode"])
    by_group = data.set_index("group")
    np.testing.assert_allclose(by_group.loc[[str(g) for g in modes.index], "mode"], modes)
    np.testing.assert_allclose(by_group["upper"] - by_group["mode"], 1.96 * sds.to_numpy()[0], rtol=1e-12)
    assert (by_group["n"] == 10).all()
    assert rules["encoding"]["x"]["field"] == "lower" and rules["encoding"]["x2"]["field"] == "upper"
    tooltip_fields = [t["field"] for t in points["encoding"]["tooltip"]]
    assert {"group", "n", "mode", "sd", "lower", "upper"} <= set(tooltip_fields)
    assert spec["title"]["text"] == "Random effects: Days by Subject"
    assert spec["title"]["subtitle"][0].startswith("18 groups (Subject); intervals: mode ± 1.96")
    assert len(spec["title"]["subtitle"]) == 1  # unit weights: nothing to say about them


def test_caterpillar_top_and_errors(slope_fit):
    spec = slope_fit.plot_ranef(top=5).to_dict()
    data = pd.DataFrame(_layer_data(spec, spec["layer"][2]))
    modes = slope_fit.ranef["Subject"]["Intercept"]
    biggest = set(modes.abs().sort_values(ascending=False).index[:5].astype(str))
    assert set(data["group"]) == biggest and list(data["mode"]) == sorted(data["mode"])
    assert "the 5 groups with the largest |mode| of 18" in spec["title"]["subtitle"]
    with pytest.raises(ArgumentError):
        slope_fit.plot_ranef(term="nope")
    with pytest.raises(ArgumentError):
        slope_fit.plot_ranef(group="nope")
    with pytest.raises(ArgumentError):
        slope_fit.plot_ranef(max_groups=10_000)


def test_caterpillar_of_survey_weights_rescales_and_says_so(pisa_fit):
    spec = pisa_fit.plot_ranef().to_dict()
    subtitle = spec["title"]["subtitle"]
    assert subtitle[0].startswith("150 groups (schoolid); intervals: mode ± 1.96 conditional SD: ")
    assert subtitle[1] == "Weights rescaled within each group to its number of sampled units"
    (points,) = _layers(spec, "point")
    data = pd.DataFrame(_layer_data(spec, points)).set_index("group")
    table = pisa_fit.random_effects()["schoolid"]
    table.index = table.index.astype(str)
    np.testing.assert_allclose(data.loc[table.index, "sd"], table["Intercept_sd"], rtol=1e-12)
    # each interval coloured by where it lies, and counted in the subtitle
    above = int((data["lower"] > 0).sum())
    below = int((data["upper"] < 0).sum())
    assert set(data.loc[data["lower"] > 0, "side"]) == {"above 0"}
    assert f"{above} above 0, {below} below 0, {150 - above - below} include 0" in subtitle[0]
    assert points["encoding"]["color"]["field"] == "side"
    raw = pisa_fit.plot_ranef(raw=True).to_dict()
    assert raw["title"]["subtitle"][1] == "Pseudo-likelihood: weights as fitted, not rescaled"
    raw_data = pd.DataFrame(_layer_data(raw, _layers(raw, "point")[0])).set_index("group")
    np.testing.assert_allclose(
        raw_data.loc[table.index, "sd"], pisa_fit.ranef_sd["schoolid"]["Intercept"].to_numpy(), rtol=1e-12
    )
    assert (raw_data["side"] != "includes 0").sum() > (data["side"] != "includes 0").sum()


@pytest.fixture(scope="module")
def many_groups_fit():
    rng = np.random.default_rng(5)
    groups = 20_000
    g = np.repeat(np.arange(groups), 2)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(size=groups)[g] + rng.normal(size=g.size)
    return wemix_nb.mix("y ~ x + (1|g)", pd.DataFrame({"y": y, "x": x, "g": g}))


def test_caterpillar_of_20000_groups_stays_under_altairs_row_limit(many_groups_fit):
    chart = many_groups_fit.plot_ranef()
    spec = chart.to_dict()  # raises MaxRowsError if more than 5,000 rows were embedded
    points = spec["layer"][2]
    data = pd.DataFrame(_layer_data(spec, points))
    assert len(data) == 1000 <= plots.ALTAIR_MAX_ROWS
    modes = many_groups_fit.ranef["g"]["Intercept"]
    assert data["mode"].iloc[0] == modes.min() and data["mode"].iloc[-1] == modes.max()
    assert data["rank"].iloc[0] == 1 and data["rank"].iloc[-1] == 20_000
    assert list(data["rank"]) == sorted(data["rank"])
    assert points["encoding"]["y"]["field"] == "rank" and points["encoding"]["y"]["type"] == "quantitative"
    assert "1,000 of 20,000 groups shown, evenly by rank (extremes kept)" in spec["title"]["subtitle"]
    assert alt.data_transformers.options.get("max_rows", 5000) == 5000  # the global limit untouched
    bigger = many_groups_fit.plot_ranef(max_groups=5000).to_dict()
    assert len(_layer_data(bigger, bigger["layer"][2])) == 5000


def test_charts_are_json_serialisable(slope_fit):
    for chart in (slope_fit.plot_coef(), slope_fit.plot_ranef()):
        json.dumps(chart.to_dict())


# -------------------------------------------------------------------------------------------------
# maketables plug-in protocol


def test_maketables_hooks(pisa_fit):
    table = pisa_fit.__maketables_coef_table__
    assert table.index.name == "Coefficient"
    assert list(table.columns) == ["b", "se", "t", "p", "ci95l", "ci95u"]
    tidy = pisa_fit.tidy().set_index("term")
    np.testing.assert_allclose(table["b"], tidy["estimate"])
    np.testing.assert_allclose(table["se"], tidy["std_error"])
    np.testing.assert_allclose(table["ci95u"], tidy["conf_high"])
    assert pisa_fit.__maketables_stat__("N") == 5057
    assert pisa_fit.__maketables_stat__("n_clusters") == 150
    assert pisa_fit.__maketables_stat__("ll") == pisa_fit.lnl
    assert pisa_fit.__maketables_stat__("icc") == pisa_fit.ICC
    assert pisa_fit.__maketables_stat__("groups:schoolid") == 150
    assert pisa_fit.__maketables_stat__("r2") is None
    assert pisa_fit.__maketables_depvar__ == "pv1math"
    assert pisa_fit.__maketables_vcov_info__ == {"vcov_type": "sandwich", "clustervar": "schoolid"}
    assert "ll" in pisa_fit.__maketables_default_stat_keys__
    assert pisa_fit.__maketables_stat_labels__["n_clusters"] == "Groups (schoolid)"


def test_maketables_etable(intercept_fit, slope_fit):
    mt = pytest.importorskip("maketables")

    table = mt.ETable([intercept_fit, slope_fit], model_stats=["N", "se_type", "ll"]).df
    assert "10.467" in str(table.iloc[0, 0]) or "10.467" in table.to_string()
    assert "robust, by: Subject" in table.to_string()


# -------------------------------------------------------------------------------------------------
# a display never raises


def _broken(*args, **kwargs):
    raise RuntimeError("great-tables exploded\nsecond line of the message")


def _assert_text_fallback(html: str, text: str) -> None:
    assert html.startswith('<div class="wemix-text-fallback">')
    assert "HTML report unavailable (RuntimeError: great-tables exploded); the text summary follows." in html
    assert "second line" not in html  # the reason is one line
    assert "<pre>" in html and text in html


def test_result_repr_html_falls_back_to_the_text_summary(slope_fit, monkeypatch):
    monkeypatch.setattr(display_html, "result_html", _broken)
    html = slope_fit._repr_html_()
    _assert_text_fallback(html, "Fixed Effects:")
    assert "Variance terms:" in html and "Notes:" in html  # the whole summary, with its notes


def test_result_repr_html_survives_a_failing_summary(slope_fit, monkeypatch):
    monkeypatch.setattr(display_html, "result_html", _broken)
    monkeypatch.setattr(type(slope_fit), "summary", _broken)
    html = slope_fit._repr_html_()
    assert "Linear weighted mixed model: Reaction ~ Days" in html  # str(fit), the next text form


def test_other_results_repr_html_fall_back(slope_fit, intercept_fit, monkeypatch):
    test = wemix_nb.wald_test(slope_fit, coefs=["Days"])
    weights = wemix_nb.describe_weights(
        wemix_nb.datasets.pisa2012_like(), ["w_fstuwt", "w_fschwt"], groups=["schoolid"]
    )
    comparison = wemix_nb.compare([intercept_fit, slope_fit])
    monkeypatch.setattr(display_html, "wald_html", _broken)
    monkeypatch.setattr(display_html, "weights_html", _broken)
    monkeypatch.setattr(display_html.Comparison, "to_gt", _broken)
    _assert_text_fallback(test._repr_html_(), "Wald")
    _assert_text_fallback(weights._repr_html_(), "w_fschwt")
    _assert_text_fallback(comparison._repr_html_(), "Model comparison")


@pytest.mark.parametrize("n_models", [1, 2, 3, 5])
def test_compare_plot_stays_within_25_px_per_term_and_model(slope_fit, n_models):
    spec = wemix_nb.compare([slope_fit] * n_models).plot(intercept=True).to_dict()
    assert spec["height"] <= 25 * 2 * n_models
