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
    assert "# T \\<1>" in m and "| x | 0.1235 |" in m and "![the figure](f.png)" in m
    h = html.read_text()
    assert "<h1>T &lt;1&gt;</h1>" in h and "a &amp; b" in h and '<img src="f.png"' in h
    assert "<td>0.1235</td>" in h and "<pre><code>x = 1</code></pre>" in h


def test_document_links(tmp_path: Path) -> None:
    from morphlab.reports.document import Link

    md, html = Document("t").add(Table(["open"], [[Link("map", "map/report.html")]])).write(tmp_path)
    assert "[map](map/report.html)" in md.read_text()
    assert '<a href="map/report.html">map</a>' in html.read_text()


def test_pad_report_shows_intervals_labels_and_rule(tmp_path: Path) -> None:
    import json

    from morphlab.metrics.pad import D_EER_RULE, pad_summary
    from morphlab.reports.pad_report import write_pad_report

    bf = [0.1, 0.2, 0.3, 0.4]
    at = [0.35, 0.5, 0.6, 0.7, 0.8]
    sp = ["complete", "spliced", "spliced", "complete", "complete"]
    s = pad_summary(bf, at, species=sp, threshold=0.65)
    paths = write_pad_report(tmp_path, s, {"all": (bf, at)}, info={"detector": "x"})
    md = paths["markdown"].read_text()
    # every rate with its interval and counts: BPCER@APCER=20% headline = 1/4, pooled 0/4
    assert "| BPCER@APCER=20% | 25.0 % [4.6, 69.9] (1/4) | 0.35 | headline: at the max APCER " \
           "over species (ISO/IEC 30107-3) |" in md
    assert "| BPCER@APCER=20% (pooled) | 0.0 % [0.0, 49.0] (0/4) | 0.5 | pooled APCER" in md
    assert "| APCER@BPCER=10% (FATE MORPH headline) | 20.0 % [3.6, 62.4] (1/5) | 0.5 |" in md
    assert "worst species: complete" in md
    assert "| APCER | 60.0 % [23.1, 88.2] (3/5) | pooled |" in md
    assert "| max APCER over species | 100.0 % [34.2, 100.0] (2/2) | worst species: spliced |" in md
    assert D_EER_RULE in md and "4 bona fide and 5 attack presentations" in md
    assert "## Sample size" in md and "only 2 attacks of the smallest species (spliced)" in md
    # per-species table: one row per species with intervals
    assert "| spliced | 2 |" in md and "(2/2)" in md
    saved = json.loads(paths["metrics"].read_text())["metrics"]
    assert saved["intervals"]["BPCER@APCER=20%"]["k"] == 1
    assert (tmp_path / "det.png").stat().st_size > 0


def test_pad_report_reads_an_old_summary_without_intervals(tmp_path: Path) -> None:
    from morphlab.reports.pad_report import write_pad_report

    old = {"n_bona_fide": 4, "n_attack": 5, "D-EER": 0.2, "D-EER threshold": 0.4,
           "BPCER@APCER=10%": 0.25}
    md = write_pad_report(tmp_path, old, {"all": ([0.1, 0.2], [0.3, 0.4])})["markdown"].read_text()
    assert "| BPCER@APCER=10% | 25.00% |" in md and "| D-EER | 20.00% | 0.4 |" in md


def test_markdown_escapes_ids_as_html_does(tmp_path: Path) -> None:
    """Ids from users' files cannot break a table row or inject markup (issue 10 item 19)."""
    from morphlab.reports.document import Link, md_escape

    evil = ["a|b", "x\ny", "nul\x00", "`code`", "*bold*", "_it_", "<script>", "[c](http://e)",
            "![i](x.png)", "#1", "~~s~~"]
    doc = Document("ids").add(
        Table(["id", "n"], [[e, 1] for e in evil] + [[Link("r|1", "a dir/r (1).html"), 2]]),
    )
    md, html = doc.write(tmp_path)
    lines = md.read_text().splitlines()
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| id")]
    assert len(rows) == len(evil) + 1  # every id stayed on its own row
    for row in rows:  # exactly three unescaped pipes: the cell borders
        assert len([i for i, c in enumerate(row) if c == "|" and row[i - 1] != "\\"]) == 3, row
    text = md.read_text()
    for needle in ("a\\|b", "x\\\\ny", "nul\\\\x00", "\\`code\\`", "\\*bold\\*", "\\_it\\_",
                   "\\<script>", "[c\\](http://e)", "![i\\](x.png)", "\\#1", "\\~\\~s\\~\\~",
                   "[r\\|1](a%20dir/r%20%281%29.html)"):
        assert needle in text, needle
    assert "\x00" not in text and "<script" not in text.replace("\\<script", "")
    assert "&lt;script&gt;" in html.read_text()
    # readable where nothing can form: intervals keep their brackets; escaping is idempotent
    assert md_escape("41.7 % [19.3, 68.0] (5/12)") == "41.7 % [19.3, 68.0] (5/12)"
    for e in evil:
        assert md_escape(md_escape(e)) == md_escape(e)


def test_code_block_fence_outlasts_backticks(tmp_path: Path) -> None:
    md = Document("c").add(Code("a ``` b")).markdown()
    assert "````\na ``` b\n````" in md


# ----------------------------------------------------------------------------------------
# the MAP report
# ----------------------------------------------------------------------------------------
def _map_scores(**extra):
    from morphlab.metrics.thresholds import fixed
    from morphlab.reports.map_report import MapScores

    # 3 morphs, 2 subjects, 2 attempts, 1 system; morph 3 has no face (FTE)
    scores = np.array([[[[0.9], [0.2]], [[0.8], [0.7]]],
                       [[[0.1], [0.3]], [[0.9], [0.9]]],
                       [[[np.nan], [np.nan]], [[np.nan], [np.nan]]]])
    cal = {"sys": {"genuine": [("p", "r", 0.9)], "impostor": [("p", "q", 0.1), ("p", "s", 0.6)]}}
    ops = [fixed(0.5, [0.9], [0.1, 0.6])]
    return MapScores(
        systems=[{"name": "sys", "label": "sys"}], operating_points=ops,
        morphs=[{"file": "a_*b*|c.png", "group": "g", "pair_id": "1", "subject_ids": ["s1", "s2"]},
                {"file": "m2.png", "group": "g", "pair_id": "2", "subject_ids": ["s3", "s4"]},
                {"file": "m3.png", "group": "g", "pair_id": "3", "subject_ids": ["s5", "s6"]}],
        probes=[[["x1", "x2"], ["y1", "y2"]]] * 3, scores=scores, calibration=cal,
        attempts=np.full((3, 2), 2), embedded=np.array([[True], [True], [False]]),
        skipped=[{"what": "evil\nname <b>[x](y)", "reason": "test"}], **extra)


def test_map_report_rates_fte_and_escaped_ids(tmp_path: Path) -> None:
    from morphlab.reports.map_report import write_map_report

    doc = write_map_report(_map_scores(), tmp_path)
    ov = doc["overall"]
    # conditional: morph 1 (A 1 of 2, B 2 of 2 accepted) and morph 2 (A 0 of 2): MAP[1,1] = 1/2
    assert ov["n_morphs"] == 2 and ov["map"]["counts"] == [[1], [0]]
    assert ov["map"]["rates"][0][0]["k"] == 1 and ov["map"]["rates"][0][0]["n"] == 2
    assert ov["unconditional"]["map"]["rates"][0][0]["n"] == 3
    assert ov["fte"]["any_system"]["k"] == 1 and ov["fte"]["any_system"]["n"] == 3
    op = doc["systems"][0]["operating_point"]
    assert op["fmr_rate"]["k"] == 1 and op["fmr_rate"]["n"] == 2 and op["fnmr_rate"]["k"] == 0
    md = (tmp_path / "report.md").read_text()
    assert r"evil\\nname \<b\>\[x\]\(y\)" in md and "evil\nname" not in md
    html = (tmp_path / "report.html").read_text()
    assert r"evil\nname &lt;b&gt;[x](y)" in html
    # the same folder again: a previous result, replaced only with overwrite
    from morphlab.outdir import ForeignFileError, OutputExistsError

    with pytest.raises(OutputExistsError):
        write_map_report(_map_scores(), tmp_path)
    (tmp_path / "mine.txt").write_text("mine")
    write_map_report(_map_scores(), tmp_path, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "mine"
    (tmp_path / "report.md").write_text("edited by hand")
    with pytest.raises(ForeignFileError, match="report.md"):
        write_map_report(_map_scores(), tmp_path, overwrite=True)
