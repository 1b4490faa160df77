"""``morphlab pairs``: --all, the similarity column of --strategy similar, the metadata note.

Everything runs on the embedded sample (12 FRLL subjects).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from itertools import combinations
from pathlib import Path

import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.datasets.pairs import PairsError, read_pairs


def _pairs(*args, ok: bool = True):
    res = CliRunner().invoke(main, ["pairs", *[str(a) for a in args]])
    if ok:
        assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    return res


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _genders(sample_dir: Path) -> dict[str, str]:
    return {r["face_id"]: r["face_gender"] for r in _rows(sample_dir / "london_info.csv")}


def _unordered(rows: list[dict]) -> list[frozenset]:
    return [frozenset((r["subject_a"], r["subject_b"])) for r in rows]


def test_all_same_gender_pairs(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "all.csv"
    res = _pairs(sample_dir, "--loader", "frll", "--strategy", "same-gender", "--all",
                 "--pairs-file", out)
    gender = _genders(sample_dir)
    expected = {frozenset(ab) for ab in combinations(sorted(gender), 2)
                if gender[ab[0]] == gender[ab[1]]}
    got = _unordered(_rows(out))
    assert len(got) == len(set(got)) == len(expected) > 12  # more than one pair per subject
    assert set(got) == expected
    assert f"wrote {len(expected)} pairs (12 of 12 subjects" in res.output
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert side["parameters"]["per_subject"] is None and side["parameters"]["n_pairs"] is None
    # the same set as guessing a large enough --per-subject
    guessed = tmp_path / "guessed.csv"
    _pairs(sample_dir, "--loader", "frll", "--strategy", "same-gender", "--per-subject", 11,
           "--pairs-file", guessed)
    assert set(_unordered(_rows(guessed))) == expected


def test_all_random_is_every_pair(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "all.csv"
    _pairs(sample_dir, "--loader", "frll", "--all", "--pairs-file", out)
    got = _unordered(_rows(out))
    assert len(got) == len(set(got)) == 66  # 12 choose 2


@pytest.mark.parametrize("extra", [["-n", "3"], ["--per-subject", "2"], ["--n-pairs", "1"]])
def test_all_excludes_bounds(sample_dir: Path, tmp_path: Path, extra):
    out = tmp_path / "p.csv"
    res = _pairs(sample_dir, "--loader", "frll", "--all", *extra, "--pairs-file", out, ok=False)
    assert res.exit_code == 2
    assert "--all" in res.output and "excludes --per-subject and -n" in res.output
    assert not out.exists()


def test_default_is_still_one_pair_per_subject(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "p.csv"
    _pairs(sample_dir, "--loader", "frll", "--pairs-file", out)
    subjects = [s for pair in _unordered(_rows(out)) for s in pair]
    assert len(subjects) == len(set(subjects)) == 12


def test_similar_records_the_similarity(sample_dir: Path, tmp_path: Path):
    from morphlab.recognition.similarity import pairwise_similarity

    out = tmp_path / "similar.csv"
    res = _pairs(sample_dir, "--loader", "frll", "--strategy", "similar", "--fr", "lbph",
                 "--all", "--pairs-file", out)
    assert "by lbph similarity" in res.output
    rows = _rows(out)
    assert list(rows[0]) == ["pair_id", "subject_a", "image_a", "subject_b", "image_b",
                             "gender_a", "gender_b", "similarity"]
    sims = [float(r["similarity"]) for r in rows]
    assert sims == sorted(sims, reverse=True) and len(set(sims)) > 1  # most similar first
    # independently: the system's score of the two images, to the 6 digits written
    paths = sorted({sample_dir / r[c] for r in rows for c in ("image_a", "image_b")})
    mat = pairwise_similarity(paths, system="lbph")
    at = {p: k for k, p in enumerate(paths)}
    for r, s in zip(rows, sims):
        assert s == pytest.approx(mat[at[sample_dir / r["image_a"]], at[sample_dir / r["image_b"]]],
                                  rel=1e-5)
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert side["parameters"]["system"] == "lbph" and side["parameters"]["same_gender"] is True
    assert side["similarity"] == {"column": "similarity", "system": "lbph",
                                  "direction": "higher = more similar"}
    # the reader keeps it
    ps = read_pairs(out)
    assert [p.similarity for p in ps.pairs] == sims


def test_similar_default_system_is_recorded(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "similar.csv"
    _pairs(sample_dir, "--loader", "frll", "--strategy", "similar", "-n", 2, "--pairs-file", out)
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert side["parameters"]["system"] == "dlib-resnet" == side["similarity"]["system"]
    assert all(r["similarity"] for r in _rows(out))


def test_random_pairs_have_no_similarity_column(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "p.csv"
    _pairs(sample_dir, "--loader", "frll", "--pairs-file", out)
    assert "similarity" not in out.read_text().splitlines()[0]
    assert "similarity" not in json.loads(out.with_name(out.name + ".json").read_text())
    assert all(p.similarity is None for p in read_pairs(out).pairs)


def test_generate_accepts_a_similarity_column(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "similar.csv"
    _pairs(sample_dir, "--loader", "frll", "--strategy", "similar", "--fr", "lbph", "-n", 1,
           "--pairs-file", out)
    res = CliRunner().invoke(main, ["generate", str(out), "-o", str(tmp_path / "morphs")])
    assert res.exit_code == 0, res.output
    assert "1 generated, 0 failed" in res.output


def test_reader_refuses_a_bad_similarity(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "p.csv"
    out.write_text(
        "pair_id,subject_a,image_a,subject_b,image_b,similarity\n"
        "1,002,neutral/002_03.jpg,003,neutral/003_03.jpg,0.5\n"
        "2,004,neutral/004_03.jpg,005,neutral/005_03.jpg,high\n"
        "3,006,neutral/006_03.jpg,007,neutral/007_03.jpg,nan\n"
        "4,008,neutral/008_03.jpg,009,neutral/009_03.jpg,\n",
        encoding="utf-8",
    )
    with pytest.raises(PairsError) as err:
        read_pairs(out, dataset_dir=sample_dir)
    msg = str(err.value)
    assert "2 problem(s)" in msg and "line 3: similarity 'high'" in msg and "line 4:" in msg
    out.write_text("\n".join(out.read_text().splitlines()[:2] + [
        out.read_text().splitlines()[4]]) + "\n", encoding="utf-8")
    assert [p.similarity for p in read_pairs(out, dataset_dir=sample_dir).pairs] == [0.5, None]


def _subset(sample_dir: Path, dest: Path, subjects: list[str]) -> Path:
    """An FRLL-layout copy of a few subjects beside the sample's full london_info.csv."""
    for sub, cap in (("neutral", "03"), ("smiling", "08")):
        (dest / sub).mkdir(parents=True)
        for s in subjects:
            for f in (sample_dir / sub).glob(f"{s}_{cap}.*"):
                shutil.copy(f, dest / sub / f.name)
    shutil.copy(sample_dir / "london_info.csv", dest / "london_info.csv")
    return dest


def _metadata_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and "metadata" in r.getMessage()]


def test_metadata_with_more_subjects_is_one_line(sample_dir: Path, tmp_path: Path, caplog):
    ds = _subset(sample_dir, tmp_path / "subset", ["002", "003", "004"])
    with caplog.at_level(logging.INFO, logger="morphlab"):
        res = _pairs(ds, "--loader", "frll", "--strategy", "same-gender", "--all",
                     "--pairs-file", tmp_path / "p.csv")
    notes = [line for line in res.output.splitlines() if line.startswith("metadata:")]
    assert notes == [(f"metadata: 9 of 12 subjects have no images in {ds} "
                      "(e.g. 005, 006, 007, 008, 009, …)")]
    assert _metadata_warnings(caplog) == []
    # the folder loader, metadata given: the same one line, naming the folder given
    with caplog.at_level(logging.INFO, logger="morphlab"):
        res = _pairs(ds / "neutral", "--metadata", ds / "london_info.csv",
                     "--pairs-file", tmp_path / "q.csv")
    notes = [line for line in res.output.splitlines() if line.startswith("metadata:")]
    assert notes == [(f"metadata: 9 of 12 subjects have no images in {ds / 'neutral'} "
                      "(e.g. 005, 006, 007, 008, 009, …)")]
    assert _metadata_warnings(caplog) == []


def test_subjects_without_metadata_stay_a_warning(sample_dir: Path, tmp_path: Path, caplog):
    folder = tmp_path / "faces"
    folder.mkdir()
    for s in ("002", "003", "004"):
        shutil.copy(sample_dir / "neutral" / f"{s}_03.jpg", folder)
    for s, src in (("901", "005"), ("902", "006")):  # not in the metadata
        shutil.copy(sample_dir / "neutral" / f"{src}_03.jpg", folder / f"{s}_03.jpg")
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        res = _pairs(folder, "--metadata", sample_dir / "london_info.csv", "--all",
                     "--pairs-file", tmp_path / "p.csv")
    assert [line for line in res.output.splitlines() if line.startswith("metadata:")] == [
        f"metadata: 9 of 12 subjects have no images in {folder} (e.g. 005, 006, 007, 008, 009, …)"]
    warned = _metadata_warnings(caplog)
    assert len(warned) == 1 and "2 subject(s)" in warned[0] and "901, 902" in warned[0]
    assert "no metadata row" in warned[0]


def test_no_note_when_every_metadata_subject_has_images(sample_dir: Path, tmp_path: Path):
    res = _pairs(sample_dir, "--loader", "frll", "--pairs-file", tmp_path / "p.csv")
    assert "metadata:" not in res.output


# ----------------------------------------------------------------------------------------
# -o DIR (a folder), --pairs-file FILE, the old -o FILE.csv / --output, -j
# ----------------------------------------------------------------------------------------
@pytest.fixture
def fresh_warnings(monkeypatch):
    """Each deprecation warning is printed once per process: start from none printed."""
    from morphlab.cli import _conventions

    monkeypatch.setattr(_conventions, "_WARNED", set())


def test_out_is_a_folder_of_pairs_csv_and_its_protocol(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "work" / "pairs"
    res = _pairs(sample_dir, "--loader", "frll", "-n", 3, "-o", out)
    assert res.output.strip().endswith(f"to {out / 'pairs.csv'}; protocol in "
                                       f"{out / 'pairs.csv.json'}")
    assert sorted(p.name for p in out.iterdir()) == [".morphlab-owned.json", ".morphlab.lock",
                                                     "pairs.csv", "pairs.csv.json"]
    assert "Warning" not in res.output
    assert json.loads((out / "pairs.csv.json").read_text())["counts"]["pairs"] == 3
    assert len(read_pairs(out)) == 3  # the folder stands for its pairs file
    # the same as --pairs-file DIR/pairs.csv, byte for byte
    _pairs(sample_dir, "--loader", "frll", "-n", 3, "--pairs-file", tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_bytes() == (out / "pairs.csv").read_bytes()
    assert (tmp_path / "f.csv.json").read_bytes() == (out / "pairs.csv.json").read_bytes()


def test_default_is_pairs_csv_in_the_current_folder(sample_dir: Path, tmp_path: Path,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _pairs(sample_dir, "--loader", "frll", "-n", 2)
    assert "to pairs.csv; protocol in pairs.csv.json" in res.output
    # no lock file; the record of what morphlab wrote, so --overwrite replaces only that
    assert sorted(p.name for p in tmp_path.iterdir()) == [".morphlab-owned.json", "pairs.csv",
                                                          "pairs.csv.json"]


def test_a_locked_pairs_folder_is_refused(sample_dir: Path, tmp_path: Path):
    import subprocess
    import sys

    out = tmp_path / "pairs"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from morphlab.outdir import locked_folder\n"
         f"with locked_folder({str(out)!r}):\n print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = _pairs(sample_dir, "--loader", "frll", "-o", out, ok=False)
    finally:
        holder.communicate("")
    assert res.exit_code == 1 and "another morphlab process is writing" in res.output
    assert not (out / "pairs.csv").exists()


@pytest.mark.parametrize("option,old", [("-o", "-o FILE.csv"), ("--output", "--output")])
def test_old_spellings_of_the_pairs_file_still_work_and_warn(sample_dir: Path, tmp_path: Path,
                                                             fresh_warnings, option, old):
    out = tmp_path / "old.csv"
    res = _pairs(sample_dir, "--loader", "frll", "-n", 2, option, out)
    assert res.output.startswith(f"Warning: {old} is deprecated and will be removed in the "
                                 "next release: use --pairs-file FILE or -o FOLDER\n")
    assert len(_rows(out)) == 2 and (tmp_path / "old.csv.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".morphlab-owned.json", "old.csv",
                                                          "old.csv.json"]  # no lock
    # an existing old.csv is no folder either: the same again is the same file, warned once
    res = _pairs(sample_dir, "--loader", "frll", "-n", 2, option, out)
    assert "Warning" not in res.output
    assert "--output" not in _pairs("--help").output  # hidden


@pytest.mark.parametrize("spelling", [
    ["-o", "dir", "--pairs-file", "f.csv"],
    ["-o", "old.csv", "--pairs-file", "f.csv"],
    ["--output", "old.csv", "--pairs-file", "f.csv"],
])
def test_one_destination_only(sample_dir: Path, tmp_path: Path, spelling):
    args = [str(tmp_path / a) if not a.startswith("-") else a for a in spelling]
    res = _pairs(sample_dir, "--loader", "frll", *args, ok=False)
    assert res.exit_code == 2 and "give only one of them" in res.output
    assert list(tmp_path.iterdir()) == []


def test_jobs_reach_the_embedding_workers(sample_dir: Path, tmp_path: Path, monkeypatch):
    import morphlab.recognition.similarity as similarity

    workers = []
    real = similarity.embed_files

    def spy(*args, **kwargs):
        workers.append(kwargs.get("workers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(similarity, "embed_files", spy)
    _pairs(sample_dir, "--loader", "frll", "--strategy", "similar", "--fr", "lbph", "-j", 2,
           "-n", 2, "-o", tmp_path / "j2")
    _pairs(sample_dir, "--loader", "frll", "--strategy", "similar", "--fr", "lbph",
           "-n", 2, "-o", tmp_path / "j1")
    assert workers == [2, 1]
    for name in ("pairs.csv", "pairs.csv.json"):
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes()
