"""Self-rendering charts (wemix_nb.display.render): the display bundle, Altair's global settings left
alone, composition, and the fallback when drawing fails.

The bundle is produced through IPython's own display formatter where it matters, so the tests see
what a notebook front end receives.
"""

from __future__ import annotations

import base64
import json
import pickle
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb.display import render
from wemix_nb.display.render import MIME_PNG, MIME_SVG, MIME_TEXT, MIME_VEGA, SelfRendering, self_rendering
from wemix_nb.errors import ArgumentError

alt = pytest.importorskip("altair")
vlc = pytest.importorskip("vl_convert")
IPython = pytest.importorskip("IPython")

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def fit():
    return wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", wemix_nb.datasets.sleepstudy())


@pytest.fixture(scope="module")
def fit_ri():
    return wemix_nb.mix("Reaction ~ Days + (1|Subject)", wemix_nb.datasets.sleepstudy())


def scatter(n: int = 50, seed: int = 1) -> alt.Chart:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "k": rng.integers(0, 3, n)})
    return (
        alt.Chart(data)
        .mark_point()
        .encode(x="x:Q", y="y:Q", color="k:N", tooltip=["x:Q", "y:Q"])
        .properties(title=alt.TitleParams("A scatter", subtitle=["second line"]))
    )


def shown(obj) -> tuple[dict, dict]:
    """What IPython sends to the front end for `obj` (data, metadata)."""
    return IPython.core.formatters.DisplayFormatter().format(obj)


def global_settings():
    return (
        alt.renderers.active,
        dict(alt.renderers.options),
        alt.data_transformers.active,
        dict(alt.data_transformers.options),
        alt.data_transformers.consolidate_datasets,
    )


def svg_marks(svg: str) -> list:
    root = ET.fromstring(svg)
    assert root.tag == SVG_NS + "svg" and "marks" in root.get("class", "")
    return [e for e in root.iter() if e.tag in (SVG_NS + "path", SVG_NS + "line") and e.get("d", "x")]


# -------------------------------------------------------------------------------------------------
# the bundle


def test_bundle_holds_vega5_svg_and_text(fit):
    data, metadata = shown(self_rendering(fit.plot_coef(intercept=True)))
    assert set(data) == {MIME_VEGA, MIME_SVG, MIME_TEXT}
    vega = data[MIME_VEGA]
    assert "/vega/v5" in vega["$schema"]  # the runtime JupyterLab 4, Notebook 7 and VS Code bundle
    assert vega["marks"]
    values = [d for d in vega["data"] if "values" in d]
    assert values and not any("url" in d for d in vega["data"])  # data inline: nothing to fetch
    terms = {row["term"] for d in values for row in d["values"] if isinstance(row, dict) and "term" in row}
    assert terms == {"Intercept", "Days"}
    assert metadata[MIME_VEGA]["embed_options"]["actions"]["editor"] is False  # no link to the web
    marks = svg_marks(data[MIME_SVG])
    assert len(marks) >= 4  # two intervals and two points at least
    texts = [e.text for e in ET.fromstring(data[MIME_SVG]).iter(SVG_NS + "text")]
    assert "Intercept" in texts and "Days" in texts
    assert data[MIME_TEXT].splitlines() == [
        f"Fixed effects: {fit.formula}",
        "95% intervals from robust (sandwich) standard errors",
    ]


def test_tooltips_reach_the_interactive_view(fit):
    vega = render.chart_bundle(self_rendering(fit.plot_ranef()))[0][MIME_VEGA]
    encoded = json.dumps(vega["marks"])
    assert '"tooltip"' in encoded and "conditional SD" in encoded


def test_many_marks_give_a_png_instead_of_a_large_svg():
    chart = self_rendering(scatter(3000))
    full_svg = vlc.vegalite_to_svg(chart.to_dict())
    assert len(full_svg.encode()) > render.SVG_MAX_BYTES
    data, _ = shown(chart)
    assert set(data) == {MIME_VEGA, MIME_PNG, MIME_TEXT}
    png = base64.b64decode(data[MIME_PNG])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    root = ET.fromstring(full_svg)
    assert (width, height) == (int(root.get("width")), int(root.get("height")))  # drawn at 1:1


def test_include_and_exclude_skip_the_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("vl-convert called for an excluded mimetype")

    monkeypatch.setattr(vlc, "vegalite_to_svg", fail)
    monkeypatch.setattr(vlc, "vegalite_to_vega", fail)
    data, _ = self_rendering(scatter())._repr_mimebundle_(include={MIME_TEXT})
    assert data == {MIME_TEXT: "A scatter\nsecond line"}
    data, _ = self_rendering(scatter())._repr_mimebundle_(exclude={MIME_VEGA, MIME_SVG, MIME_PNG})
    assert set(data) == {MIME_TEXT}


def test_every_wemix_chart_renders(fit, fit_ri):
    charts = [fit.plot_coef(), fit.plot_ranef(), fit.plot_ranef(term="Days", top=5)]
    charts.append(wemix_nb.compare([fit_ri, fit], names=["RI", "RS"]).plot())
    for chart in charts:
        data, _ = render.chart_bundle(self_rendering(chart))
        assert {MIME_VEGA, MIME_SVG} <= set(data), data.get(MIME_TEXT)
        assert svg_marks(data[MIME_SVG])
        assert "[chart" not in data[MIME_TEXT]


# -------------------------------------------------------------------------------------------------
# Altair's global settings and users' own charts


def test_global_settings_unchanged_by_creating_and_showing(fit, fit_ri):
    before = global_settings()
    assert before[0] == "default" and before[2] == "default"
    for chart in (
        fit.plot_coef(),
        fit.plot_ranef(),
        fit.plot_ranef(raw=True),
        wemix_nb.compare([fit_ri, fit]).plot(),
        self_rendering(scatter()),
    ):
        shown(chart)
        shown(chart | chart)
    assert global_settings() == before


def test_users_own_chart_is_displayed_by_altair_as_before(fit):
    mine = scatter()
    first, _ = shown(mine)
    shown(self_rendering(fit.plot_coef()))
    again, _ = shown(mine)
    assert type(mine) is alt.Chart and not isinstance(mine, SelfRendering)
    for bundle in (first, again):  # Altair's default renderer: HTML loading vega-embed; no Vega 5
        assert MIME_VEGA not in bundle and "vegaEmbed" in bundle["text/html"]
    assert set(first) == set(again)


def test_wrapping_leaves_the_original_chart_alone():
    mine = scatter()
    spec = mine.to_dict()
    wrapped = self_rendering(mine)
    assert wrapped is not mine and type(mine) is alt.Chart
    assert mine.to_dict() == spec == wrapped.to_dict()
    assert self_rendering(wrapped) is wrapped
    with pytest.raises(ArgumentError, match="takes an Altair chart"):
        self_rendering(pd.DataFrame({"a": [1]}))


def test_data_inline_whatever_the_active_data_transformer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the json transformer writes its files here
    chart = self_rendering(scatter())
    with alt.data_transformers.enable("json"):
        assert "url" in json.dumps(scatter().to_dict()["data"])  # a user's chart: data in a file
        for f in tmp_path.iterdir():
            f.unlink()
        data, _ = shown(chart)
        assert not list(tmp_path.iterdir())
    assert {MIME_VEGA, MIME_SVG} <= set(data)
    assert not any("url" in d for d in data[MIME_VEGA]["data"])
    assert alt.data_transformers.active == "default"


def test_column_types_inferred_as_altair_does():
    data = pd.DataFrame({"x": [1.0, 2.0], "g": ["a", "b"]})
    chart = self_rendering(alt.Chart(data).mark_bar().encode(x="x", y="g", tooltip=["g", "x"]))
    data, _ = render.chart_bundle(chart)
    assert {MIME_VEGA, MIME_SVG} <= set(data), data[MIME_TEXT]
    assert render.vegalite_spec(chart)["encoding"]["x"]["type"] == "quantitative"


def test_row_limit_follows_altair_default_and_the_users_choice():
    big = self_rendering(scatter(6000))
    text = shown(big)[0]
    assert set(text) == {MIME_TEXT} and "MaxRowsError" in text[MIME_TEXT]
    with alt.data_transformers.disable_max_rows():
        data, _ = render.chart_bundle(big, include={MIME_VEGA, MIME_TEXT})
    assert MIME_VEGA in data
    assert alt.data_transformers.options.get("max_rows", 5000) == 5000


# -------------------------------------------------------------------------------------------------
# still an Altair chart


def test_behaves_as_the_altair_chart(fit, tmp_path):
    chart = self_rendering(fit.plot_coef())
    assert isinstance(chart, alt.LayerChart) and repr(chart) == "alt.LayerChart(...)"
    assert chart.to_dict() == fit.plot_coef().to_dict()
    chart.save(tmp_path / "coef.svg")
    chart.save(tmp_path / "coef.json")
    assert svg_marks((tmp_path / "coef.svg").read_text())
    assert json.loads((tmp_path / "coef.json").read_text())["layer"]
    restored = pickle.loads(pickle.dumps(chart))
    assert isinstance(restored, SelfRendering) and restored.to_dict() == chart.to_dict()


def test_composition_keeps_the_self_rendering(fit):
    ours = self_rendering(fit.plot_coef())
    theirs = render.plain(fit.plot_coef(intercept=False))  # a plain LayerChart
    point = self_rendering(scatter())
    composed = {
        "properties": ours.properties(width=200),
        "configure": ours.configure_axis(grid=False),
        "interactive": ours.interactive(),
        "ours | theirs": ours | theirs,
        "theirs | ours": theirs | ours,
        "ours & theirs": ours & theirs,
        "theirs & ours": theirs & ours,
        "ours + theirs": ours + theirs,
        "theirs + ours": theirs + ours,
        "chart + chart": point + point,
        "facet": point.facet("k:N"),
        "repeat": point.repeat(["x", "y"]),
        "nested": (ours | theirs) & ours,
    }
    for name, chart in composed.items():
        assert isinstance(chart, SelfRendering), name
    for name in ("theirs | ours", "facet", "repeat", "nested"):  # drawing each takes ~0.1 s
        data, _ = render.chart_bundle(composed[name])
        assert {MIME_VEGA, MIME_SVG} <= set(data) and "[chart" not in data[MIME_TEXT], name
    assert composed["properties"].width == 200 and not isinstance(theirs, SelfRendering)


def test_building_from_plain_altair_degrades_to_altair_display(fit):
    ours = self_rendering(fit.plot_coef())
    for chart in (alt.hconcat(ours, ours), scatter() | ours, alt.layer(ours)):
        assert not isinstance(chart, SelfRendering)
        assert MIME_VEGA not in shown(chart)[0]  # shown by the active Altair renderer, as any chart
        assert isinstance(self_rendering(chart), SelfRendering)
    assert render.describe(ours | ours, render.vegalite_spec(ours | ours)).count("Fixed effects") == 2
    back = render.plain(ours)
    assert type(back) is alt.LayerChart and back.to_dict() == ours.to_dict()


# -------------------------------------------------------------------------------------------------
# never raises: a visible fallback that says why


def test_fallback_when_vl_convert_fails(monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("vl-convert is broken\nsecond line of the message")

    for name in ("vegalite_to_vega", "vegalite_to_svg", "svg_to_png"):
        monkeypatch.setattr(vlc, name, boom)
    data, metadata = shown(self_rendering(scatter()))
    assert set(data) == {MIME_TEXT} and metadata == {}
    assert data[MIME_TEXT].splitlines() == [
        "A scatter",
        "second line",
        "[chart no interactive view: RuntimeError: vl-convert is broken]",
        "[chart no static picture: RuntimeError: vl-convert is broken]",
    ]
    assert capsys.readouterr().err == ""  # nothing printed: the text output says it all


def test_partial_failure_keeps_what_worked(monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("no fonts")

    monkeypatch.setattr(vlc, "vegalite_to_svg", boom)
    data, _ = render.chart_bundle(self_rendering(scatter()))
    assert set(data) == {MIME_VEGA, MIME_TEXT}
    assert "[chart no static picture: ValueError: no fonts]" in data[MIME_TEXT]


def test_vega_lite_5_rejecting_a_spec_falls_back_to_altairs_own_version(monkeypatch):
    real = vlc.vegalite_to_vega
    seen = []

    def only_v6(spec, vl_version=None, **kwargs):
        seen.append(vl_version)
        if vl_version.startswith("5."):
            raise ValueError("unknown property")
        return real(spec, vl_version=vl_version, **kwargs)

    monkeypatch.setattr(vlc, "vegalite_to_vega", only_v6)
    data, _ = render.chart_bundle(self_rendering(scatter()))
    assert seen[0].startswith("5.") and seen[1] == alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    assert data[MIME_VEGA]["marks"]


def test_last_resort_when_even_the_fallback_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(render, "chart_bundle", broken)
    data, metadata = shown(self_rendering(scatter()))
    assert data == {MIME_TEXT: "Altair Chart\n[chart not drawn: RuntimeError: unexpected]"} and metadata == {}


def test_fallback_when_the_chart_cannot_be_serialised():
    broken = self_rendering(alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x:Q"))
    broken.mark = {"type": "no-such-mark"}
    data, metadata = shown(broken)
    assert set(data) == {MIME_TEXT} and metadata == {}
    assert "Altair Chart" in data[MIME_TEXT] and "[chart no specification:" in data[MIME_TEXT]
