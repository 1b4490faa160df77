"""Contact sheets and the Markdown/HTML document model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from morphlab.io import read_image
from morphlab.reports.contact import contact_sheet, write_contact_sheet
from morphlab.reports.document import Code, Document, Figure, Heading, Paragraph, Table


def test_contact_sheet_layout(tmp_path: Path) -> None:
    red = np.zeros((100, 80, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((50, 50, 3), np.uint8)
    blue[..., 2] = 255
    sheet = contact_sheet([[(red, "subject A"), (blue, "morph")], [(red, "x")]], height=40, gap=4)
    # row 1: 32 + 4 + 40 px wide; label bars below 40 px tiles
    assert sheet.shape[1] == 32 + 4 + 40
    assert tuple(sheet[10, 5]) == (255, 0, 0) and tuple(sheet[10, 40]) == (0, 0, 255)
    # second row is padded with white to the full width
    assert (sheet[-5, -5] == 255).all()
    p = write_contact_sheet(tmp_path / "c.png", [[(red, "a")]], height=30)
    assert read_image(p).shape[0] > 30


def test_contact_sheet_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no rows"):
        contact_sheet([])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        contact_sheet([[(tmp_path / "missing.png", "a")]])


def test_document_markdown_and_html(tmp_path: Path) -> None:
    doc = Document("T <1>").add(
        Heading("Numbers"),
        Paragraph("a & b"),
        Table(["k", "v"], [["x", 0.123456], ["y", 2]], caption="cap"),
        Figure("f.png", "the figure"),
        Code("x = 1"),
    )
    md, html = doc.write(tmp_path)
    m = md.read_text()
    assert "# T <1>" in m and "| x | 0.1235 |" in m and "![the figure](f.png)" in m
    h = html.read_text()
    assert "<h1>T &lt;1&gt;</h1>" in h and "a &amp; b" in h and '<img src="f.png"' in h
    assert "<td>0.1235</td>" in h and "<pre><code>x = 1</code></pre>" in h


def test_document_links(tmp_path: Path) -> None:
    from morphlab.reports.document import Link

    md, html = Document("t").add(Table(["open"], [[Link("map", "map/report.html")]])).write(tmp_path)
    assert "[map](map/report.html)" in md.read_text()
    assert '<a href="map/report.html">map</a>' in html.read_text()
