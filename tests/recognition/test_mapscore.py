"""map-score end to end on the embedded FRLL sample: report folder, numbers, cache, bad input."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from morphlab.generators.base import Contributor, Generator, MorphOutput
from morphlab.generators.runner import generate_attack_set
from morphlab.io import read_image
from morphlab.mapscore import MapScoreError, map_score
from morphlab.metrics.thresholds import threshold_at_fmr

SUBJECTS = ("002", "003", "005", "006")  # contributors: three women, one man of the sample
PAIRS = (("002", "003"), ("005", "006"), ("002", "005"))
#: Probe-folder subjects who contribute to no morph: with the sample's neutral images of the
#: 8 non-contributors, the default subject-disjoint calibration split has 12 images.
OTHERS = ("004", "007", "008", "009")


class BlendGen(Generator):
    """A cross-dissolve "morph" (the sample's photos are roughly aligned) and a copy of A.

    Tag ``blend`` fools both subjects often; tag ``copy`` is subject A's own photo, so it
    is accepted as A but rarely as B: two generator groups with different strength.
    """

    name = "blend-test"
    version = "1"

    def get_params(self) -> dict[str, Any]:
        return {}

    def output_tags(self) -> list[str]:
        return ["blend", "copy"]

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        ia, ib = read_image(a.path), read_image(b.path)
        ib = cv2.resize(ib, (ia.shape[1], ia.shape[0]), interpolation=cv2.INTER_AREA)
        blend = ((ia.astype(np.float32) + ib) / 2).round().astype(np.uint8)
        return [MorphOutput(blend, "blend"), MorphOutput(ia.copy(), "copy")]


@pytest.fixture(scope="module")
def attack_set(sample_dir: Path, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("attack")
    pairs = d / "pairs.csv"
    rows = ["pair_id,subject_a,image_a,subject_b,image_b"]
    for k, (a, b) in enumerate(PAIRS, start=1):
        rows.append(f"{k:04d},{a},neutral/{a}_03.jpg,{b},neutral/{b}_03.jpg")
    pairs.write_text("\n".join(rows) + "\n")
    out = d / "set"
    generate_attack_set(pairs, BlendGen, out_dir=out, dataset_dir=sample_dir, progress=False)
    return out


@pytest.fixture(scope="module")
def probes(sample_dir: Path, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("probes")
    for s in SUBJECTS:
        shutil.copy(sample_dir / "smiling" / f"{s}_08.jpg", d)
    # a second probe for one subject, and the enrolment image itself (must not be a probe)
    img = read_image(sample_dir / "smiling" / "002_08.jpg")
    cv2.imwrite(str(d / "002_flip.png"), np.ascontiguousarray(img[:, ::-1, ::-1]))
    shutil.copy(sample_dir / "neutral" / "003_03.jpg", d / "003_03.jpg")
    for s in OTHERS:
        shutil.copy(sample_dir / "smiling" / f"{s}_08.jpg", d)
    return d


@pytest.fixture(scope="module")
def report(attack_set, probes, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    with pytest.warns(UserWarning, match="impostor comparisons"):
        res = map_score(attack_set, probes, out, systems=["dlib-resnet", "lbph"],
                        target_fmr=0.1, progress=False)
    return out, res


def test_report_folder_has_every_file(report):
    out, res = report
    doc = json.loads((out / "map.json").read_text())
    groups = ["blend-test/blend", "blend-test/copy"]
    assert sorted(doc["per_group"]) == groups
    expected = {"map.json", "scores.csv", "calibration.csv", "report.md", "report.html",
                "map.png", "scores_dlib-resnet.png", "scores_lbph.png",
                "map_blend-test_blend.png", "map_blend-test_copy.png"}
    assert expected <= {p.name for p in out.iterdir()}
    for name in expected - {"report.md", "report.html", "map.json", "scores.csv", "calibration.csv"}:
        assert (out / name).stat().st_size > 1000
        assert f"]({name})" in (out / "report.md").read_text()
        assert f'src="{name}"' in (out / "report.html").read_text()
    assert doc["counts"]["morphs_used"] == 2 * len(PAIRS)
    assert doc["counts"]["probes_excluded_as_enrolment_images"] == 1
    assert doc["counts"]["attempts_per_subject_max"] == 2  # 002 has two probes
    assert doc["overall"]["attempts"]["R"] == 1
    assert doc["overall"]["attempts"]["subjects_by_attempts"] == {"1": 3, "2": 1}
    cal = doc["settings"]["calibration"]
    assert (cal["source"], cal["subjects"], cal["images"], cal["impostors"]) == ("split", 8, 12, "all")
    assert doc["settings"]["calibration"]["overlap"] is None and doc["warnings"] == []


def _recompute(out: Path):
    """MAP and MinMax-MMPMR from scores.csv and the thresholds in map.json, with loops."""
    doc = json.loads((out / "map.json").read_text())
    systems = [s["label"] for s in doc["systems"]]
    thr = {s["label"]: s["operating_point"]["threshold"] for s in doc["systems"]}
    acc = defaultdict(lambda: defaultdict(int))  # (morph) -> (subject, system) -> accepted
    att = defaultdict(lambda: defaultdict(int))
    group = {}
    with open(out / "scores.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["subject"], row["system"])
            att[row["morph"]][key] += 1
            acc[row["morph"]][key] += float(row["score"]) >= thr[row["system"]]
            group[row["morph"]] = row["group"]

    def matrix(morphs):
        R = min(n for m in morphs for n in att[m].values())
        best = [sorted((min(acc[m][(s, c)] for s in ("a", "b")) for c in systems), reverse=True)
                for m in morphs]
        mp = [[sum(b[c] >= r for b in best) / len(morphs) for c in range(len(systems))]
              for r in range(1, R + 1)]
        mm = {c: sum(all(acc[m][(s, c)] > 0 for s in ("a", "b")) for m in morphs) / len(morphs)
              for c in systems}
        return mp, mm

    return doc, matrix, sorted(att), group


def test_map_json_matches_matrix_recomputed_from_raw_scores(report):
    out, res = report
    doc, matrix, morphs, group = _recompute(out)
    mp, mm = matrix(morphs)
    np.testing.assert_allclose(doc["overall"]["map"]["values"], mp)
    np.testing.assert_allclose(res.map, mp)
    for c, v in mm.items():
        assert doc["overall"]["per_system"][c]["minmax_mmpmr"] == pytest.approx(v)
    for g, res_g in doc["per_group"].items():
        gmp, gmm = matrix([m for m in morphs if group[m] == g])
        np.testing.assert_allclose(res_g["map"]["values"], gmp)
    # the copy of A is always accepted as A by dlib, never more often as both than the blend
    assert doc["per_group"]["blend-test/copy"]["per_system"]["dlib-resnet"]["minmax_mmpmr"] <= \
        doc["per_group"]["blend-test/blend"]["per_system"]["dlib-resnet"]["minmax_mmpmr"]


def test_thresholds_match_calibration_scores(report):
    out, _ = report
    doc = json.loads((out / "map.json").read_text())
    imp = defaultdict(list)
    with open(out / "calibration.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["kind"] == "impostor":
                imp[row["system"]].append(float(row["score"]))
    for s in doc["systems"]:
        op = s["operating_point"]
        # the split: neutral of the 8 non-contributors + smiling of 4 of them = 12 images,
        # 66 pairs of which 4 genuine (neutral vs smiling of one subject)
        assert op["n_impostor"] == len(imp[s["label"]]) == 62
        assert op["n_genuine"] == 4
        assert op["fmr_rate"]["n"] == 62 and op["fnmr_rate"]["n"] == 4
        assert op["threshold"] == threshold_at_fmr(imp[s["label"]], 0.1)
        assert op["too_few_impostors"] is True and op["policy"] == "fmr"


def test_rescoring_recomputes_nothing(report, attack_set, probes, tmp_path):
    with pytest.warns(UserWarning):
        res = map_score(attack_set, probes, tmp_path / "again", systems=["dlib-resnet", "lbph"],
                        target_fmr=0.1, progress=False)
    assert set(res.report["counts"]["embeddings_computed"].values()) == {0}
    np.testing.assert_allclose(res.map, report[1].map)


def test_fixed_and_published_thresholds(attack_set, probes, tmp_path):
    res = map_score(attack_set, probes, tmp_path / "r", systems=["dlib-resnet", "lbph"],
                    thresholds={"dlib-resnet": "published", "lbph": 0.5}, progress=False)
    ops = {s["label"]: s["operating_point"] for s in res.report["systems"]}
    assert ops["dlib-resnet"]["threshold"] == pytest.approx(0.4)
    assert ops["dlib-resnet"]["policy"] == "published"
    assert ops["lbph"]["threshold"] == 0.5 and ops["lbph"]["policy"] == "fixed"
    res = map_score(attack_set, probes, tmp_path / "d", systems=["dlib-resnet"],
                    thresholds={"dlib-resnet": "distance:0.6"}, progress=False)
    op = res.report["systems"][0]["operating_point"]
    assert op["threshold"] == pytest.approx(0.4) and op["policy"] == "fixed (distance 0.6)"
    with pytest.raises(MapScoreError, match="no declared distance conversion"):
        map_score(attack_set, probes, tmp_path / "x", systems=["lbph"],
                  thresholds={"lbph": "distance:0.3"}, progress=False)
    with pytest.raises(MapScoreError, match="publish no threshold"):
        map_score(attack_set, probes, tmp_path / "x", systems=["lbph"],
                  thresholds={"lbph": "published"}, progress=False)
    with pytest.raises(MapScoreError, match="not scored: arcface-onnx"):
        map_score(attack_set, probes, tmp_path / "x", systems=["lbph"],
                  thresholds={"arcface-onnx": 0.3}, progress=False)


def test_damaged_attack_set_is_reported_and_skipped(attack_set, probes, tmp_path):
    damaged = tmp_path / "set"
    shutil.copytree(attack_set, damaged)
    lines = (damaged / "manifest.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    (damaged / recs[0]["file"]).unlink()
    with open(damaged / recs[1]["file"], "ab") as fh:
        fh.write(b"\0")
    with pytest.warns(UserWarning):
        res = map_score(damaged, probes, tmp_path / "r", systems=["lbph"], target_fmr=0.1,
                        progress=False)
    c = res.report["counts"]
    assert (c["morphs_read"], c["morphs_used"], c["morphs_skipped"]) == (6, 4, 2)
    reasons = {s["what"]: s["reason"] for s in res.report["skipped"]}
    assert reasons[recs[0]["file"]] == "morph image missing"
    assert "sha256 differs" in reasons[recs[1]["file"]]


def test_bad_input(attack_set, probes, sample_dir, tmp_path):
    with pytest.raises(KeyError, match="valid names: .*dlib-resnet"):
        map_score(attack_set, probes, tmp_path / "r", systems=["no-such-fr"], progress=False)
    few = tmp_path / "few"
    few.mkdir()
    shutil.copy(probes / "002_08.jpg", few)
    with pytest.raises(MapScoreError, match=r"3 contributing subject\(s\) have no probe image .*: 003, 005, 006"):
        map_score(attack_set, few, tmp_path / "r", systems=["lbph"], progress=False)
    lone = tmp_path / "lone"  # one subject outside the attack set: no impostors
    lone.mkdir()
    shutil.copy(probes / "004_08.jpg", lone)
    res = map_score(attack_set, probes, tmp_path / "r2", systems=["lbph"], progress=False,
                    thresholds={"lbph": 0.5}, calibration=lone)
    assert res.report["systems"][0]["operating_point"]["n_impostor"] == 0
    with pytest.raises(MapScoreError, match="no impostor comparisons"):
        map_score(attack_set, probes, tmp_path / "r3", systems=["lbph"], progress=False,
                  calibration=lone)
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(MapScoreError, match=r"target FMR must lie in \(0, 1\)"):
            map_score(attack_set, probes, tmp_path / "r5", systems=["lbph"], target_fmr=bad,
                      progress=False)
    for bad in ("nan", "inf", "distance:-inf"):
        with pytest.raises(MapScoreError, match="finite"):
            map_score(attack_set, probes, tmp_path / "r5", systems=["dlib-resnet"],
                      thresholds={"dlib-resnet": bad}, progress=False)
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        map_score(tmp_path, probes, tmp_path / "r4", systems=["lbph"], progress=False)


def test_cli_map_score(attack_set, probes, tmp_path):
    from click.testing import CliRunner

    from morphlab.cli import main

    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(main, ["map-score", str(attack_set), "--probes", str(probes), "-o", str(out),
                             "--fr", "dlib-resnet", "--threshold", "dlib-resnet=published",
                             "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "6 morphs scored (0 skipped" in r.output and "threshold 0.4 (published)" in r.output
    assert "MinMax-MMPMR" in r.output and "] (" in r.output  # rates with intervals and k/n
    assert (out / "report.html").is_file()
    r = runner.invoke(main, ["map-score", str(attack_set), "--probes", str(probes), "-o", str(out),
                             "--fr", "no-such-fr"])
    assert r.exit_code == 1 and "unknown recognition system 'no-such-fr'; valid names" in r.output
    r = runner.invoke(main, ["map-score", str(attack_set), "--probes", str(probes), "-o", str(out),
                             "--threshold", "lbph=high"])
    assert r.exit_code == 2 and "is not a number" in r.output


# ----------------------------------------------------------------------------------------
# the calibration protocol
# ----------------------------------------------------------------------------------------
def _folder(tmp: Path, name: str, files: dict[str, Path]) -> Path:
    d = tmp / name
    d.mkdir()
    for new, src in files.items():
        shutil.copy(src, d / new)
    return d


def test_calibration_overlap_refused_and_allowed_with_warning(attack_set, probes, sample_dir,
                                                              tmp_path):
    # the probe folder itself: shares the probes (images) and the contributors (subjects)
    with pytest.raises(MapScoreError, match=r"shares \d+ image\(s\) .* and 4 subject\(s\) "
                                            r"\(002, 003, 005, 006\)"):
        map_score(attack_set, probes, tmp_path / "a", systems=["lbph"], calibration=probes,
                  progress=False)
    # new images, but of a contributor: a subject overlap only
    img = read_image(sample_dir / "neutral" / "002_03.jpg")
    cal = _folder(tmp_path, "cal", {f"{s}_03.jpg": sample_dir / "neutral" / f"{s}_03.jpg"
                                    for s in ("004", "007", "008")})
    cv2.imwrite(str(cal / "002_99.png"), np.ascontiguousarray(img[::-1, :, ::-1]))
    with pytest.raises(MapScoreError, match=r"shares 1 subject\(s\) \(002\)") as exc:
        map_score(attack_set, probes, tmp_path / "b", systems=["lbph"], calibration=cal,
                  progress=False)
    assert "image(s)" not in str(exc.value) and "--allow-calibration-overlap" in str(exc.value)
    assert not (tmp_path / "b" / "map.json").exists()
    with pytest.warns(UserWarning, match="CALIBRATION OVERLAP"):
        res = map_score(attack_set, probes, tmp_path / "c", systems=["lbph"], calibration=cal,
                        allow_calibration_overlap=True, target_fmr=0.1, progress=False)
    doc = res.report
    assert doc["settings"]["calibration"]["overlap"]["subjects"] == ["002"]
    assert doc["warnings"] and "CALIBRATION OVERLAP" in doc["warnings"][0]
    assert "WARNING: CALIBRATION OVERLAP" in (tmp_path / "c" / "report.md").read_text()
    assert "WARNING: CALIBRATION OVERLAP" in (tmp_path / "c" / "report.html").read_text()


def test_default_split_needs_subjects_outside_the_pairs(attack_set, probes, sample_dir,
                                                         tmp_path):
    only = _folder(tmp_path, "only", {p.name: p for p in probes.iterdir()
                                      if p.name[:3] in SUBJECTS})
    # the sample's neutral folder still holds 8 non-contributors: the split works ...
    res = map_score(attack_set, only, tmp_path / "r", systems=["lbph"],
                    thresholds={"lbph": 0.5}, progress=False)
    assert res.report["settings"]["calibration"]["subjects"] == 8
    # ... but with a source folder and a probe folder holding only contributors: none
    src = _folder(tmp_path, "src", {f"{s}_03.jpg": sample_dir / "neutral" / f"{s}_03.jpg"
                                    for s in ("002", "003")})
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("pair_id,subject_a,image_a,subject_b,image_b\n"
                     "0001,002,002_03.jpg,003,003_03.jpg\n")
    generate_attack_set(pairs, BlendGen, out_dir=tmp_path / "set2", dataset_dir=src,
                        progress=False)
    two = _folder(tmp_path, "two", {p.name: p for p in only.iterdir() if p.name[:3] in ("002", "003")})
    with pytest.raises(MapScoreError, match="calibration split has 0 subject.*pass --calibration"):
        map_score(tmp_path / "set2", two, tmp_path / "r2", systems=["lbph"], progress=False)
    # with every threshold fixed nothing needs calibrating: the report says FMR is unknown
    res = map_score(tmp_path / "set2", two, tmp_path / "r3", systems=["lbph"],
                    thresholds={"lbph": 0.5}, progress=False)
    cal = res.report["settings"]["calibration"]
    assert cal["subjects"] == 0 and "every threshold is fixed" in cal["description"]
    assert res.report["systems"][0]["operating_point"]["n_impostor"] == 0


def test_same_gender_impostors_hand_counted(attack_set, probes, sample_dir, tmp_path):
    # 004 m (two images), 007 f, 008 m, 009 f: 10 pairs, 1 genuine, 9 impostor pairs of
    # which 3 are same-gender (004_03-008, 004_08-008, 007-009)
    files = {f"{s}_03.jpg": sample_dir / "neutral" / f"{s}_03.jpg" for s in OTHERS}
    files["004_08.jpg"] = sample_dir / "smiling" / "004_08.jpg"
    cal = _folder(tmp_path, "cal", files)
    meta = sample_dir / "london_info.csv"
    kw = dict(systems=["lbph"], calibration=cal, target_fmr=0.2, progress=False)
    with pytest.warns(UserWarning):
        every = map_score(attack_set, probes, tmp_path / "all", **kw)
        same = map_score(attack_set, probes, tmp_path / "same", impostors="same-gender",
                         metadata=meta, meta_id_column="face_id", **kw)
    op_all = every.report["systems"][0]["operating_point"]
    op_same = same.report["systems"][0]["operating_point"]
    assert (op_all["n_genuine"], op_all["n_impostor"]) == (1, 9)
    assert (op_same["n_genuine"], op_same["n_impostor"]) == (1, 3)
    cal_doc = same.report["settings"]["calibration"]
    assert cal_doc["impostors"] == "same-gender"
    assert cal_doc["cross_gender_impostors_dropped"] == {"lbph": 6}
    assert "impostors: same-gender" in (tmp_path / "same" / "report.md").read_text()
    with pytest.raises(MapScoreError, match="no gender known for 4 calibration subject"):
        map_score(attack_set, probes, tmp_path / "x", impostors="same-gender", **kw)


# ----------------------------------------------------------------------------------------
# uncertainty and completeness
# ----------------------------------------------------------------------------------------
def _rates(node, path=""):
    """Every dict in a JSON tree that looks like a rate, with its path."""
    if isinstance(node, dict):
        if "rate" in node and "n" in node:
            yield path, node
        for k, v in node.items():
            yield from _rates(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _rates(v, f"{path}[{i}]")


def test_every_rate_in_map_json_has_k_n_and_interval(report):
    out, res = report
    doc = json.loads((out / "map.json").read_text())
    found = dict(_rates(doc))
    for path, r in found.items():  # noqa: PERF102 (the path names a failure)
        assert set(r) >= {"k", "n", "rate", "ci95", "ci_method"}, path
        lo, hi = r["ci95"]
        assert lo <= r["rate"] <= hi, path
    for res_ in [doc["overall"], doc["overall"]["unconditional"], *doc["per_group"].values()]:
        R, C = len(res_["map"]["values"]), len(res_["map"]["values"][0])
        assert [len(row) for row in res_["map"]["rates"]] == [C] * R
        for r in range(R):
            for c in range(C):
                cell = res_["map"]["rates"][r][c]
                assert cell["k"] == res_["map"]["counts"][r][c] and cell["n"] == res_["n_morphs"]
        for label, ps in res_["per_system"].items():
            assert set(ps["intervals"]) == {"minmax_mmpmr", "prodavg_mmpmr", "fmmpmr"}
            assert ps["intervals"]["minmax_mmpmr"]["rate"] == pytest.approx(ps["minmax_mmpmr"])
    for s in doc["systems"]:
        op = s["operating_point"]
        assert op["fmr_rate"]["n"] == op["n_impostor"] and op["fnmr_rate"]["n"] == op["n_genuine"]
        assert op["rule_of_30"]["needed"] == 300 and op["rule_of_30"]["met"] is False
        assert "from 8 independent subjects" in op["rule_of_30"]["note"]
    assert doc["overall"]["fte"]["any_system"]["k"] == 0


def test_bootstrap_is_reproducible_and_contains_the_estimate(attack_set, probes, tmp_path):
    kw = dict(systems=["lbph"], target_fmr=0.1, bootstrap=300, seed=7, progress=False)
    with pytest.warns(UserWarning):
        a = map_score(attack_set, probes, tmp_path / "a", **kw).report
        b = map_score(attack_set, probes, tmp_path / "b", **kw).report
        c = map_score(attack_set, probes, tmp_path / "c", **{**kw, "seed": 8}).report
    assert a["bootstrap"] == b["bootstrap"] and a["bootstrap"] != c["bootstrap"]
    boot = a["bootstrap"]
    assert boot["replicates"] == 300 and boot["seed"] == 7
    lo, hi = boot["per_system"]["lbph"]["minmax_mmpmr"]
    assert lo <= a["overall"]["per_system"]["lbph"]["minmax_mmpmr"] <= hi and lo < hi
    lo, hi = boot["per_system"]["lbph"]["threshold"]
    assert lo <= a["systems"][0]["operating_point"]["threshold"] <= hi
    assert "boot [" in (tmp_path / "a" / "report.md").read_text()


class NoFaceGen(BlendGen):
    """The blend, and a blank image in which no face can be found."""

    name = "noface-test"

    def output_tags(self) -> list[str]:
        return ["blend", "blank"]

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        blend = super().generate(a, b, seed=seed)[0]
        return [blend, MorphOutput(np.full_like(blend.image, 128), "blank")]


def test_fte_and_unconditional_map(sample_dir, probes, tmp_path):
    pairs = tmp_path / "pairs.csv"
    rows = ["pair_id,subject_a,image_a,subject_b,image_b"]
    rows += [f"{k:04d},{a},neutral/{a}_03.jpg,{b},neutral/{b}_03.jpg"
             for k, (a, b) in enumerate(PAIRS, start=1)]
    pairs.write_text("\n".join(rows) + "\n")
    generate_attack_set(pairs, NoFaceGen, out_dir=tmp_path / "set", dataset_dir=sample_dir,
                        progress=False)
    with pytest.warns(UserWarning):
        doc = map_score(tmp_path / "set", probes, tmp_path / "r", systems=["lbph"],
                        target_fmr=0.1, progress=False).report
    ov = doc["overall"]
    assert doc["counts"]["morphs_fte"] == 3 and doc["counts"]["morphs_used"] == 6
    assert ov["fte"]["any_system"]["k"] == 3 and ov["fte"]["any_system"]["n"] == 6
    assert ov["n_morphs"] == 3 and ov["unconditional"]["n_morphs"] == 6
    # a blank morph is never accepted: same counts, twice the denominator
    assert ov["unconditional"]["map"]["counts"] == ov["map"]["counts"]
    np.testing.assert_allclose(np.array(ov["unconditional"]["map"]["values"]) * 2,
                               ov["map"]["values"])
    fte = [s for s in doc["skipped"] if s["reason"].startswith("failure to enrol")]
    assert len(fte) == 3 and all("_blank" in s["what"] for s in fte)
    assert "unconditional" in (tmp_path / "r" / "report.md").read_text()


def test_attempts_truncation(attack_set, probes, tmp_path):
    res = map_score(attack_set, probes, tmp_path / "r", systems=["lbph"], attempts=1,
                    thresholds={"lbph": 0.5}, progress=False)
    doc = res.report
    assert doc["overall"]["attempts"]["subjects_by_attempts"] == {"1": 4}
    assert doc["overall"]["attempts"]["truncated_to"] == 1
    assert doc["counts"]["attempts_per_subject_max"] == 1
    assert {"what": "002_flip.png", "reason": "probe beyond --attempts 1 of subject 002"} \
        in doc["skipped"]
    with open(tmp_path / "r" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["probe"] for r in rows if r["subject_id"] == "002"} == {"002_08.jpg"}


def test_a_probe_failing_under_one_system_keeps_r_for_the_others(attack_set, probes, sample_dir,
                                                                 tmp_path, monkeypatch):
    two = _folder(tmp_path, "two", {p.name: p for p in probes.iterdir()})
    for s in ("003", "005", "006"):  # a second probe for every contributor: R = 2
        img = read_image(sample_dir / "smiling" / f"{s}_08.jpg")
        cv2.imwrite(str(two / f"{s}_flip.png"), np.ascontiguousarray(img[:, ::-1, ::-1]))
    kw = dict(thresholds={"lbph": 0.5}, progress=False)  # both lbph systems
    base = map_score(attack_set, two, tmp_path / "base", systems=["lbph"], **kw).report

    from morphlab.mapscore import job

    real = job.embed_many

    def flaky(systems, paths, **kw_):
        run = real(systems, paths, **kw_)
        res = run.results[1]  # the second system cannot embed one probe of subject 005
        bad = next(p for p in res.embeddings if Path(p).name == "005_flip.png")
        del res.embeddings[bad]
        res.failures[bad] = "alignment failed (test)"
        return run

    monkeypatch.setattr(job, "embed_many", flaky)
    doc = map_score(attack_set, two, tmp_path / "r", systems=["lbph", "lbph"], **kw).report
    assert doc["overall"]["attempts"]["R"] == 2 and len(doc["overall"]["map"]["values"]) == 2
    assert doc["overall"]["per_system"]["lbph"] == base["overall"]["per_system"]["lbph"]
    listed = [s for s in doc["skipped"] if s["what"] == "005_flip.png"]
    assert len(listed) == 1 and "lbph#2 only" in listed[0]["reason"]


# ----------------------------------------------------------------------------------------
# the output folder
# ----------------------------------------------------------------------------------------
def _cli(*args):
    from click.testing import CliRunner

    from morphlab.cli import main

    return CliRunner().invoke(main, ["map-score", *map(str, args)])


def test_refuses_foreign_files_and_overwrite_keeps_them(attack_set, probes, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("<p>my own notes</p>")
    common = (attack_set, "--probes", probes, "-o", out, "--fr", "lbph", "--threshold", "lbph=0.5",
              "--no-progress")
    r = _cli(*common)
    assert r.exit_code == 1 and "refusing to replace report.html" in r.output
    r = _cli(*common, "--overwrite")
    assert r.exit_code == 1 and "refusing to replace report.html" in r.output
    assert (out / "report.html").read_text() == "<p>my own notes</p>"
    (out / "report.html").unlink()
    (out / "notes.txt").write_text("keep me")
    assert _cli(*common).exit_code == 0
    r = _cli(*common)
    assert r.exit_code == 1 and "--overwrite" in r.output
    r = _cli(*common, "--overwrite")
    assert r.exit_code == 0, r.output
    assert (out / "notes.txt").read_text() == "keep me" and (out / "map.json").is_file()


def test_second_writer_gets_folder_locked_error(attack_set, probes, tmp_path):
    import os
    import subprocess
    import sys

    from morphlab.outdir import locked_folder

    out = tmp_path / "locked"
    with locked_folder(out):
        p = subprocess.run(
            [sys.executable, "-m", "morphlab.cli", "map-score", str(attack_set), "--probes",
             str(probes), "-o", str(out), "--fr", "lbph", "--no-progress"],
            capture_output=True, text=True, timeout=300, env={**os.environ})
    assert p.returncode == 1, p.stderr
    assert f"pid {os.getpid()}" in p.stderr + p.stdout and "another morphlab process" in p.stderr + p.stdout
    assert not (out / "map.json").exists()


def test_weighted_thresholds_agree_with_threshold_at_fmr_on_repeated_scores():
    from morphlab.mapscore.bootstrap import weighted_thresholds

    rng = np.random.default_rng(0)
    imp = np.round(rng.normal(size=200), 2)  # ties included
    w = rng.integers(0, 4, size=(30, 200)).astype(float)
    w[0] = 1.0
    got = weighted_thresholds(imp, w, 0.05)
    for b in range(30):  # integer weights = the scores repeated that many times
        want = threshold_at_fmr(np.repeat(imp, w[b].astype(int)), 0.05)
        assert got[b] == want
    assert np.isnan(weighted_thresholds(imp, np.zeros((1, 200)), 0.05)[0])


def test_bootstrap_of_disjoint_pairs_matches_binomial_width():
    """Disjoint pairs are resampled as wholes: with a fixed threshold the percentile
    interval of MinMax-MMPMR is about as wide as the Wilson interval of the same k/n."""
    from morphlab.mapscore.bootstrap import subject_bootstrap
    from morphlab.metrics.intervals import wilson_interval

    rng = np.random.default_rng(1)
    M = 300
    scores = rng.uniform(size=(M, 2, 1, 1))
    subjects = [[f"a{m}", f"b{m}"] for m in range(M)]
    kw = dict(scores=scores, valid=np.ones(scores.shape, bool), labels=["x"],
              thresholds=np.array([0.3]), calibrated=[False],
              genuine=[(np.array([0.9]), np.array(["c1"], dtype=object))],
              impostor=[(np.array([0.1]), np.array([["c1", "c2"]], dtype=object))],
              target_fmr=0.1, n=2000, seed=0)
    boot = subject_bootstrap(morph_subjects=subjects, **kw)
    assert "pairs resampled as wholes" in boot["method"]
    lo, hi = boot["per_system"]["x"]["minmax_mmpmr"]
    k = int(((scores >= 0.3).all(axis=1)).sum())
    wlo, whi = wilson_interval(k, M)
    assert 0.8 < (hi - lo) / (whi - wlo) < 1.25
    # one subject in two pairs: the product weights, wider
    chained = [[f"a{m}", f"a{m + 1}"] for m in range(M)]
    wide = subject_bootstrap(morph_subjects=chained, **kw)
    assert "product" in wide["method"]
    wlo2, whi2 = wide["per_system"]["x"]["minmax_mmpmr"]
    assert whi2 - wlo2 > hi - lo


def test_cli_protocol_options_reach_the_report(attack_set, probes, sample_dir, tmp_path):
    out = tmp_path / "cli"
    r = _cli(attack_set, "--probes", probes, "-o", out, "--fr", "lbph", "--fmr", "0.2",
             "--calibration", probes, "--allow-calibration-overlap", "--impostors", "same-gender",
             "--metadata", sample_dir / "london_info.csv", "--meta-id-column", "face_id",
             "--attempts", "1", "--bootstrap", "50", "--seed", "3", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "WARNING: CALIBRATION OVERLAP" in r.output and "bootstrap [" in r.output
    doc = json.loads((out / "map.json").read_text())
    cal = doc["settings"]["calibration"]
    assert cal["impostors"] == "same-gender" and cal["overlap"]["subjects"] == list(SUBJECTS)
    assert doc["settings"]["attempts"] == 1 and doc["bootstrap"]["seed"] == 3
    r = _cli(attack_set, "--probes", probes, "-o", tmp_path / "x", "--fr", "lbph", "--fmr", "1")
    assert r.exit_code == 1 and "target FMR must lie in (0, 1)" in r.output


def test_output_folder_must_be_outside_the_inputs(attack_set, probes):
    for out, what in ((attack_set / "map", "lies inside the attack set"),
                      (probes, "is the probe folder"), (probes.parent, "contains the")):
        with pytest.raises(ValueError, match=what):
            map_score(attack_set, probes, out, systems=["lbph"], progress=False)
    assert not (attack_set / "map").exists()


# ----------------------------------------------------------------------------------------
# faces/s, the old spellings, relative paths, Ray
# ----------------------------------------------------------------------------------------
def test_summary_and_map_json_count_faces_embedded_and_cached(attack_set, probes, tmp_path,
                                                              monkeypatch):
    import re

    monkeypatch.setenv("MORPHLAB_CACHE", str(tmp_path / "cache"))  # a cold cache
    out = tmp_path / "r"
    common = (attack_set, "--probes", probes, "-o", out, "--fr", "lbph", "--fr",
              "dlib-resnet", "--threshold", "lbph=0.5", "--threshold", "dlib-resnet=published",
              "--no-progress")
    r = _cli(*common)
    assert r.exit_code == 0, r.output
    emb = json.loads((out / "map.json").read_text())["counts"]["embedding"]
    n = emb["images"]
    assert n == 6 + 5 + 12  # morphs, probes (003_03.jpg is an enrolment image), calibration
    assert (emb["executor"], emb["workers"]) == ("local", 1)
    for label in ("lbph", "dlib-resnet"):
        s = emb["per_system"][label]
        assert (s["computed"], s["from_cache"]) == (n, 0) and s["seconds"] > 0
        assert s["faces_per_s"] == pytest.approx(n / s["seconds"], rel=0.01)
        line = re.search(rf"  {label}: {n} faces embedded in [\d.]+ s, ([\d.]+) faces/s per "
                         r"worker; 0 from the cache", r.output)
        assert line, r.output
        assert float(line.group(1)) == pytest.approx(s["faces_per_s"], abs=0.06)
    # dlib-resnet is a ResNet, lbph a histogram: the per-system figures are not one number
    assert emb["per_system"]["lbph"]["faces_per_s"] > emb["per_system"]["dlib-resnet"]["faces_per_s"]
    assert f"embedding: {n} images in" in r.output and "finding faces" in r.output
    r = _cli(*common, "--overwrite")  # warm cache: nothing embedded
    assert r.exit_code == 0, r.output
    assert f"  dlib-resnet: 0 faces embedded; {n} from the cache" in r.output
    again = json.loads((out / "map.json").read_text())["counts"]["embedding"]["per_system"]
    assert again["lbph"] == {"computed": 0, "from_cache": n, "seconds": 0.0, "faces_per_s": None}


def test_old_spellings_still_work_and_warn(attack_set, probes, tmp_path, monkeypatch):
    from morphlab.cli import _conventions

    monkeypatch.setattr(_conventions, "_WARNED", set())
    r = _cli(attack_set, "-p", probes, "--out-dir", tmp_path / "r", "--backend", "dlib",
             "--fr", "lbph", "--threshold", "lbph=0.5", "--no-progress")
    assert r.exit_code == 0, r.output
    for old, new in (("-p", "--probes"), ("--out-dir", "-o/--out"), ("--backend", "--landmarks")):
        assert f"Warning: {old} is deprecated" in r.output and f"use {new}" in r.output
    assert json.loads((tmp_path / "r" / "map.json").read_text())["settings"][
        "landmark_backend"] == "dlib"
    r = _cli(attack_set, "-p", probes, "--probes", probes, "-o", tmp_path / "x", "--fr", "lbph")
    assert r.exit_code == 2 and "give only one of them" in r.output


def test_scores_and_settings_name_no_absolute_path(attack_set, probes, tmp_path):
    """Two labs' outputs compare: every path in map.json's settings and in scores.csv is
    relative to the report folder."""
    import os

    out = tmp_path / "r"
    r = _cli(attack_set, "--probes", probes, "-o", out, "--fr", "lbph", "--threshold",
             "lbph=0.5", "--scores-out", tmp_path / "files", "--no-progress")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "map.json").read_text())
    settings = json.dumps(doc["settings"])
    roots = {str(attack_set.parent), str(probes.parent), str(tmp_path), "/tmp/"}
    for text in (settings, (out / "scores.csv").read_text(),
                 (out / "calibration.csv").read_text()):
        assert not [r for r in roots if r in text], text[:400]
    st = doc["settings"]
    assert st["attack_set"] == os.path.relpath(attack_set / "manifest.jsonl", out)
    assert st["probes"] == os.path.relpath(probes, out)
    assert (out / st["probes"]).resolve() == probes.resolve()
    assert doc["inputs"]["attack_set"]["path"] == os.path.relpath(attack_set, out)
    # the score-file path too
    r = _cli("--scores", tmp_path / "files", "--frs-info", tmp_path / "files" / "frs_info.json",
             "-o", tmp_path / "from-files", "-v")  # -v is accepted with --scores
    assert r.exit_code == 0, r.output
    st = json.loads((tmp_path / "from-files" / "map.json").read_text())["settings"]
    assert str(tmp_path) not in json.dumps(st) and st["scores"] == "../files"


def test_embedding_on_ray_gives_the_local_scores(attack_set, probes, tmp_path):
    """--executor ray -j 2: Ray actors embed (each loads the systems once), this process
    writes: the same map.json numbers and scores.csv as a local run."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'morphlab[ray]')")
    common = ("--probes", probes, "--fr", "lbph", "--fr", "dlib-resnet", "--threshold",
              "lbph=0.5", "--no-cache", "--no-progress")
    local = _cli(attack_set, "-o", tmp_path / "local", *common)
    assert local.exit_code == 0, local.output
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        on_ray = _cli(attack_set, "-o", tmp_path / "ray", *common, "--executor", "ray",
                      "-j", "2")
    finally:
        ray.shutdown()
    assert on_ray.exit_code == 0, on_ray.output
    a, b = (json.loads((tmp_path / d / "map.json").read_text()) for d in ("local", "ray"))
    for key in ("overall", "per_group", "systems", "skipped"):
        assert a[key] == b[key], key
    assert b["counts"]["embedding"]["executor"] == "ray"
    assert b["counts"]["embedding"]["workers"] == 2
    assert b["counts"]["embedding"]["per_system"]["dlib-resnet"]["computed"] == 6 + 5 + 12
    for name in ("scores.csv", "calibration.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    assert "2 ray workers" in on_ray.output
