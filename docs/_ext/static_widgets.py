"""Widget outputs of executed notebooks as static pictures: no widget JavaScript, no network.

myst-nb writes a widget output as a ``<script type="application/vnd.jupyter.widget-view+json">``
tag and embeds the widgets' saved state, for ipywidgets' HTML manager to draw in the browser; that
manager comes from a CDN, so offline (and on any page viewed without it) nothing shows. After a
notebook is read, this extension replaces each such output by what the saved state shows:

* an Altair ``JupyterChart`` (what ``wemix_nb.display.enable_offline_charts()`` makes of a user's
  own Altair chart) becomes the chart's picture, drawn by vl-convert exactly as wemix_nb's own
  charts are (:func:`wemix_nb.display.render.static_image`: SVG, or PNG when the SVG is large);
* ipywidgets controls (boxes, lists, buttons, text fields, HTML) become disabled HTML controls
  showing the state they were left in, captioned as a picture of an interactive widget;
* anything else becomes a one-line note naming the widget.

The embedded widget state is then dropped from the page.
"""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

VIEW_TAG = re.compile(r'^<script type="application/vnd\.jupyter\.widget-view\+json">(.*)</script>$', re.S)
CAPTION = (
    '<div class="wemix-widget-caption">A picture of an interactive widget, as the notebook left it: '
    "run the notebook (JupyterLab, Binder) to use it.</div>"
)


def _unescape(body: str) -> str:
    return body.replace("<\\/", "</")


# -------------------------------------------------------------------------------------------------
# Altair charts


def _is_altair_chart(state: dict[str, Any]) -> bool:
    return isinstance(state.get("spec"), dict) and "_vl_selections" in state


def chart_html(spec: dict[str, Any]) -> str:
    """An ``<img>`` of the Vega-Lite ``spec`` (data URI: nothing to fetch, ids cannot clash)."""
    from wemix_nb.display.render import static_image

    mime, image = static_image(spec)
    if mime == "image/svg+xml":
        image = base64.b64encode(image.encode("utf-8")).decode("ascii")
    return f'<div class="wemix-chart"><img alt="chart" src="data:{mime};base64,{image}"></div>'


# -------------------------------------------------------------------------------------------------
# ipywidgets controls


def _label(state: dict[str, Any]) -> str:
    text = state.get("description") or ""
    return f'<label class="wemix-w-label">{html.escape(text)}</label>' if text else ""


def _options(state: dict[str, Any], selected: set[int], size: int | None) -> str:
    labels = state.get("_options_labels") or []
    items = "".join(
        f"<option{' selected' if i in selected else ''}>{html.escape(str(label))}</option>"
        for i, label in enumerate(labels)
    )
    multiple = " multiple" if size else ""
    size_attr = f' size="{size}"' if size else ""
    return f"<select disabled{multiple}{size_attr}>{items}</select>"


def _index_set(index: Any) -> set[int]:
    if index is None:
        return set()
    return {int(i) for i in index} if isinstance(index, list | tuple) else {int(index)}


def _control(name: str, state: dict[str, Any]) -> str | None:
    value = state.get("value")
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<div class="wemix-w-html">{value or ""}</div>'
    if name == "LabelModel":
        return f"<span>{html.escape(str(value or ''))}</span>"
    if name == "ButtonModel":
        return f'<button disabled class="wemix-w-button">{html.escape(state.get("description", ""))}</button>'
    if name == "ToggleButtonsModel":
        chosen = _index_set(state.get("index"))
        labels = state.get("_options_labels") or []
        buttons = "".join(
            f'<button disabled class="wemix-w-toggle{" wemix-w-on" if i in chosen else ""}">'
            f"{html.escape(str(label))}</button>"
            for i, label in enumerate(labels)
        )
        return f"{_label(state)}<span>{buttons}</span>"
    if name in ("SelectMultipleModel", "SelectModel"):
        return _label(state) + _options(state, _index_set(state.get("index")), state.get("rows") or 5)
    if name in ("DropdownModel", "RadioButtonsModel"):
        return _label(state) + _options(state, _index_set(state.get("index")), None)
    if name in ("TextModel", "TextareaModel", "FloatTextModel", "IntTextModel", "BoundedFloatTextModel"):
        placeholder = html.escape(str(state.get("placeholder") or ""))
        text = html.escape(str(value if value is not None else ""))
        return f'{_label(state)}<input disabled value="{text}" placeholder="{placeholder}">'
    if name == "CheckboxModel":
        return f'<input type="checkbox" disabled{" checked" if value else ""}> {_label(state)}'
    if name in ("IntProgressModel", "FloatProgressModel"):
        return f'{_label(state)}<progress value="{value}" max="{state.get("max", 100)}"></progress>'
    return None


def widget_html(model_id: str, models: dict[str, Any]) -> str:
    """Static HTML for the widget ``model_id`` from the saved ``models`` (ids -> model records)."""
    model = models.get(model_id.removeprefix("IPY_MODEL_"))
    if model is None:
        return "<em>[widget]</em>"
    name, state = model.get("model_name", ""), model.get("state", {})
    layout = models.get(str(state.get("layout", "")).removeprefix("IPY_MODEL_"), {}).get("state", {})
    if layout.get("visibility") == "hidden" or layout.get("display") == "none":
        return ""
    if name in ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel"):
        kind = "wemix-w-hbox" if name == "HBoxModel" else "wemix-w-vbox"
        children = "".join(widget_html(child, models) for child in state.get("children", []))
        return f'<div class="{kind}">{children}</div>'
    if _is_altair_chart(state):
        return chart_html(state["spec"])
    control = _control(name, state)
    if control is None:
        return f"<em>[{html.escape(name.removesuffix('Model') or 'widget')} widget]</em>"
    return f'<div class="wemix-w-row">{control}</div>'


def _static_output(model_id: str, models: dict[str, Any]) -> str:
    state = models.get(model_id, {}).get("state", {})
    if _is_altair_chart(state):
        return chart_html(state["spec"])
    return f'<div class="wemix-static-widget">{widget_html(model_id, models)}{CAPTION}</div>'


# -------------------------------------------------------------------------------------------------
# the Sphinx hook


def _saved_models(env, docname: str) -> dict[str, Any] | None:
    js_files = getattr(env, "nb_metadata", {}).get(docname, {}).get("js_files", {})
    entry = js_files.get("ipywidgets_state")
    if entry is None:
        return None
    # the state is no longer needed on the page, nor the widget manager's scripts
    for key in [k for k in js_files if k.startswith("ipywidgets_")]:
        del js_files[key]
    return json.loads(_unescape(entry[1]["body"])).get("state", {})


def replace_widget_outputs(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read``: swap each widget output of the notebook just read for its static picture."""
    views = [n for n in doctree.findall(nodes.raw) if VIEW_TAG.match(n.astext())]
    models = _saved_models(app.env, app.env.docname)
    if not views:
        return
    for node in views:
        model_id = json.loads(_unescape(VIEW_TAG.match(node.astext()).group(1)))["model_id"]
        if models is None or model_id not in models:
            logger.warning("widget %s has no saved state", model_id, location=node)
            continue
        node.replace_self(nodes.raw("", _static_output(model_id, models), format="html"))


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", replace_widget_outputs)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
