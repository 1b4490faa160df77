"""Bad pairs and metadata input: one image twice, one identity twice, bad ids, huge fields."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from morphlab.datasets.folder import MAX_ID_BYTES, load_folder, read_metadata
from morphlab.datasets.pairs import PairsError, make_pairs, read_pairs
from morphlab.io import write_image

HEADER = "pair_id,subject_a,image_a,subject_b,image_b\n"


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    for k, name in enumerate(("a_1", "b_1", "c_1", "a_2")):
        write_image(d / f"{name}.png", np.full((4, 4, 3), 10 * k, np.uint8))
    shutil.copy(d / "a_1.png", d / "copy_1.png")  # same bytes, another subject
    os.link(d / "b_1.png", d / "hard_1.png")  # the same file
    return d


def _pairs(data: Path, body: str) -> Path:
    p = data.parent / "pairs.csv"
    p.write_text(HEADER + body, encoding="utf-8")
    return p


def _error(p: Path, data: Path, **kw) -> str:
    with pytest.raises(PairsError) as info:
        read_pairs(p, dataset_dir=data, **kw)
    msg = str(info.value)
    assert str(p) in msg
    return msg


# ----------------------------------------------------------------------------------------
# item 8: one image twice, one identity twice
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, needle",
    [
        ("p1,a,a_1.png,x,copy_1.png\n",
         "line 2: image_a 'a_1.png' and image_b 'copy_1.png' are the same content (pair 'p1')"),
        ("p2,b,b_1.png,y,hard_1.png\n",
         "line 2: image_a 'b_1.png' and image_b 'hard_1.png' are the same file (pair 'p2')"),
        ("p3,b,b_1.png,y,./sub/../b_1.png\n", "are the same file (pair 'p3')"),
    ],
    ids=["same-content", "hard-link", "same-path"],
)
def test_one_image_twice_is_refused(data: Path, body: str, needle: str):
    (data / "sub").mkdir()
    p = _pairs(data, body)
    assert needle in _error(p, data)
    # never allowed, whatever the flag
    assert needle in _error(p, data, allow_same_identity=True)


def test_same_identity_needs_the_flag(data: Path):
    p = _pairs(data, "s1,a,a_1.png,a,a_2.png\n")
    msg = _error(p, data)
    assert "subject_a and subject_b are both 'a' (pair 's1': the same identity" in msg
    assert "--allow-same-identity" in msg
    ps = read_pairs(p, dataset_dir=data, allow_same_identity=True)
    assert [(q.subject_a, q.subject_b) for q in ps.pairs] == [("a", "a")]


def test_make_pairs_never_pairs_an_image_with_its_copy(data: Path, caplog):
    ds = load_folder(data)  # subjects a, b, c, copy, hard
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        ps = make_pairs(ds, per_subject=4, seed=0)
    pairs = {frozenset((q.subject_a, q.subject_b)) for q in ps.pairs}
    assert frozenset(("a", "copy")) not in pairs and frozenset(("b", "hard")) not in pairs
    assert len(pairs) == 10 - 2  # every other pair of the 5 subjects is made
    assert "2 candidate pair(s) refused" in caplog.text
    assert "a and copy (a_1.png, copy_1.png: the same content)" in caplog.text
    assert "b and hard (b_1.png, hard_1.png: the same file)" in caplog.text


def test_generate_cli_allow_same_identity(data: Path, tmp_path: Path):
    from click.testing import CliRunner

    from morphlab.cli import main

    p = _pairs(data, "s1,a,a_1.png,a,a_2.png\n")
    args = ["generate", str(p), "-g", "landmark", "-o", str(tmp_path / "out"),
            "--dataset-dir", str(data), "--no-progress", "--landmarks", "file"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "the same identity" in res.output
    res = CliRunner().invoke(main, args + ["--allow-same-identity"])
    # accepted: the pair is attempted (and fails on its missing landmark files, per pair)
    assert "the same identity" not in res.output
    assert "1 failed" in res.output and "no landmark file" in res.output


# ----------------------------------------------------------------------------------------
# item 19 / 16: ids with NUL bytes, line breaks, too many bytes
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, needle",
    [
        ('p1,"a\nb",a_1.png,b,b_1.png\n', "subject_a 'a\\nb' contains a line break"),
        ("p1,a\x00,a_1.png,b,b_1.png\n", "subject_a 'a\\x00' contains a NUL byte"),
        ("p1,a,a_1.png,b\x07,b_1.png\n", "subject_b 'b\\x07' contains a control character"),
        ('"p\n1",a,a_1.png,b,b_1.png\n', "pair_id 'p\\n1' contains a line break"),
        (f"{'9' * 65},a,a_1.png,b,b_1.png\n", f"is 65 bytes long, above the limit of {MAX_ID_BYTES}"),
        (f"p1,{'é' * 33},a_1.png,b,b_1.png\n", "is 66 bytes long"),
    ],
    ids=["newline", "nul", "control", "pair-id-newline", "long-pair-id", "long-utf8-subject"],
)
def test_bad_ids_in_pairs_file(data: Path, body: str, needle: str):
    msg = _error(_pairs(data, body), data)
    assert needle in msg
    assert "\x00" not in msg and "line 2" in msg


def test_long_subject_id_from_a_file_name_is_refused_before_computing(tmp_path: Path):
    write_image(tmp_path / f"{'s' * 80}_1.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "b_1.png", np.ones((4, 4, 3), np.uint8))
    with pytest.raises(ValueError) as info:
        load_folder(tmp_path)
    msg = str(info.value)
    assert f"{'s' * 80}_1.png" in msg and "80 bytes long" in msg and "--pattern" in msg


def test_newline_in_a_file_name_subject_is_refused(tmp_path: Path):
    write_image(tmp_path / "a\nb_1.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "c_1.png", np.ones((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="contains a line break"):
        load_folder(tmp_path)


def test_bad_id_in_metadata_names_the_file_and_line(tmp_path: Path):
    meta = tmp_path / "meta.csv"
    meta.write_text('id,gender\n001,f\n"00\n2",m\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"meta\.csv, line 3: subject id '00\\n2' contains a line break"):
        read_metadata(meta)


# ----------------------------------------------------------------------------------------
# item 15: CSV fields over the csv module's limit, non-UTF-8 CSVs
# ----------------------------------------------------------------------------------------
def test_huge_field_in_pairs_file(data: Path):
    p = _pairs(data, "p1,a,a_1.png,b,b_1.png\n" + "p2,\"" + "x" * 140_000 + "\n")
    msg = _error(p, data)
    assert "line 3" in msg and "longer than 131,072 characters" in msg and "\n" not in msg


def test_huge_field_in_metadata(tmp_path: Path):
    meta = tmp_path / "meta.csv"
    meta.write_text("id,gender\n001,f\n002," + "y" * 140_000 + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_metadata(meta)
    msg = str(info.value)
    assert str(meta) in msg and "line 3" in msg and "131,072" in msg


def test_non_utf8_metadata_names_the_file(tmp_path: Path):
    meta = tmp_path / "meta.csv"
    meta.write_bytes(b"id,gender\n001,f\xe9minin\n")
    with pytest.raises(ValueError, match=r"meta\.csv: not a UTF-8 text file"):
        read_metadata(meta)


def test_image_paths_that_cannot_be_files_are_named_before_computing(data: Path):
    (data / "folder.png").mkdir()
    p = _pairs(data, "p1,a,a_1.png,b," + "x" * 300 + ".png\np2,a,folder.png,c,c_1.png\n")
    msg = _error(p, data)
    assert "line 2: image_b 'xxxxxxxx" in msg and "has a name of 304 bytes (the limit is 255)" in msg
    assert "line 3: image_a 'folder.png' is a folder, not an image file" in msg
    assert "x" * 100 not in msg  # long values are shortened in messages


def test_nul_byte_in_an_image_path_is_named(data: Path):
    p = _pairs(data, "p1,a,a\x00_1.png,b,b_1.png\n")
    msg = _error(p, data)
    assert "line 2: image_a 'a\\x00_1.png' contains a NUL byte" in msg  # not "embedded null byte"
