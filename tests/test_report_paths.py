"""Reports name their inputs by relative paths, never absolute ones; contact sheets for
every attack set; detector score histograms; the map-score summary (issue 11, item 8)."""

from __future__ import annotations

import html as htmllib
import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import cv2
import numpy as np
import pytest

from morphlab.datasets.folder import load_folder
from morphlab.datasets.pairs import make_pairs, write_pairs
from morphlab.generators.base import Contributor, Generator, MorphOutput
from morphlab.generators.runner import generate_attack_set, load_manifest
from morphlab.io import read_image
from morphlab.reports.provenance import rel, relative_paths

SAMPLE = Path(__file__).resolve().parents[1] / "morphlab" / "sample" / "frll"


class BlendGen(Generator):
    """A 64-pixel blend, two outputs per pair; subjects in ``fail`` fail."""

    name = "blend-paths-test"
    version = "1"

    def __init__(self, *, fail: tuple = ()) -> None:
        self.fail = list(fail)

    def get_params(self) -> dict[str, Any]:
        return {"fail": self.fail}

    def output_tags(self) -> list[str]:
        return ["complete", "spliced"]

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        if a.subject_id in self.fail or b.subject_id in self.fail:
            raise ValueError("refused by the test")
        ia, ib = (cv2.resize(read_image(c.path), (64, 64), interpolation=cv2.INTER_AREA)
                  for c in (a, b))
        img = ((ia.astype(np.uint16) + ib) // 2).astype(np.uint8)
        return [MorphOutput(img, "complete", {"variant": "complete"}),
                MorphOutput(255 - img, "spliced", {"variant": "spliced"})]


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory) -> Path:
    """3 same-gender pairs of the embedded sample's neutral images."""
    ds = load_folder(SAMPLE / "neutral", metadata=SAMPLE / "london_info.csv",
                     meta_id_column="face_id", meta_gender_column="face_gender")
    ps = make_pairs(ds, strategy="same-gender", per_subject=1, seed=0)
    ps = replace(ps, pairs=ps.pairs[:3])
    out = tmp_path_factory.mktemp("pairs") / "pairs.csv"
    write_pairs(ps, out)
    return out


@pytest.fixture(scope="module")
def attack_set(pairs_csv: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("work") / "sets" / "blend"
    generate_attack_set(pairs_csv, BlendGen, {}, out, progress=False)
    return out


def _links(page: str) -> list[str]:
    return [htmllib.unescape(h) for h in re.findall(r'href="([^"]+)"', page)]


def _assert_no_absolute(text: str, *roots: Path) -> None:
    """No absolute path in ``text`` (a relative one climbing to ``/work/…`` is fine)."""
    for root in roots:
        for form in {str(root), str(root.resolve())}:
            hit = re.search(r"(?<!\.\.)" + re.escape(form), text)
            assert hit is None, f"absolute path {form} in a report: …{text[hit.start() - 40:hit.end() + 40]}…"
    assert not re.search(r"(?<![\w/.:])/(tmp|home|work|root|usr)/", text)


# ----------------------------------------------------------------------------------------
# relative_paths
# ----------------------------------------------------------------------------------------
def test_relative_paths_rewrites_absolute_paths_only(tmp_path: Path) -> None:
    base = tmp_path / "report"
    text = (f"see {tmp_path}/data/a_1.jpg. FMR ≤ 1/30, https://example.org/a/b, "
            f"../x/y and landmark/complete; ({tmp_path}/set)")
    out = relative_paths(text, base)
    assert out == ("see ../data/a_1.jpg. FMR ≤ 1/30, https://example.org/a/b, ../x/y and "
                   "landmark/complete; (../set)")
    assert relative_paths(text, None) == text
    assert rel(tmp_path / "set" / "m.png", tmp_path / "r" / "s") == "../../set/m.png"


# ----------------------------------------------------------------------------------------
# contact sheet of every attack set
# ----------------------------------------------------------------------------------------
def test_generate_writes_a_contact_page(attack_set: Path, pairs_csv: Path, tmp_path: Path) -> None:
    from morphlab.outdir import owned_files

    page = attack_set / "contact.html"
    text = page.read_text(encoding="utf-8")
    recs = load_manifest(attack_set)
    pairs = {r["pair_id"] for r in recs}
    rows = re.findall(r"<tr>(.*?)</tr>", text)
    assert len(rows) == len(pairs) == 3
    for row in rows:  # subject A | complete | spliced | subject B
        assert row.count("<img") == 4 and "subject A (" in row and "subject B (" in row
    # each morph thumbnail links to its full-size file, relative and existing
    links = _links(text)
    assert len(links) == 2 * len(pairs)
    assert sorted(links) == sorted(r["file"] for r in recs)
    assert all((attack_set / unquote(h)).is_file() for h in links)
    # 256-pixel embedded thumbnails
    assert text.count('height="256"') == 4 * len(pairs)
    assert text.count("data:image/jpeg;base64,") == 4 * len(pairs)
    _assert_no_absolute(text, attack_set, pairs_csv.parent)
    assert "contact.html" in owned_files(attack_set)
    # the same set elsewhere (another depth) gives the same bytes; a re-run keeps them
    other = tmp_path / "a" / "b" / "c"
    generate_attack_set(pairs_csv, BlendGen, {}, other, progress=False)
    assert (other / "contact.html").read_bytes() == page.read_bytes()
    generate_attack_set(pairs_csv, BlendGen, {}, other, progress=False)
    assert (other / "contact.html").read_bytes() == page.read_bytes()


def test_contact_page_shows_failed_pairs_and_refuses_a_foreign_page(pairs_csv: Path,
                                                                   tmp_path: Path) -> None:
    from morphlab.generators.runner import RunConflictError
    from morphlab.outdir import ForeignFileError

    victim = load_folder(SAMPLE / "neutral").samples[0].subject
    out = tmp_path / "set"
    s = generate_attack_set(pairs_csv, BlendGen, {"fail": [victim]}, out, progress=False)
    text = (out / "contact.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<tr>", text)) == s.pairs
    assert text.count("failed: ValueError: refused by the test") == s.failed
    # a contact.html morphlab did not write is never replaced
    (out / "contact.html").write_text("my notes")
    with pytest.raises(ForeignFileError, match="contact.html"):
        generate_attack_set(pairs_csv, BlendGen, {"fail": [victim]}, out, progress=False)
    assert (out / "contact.html").read_text() == "my notes"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "contact.html").write_text("mine")
    with pytest.raises((ForeignFileError, RunConflictError)):
        generate_attack_set(pairs_csv, BlendGen, {}, busy, progress=False, overwrite=True)
    assert (busy / "contact.html").read_text() == "mine"


def test_attack_report_names_the_set_and_links_full_size(attack_set: Path,
                                                          tmp_path: Path) -> None:
    from morphlab.postprocess import postprocess_set
    from morphlab.reports.attack_set import write_attack_report

    processed = attack_set.parent / "blend-jpeg"
    postprocess_set(attack_set, processed, ["jpeg:quality=75"], progress=False)
    own = (processed / "contact.html").read_text(encoding="utf-8")  # a processed set has one too
    assert len(re.findall(r"<tr>", own)) == 3 and all((processed / unquote(h)).is_file()
                                                     for h in _links(own))
    out = tmp_path / "report"
    write_attack_report(processed, out)
    for name in ("report.md", "report.html", "contact.html"):
        text = (out / name).read_text(encoding="utf-8")
        _assert_no_absolute(text, attack_set.parent, SAMPLE, tmp_path)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert rel(processed, out) in md and "jpeg:quality=75" in md and rel(attack_set, out) in md
    page = (out / "contact.html").read_text(encoding="utf-8")
    links = _links(page)
    assert len(re.findall(r"<tr>", page)) == 3 and len(links) == 3 * 4
    assert all((out / unquote(h)).is_file() for h in links)  # contributors included
    assert read_image(out / "contact_sheet.jpg").shape[0] >= 3 * 256


# ----------------------------------------------------------------------------------------
# the MAP report and the map-score summary
# ----------------------------------------------------------------------------------------
def _map_scores(settings: dict, warnings: list, model_path: str = "/nowhere/model.onnx"):
    from morphlab.metrics.thresholds import fixed
    from morphlab.reports.map_report import MapScores

    scores = np.array([[[[0.9], [0.2]], [[0.8], [0.7]]],
                       [[[0.1], [0.3]], [[0.9], [0.9]]]])
    return MapScores(
        systems=[{"name": "sys", "version": "2", "label": "sys", "model_path": model_path}],
        operating_points=[fixed(0.5, [0.9], [0.1, 0.6])],
        morphs=[{"file": "m1.png", "group": "g", "pair_id": "1", "subject_ids": ["s1", "s2"]},
                {"file": "m2.png", "group": "g", "pair_id": "2", "subject_ids": ["s3", "s4"]}],
        probes=[[["x1", "x2"], ["y1", "y2"]]] * 2, scores=scores,
        calibration={"sys": {"genuine": [("p", "r", 0.9)], "impostor": [("p", "q", 0.1)]}},
        attempts=np.full((2, 2), 2), settings=settings, warnings=warnings,
        counts={"morphs_read": 2, "morphs_used": 2, "morphs_skipped": 0})


def test_map_report_names_inputs_relative_and_summary_prints_map_once(
        attack_set: Path, tmp_path: Path) -> None:
    from morphlab.cli.mapscore import summary_lines
    from morphlab.reports.map_report import write_map_report

    cal = tmp_path / "calibration"
    settings = {
        "attack_set": str((attack_set / "manifest.jsonl").resolve()),
        "probes": str(SAMPLE / "smiling"),
        "calibration": {"description": f"all pairs of images in {cal}", "path": str(cal),
                        "subjects": 2, "images": 4, "impostors": "all"},
    }
    out = tmp_path / "map"
    doc = write_map_report(_map_scores(settings, [f"{cal}/x.jpg shares a subject"],
                                       model_path=str(tmp_path / "models" / "w.onnx")), out)
    map_json = (out / "map.json").read_text(encoding="utf-8")
    _assert_no_absolute(map_json, tmp_path, attack_set, SAMPLE)
    assert json.loads(map_json)["systems"][0]["model_path"] == "../models/w.onnx"
    for name in ("report.md", "report.html"):
        text = (out / name).read_text(encoding="utf-8")
        _assert_no_absolute(text, tmp_path, attack_set, SAMPLE)
        assert "../calibration" in text and "as generated" in text
        assert rel(attack_set, out) in text and rel(SAMPLE / "smiling", out) in text
        assert "sys 2" in text
    inputs = doc["inputs"]
    assert inputs["attack_set"]["path"] == rel(attack_set, out)
    assert len(inputs["attack_set"]["manifest_sha256"]) == 64
    assert json.loads((out / "map.json").read_text())["inputs"] == inputs
    lines = "\n".join(summary_lines(doc))
    assert lines.count("MAP[1,1]") == 1 and "MAP[1,2]" not in lines
    assert "protocol of the set: none (as generated)" in lines


# ----------------------------------------------------------------------------------------
# the detector report
# ----------------------------------------------------------------------------------------
def test_pad_report_histograms_and_threshold_origin(tmp_path: Path) -> None:
    from morphlab.metrics.pad import pad_summary
    from morphlab.reports.pad_report import write_pad_report

    bf = [0.1, 0.2, 0.3, 0.4]
    at = [0.35, 0.5, 0.6, 0.7, 0.8]
    sp = ["landmark/complete", "landmark/spliced", "landmark/spliced", "landmark/complete",
          "landmark/complete"]
    s = pad_summary(bf, at, species=sp, threshold=0.65)
    a = np.array(at)
    curves = {"all attacks": (bf, at),
              **{k: (bf, a[np.array(sp) == k]) for k in sorted(set(sp))}}
    out = tmp_path / "report"
    info = {"model": str(tmp_path / "model"), "attack set": f"{tmp_path}/sets/blend"}
    paths = write_pad_report(out, s, curves, info=info,
                             notes=[f"1 image unreadable, e.g. {tmp_path}/sets/blend/x.png"],
                             threshold_origin="D-EER point of its own training scores (4 bona "
                                              "fide / 5 attacks)")
    assert paths["histograms"] == out / "histograms.png"
    img = read_image(out / "histograms.png")
    assert img.shape[0] > img.shape[1] * 0.6  # two species panels stacked
    for key in ("markdown", "html"):
        text = paths[key].read_text(encoding="utf-8")
        _assert_no_absolute(text, tmp_path)
        assert "histograms.png" in text and "../sets/blend" in text and "../model" in text
        assert "fitted on the training scores" in text and "not comparable" in text
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "Threshold 0.65: D-EER point of its own training scores" in md
    # calibrated elsewhere: said so, no training caveat
    paths = write_pad_report(tmp_path / "r2", s, curves,
                             threshold_origin="calibrated at BPCER=10 % on 40 bona fide")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "calibrated at BPCER=10 %" in md and "not comparable" not in md


def test_detection_inputs_name_sets_and_folders_relative(attack_set: Path,
                                                         tmp_path: Path) -> None:
    from morphlab.reports.provenance import detection_inputs

    recs = load_manifest(attack_set)
    items = ([SimpleNamespace(path=Path(r["path"]), label=1, live=None) for r in recs]
             + [SimpleNamespace(path=p, label=0, live=None)
                for p in sorted((SAMPLE / "neutral").glob("*.jpg"))[:2]])
    out = tmp_path / "eval"
    facts = detection_inputs(items, out)
    assert facts["attack set"].startswith(rel(attack_set, out) + " (protocol: none (as generated)")
    assert facts["bona fide images"] == rel(SAMPLE / "neutral", out)
    _assert_no_absolute(json.dumps(facts), tmp_path, SAMPLE)


def test_detector_evaluation_report_end_to_end(tmp_path: Path) -> None:
    """A real (small) evaluation: inputs named relative, histograms, threshold origin."""
    from morphlab.demo import SAMPLE_PATTERN
    from morphlab.detect import quick_detector_demo

    ds = load_folder(SAMPLE / "neutral", pattern=SAMPLE_PATTERN,
                     metadata=SAMPLE / "london_info.csv", meta_id_column="face_id",
                     meta_gender_column="face_gender")
    pairs = tmp_path / "pairs.csv"
    write_pairs(make_pairs(ds, strategy="same-gender", per_subject=1, seed=0), pairs)
    generate_attack_set(pairs, "landmark", {"variants": ["complete", "spliced"]},
                        tmp_path / "morphs", image_format="jpg", progress=False)
    res = quick_detector_demo(tmp_path / "morphs", [SAMPLE / "neutral"], tmp_path / "det",
                              progress=False)
    report = tmp_path / "det" / "report"
    assert (report / "histograms.png").stat().st_size > 0
    for name in ("report.md", "report.html"):
        text = (report / name).read_text(encoding="utf-8")
        _assert_no_absolute(text, tmp_path, SAMPLE)
        assert "../../morphs (protocol: none (as generated)" in text.replace("\\", "")
        assert rel(SAMPLE / "neutral", report) in text and "histograms.png" in text
        assert "training scores" in text
    assert json.loads((report / "metrics.json").read_text())["info"]["model"] == "../model"
    assert res["D-EER"] is not None
