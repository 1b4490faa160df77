"""Score files in the MAP authors' format: agreement with their rule, validation, round trip."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.reports.map_report import MapScores, compute_metrics
from morphlab.scorefiles import (
    FRS_INFO_NAME,
    ScoreFileError,
    map_score_from_files,
    read_frs_info,
    read_score_folder,
    to_map_scores,
    write_score_files,
)


# ----------------------------------------------------------------------------------------
# helpers: synthetic score folders and the authors' rule, written out with plain loops
# ----------------------------------------------------------------------------------------
def write_folder(d: Path, info: dict, lines: dict[str, list[str]]) -> tuple[Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    for name, ls in lines.items():
        (d / f"{name}.txt").write_text("\n".join(ls) + "\n")
    f = d / FRS_INFO_NAME
    f.write_text(json.dumps(info))
    return d, f


def random_study(seed: int, tmp: Path, n_morphs: int = 25) -> tuple[Path, Path]:
    """Several systems, mixed similarity/dissimilarity, scores on a 0.05 grid (so many
    scores equal the threshold exactly), 2..5 attempts per subject (the same under every
    system), lines shuffled per system, tabs and spaces mixed."""
    rnd = random.Random(seed)
    systems = {"simA": [0.5, True], "distB": [0.45, False], "simC": [0.3, True],
               "distD": [0.6, False]}
    pool = [f"s{k:02d}" for k in range(12)]
    morphs = []
    for i in range(n_morphs):
        a, b = rnd.sample(pool, 2)
        morphs.append((f"m{i:03d}.png", [(a, rnd.randint(2, 5)), (b, rnd.randint(2, 5))]))
    lines: dict[str, list[str]] = {}
    for name in systems:
        ls = []
        for mid, subs in morphs:
            for sid, n in subs:
                vals = [f"{rnd.randint(0, 20) / 20:.2f}" for _ in range(n)]
                sep = rnd.choice(["\t", " ", "  ", " \t"])
                ls.append(sep.join([mid, sid, *vals]))
        rnd.shuffle(ls)
        lines[name] = ls
    return write_folder(tmp / f"study{seed}", systems, lines)


def authors_rule(folder: Path, info_file: Path) -> dict[str, Any]:
    """MAP and MMPMRs straight from the text, as the reference implementation defines them:
    accept similarity when score > t, dissimilarity when score < t."""
    info = json.loads(info_file.read_text())
    names = list(info)
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name in names:
        table[name] = {}
        for line in (folder / f"{name}.txt").read_text().splitlines():
            f = line.split()
            if f:
                table[name].setdefault(f[0], {})[f[1]] = [float(x) for x in f[2:]]
    morphs = list(table[names[0]])

    def ok(name, s):
        t, sim = info[name]
        return s > t if sim else s < t

    R = min(len(v) for name in names for m in morphs for v in table[name][m].values())
    succ = {}
    for m in morphs:
        succ[m] = []
        for name in names:
            succ[m].append(min(sum(1 for s in v if ok(name, s))
                               for v in table[name][m].values()))
    mp = []
    for r in range(1, R + 1):
        row = []
        for c in range(1, len(names) + 1):
            n = 0
            for m in morphs:
                if sum(1 for k in succ[m] if k >= r) >= c:
                    n += 1
            row.append(n / len(morphs))
        mp.append(row)
    minmax, prodavg = {}, {}
    for i, name in enumerate(names):
        minmax[name] = sum(1 for m in morphs if succ[m][i] >= 1) / len(morphs)
        total = 0.0
        for m in morphs:
            p = 1.0
            for v in table[name][m].values():
                p *= sum(1 for s in v if ok(name, s)) / len(v)
            total += p
        prodavg[name] = total / len(morphs)
    return {"map": mp, "minmax": minmax, "prodavg": prodavg, "R": R}


def metrics_of(data: MapScores) -> dict:
    return compute_metrics(data.scores, data.valid(), data.thresholds, data.labels,
                           [op.fnmr for op in data.operating_points])


# ----------------------------------------------------------------------------------------
# (a) agreement with the authors' rule
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_map_agrees_with_the_authors_rule_on_random_files(seed, tmp_path):
    d, info = random_study(seed, tmp_path)
    ref = authors_rule(d, info)
    data = to_map_scores(read_score_folder(d, info))
    res = metrics_of(data)
    assert len(res["map"]["values"]) == ref["R"] == 2
    np.testing.assert_array_equal(res["map"]["values"], ref["map"])
    for name in ref["minmax"]:
        assert res["per_system"][name]["minmax_mmpmr"] == pytest.approx(ref["minmax"][name])
        assert res["per_system"][name]["prodavg_mmpmr"] == pytest.approx(ref["prodavg"][name])
    # the grid puts many scores exactly on a threshold: the test is about the strict rule
    n_ties = sum(1 for name, (t, _) in json.loads(info.read_text()).items()
                 for line in (d / f"{name}.txt").read_text().splitlines()
                 for x in line.split()[2:] if float(x) == t)
    assert n_ties > 10


def test_ties_at_the_threshold_are_rejected_hand_computed(tmp_path):
    # one morph, subject A and B, one system of each kind; every score equals a threshold
    d, info = write_folder(tmp_path / "s", {"sim": [0.5, True], "dist": [0.5, False]}, {
        "sim": ["m A 0.5 0.6", "m B 0.6 0.5000001"],   # A: 1 accepted, B: 2 accepted
        "dist": ["m A 0.5 0.4", "m B 0.4 0.3"],        # A: 1 accepted, B: 2 accepted
    })
    res = metrics_of(to_map_scores(read_score_folder(d, info)))
    assert res["map"]["values"] == [[1.0, 1.0], [0.0, 0.0]]
    d2, info2 = write_folder(tmp_path / "t", {"sim": [0.5, True], "dist": [0.5, False]}, {
        "sim": ["m A 0.5 0.5", "m B 0.9 0.9"], "dist": ["m A 0.1 0.1", "m B 0.5 0.5"]})
    res = metrics_of(to_map_scores(read_score_folder(d2, info2)))
    assert res["map"]["values"] == [[0.0, 0.0], [0.0, 0.0]]
    assert res["per_system"]["sim"]["minmax_mmpmr"] == 0.0


def test_report_folder_from_score_files(tmp_path):
    d, info = random_study(7, tmp_path, n_morphs=8)
    out = tmp_path / "report"
    res = map_score_from_files(d, info, out)
    doc = json.loads((out / "map.json").read_text())
    assert doc["overall"]["map"]["values"] == authors_rule(d, info)["map"]
    np.testing.assert_array_equal(res.map, doc["overall"]["map"]["values"])
    assert {"map.json", "scores.csv", "report.html", "report.md", "map.png"} <= \
        {p.name for p in out.iterdir()}
    sysd = {s["label"]: s for s in doc["systems"]}
    assert sysd["distB"]["native_threshold"] == 0.45
    assert sysd["distB"]["operating_point"]["threshold"] == np.nextafter(-0.45, np.inf)
    assert sysd["simA"]["operating_point"]["policy"] == "external"
    assert doc["counts"]["morphs_used"] == 8
    # a second run needs overwrite; a file morphlab did not write is never replaced
    from morphlab.outdir import ForeignFileError, OutputExistsError

    with pytest.raises(OutputExistsError):
        map_score_from_files(d, info, out)
    map_score_from_files(d, info, out, overwrite=True)
    (out / "report.md").write_text("mine")
    with pytest.raises(ForeignFileError):
        map_score_from_files(d, info, out, overwrite=True)
    with pytest.raises(ValueError, match="is the score folder"):
        map_score_from_files(d, info, d)


# ----------------------------------------------------------------------------------------
# (b) every problem reported
# ----------------------------------------------------------------------------------------
GOOD = {"x": ["m1 A 0.1 0.2", "m1 B 0.3 0.4", "m2 A 0.5", "m2 B 0.6"],
        "y": ["m1 A 0.1 0.2", "m1 B 0.3 0.4", "m2 A 0.5", "m2 B 0.6"]}
INFO = {"x": [0.3, True], "y": [0.3, False]}


def test_inconsistencies_are_all_listed_in_one_error(tmp_path):
    lines = {"x": GOOD["x"] + ["m3 A 1", "m3 B 1", "m4 A 1", "m4 B 1", "m5 A 1 2", "m5 B 1"],
             "y": GOOD["y"] + ["m4 A 1",           "m5 A 1", "m5 B 1"]}
    d, info = write_folder(tmp_path / "s", INFO, lines)
    with pytest.raises(ScoreFileError) as exc:
        read_score_folder(d, info)
    msg = str(exc.value)
    assert "3 problem(s)" in msg
    assert "morph 'm3': missing in y.txt (present in x.txt)" in msg
    assert "morph 'm4', subject 'B': missing in y.txt" in msg
    assert "morph 'm5', subject 'A': unequal attempt counts: 2 in x.txt, 1 in y.txt" in msg


def test_morphs_with_a_different_number_of_subjects(tmp_path):
    lines = {k: v + ["m3 A 0.1"] for k, v in GOOD.items()}
    d, info = write_folder(tmp_path / "s", INFO, lines)
    with pytest.raises(ScoreFileError, match="morph 'm3' has 1 contributing subject"):
        read_score_folder(d, info)


@pytest.mark.parametrize("system, line, message", [
    ("y", "m3 A 0.1 abc", r"y\.txt:5: score 2 'abc' is not a number"),
    ("y", "m3 A 0.1 nan", r"y\.txt:5: score 2 is NaN"),
    ("y", "m3 A -inf", r"y\.txt:5: score 1 '-inf' is not a finite number \(only inf marks"),
    ("x", "m3 A 0.2 inf", r"x\.txt:5: score 2 'inf' is not a finite number \(only -inf marks"),
    ("y", "m3 A", r"y\.txt:5: expected 'morphID subjectID score1 … scoreN', got 2 field"),
    ("y", "m1 B 0.5", r"y\.txt:5: morph 'm1', subject 'B' is already on line 2"),
])
def test_bad_lines_name_file_and_line(tmp_path, system, line, message):
    lines = {k: v + [line] if k == system else v for k, v in GOOD.items()}
    d, info = write_folder(tmp_path / "s", INFO, lines)
    with pytest.raises(ScoreFileError, match=message):
        read_score_folder(d, info)


@pytest.mark.parametrize("info, message", [
    ({"x": [0.3, True]}, r"score file\(s\) without an entry in frs_info.json: y\.txt"),
    ({"x": [0.3, True], "y": [0.3, False], "z": [1, True]},
     r"system\(s\) in frs_info.json without a score file: z\.txt"),
    ({"x": ["0.3", True], "y": [0.3, False]},
     r"'x': expected \[threshold, is_similarity\]; the threshold \"0.3\" is not a number"),
    ({"x": [0.3, "yes"], "y": [0.3, False]}, r"is_similarity \"yes\" is not true or false"),
    ({"x": [0.3, True, 1], "y": [0.3, False]}, r"got \[0.3, true, 1\]"),
    ({"x": [float("nan"), True], "y": [0.3, False]}, "not a finite number"),
    ([["x", 0.3, True]], "expected a JSON object"),
    ({"../x": [0.3, True]}, "cannot name a score file"),
])
def test_bad_frs_info(tmp_path, info, message):
    d, f = write_folder(tmp_path / "s", {}, GOOD)
    f.write_text(json.dumps(info))
    with pytest.raises(ScoreFileError, match=message):
        read_score_folder(d, f)


def test_frs_info_not_json_or_duplicated(tmp_path):
    d, f = write_folder(tmp_path / "s", INFO, GOOD)
    f.write_text('{"x": [0.3, true], "y": [0.3, false]')
    with pytest.raises(ScoreFileError, match=r"frs_info.json: not valid JSON \(line 1"):
        read_frs_info(f)
    f.write_text('{"x": [0.3, true], "x": [0.4, false]}')
    with pytest.raises(ScoreFileError, match="'x' is given more than once"):
        read_frs_info(f)
    with pytest.raises(FileNotFoundError, match="frs-info file not found"):
        read_score_folder(d, tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="score folder not found"):
        read_score_folder(tmp_path / "nope", f)


# ----------------------------------------------------------------------------------------
# writer: exact decisions, refusals
# ----------------------------------------------------------------------------------------
def tiny_scores(scores: np.ndarray, thresholds, ids=(("m1.png", "002", "003"),)) -> MapScores:
    from morphlab.metrics.thresholds import fixed

    M, S, A, C = scores.shape
    return MapScores(
        systems=[{"name": f"sys{c}", "label": f"sys{c}"} for c in range(C)],
        operating_points=[fixed(t) for t in thresholds],
        morphs=[{"file": m, "group": "g", "pair_id": "", "subject_ids": list(s)}
                for m, *s in ids],
        probes=[[[f"p{a}" for a in range(A)] for _ in range(S)] for _ in range(M)],
        scores=scores, calibration={})


def test_writer_keeps_every_decision_including_ties(tmp_path):
    t = [0.4, 0.1 + 0.2]  # 0.30000000000000004: ties must survive the text round trip
    s = np.array([[[[0.4, 0.3], [0.3999999, 0.1 + 0.2], [np.nan, np.nan]],
                   [[0.5, 0.30000000000000004], [0.4, 0.3], [0.9, 0.1]]]])  # (1, 2, 3, 2)
    data = tiny_scores(s, t)
    write_score_files(data, tmp_path / "x")
    text = (tmp_path / "x" / "sys0.txt").read_text()
    assert text == "m1.png\t002\t0.4\t0.3999999\nm1.png\t003\t0.5\t0.4\t0.9\n"
    info = json.loads((tmp_path / "x" / FRS_INFO_NAME).read_text())
    assert info["sys0"][1] is True and info["sys0"][0] < 0.4
    back = to_map_scores(read_score_folder(tmp_path / "x", tmp_path / "x" / FRS_INFO_NAME))
    np.testing.assert_array_equal(back.thresholds, t)
    np.testing.assert_array_equal(metrics_of(back)["map"]["values"],
                                  metrics_of(data)["map"]["values"])
    assert metrics_of(data)["map"]["values"] == [[1.0, 1.0], [0.0, 0.0]]
    # and the authors' rule on the written text agrees
    assert authors_rule(tmp_path / "x", tmp_path / "x" / FRS_INFO_NAME)["map"] == \
        [[1.0, 1.0], [0.0, 0.0]]


def test_failed_comparisons_and_fte_round_trip(tmp_path):
    """A probe one system cannot embed is a rejected attempt for it only; a morph it
    cannot embed is its FTE: written as -inf, read back as the same attempts and FTE."""
    rng = np.random.default_rng(5)
    s = rng.uniform(0, 1, size=(3, 2, 2, 2))
    s[0, 1, 1, 0] = np.nan        # morph 0, subject B, probe 2: not embedded by sys0
    s[2, :, :, 1] = np.nan        # morph 2: sys1 finds no face
    data = tiny_scores(s, [0.3, 0.6], ids=(("m0", "a", "b"), ("m1", "a", "c"), ("m2", "b", "c")))
    data.attempts = np.full((3, 2), 2)
    data.embedded = np.array([[True, True], [True, True], [True, False]])
    write_score_files(data, tmp_path / "x")
    assert "m0\tb\t" in (tmp_path / "x" / "sys0.txt").read_text()
    assert (tmp_path / "x" / "sys0.txt").read_text().splitlines()[1].endswith("\t-inf")
    assert "m2\tb\t-inf\t-inf" in (tmp_path / "x" / "sys1.txt").read_text()
    back = to_map_scores(read_score_folder(tmp_path / "x", tmp_path / "x" / FRS_INFO_NAME))
    np.testing.assert_array_equal(back.attempts, data.attempts)
    np.testing.assert_array_equal(back.embedded, data.embedded)
    np.testing.assert_array_equal(back.scores, data.scores)  # NaN where NaN, values exact
    assert back.counts["morphs_fte"] == 1 and back.counts["failed_comparisons"] == \
        {"sys0": 1, "sys1": 4}
    assert "failure to enrol" in back.skipped[0]["reason"]
    # the reference rule on the written text: -inf is rejected like any failed attempt
    ref = authors_rule(tmp_path / "x", tmp_path / "x" / FRS_INFO_NAME)
    assert ref["map"] == metrics_of(back)["map"]["values"]  # all morphs (unconditional)


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    s = np.full((1, 2, 2, 2), 0.5)
    with pytest.raises(ScoreFileError, match=r"id 'my morph\.png' .* contains whitespace"):
        write_score_files(tiny_scores(s, [0.4, 0.4], ids=(("my morph.png", "a", "b"),)),
                          tmp_path / "x")
    s2 = s.copy()
    s2[0, 1, 1, 1] = np.inf
    with pytest.raises(ScoreFileError, match="subject '003', sys1: score inf is not finite"):
        write_score_files(tiny_scores(s2, [0.4, 0.4]), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    out = tmp_path / "y"
    write_score_files(tiny_scores(s, [0.4, 0.4]), out)
    from morphlab.outdir import ForeignFileError, OutputExistsError

    with pytest.raises(OutputExistsError):
        write_score_files(tiny_scores(s, [0.4, 0.4]), out)
    # a previous result's system that is no longer scored is removed with --overwrite
    one = tiny_scores(s[..., :1], [0.4])
    write_score_files(one, out, overwrite=True)
    assert sorted(p.name for p in out.glob("*.txt")) == ["sys0.txt"]
    (out / "other.txt").write_text("m1.png 002 0.1\n")
    with pytest.raises(ForeignFileError, match="other.txt"):
        write_score_files(one, out, overwrite=True)


# ----------------------------------------------------------------------------------------
# (c) image path -> --scores-out -> --scores
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def attack_set(sample_dir: Path, tmp_path_factory) -> Path:
    from morphlab.generators.base import Contributor, Generator, MorphOutput
    from morphlab.generators.runner import generate_attack_set
    from morphlab.io import read_image

    class Blend(Generator):
        name, version = "blend-sf", "1"

        def get_params(self) -> dict[str, Any]:
            return {}

        def output_tags(self) -> list[str]:
            return ["blend"]

        def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
            ia, ib = read_image(a.path), read_image(b.path)
            ib = cv2.resize(ib, (ia.shape[1], ia.shape[0]), interpolation=cv2.INTER_AREA)
            blend = ((ia.astype(np.float32) + ib) / 2).round().astype(np.uint8)
            return [MorphOutput(blend, "blend")]

    d = tmp_path_factory.mktemp("sf_attack")
    rows = ["pair_id,subject_a,image_a,subject_b,image_b"]
    for k, (a, b) in enumerate((("002", "003"), ("005", "006"), ("002", "005")), start=1):
        rows.append(f"{k:04d},{a},neutral/{a}_03.jpg,{b},neutral/{b}_03.jpg")
    (d / "pairs.csv").write_text("\n".join(rows) + "\n")
    generate_attack_set(d / "pairs.csv", Blend, out_dir=d / "set", dataset_dir=sample_dir,
                        progress=False)
    return d / "set"


@pytest.fixture(scope="module")
def probes(sample_dir: Path, tmp_path_factory) -> Path:
    import shutil

    d = tmp_path_factory.mktemp("sf_probes")
    for s in ("002", "003", "005", "006"):
        shutil.copy(sample_dir / "smiling" / f"{s}_08.jpg", d)
    img = cv2.imread(str(sample_dir / "smiling" / "002_08.jpg"))
    cv2.imwrite(str(d / "002_flip.png"), np.ascontiguousarray(img[:, ::-1]))  # 2 attempts
    return d


def test_round_trip_image_path_scores_out_scores(attack_set, probes, sample_dir, tmp_path):
    from morphlab.mapscore import map_score

    sdir = tmp_path / "exchange"
    cal = {s: [sample_dir / "neutral" / f"{s}_03.jpg"] for s in ("004", "007")}  # few images
    img = map_score(attack_set, probes, tmp_path / "img", systems=["dlib-resnet", "lbph"],
                    thresholds={"dlib-resnet": "published", "lbph": 0.3}, calibration=cal,
                    progress=False, scores_out=sdir)
    assert sorted(p.name for p in sdir.iterdir() if not p.name.startswith(".")) == \
        ["dlib-resnet.txt", FRS_INFO_NAME, "lbph.txt"]
    ext = map_score_from_files(sdir, sdir / FRS_INFO_NAME, tmp_path / "ext")
    a, b = img.report, ext.report
    assert a["overall"]["map"]["values"] == b["overall"]["map"]["values"]
    assert a["overall"]["map"]["counts"] == b["overall"]["map"]["counts"]
    for label in ("dlib-resnet", "lbph"):
        for k in ("minmax_mmpmr", "prodavg_mmpmr", "fmmpmr"):
            assert a["overall"]["per_system"][label][k] == b["overall"]["per_system"][label][k]
    thr = {s["label"]: s["operating_point"]["threshold"] for s in a["systems"]}
    assert {s["label"]: s["operating_point"]["threshold"] for s in b["systems"]} == thr
    assert authors_rule(sdir, sdir / FRS_INFO_NAME)["map"] == a["overall"]["map"]["values"]
    lines = (sdir / "lbph.txt").read_text().splitlines()
    assert len(lines) == 6 and sum(len(x.split("\t")) == 4 for x in lines) == 2  # 002: 2 probes
    # the exchange folder must not overlap the inputs
    with pytest.raises(ValueError, match="lies inside the probe"):
        map_score(attack_set, probes, tmp_path / "img2", systems=["lbph"], calibration=cal,
                  thresholds={"lbph": 0.3}, progress=False, scores_out=probes / "x")


# ----------------------------------------------------------------------------------------
# (d) the command line
# ----------------------------------------------------------------------------------------
def test_cli_scores(tmp_path):
    d, info = random_study(11, tmp_path, n_morphs=6)
    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(main, ["map-score", "--scores", str(d), "--frs-info", str(info),
                             "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "map.json").read_text())
    assert doc["overall"]["map"]["values"] == authors_rule(d, info)["map"]
    assert "6 morphs" in r.output and "MAP[1,1]" in r.output
    # a second run: exit 1 without --overwrite, 0 with it
    args = ["map-score", "--scores", str(d), "--frs-info", str(info), "-o", str(out)]
    r = runner.invoke(main, args)
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert runner.invoke(main, [*args, "--overwrite"]).exit_code == 0
    # bad file: exit 1 with the file and line
    with open(d / "simA.txt", "a") as fh:
        fh.write("m000.png s99 0.1 x\n")
    r = runner.invoke(main, ["map-score", "--scores", str(d), "--frs-info", str(info),
                             "-o", str(tmp_path / "cli2")])
    assert r.exit_code == 1 and "simA.txt:" in r.output and "'x' is not a number" in r.output
    assert r.output.startswith("Error:")


@pytest.mark.parametrize("args, message", [
    (["--scores", "{d}", "-o", "{o}"], "--scores needs --frs-info"),
    (["--frs-info", "{f}", "-o", "{o}"], "--frs-info needs --scores"),
    (["{d}", "--scores", "{d}", "--frs-info", "{f}", "-o", "{o}"], "ATTACK_SET"),
    (["--scores", "{d}", "--frs-info", "{f}", "-o", "{o}", "--fr", "lbph"], "--fr"),
    (["--scores", "{d}", "--frs-info", "{f}", "-o", "{o}", "--scores-out", "{o}2"],
     "--scores-out"),
    (["-o", "{o}"], "ATTACK_SET"),
])
def test_cli_usage_errors(tmp_path, args, message):
    d, f = write_folder(tmp_path / "s", INFO, GOOD)
    args = [a.format(d=d, f=f, o=tmp_path / "o") for a in args]
    r = CliRunner().invoke(main, ["map-score", *args])
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_strict_threshold_helper_is_exact():
    from morphlab.scorefiles import _strict_threshold

    rng = np.random.default_rng(0)
    for t in rng.normal(size=200):
        u = _strict_threshold(float(t))
        for s in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)):
            assert (s > u) == (s >= t)
    assert _strict_threshold(-math.inf) < -1e308


def test_readme_score_file_example_runs_as_written(tmp_path):
    import os
    import re
    import subprocess
    import sys

    readme = Path(__file__).resolve().parents[1] / "README.md"
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.S)
                if "work/sdk/frs_info.json" in b]
    block = block.replace("morphlab map-score", f"'{sys.executable}' -m morphlab.cli map-score")
    r = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=dict(os.environ),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "work" / "map_sdk" / "map.json").read_text())
    assert doc["overall"]["map"]["values"] == [[1.0, 1.0], [0.5, 0.0]]  # as the README says
    d = tmp_path / "work" / "sdk"
    assert authors_rule(d, d / FRS_INFO_NAME)["map"] == doc["overall"]["map"]["values"]


def test_frs_info_may_be_a_txt_file_inside_the_folder(tmp_path):
    d, f = write_folder(tmp_path / "s", INFO, GOOD)
    inside = d / "frs_info.txt"
    f.rename(inside)
    ss = read_score_folder(d, inside)
    assert [s.name for s in ss.systems] == ["x", "y"] and ss.morphs == ["m1", "m2"]
