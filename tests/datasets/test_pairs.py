"""Pair protocols and the pairs file (writing, reading, every bad input)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from morphlab import __version__
from morphlab.datasets.folder import load_folder
from morphlab.datasets.pairs import (
    STRATEGIES,
    PairsError,
    make_pairs,
    read_pairs,
    register_strategy,
    resolve_pairs_path,
    sidecar_path,
    write_pairs,
)
from morphlab.io import write_image


@pytest.fixture(scope="module")
def frll(frll_set: Path):
    """The embedded sample (12 subjects, 6 women) and, with MORPHLAB_TEST_DATA, the full
    FRLL set (82 subjects)."""
    return load_folder(frll_set, metadata=frll_set / "london_info.csv", meta_id_column="face_id")


def _uses(pairset) -> Counter:
    return Counter(s for p in pairset.pairs for s in (p.subject_a, p.subject_b))


def test_random_is_reproducible(frll, tmp_path: Path):
    a = make_pairs(frll, seed=7, capture="03")
    b = make_pairs(frll, seed=7, capture="03")
    c = make_pairs(frll, seed=8, capture="03")
    assert a.pairs == b.pairs and a.pairs != c.pairs
    write_pairs(a, tmp_path / "a.csv")
    write_pairs(b, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv.json").read_bytes() == (tmp_path / "b.csv.json").read_bytes()
    # per_subject=1: disjoint pairs covering all subjects (82 in the full set: 41 pairs)
    n = len(frll.subjects())
    assert n in (12, 82) and len(a) == n // 2 and max(_uses(a).values()) == 1
    # both orders (A/B) occur: which subject is A is itself random
    assert any(p.subject_a < p.subject_b for p in a.pairs)
    assert any(p.subject_a > p.subject_b for p in a.pairs)


def test_per_subject_bound_and_n_pairs(frll):
    ps = make_pairs(frll, per_subject=3, seed=1)
    uses = _uses(ps)
    assert max(uses.values()) == 3
    # greedy over all pairs saturates every subject here (12 or 82 subjects)
    assert len(ps) == len(frll.subjects()) * 3 // 2
    assert len({frozenset((p.subject_a, p.subject_b)) for p in ps.pairs}) == len(ps)
    few = make_pairs(frll, per_subject=3, n_pairs=10, seed=1)
    assert few.pairs == ps.pairs[:10]
    assert [p.pair_id for p in few.pairs] == [f"{k:04d}" for k in range(1, 11)]


def test_same_gender_respects_metadata(frll):
    gender = {s.subject: s.gender for s in frll.samples}
    ps = make_pairs(frll, strategy="same-gender", seed=3, capture="03")
    # 6 women + 6 men: 3 + 3 pairs; the full set: 40 pairs (80 of 82 subjects)
    assert len(ps) == {12: 6, 82: 40}[len(frll.subjects())]
    for p in ps.pairs:
        assert gender[p.subject_a] == gender[p.subject_b] == p.gender_a == p.gender_b
    assert {p.gender_a for p in ps.pairs} == {"female", "male"}


def test_same_gender_needs_metadata(sample_dir: Path):
    ds = load_folder(sample_dir / "neutral")
    with pytest.raises(ValueError, match="needs each subject's gender"):
        make_pairs(ds, strategy="same-gender")


def test_capture_filter(frll):
    ps = make_pairs(frll, capture="08", n_pairs=5)
    assert all(p.image_a.parent.name == "smiling" for p in ps.pairs)
    first = make_pairs(frll, n_pairs=5)  # default: the first image by path = neutral
    assert all(p.image_a.parent.name == "neutral" for p in first.pairs)
    with pytest.raises(ValueError, match="no image has capture label '99'; labels found: 03, 08"):
        make_pairs(frll, capture="99")


def test_bad_arguments(frll, tmp_path: Path):
    with pytest.raises(KeyError) as info:
        make_pairs(frll, strategy="nope")
    assert f"unknown pair strategy 'nope'; valid names: {', '.join(sorted(STRATEGIES))}" in str(info.value)
    with pytest.raises(ValueError, match="per_subject"):
        make_pairs(frll, per_subject=0)
    write_image(tmp_path / "a_1.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="a pair needs two different subjects"):
        make_pairs(load_folder(tmp_path))


def test_strategy_registry_is_one_function(frll):
    assert {"random", "same-gender"} <= set(STRATEGIES)

    @register_strategy("alphabetical-test")
    def _alpha(samples, rng, *, reverse=False):
        idx = range(len(samples) - 1)
        return [(i, i + 1) for i in (reversed(idx) if reverse else idx)]

    try:
        ps = make_pairs(frll, strategy="alphabetical-test", n_pairs=2, reverse=True)
        subj = frll.subjects()  # enrolment samples are sorted by subject
        n = len(subj)
        # (n-2, n-1) taken, (n-3, n-2) refused by per_subject=1, (n-4, n-3) taken
        assert [frozenset((p.subject_a, p.subject_b)) for p in ps.pairs] == [
            frozenset(subj[n - 2:n]), frozenset(subj[n - 4:n - 2])
        ]
        assert ps.protocol["parameters"]["reverse"] is True
        with pytest.raises(ValueError, match="already registered"):
            register_strategy("alphabetical-test")(_alpha)
    finally:
        del STRATEGIES["alphabetical-test"]


def test_file_format_and_sidecar(frll, frll_set: Path, frll_set_subjects: int, tmp_path: Path):
    ps = make_pairs(frll, strategy="same-gender", n_pairs=3, seed=0, capture="03")
    side = write_pairs(ps, tmp_path / "pairs.csv")
    assert side == tmp_path / "pairs.csv.json" == sidecar_path(tmp_path / "pairs.csv")
    lines = (tmp_path / "pairs.csv").read_text().splitlines()
    assert lines[0] == "pair_id,subject_a,image_a,subject_b,image_b,gender_a,gender_b"
    first = lines[1].split(",")
    assert first[0] == "0001" and first[2] == f"neutral/{first[1]}_03.jpg"
    proto = json.loads(side.read_text())
    assert proto["dataset_dir"] == str(frll_set.resolve())
    assert proto["protocol"] == "same-gender" and proto["seed"] == 0
    assert proto["parameters"] == {"per_subject": 1, "n_pairs": 3, "capture": "03"}
    assert proto["morphlab_version"] == __version__
    assert proto["counts"]["pairs"] == 3 and proto["counts"]["subjects"] == frll_set_subjects
    assert proto["dataset"]["params"]["metadata"].endswith("london_info.csv")
    # round trip; the dataset folder comes from the sidecar
    back = read_pairs(tmp_path / "pairs.csv")
    assert back.pairs == ps.pairs and back.dataset_dir == frll_set.resolve()
    assert [p.line for p in back.pairs] == [2, 3, 4]


def test_no_gender_columns_without_metadata(sample_dir: Path, tmp_path: Path):
    ps = make_pairs(load_folder(sample_dir / "neutral"), n_pairs=2)
    write_pairs(ps, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == (
        "pair_id,subject_a,image_a,subject_b,image_b"
    )


# ----------------------------------------------------------------------------------------
# reading: every bad input names the file and the line
# ----------------------------------------------------------------------------------------
@pytest.fixture()
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    for k, name in enumerate(("a_1", "b_1", "c_1", "d_1")):
        write_image(d / f"{name}.png", np.full((4, 4, 3), k, np.uint8))  # distinct content
    write_image(tmp_path / "outside_1.png", np.full((4, 4, 3), 9, np.uint8))
    return d


HEADER = "pair_id,subject_a,image_a,subject_b,image_b\n"


def _pairs(data: Path, body: str, header: str = HEADER) -> Path:
    p = data.parent / "pairs.csv"
    p.write_text(header + body, encoding="utf-8")
    return p


def test_read_plain_file_uses_its_folder(data: Path):
    p = data / "pairs.csv"  # no sidecar: paths relative to the pairs file's folder
    p.write_text(HEADER + "1,a,a_1.png,b,b_1.png\n2,c,./c_1.png,d,sub/../d_1.png\n")
    ps = read_pairs(p)
    assert ps.dataset_dir == data and ps.pairs[1].image_b == data / "d_1.png"
    assert ps.protocol == {}


@pytest.mark.parametrize(
    "body, header, needle",
    [
        ("1,a,a_1.png,b,b_1.png,x\n", HEADER.strip() + ",notes\n", "line 1: unknown column(s) 'notes'"),
        ("1,a,a_1.png,b\n", "pair_id,subject_a,image_a,subject_b\n", "line 1: missing column(s) image_b"),
        ("1,a,a_1.png,b,missing.png\n", HEADER, "line 2: image_b 'missing.png' not found in"),
        ("1,a,a_1.png,b,b_1.png\n2,b,b_1.png,a,a_1.png\n", HEADER,
         "line 3: duplicate of line 2 (same two images)"),
        ("1,a,a_1.png,b,b_1.png\n2,o,../outside_1.png,c,c_1.png\n", HEADER,
         "line 3: image_a '../outside_1.png' points outside the dataset folder"),
        ("1,a,a_1.png,b,b_1.png\n1,c,c_1.png,d,d_1.png\n", HEADER,
         "line 3: pair_id '1' already used on line 2"),
        ("a/b,a,a_1.png,b,b_1.png\n", HEADER, "line 2: pair_id 'a/b' is not file-name safe"),
        ("1,a,a_1.png,a,b_1.png\n", HEADER, "line 2: subject_a and subject_b are both 'a'"),
        ("1,a,,b,b_1.png\n", HEADER, "line 2: empty image_a"),
        ("1,a,a_1.png,b\n", HEADER, "line 2: 4 fields, the header has 5"),
        ("", HEADER, "no pairs (only a header)"),
        ("", "", "empty pairs file"),
    ],
    ids=["unknown-column", "missing-column", "missing-file", "duplicate-row", "outside",
         "duplicate-id", "unsafe-id", "self-pair", "empty-field", "short-row", "no-rows",
         "empty"],
)
def test_bad_pairs_files(data: Path, body: str, header: str, needle: str):
    p = _pairs(data, body, header)
    with pytest.raises(PairsError) as info:
        read_pairs(p, dataset_dir=data)
    msg = str(info.value)
    assert needle in msg and str(p) in msg


def test_absolute_paths(data: Path):
    outside = data.parent / "outside_1.png"
    p = _pairs(data, f"1,a,{data / 'a_1.png'},b,b_1.png\n2,o,{outside},c,c_1.png\n")
    with pytest.raises(PairsError, match="line 3: image_a .* points outside the dataset folder"):
        read_pairs(p, dataset_dir=data)
    p = _pairs(data, f"1,a,{data / 'a_1.png'},b,b_1.png\n")  # absolute but inside: fine
    assert read_pairs(p, dataset_dir=data).pairs[0].image_a == data / "a_1.png"


def test_many_problems_listed_together(data: Path):
    body = "".join(f"{k},a,a_1.png,b,gone{k}.png\n" for k in range(12))
    with pytest.raises(PairsError) as info:
        read_pairs(_pairs(data, body), dataset_dir=data)
    msg = str(info.value)
    assert "12 problem(s)" in msg and "… and 2 more" in msg and "relative to" in msg


def test_dataset_dir_resolution(frll, frll_set: Path, tmp_path: Path):
    ps = make_pairs(frll, n_pairs=2)
    write_pairs(ps, tmp_path / "p.csv")
    # a copy of the dataset elsewhere, given explicitly, wins over the sidecar
    copy = tmp_path / "copy"
    for p in ps.pairs:
        for img in (p.image_a, p.image_b):
            dst = copy / img.relative_to(frll_set.resolve())
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(img, dst)
    assert read_pairs(tmp_path / "p.csv", dataset_dir=copy).pairs[0].image_a.is_relative_to(copy)
    # a sidecar naming a folder that does not exist: clear error
    side = json.loads((tmp_path / "p.csv.json").read_text())
    side["dataset_dir"] = str(tmp_path / "gone")
    (tmp_path / "p.csv.json").write_text(json.dumps(side))
    with pytest.raises(FileNotFoundError, match="dataset folder not found .*--dataset-dir"):
        read_pairs(tmp_path / "p.csv")
    (tmp_path / "p.csv.json").write_text("{not json")
    with pytest.raises(PairsError, match="not a valid protocol file"):
        read_pairs(tmp_path / "p.csv")
    with pytest.raises(FileNotFoundError, match="pairs file not found"):
        read_pairs(tmp_path / "nope.csv")


def test_a_pairs_folder_resolves_to_its_pairs_file(sample_dir: Path, tmp_path: Path):
    """``morphlab pairs -o DIR`` writes DIR/pairs.csv; a folder stands for that file."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match=r"folder without a pairs file pairs\.csv"):
        resolve_pairs_path(folder)
    with pytest.raises(FileNotFoundError, match="folder without a pairs file"):
        read_pairs(folder)
    ps = make_pairs(load_folder(sample_dir / "neutral"), n_pairs=3, seed=0)
    write_pairs(ps, folder / "pairs.csv")
    assert resolve_pairs_path(folder) == folder / "pairs.csv"
    assert resolve_pairs_path(folder / "pairs.csv") == folder / "pairs.csv"
    assert resolve_pairs_path(tmp_path / "other.csv") == tmp_path / "other.csv"  # as it is
    assert read_pairs(folder).pairs == read_pairs(folder / "pairs.csv").pairs == ps.pairs


def test_jobs_reach_the_strategy_but_not_the_protocol(sample_dir: Path):
    seen = []

    @register_strategy("jobs-test")
    def _jobs_test(samples, rng, *, reverse: bool = False, jobs: int = 1):
        seen.append(jobs)
        return [(0, 1)]

    try:
        ds = load_folder(sample_dir / "neutral")
        one = make_pairs(ds, strategy="jobs-test")
        three = make_pairs(ds, strategy="jobs-test", jobs=3)
        make_pairs(ds, strategy="random", jobs=3)  # a strategy without the option: fine
    finally:
        del STRATEGIES["jobs-test"]
    assert seen == [1, 3]
    assert one.protocol == three.protocol and one.pairs == three.pairs
    assert one.protocol["parameters"] == {"per_subject": 1, "n_pairs": None, "capture": None,
                                          "reverse": False}
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        make_pairs(ds, jobs=0)
