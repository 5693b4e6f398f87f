"""ipywidgets front ends, driven from Python: set values, click buttons, read the outputs."""

from __future__ import annotations

import pytest
from _html_tables import number, parse_tables, shown

import wemix_nb

widgets = pytest.importorskip("ipywidgets")
pytest.importorskip("great_tables")


@pytest.fixture(scope="module")
def fit():
    return wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", wemix_nb.datasets.sleepstudy())


def test_wald_widget_parts(fit):
    w = fit.wald_widget()
    assert isinstance(w, widgets.VBox)
    assert isinstance(w.coefs, widgets.SelectMultiple)
    assert list(w.coefs.options) == [("Intercept", "Intercept"), ("Days", "Days")]
    assert w.coefs.value == ("Days",)  # the first slope: the list opens at its top
    assert isinstance(w.values, widgets.Text)
    assert isinstance(w.kind, widgets.ToggleButtons) and list(w.kind.options) == ["beta", "Lambda"]
    assert isinstance(w.button, widgets.Button) and w.button.description == "Test"
    assert isinstance(w.output, widgets.HTML)
    # the "type" label sits beside its toggle, in the Test button's row
    (row,) = [c for c in w.children if isinstance(c, widgets.HBox)]
    label = row.children[row.children.index(w.kind) - 1]
    assert isinstance(label, widgets.Label) and label.value.startswith("type")
    assert w.kind.description == ""


def test_wald_widget_beta_click_updates_output(fit):
    w = wemix_nb.widgets.wald_widget(fit)
    before = w.output.value
    w.coefs.value = ("Days",)
    w.values.value = "10"
    w.button.click()
    assert w.output.value != before
    expected = wemix_nb.wald_test(fit, coefs=["Days"], hypothesis=[10])
    assert w.test.statistic == pytest.approx(expected.statistic)
    (table,) = parse_tables(w.output.value)
    assert table.headings[1].startswith(f"chi-square = {expected.statistic:.3f}, df = 1")
    assert number(table.row("Days")[2]) == 10.0
    # two coefficients, blank values: all zero
    w.coefs.value = ("Intercept", "Days")
    w.values.value = ""
    w.button.click()
    assert w.test.df == 2
    assert w.test.statistic == pytest.approx(wemix_nb.wald_test(fit).statistic)


def test_wald_widget_lambda(fit):
    w = fit.wald_widget()
    w.kind.value = "Lambda"
    lambda_names = list(wemix_nb.wald_test(fit, type="Lambda").names)
    # listed by the report's labels; selecting one gives the name wald_test takes
    assert [value for _, value in w.coefs.options] == lambda_names
    labels = [label for label, _ in w.coefs.options]
    assert labels == ["Subject: Intercept", "Subject: Intercept × Days", "Subject: Days"]
    report = parse_tables(fit._repr_html_())[1]
    assert {"Intercept", "Intercept × Days", "Days"} <= {r[0] for r in report.rows}
    assert w.coefs.value == ("Subject.Intercept",)
    w.coefs.value = ("Subject.Days",)
    w.button.click()
    assert w.test.type == "Lambda"
    (table,) = parse_tables(w.output.value)
    assert table.title == "Wald test of random-effect (co)variances"
    assert number(table.row("Subject.Days")[1]) == shown(fit.vars["Subject.Days"], 3)


def test_wald_widget_shows_errors_instead_of_raising(fit):
    w = fit.wald_widget()
    w.coefs.value = ("Intercept", "Days")
    w.values.value = "1"  # one value for two coefficients
    w.button.click()
    assert "wemix-error" in w.output.value and "ArgumentError" in w.output.value and w.test is None
    w.values.value = "ten"
    w.button.click()
    assert "numbers separated by commas" in w.output.value
    w.coefs.value = ()
    w.button.click()
    assert "Select at least one parameter" in w.output.value


def test_wald_widget_saves_the_report(fit, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w = fit.wald_widget()
    assert w.save_button.description == "Save report" and w.report_path.value == "report.html"
    w.save_button.click()
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "Saved <code>report.html</code>" in w.save_status.value
    w.report_path.value = "draft.md"
    w.save_button.click()
    assert (tmp_path / "draft.md").exists() and (tmp_path / "draft-figure-1.png").exists()
    w.report_path.value = "draft.pdf"  # an error is shown, not raised
    w.save_button.click()
    assert "wemix-error" in w.save_status.value and "Unknown report format" in w.save_status.value


def test_model_builder_fits_and_shows_the_report():
    data = wemix_nb.datasets.pisa2012_like()
    b = wemix_nb.widgets.model_builder(data)
    assert isinstance(b, widgets.VBox)
    assert "pv1math" in b.outcome.options and "st04q01" not in b.outcome.options  # numeric outcomes only
    assert b.outcome.value == "pv1math"  # not the school id, the first column
    weights = [value for _, value in b.row_weight.options]
    assert weights == ["", "pv1math", "w_fstuwt", "w_fschwt"] and b.row_weight.label == "(none)"
    assert "escs" not in weights  # only numeric columns with positive values (and no identifier)
    assert b.button.disabled and "(1|group)" in b.status.value  # no random effect yet
    assert list(b.family.options) == ["gaussian", "binomial", "poisson"]
    b.outcome.value = "pv1math"
    b.predictors.value = ("escs", "st04q01")
    b.groups.value = ("schoolid",)
    assert b.formula.value == "pv1math ~ escs + st04q01 + (1|schoolid)"
    assert not b.button.disabled and b.status.value == ""
    assert list(b.group_weights) == ["schoolid"]
    b.row_weight.value = "w_fstuwt"
    b.group_weights["schoolid"].value = "w_fschwt"
    assert b.weights() == ["w_fstuwt", "w_fschwt"]
    seen = []
    b.progress.layout.observe(lambda change: seen.append(change["new"]), names="visibility")
    b.button.click()
    assert seen == ["visible", "hidden"]  # the progress indicator was shown while fitting
    direct = wemix_nb.mix("pv1math ~ escs + st04q01 + (1|schoolid)", data, ["w_fstuwt", "w_fschwt"])
    assert b.result.lnl == pytest.approx(direct.lnl)
    tables = parse_tables(b.output.value)
    assert tables[0].title == direct.formula
    assert number(tables[0].row("escs")[1]) == shown(direct.coef["escs"], 3)
    assert b.status.value == "Fitted." and not b.button.disabled


def test_model_builder_orders_levels_and_reports_errors():
    data = wemix_nb.datasets.pisa2012_like()
    data["region"] = data["schoolid"] % 10
    b = wemix_nb.widgets.model_builder(data)
    b.outcome.value = "pv1math"
    b.groups.value = ("region", "schoolid")
    assert b.ordered_groups() == ["schoolid", "region"]  # most groups first = level 2
    assert b.formula.value == "pv1math ~ 1 + (1|schoolid) + (1|region)"
    b.row_weight.value = "w_fstuwt"
    b.button.click()  # level weights missing
    assert "wemix-error" in b.output.value and "Choose a weight for every grouping level" in b.output.value
    assert b.result is None
    # the error is also shown beside the Fit button, in one line
    assert "ArgumentError: Choose a weight for every grouping level" in b.status.value
    b.formula.value = "pv1math ~ nope + (1|schoolid)"
    b.row_weight.value = ""
    b.groups.value = ("schoolid",)
    b.formula.value = "pv1math ~ nope + (1|schoolid)"
    b.button.click()
    assert "wemix-error" in b.output.value
    with pytest.raises(Exception, match="DataFrame"):
        wemix_nb.widgets.model_builder([1, 2])


def test_model_builder_fit_needs_a_random_effect():
    b = wemix_nb.widgets.model_builder(wemix_nb.datasets.sleepstudy())
    assert b.outcome.value == "Reaction"
    assert b.formula.value == "Reaction ~ 1" and b.button.disabled
    b.formula.value = "Reaction ~ Days + (Days | Subject)"  # typed by hand
    assert not b.button.disabled and "wemix-hint" not in b.status.value
    b.formula.value = "Reaction ~ Days + Subject"
    assert b.button.disabled


def test_model_builder_shows_errors_of_its_controls_inline(monkeypatch):
    b = wemix_nb.widgets.model_builder(wemix_nb.datasets.sleepstudy())

    def broken():
        raise RuntimeError("cannot order the groups")

    monkeypatch.setattr(b, "ordered_groups", broken)
    b.groups.value = ("Subject",)  # the observers call ordered_groups: shown, not raised
    assert "RuntimeError: cannot order the groups" in b.status.value
    assert "wemix-error" in b.output.value
