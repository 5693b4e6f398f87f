"""Charts drawn by vl-convert, with no browser and no network: SVG text for HTML, PNG bytes for
Word, LaTeX and Markdown."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PNG_SCALE", "to_png", "to_svg"]

#: PNG pictures are drawn at this multiple of the chart's size (print resolution)
PNG_SCALE = 2.0


def _spec(chart) -> dict[str, Any]:
    from wemix_nb.display.render import vegalite_spec

    return vegalite_spec(chart)


def _version() -> str | None:
    from wemix_nb.display.render import _vl_versions

    return _vl_versions()[1]


def to_svg(chart) -> str:
    """The chart as SVG text, without an XML declaration (to inline in HTML)."""
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(_spec(chart), vl_version=_version())
    return re.sub(r"^<\?xml[^>]*>\s*", "", svg)


def to_png(chart, scale: float = PNG_SCALE) -> bytes:
    """The chart as PNG bytes at ``scale`` times its size."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(_spec(chart), scale=scale, vl_version=_version())
