"""morphlab import: attack sets from morphs made by another tool."""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.generators.runner import load_manifest
from morphlab.importset import import_attack_set
from morphlab.io import read_image, sha256_file, write_image
from morphlab.outdir import ForeignFileError, OutputExistsError


def blend(sample_dir: Path, a: str, b: str) -> np.ndarray:
    """A crude stand-in for a foreign tool's morph: the mean of the two neutral photos."""
    x = read_image(sample_dir / "neutral" / f"{a}_03.jpg").astype(np.float32)
    y = read_image(sample_dir / "neutral" / f"{b}_03.jpg").astype(np.float32)
    return ((x + y) / 2).round().astype(np.uint8)


def foreign_folder(folder: Path, sample_dir: Path, pairs, name="{a}_{b}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for a, b in pairs:
        write_image(folder / name.format(a=a, b=b), blend(sample_dir, a, b))
    return folder


PAIRS = [("002", "003"), ("004", "005")]


@pytest.fixture
def morphs(tmp_path, sample_dir) -> Path:
    return foreign_folder(tmp_path / "their_morphs", sample_dir, PAIRS)


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_default_pattern_hashes_links_and_records_contributors(morphs, sample_dir, tmp_path) -> None:
    before = _snapshot(morphs)
    s = import_attack_set(morphs, tmp_path / "set", generator="their-tool",
                          dataset=sample_dir / "neutral")
    assert s.imported == 2 and not s.failures and s.contributors_known
    assert _snapshot(morphs) == before  # the user's files: neither moved nor changed
    recs = load_manifest(tmp_path / "set", verify=True)
    assert [(r["subject_a"]["id"], r["subject_b"]["id"]) for r in recs] == PAIRS
    for r in recs:
        src = morphs / r["file"]
        assert r["sha256"] == sha256_file(src) and r["generator"] == "their-tool"
        assert r["tag"] == "imported" and r["extra"]["imported_from"] == str(src.resolve())
        assert os.stat(r["path"]).st_ino == os.stat(src).st_ino  # a hard link, not a copy
        a = r["subject_a"]
        assert a["relpath"] == f"{a['id']}_03.jpg"
        assert a["sha256"] == sha256_file(sample_dir / "neutral" / a["relpath"])
    run = json.loads((tmp_path / "set" / "run.json").read_text())
    assert run["format"] == "morphlab-imported-set" and run["generator"] == "their-tool"


def test_copy_and_custom_pattern(tmp_path, sample_dir) -> None:
    src = foreign_folder(tmp_path / "m", sample_dir, PAIRS, name="morph-{a}-vs-{b}.jpg")
    s = import_attack_set(src, tmp_path / "set", pattern=r"morph-(?P<a>\d+)-vs-(?P<b>\d+)", link=False,
                          tag="v2")
    assert s.stored == "copy" and not s.contributors_known
    recs = load_manifest(tmp_path / "set", verify=True)
    assert [(r["subject_a"], r["subject_b"]) for r in recs] == [({"id": a}, {"id": b}) for a, b in PAIRS]
    assert os.stat(recs[0]["path"]).st_ino != os.stat(src / recs[0]["file"]).st_ino
    with pytest.raises(ValueError, match="named groups 'a' and 'b'"):
        import_attack_set(src, tmp_path / "x", pattern=r"(?P<subject>\d+)")


def test_names_not_matching_are_listed(tmp_path, sample_dir) -> None:
    src = foreign_folder(tmp_path / "m", sample_dir, PAIRS)
    for i in range(7):
        write_image(src / f"odd{i}.png", blend(sample_dir, "006", "007")[:, :, :] // (i + 2))
    with pytest.raises(ValueError, match=r"7 file name\(s\) do not match .*odd0.png, odd1.png, "
                                         r"odd2.png, odd3.png, odd4.png … \(7 in all\)"):
        import_attack_set(src, tmp_path / "set")
    assert not (tmp_path / "set").exists()


def test_contributors_csv(tmp_path, sample_dir) -> None:
    src = foreign_folder(tmp_path / "m", sample_dir, [("002", "003"), ("004", "005")], name="m{a}{b}.png")
    table = tmp_path / "who.csv"

    def write(rows):
        with open(table, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerows([["file", "a", "b", "a_image"], *rows])

    write([["m002003.png", "002", "003", "002_03.jpg"], ["m004005.png", "004", "005", ""]])
    import_attack_set(src, tmp_path / "set", contributors_csv=table, dataset=sample_dir / "neutral")
    recs = load_manifest(tmp_path / "set")
    assert [(r["subject_a"]["id"], r["subject_b"]["id"]) for r in recs] == [("002", "003"), ("004", "005")]
    write([["m002003.png", "002", "003", ""]])
    with pytest.raises(ValueError, match="does not list: m004005.png"):
        import_attack_set(src, tmp_path / "s2", contributors_csv=table)
    write([["m002003.png", "002", "003", ""], ["m002003.png", "002", "003", ""], ["gone.png", "1", "2", ""]])
    with pytest.raises(ValueError, match=r"line 3: m002003.png is listed twice.*line 4: gone.png is not"):
        import_attack_set(src, tmp_path / "s2", contributors_csv=table)
    table.write_text("name,x\nm002003.png,1\n")
    with pytest.raises(ValueError, match="no column"):
        import_attack_set(src, tmp_path / "s2", contributors_csv=table)


def test_duplicates_same_identity_and_ambiguous_dataset(tmp_path, sample_dir) -> None:
    src = foreign_folder(tmp_path / "m", sample_dir, PAIRS)
    (src / "sub").mkdir()
    write_image(src / "sub" / "002_003.png", blend(sample_dir, "002", "009"))
    with pytest.raises(ValueError, match="occur twice.*002_003.png and sub/002_003.png"):
        import_attack_set(src, tmp_path / "set")
    (src / "sub" / "002_003.png").unlink()
    (src / "006_007.png").write_bytes((src / "002_003.png").read_bytes())
    with pytest.raises(ValueError, match="byte-for-byte duplicates.*002_003.png = 006_007.png"):
        import_attack_set(src, tmp_path / "set")
    (src / "006_007.png").unlink()
    write_image(src / "008_008.png", blend(sample_dir, "008", "009"))
    with pytest.raises(ValueError, match="one identity.*008_008.png"):
        import_attack_set(src, tmp_path / "set")
    (src / "008_008.png").unlink()
    with pytest.raises(ValueError, match="subject 002 has 2 images"):  # neutral + smiling
        import_attack_set(src, tmp_path / "set", dataset=sample_dir)


def test_unreadable_images_are_recorded(tmp_path, sample_dir) -> None:
    src = foreign_folder(tmp_path / "m", sample_dir, PAIRS)
    (src / "006_007.png").write_bytes(b"not a png")
    res = CliRunner().invoke(main, ["import", str(src), "-o", str(tmp_path / "set")])
    assert res.exit_code == 0, res.output
    assert "1 of 3 images not imported" in res.output and "006_007.png" in res.output
    lines = [json.loads(x) for x in (tmp_path / "set" / "manifest.jsonl").read_text().splitlines()]
    failed = [x for x in lines if x["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"].startswith("unreadable")
    assert not (tmp_path / "set" / "006_007.png").exists()
    assert json.loads((tmp_path / "set" / "import.json").read_text())["failed"][0]["file"] == "006_007.png"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "002_003.png").write_bytes(b"junk")
    res = CliRunner().invoke(main, ["import", str(bad), "-o", str(tmp_path / "set2")])
    assert res.exit_code == 1 and "none of the 1 images could be read" in res.output


def test_output_folder_rules(morphs, tmp_path) -> None:
    out = tmp_path / "set"
    import_attack_set(morphs, out)
    with pytest.raises(OutputExistsError):
        import_attack_set(morphs, out)
    (morphs / "004_005.png").unlink()
    import_attack_set(morphs, out, overwrite=True)
    assert [r["file"] for r in load_manifest(out)] == ["002_003.png"]
    assert not (out / "004_005.png").exists()  # the previous import's link is gone
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a previous import's.*notes.txt"):
        import_attack_set(morphs, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "002_003.png").write_text("a file of mine")
    with pytest.raises(ForeignFileError):
        import_attack_set(morphs, mine)
    with pytest.raises(ValueError, match="morph folder"):
        import_attack_set(morphs, morphs / "set")


def test_map_score_and_detect_eval_on_an_imported_set(tmp_path, sample_dir) -> None:
    from morphlab.mapscore import map_score

    test_set = import_attack_set(foreign_folder(tmp_path / "test_m", sample_dir, PAIRS),
                                 tmp_path / "test_set", generator="their-tool",
                                 dataset=sample_dir / "neutral").out_dir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few impostor comparisons for the FMR: expected here
        res = map_score(test_set, sample_dir / "smiling", tmp_path / "map", systems=["lbph"],
                        target_fmr=0.1, progress=False)
    assert res.map.shape == (1, 1) and 0 <= res.map[0, 0] <= 1
    assert res.report["overall"]["n_morphs"] == 2 and not res.report["skipped"]

    train_pairs = [("006", "007"), ("008", "009"), ("013", "017")]
    train_set = import_attack_set(foreign_folder(tmp_path / "train_m", sample_dir, train_pairs),
                                  tmp_path / "train_set").out_dir
    lists = {}
    for side, ids in (("train", [x for p in train_pairs for x in p]), ("test", [x for p in PAIRS for x in p])):
        lists[side] = tmp_path / f"{side}_bona_fide.txt"
        lists[side].write_text("".join(f"{sample_dir / 'smiling' / f'{i}_08.jpg'}\n" for i in ids))
    run = CliRunner().invoke
    r = run(main, ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(lists["train"]),
                   "--attacks", str(train_set), "-o", str(tmp_path / "model"), "--no-progress"])
    assert r.exit_code == 0, r.output
    r = run(main, ["detect", "eval", str(tmp_path / "model"), "--bona-fide", str(lists["test"]),
                   "--attacks", str(test_set), "-o", str(tmp_path / "eval"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "their-tool/imported (2)" in r.output


def test_map_score_without_contributor_images_is_a_named_error(morphs, sample_dir, tmp_path) -> None:
    res = CliRunner().invoke(main, ["import", str(morphs), "-o", str(tmp_path / "set")])
    assert res.exit_code == 0 and "map-score cannot" in res.output
    res = CliRunner().invoke(main, ["map-score", str(tmp_path / "set"), "--probes", str(sample_dir / "smiling"),
                                    "-o", str(tmp_path / "map"), "--fr", "lbph"])
    assert res.exit_code == 1 and "re-import with" in res.output, res.output


def test_cli_out_and_the_old_out_dir(tmp_path, sample_dir, monkeypatch) -> None:
    from morphlab.cli import _conventions

    src = foreign_folder(tmp_path / "m", sample_dir, PAIRS)
    res = CliRunner().invoke(main, ["import", str(src), "--out", str(tmp_path / "new")])
    assert res.exit_code == 0 and "Warning" not in res.output, res.output
    monkeypatch.setattr(_conventions, "_WARNED", set())
    res = CliRunner().invoke(main, ["import", str(src), "--out-dir", str(tmp_path / "old")])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Warning: --out-dir is deprecated") and "use -o/--out" in res.output
    strip = lambda recs: [{k: v for k, v in r.items() if k != "path"} for r in recs]  # noqa: E731
    assert strip(load_manifest(tmp_path / "old")) == strip(load_manifest(tmp_path / "new"))
    assert len(load_manifest(tmp_path / "old")) == len(PAIRS)
    assert "--out-dir" not in CliRunner().invoke(main, ["import", "--help"]).output
