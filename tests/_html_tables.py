"""Parse the tables of an HTML fragment with the standard library (no lxml/bs4 needed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Table:
    """One ``<table>``: its classes, heading lines (title/subtitle), header cells, body rows, notes."""

    classes: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.headings[0] if self.headings else ""

    def row(self, label: str) -> list[str]:
        """The first body row whose first cell is ``label``."""
        for row in self.rows:
            if row and row[0] == label:
                return row
        raise KeyError(f"no row {label!r} in {[r[0] for r in self.rows if r]}")

    def column(self, name: str) -> int:
        return self.header.index(name)


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[Table] = []
        self._table: Table | None = None
        self._section = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._cell_kind = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self._table = Table(classes=(attrs.get("class") or "").split())
        elif self._table is None:
            return
        elif tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr":
            self._row = []
            self._row_class = attrs.get("class") or ""
        elif tag in ("td", "th"):
            self._cell = []
            self._cell_kind = attrs.get("class") or ""
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1
        elif self._table is None:
            return
        elif tag in ("td", "th") and self._cell is not None:
            text = re.sub(r"[ \t]+", " ", "".join(self._cell)).strip()
            if self._section == "tfoot":
                self._table.notes.append(text)
            elif "gt_heading" in self._cell_kind and "gt_col_heading" not in self._cell_kind:
                self._table.headings.append(text)
            elif "gt_col_heading" in self._cell_kind:
                self._table.header.append(text)
            elif "gt_group_heading" in self._cell_kind:
                self._row.append(text)
            elif self._row is not None:
                self._row.append(text)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._section == "tbody" and self._row and "gt_group_heading_row" not in self._row_class:
                self._table.rows.append(self._row)
            self._row = None
        elif tag == "table":
            self.tables.append(self._table)
            self._table = None

    def handle_data(self, data):
        if not self._skip and self._cell is not None:
            self._cell.append(data)


def parse_tables(html: str) -> list[Table]:
    parser = _Parser()
    parser.feed(html)
    return parser.tables


def number(text: str) -> float:
    """``"−1,234.568"`` -> -1234.568 (great-tables uses U+2212 for minus and commas for thousands)."""
    return float(text.replace("−", "-").replace(",", "").strip())


def shown(value: float, decimals: int) -> float:
    """A value rounded as displayed."""
    return round(float(value), decimals)
