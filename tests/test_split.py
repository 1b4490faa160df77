"""morphlab split: subject-disjoint train/test list files by identity."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.datasets.split import SPLIT_FILES, split_by_identity, write_split
from morphlab.detectors.presentations import attack_records, list_images
from morphlab.generators.runner import dumps_record
from morphlab.io import sha256_file
from morphlab.outdir import ForeignFileError, OutputExistsError


def fake_attack_set(folder: Path, pairs, sample_dir: Path, tag: str = "complete") -> Path:
    """An attack set whose "morphs" are copies of subject A's smiling photo (real faces,
    no generation): one manifest line per pair, as ``generate`` writes them."""
    folder.mkdir(parents=True)
    lines = []
    for i, (a, b) in enumerate(pairs, start=1):
        name = f"{i:04d}_{a}_{b}_{tag}.png"
        shutil.copyfile(sample_dir / "smiling" / f"{a}_08.jpg", folder / name)
        sub = lambda s: {"id": s, "path": str(sample_dir / "neutral" / f"{s}_03.jpg"),  # noqa: E731
                         "relpath": f"neutral/{s}_03.jpg", "sha256": "0" * 64}
        lines.append(dumps_record({
            "status": "ok", "file": name, "sha256": sha256_file(folder / name), "pair_id": f"{i:04d}",
            "tag": tag, "generator": "landmark", "generator_version": "1", "params": {"variant": tag},
            "seed": i, "run_seed": 0, "subject_a": sub(a), "subject_b": sub(b),
            "morphlab_version": "0.1.0"}))
    (folder / "manifest.jsonl").write_text("".join(f"{line}\n" for line in lines))
    return folder


def all_pairs(sample_dir: Path) -> list[tuple[str, str]]:
    ids = sorted(p.stem.split("_")[0] for p in (sample_dir / "neutral").glob("*.jpg"))
    return list(itertools.combinations(ids, 2))


@pytest.fixture
def attack_set(tmp_path: Path, sample_dir: Path) -> Path:
    return fake_attack_set(tmp_path / "morphs", all_pairs(sample_dir), sample_dir)


def test_split_is_subject_disjoint_and_excludes_straddling_morphs(attack_set, sample_dir) -> None:
    s = split_by_identity([sample_dir], [attack_set], loader="frll", seed=3)
    train, test = set(s.subjects["train"]), set(s.subjects["test"])
    assert train and test and not train & test
    assert train | test == {p.stem.split("_")[0] for p in (sample_dir / "neutral").glob("*.jpg")}
    for side, ids in (("train", train), ("test", test)):
        assert {subj for _, subj in s.bona_fide[side]} <= ids
        assert all({m.subject_a, m.subject_b} <= ids for m in s.attacks[side])
    assert all((m.subject_a in train) != (m.subject_b in train) for m in s.excluded)
    n = len(all_pairs(sample_dir))  # 66 pairs of 12 identities; 6 + 6 on each side: 15 + 15 kept
    assert len(s.attacks["train"]) == len(s.attacks["test"]) == 15
    assert len(s.excluded) == n - 30 == 36
    assert len(s.bona_fide["train"]) + len(s.bona_fide["test"]) == 24  # neutral + smiling


def test_split_is_seeded(attack_set, sample_dir, tmp_path) -> None:
    texts = []
    for seed, out in ((0, "a"), (0, "b"), (1, "c")):
        write_split(split_by_identity([sample_dir], [attack_set], loader="frll", seed=seed),
                    tmp_path / out)
        texts.append({f: (tmp_path / out / f).read_text() for f in SPLIT_FILES})
    assert texts[0] == texts[1]
    assert texts[0]["test_bona_fide.txt"] != texts[2]["test_bona_fide.txt"]


def test_stratified_by_gender(attack_set, sample_dir) -> None:
    s = split_by_identity([sample_dir], [attack_set], loader="frll", stratify="gender",
                          test_fraction=0.5, seed=5)
    assert s.strata == {"female": {"train": 3, "test": 3}, "male": {"train": 3, "test": 3}}
    with pytest.raises(ValueError, match="no identity has a gender"):
        split_by_identity([sample_dir / "neutral"], [], stratify="gender")


def test_bad_fraction_and_too_few_identities(sample_dir, tmp_path) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_identity([sample_dir], loader="frll", test_fraction=1.0)
    one = tmp_path / "one"
    one.mkdir()
    shutil.copyfile(sample_dir / "neutral" / "002_03.jpg", one / "002_03.jpg")
    with pytest.raises(ValueError, match="at least 2 identities"):
        split_by_identity([one])


def test_output_folder_rules(attack_set, sample_dir, tmp_path) -> None:
    s = split_by_identity([sample_dir], [attack_set], loader="frll")
    out = tmp_path / "split"
    out.mkdir()
    (out / "test_attacks.txt").write_text("mine\n")
    with pytest.raises(ForeignFileError, match="test_attacks.txt"):
        write_split(s, out)
    assert (out / "test_attacks.txt").read_text() == "mine\n"
    (out / "test_attacks.txt").unlink()
    write_split(s, out)
    with pytest.raises(OutputExistsError):
        write_split(s, out)
    write_split(s, out, overwrite=True)
    with pytest.raises(ValueError, match="attack set folder"):
        write_split(s, attack_set / "split")
    info = json.loads((out / "split.json").read_text())
    assert info["counts"]["excluded_attacks"] == len(s.excluded)
    assert sorted(info["subjects"]["train"] + info["subjects"]["test"]) == sorted(
        {x for side in s.subjects.values() for x in side})


def test_list_files_read_back(attack_set, sample_dir, tmp_path) -> None:
    s = split_by_identity([sample_dir], [attack_set], loader="frll", seed=0)
    files = write_split(s, tmp_path / "split")
    bona = list_images(files["test_bona_fide.txt"])
    assert sorted(bona) == sorted(s.bona_fide["test"])
    recs = attack_records(files["train_attacks.txt"])
    assert [Path(r["path"]) for r in recs] == [m.path for m in s.attacks["train"]]
    excluded = attack_records(files["excluded_attacks.txt"])  # comments between the paths
    assert len(excluded) == len(s.excluded)


def test_attack_list_errors(attack_set, tmp_path) -> None:
    morph = sorted(attack_set.glob("*.png"))[0]
    lst = tmp_path / "list.txt"
    lst.write_text(f"# two of one\n{morph}\n{morph}\n")
    with pytest.raises(ValueError, match=r"line 3: .* listed twice"):
        attack_records(lst)
    stray = attack_set / "9999_a_b_complete.png"
    shutil.copyfile(morph, stray)
    lst.write_text(f"{stray}\n")
    with pytest.raises(ValueError, match="line 1: .* is not a morph of"):
        attack_records(lst)
    lst.write_text(f"{morph.parent / 'gone.png'}\n")
    with pytest.raises(FileNotFoundError, match="line 1"):
        attack_records(lst)
    stray.unlink()
    morph.write_bytes(morph.read_bytes() + b"x")
    lst.write_text(f"{morph}\n")
    with pytest.raises(ValueError, match="sha256"):
        attack_records(lst)


def test_cli_split_then_detect_train_and_eval(tmp_path, sample_dir) -> None:
    """The list files are what detect train/eval take; the evaluation is subject-disjoint."""
    pairs = [("002", "003"), ("004", "005"), ("006", "007"), ("008", "009"), ("002", "009")]
    morphs = fake_attack_set(tmp_path / "morphs", pairs, sample_dir)
    out = tmp_path / "split"
    run = CliRunner().invoke
    res = run(main, ["split", str(sample_dir / "neutral"), "--attacks", str(morphs), "-o", str(out),
                     "--seed", "0"])
    assert res.exit_code == 0, res.output
    assert "excluded:" in res.output or "train:" in res.output
    s = json.loads((out / "split.json").read_text())
    assert s["counts"]["train"]["attacks"] and s["counts"]["test"]["attacks"], s["counts"]
    res = run(main, ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(out / "train_bona_fide.txt"),
                     "--attacks", str(out / "train_attacks.txt"), "-o", str(tmp_path / "model"),
                     "--no-progress"])
    assert res.exit_code == 0, res.output
    res = run(main, ["detect", "eval", str(tmp_path / "model"), "--bona-fide", str(out / "test_bona_fide.txt"),
                     "--attacks", str(out / "test_attacks.txt"), "-o", str(tmp_path / "eval"),
                     "--no-progress"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["metrics"]["n_attack"] == s["counts"]["test"]["attacks"]
    # the whole attack set as test data shares identities with the training side: refused
    res = run(main, ["detect", "eval", str(tmp_path / "model"), "--bona-fide", str(out / "test_bona_fide.txt"),
                     "--attacks", str(morphs), "-o", str(tmp_path / "eval2"), "--no-progress"])
    assert res.exit_code == 1 and "share" in res.output


def test_warns_when_detect_would_read_other_subjects(tmp_path, sample_dir, caplog) -> None:
    """A loader taking the subject from somewhere else than the file name (here: the
    folder, as ONOT's): detect would read other ids from the listed names."""
    from morphlab.datasets.folder import Dataset, Sample
    from morphlab.datasets.loaders import LOADERS, register_loader

    def by_folder(root, **_):
        root = Path(root).resolve()
        return Dataset(root, tuple(Sample(p, p.parent.name) for p in sorted(root.glob("*/*.jpg"))))

    if "test-by-folder" not in LOADERS:
        register_loader("test-by-folder")(by_folder)
    for i in ("002", "003", "004"):
        (tmp_path / "d" / f"s{i}").mkdir(parents=True)
        shutil.copyfile(sample_dir / "neutral" / f"{i}_03.jpg", tmp_path / "d" / f"s{i}" / "front.jpg")
    with caplog.at_level("WARNING", logger="morphlab.datasets.split"):
        s = split_by_identity([tmp_path / "d"], loader="test-by-folder")
    assert sorted(s.subjects["train"] + s.subjects["test"]) == ["s002", "s003", "s004"]
    assert "3 bona fide file name(s) do not give their subject id" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="morphlab.datasets.split"):
        split_by_identity([sample_dir / "neutral"])
    assert "do not give their subject id" not in caplog.text


def test_cli_split_needs_inputs(tmp_path) -> None:
    res = CliRunner().invoke(main, ["split", "-o", str(tmp_path / "s")])
    assert res.exit_code == 2 and "bona fide folder" in res.output


def test_cli_split_out_and_the_old_out_dir(tmp_path, sample_dir, monkeypatch) -> None:
    from morphlab.cli import _conventions

    base = ["split", str(sample_dir / "neutral"), "--seed", "3"]
    res = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "new")])
    assert res.exit_code == 0 and "Warning" not in res.output, res.output
    monkeypatch.setattr(_conventions, "_WARNED", set())
    res = CliRunner().invoke(main, [*base, "--out-dir", str(tmp_path / "old")])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Warning: --out-dir is deprecated") and "use -o/--out" in res.output
    for name in ("train_bona_fide.txt", "test_bona_fide.txt"):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes()
    other = CliRunner().invoke(main, [*base[:-1], "4", "-o", str(tmp_path / "seed4")])
    assert other.exit_code == 0, other.output
    assert json.loads((tmp_path / "seed4" / "split.json").read_text())["seed"] == 4
