"""The folder dataset loader: identities from file names, metadata CSV, validation."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pytest

from morphlab.datasets.folder import (
    DEFAULT_PATTERN,
    compile_pattern,
    load_folder,
    normalise_gender,
    read_metadata,
)
from morphlab.io import ImageError, write_image


def _img(path: Path) -> Path:
    # distinct content per file: identical images are refused as one image
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    write_image(path, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return path


def test_frll_with_metadata(frll_set: Path, frll_set_subjects: int):
    """The embedded sample (12 identities) and, with MORPHLAB_TEST_DATA, the full set (82)."""
    ds = load_folder(frll_set, metadata=frll_set / "london_info.csv", meta_id_column="face_id")
    assert ds.root == frll_set.resolve()
    assert len(ds.subjects()) == frll_set_subjects
    assert len(ds.samples) == 2 * frll_set_subjects  # neutral + smiling, .tem/.csv ignored
    assert {s.capture for s in ds.samples} == {"03", "08"}
    by = ds.by_subject()
    assert [ds.relpath(s) for s in by["002"]] == ["neutral/002_03.jpg", "smiling/002_08.jpg"]
    s = by["002"][0]
    # london_info.csv: 002,24,female,white — face_gender is found and renamed
    assert dict(s.metadata) == {"face_age": "24", "gender": "female", "face_eth": "white"}
    assert s.gender == "female"
    genders = {x.gender for x in ds.samples}
    assert genders == {"female", "male"}
    assert ds.params["meta_id_column"] == "face_id"


def test_default_pattern(tmp_path: Path):
    for name in ("002_03.jpg", "sub/12-04.png", "alice.jpg", "bob_x_y.JPG"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        _img(tmp_path / name)
    ds = load_folder(tmp_path)
    got = {ds.relpath(s): (s.subject, s.capture) for s in ds.samples}
    assert got == {
        "002_03.jpg": ("002", "03"),
        "sub/12-04.png": ("12", "04"),
        "alice.jpg": ("alice", None),
        "bob_x_y.JPG": ("bob", "x_y"),
    }
    assert ds.params["pattern"] == DEFAULT_PATTERN


def test_custom_pattern_and_non_recursive(tmp_path: Path, caplog):
    _img(tmp_path / "s01a.png")
    _img(tmp_path / "s01b.png")
    _img(tmp_path / "s02a.png")
    _img(tmp_path / "readme.png")  # does not match: skipped with a warning
    (tmp_path / "deep").mkdir()
    _img(tmp_path / "deep" / "s03a.png")
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        ds = load_folder(tmp_path, pattern=r"s(?P<subject>\d+)(?P<capture>[ab])", recursive=False)
    assert [(s.subject, s.capture) for s in ds.samples] == [("01", "a"), ("01", "b"), ("02", "a")]
    assert "readme.png" in caplog.text and "1 image(s) skipped" in caplog.text


def test_hidden_and_non_images_ignored(tmp_path: Path):
    _img(tmp_path / "a_1.png")
    _img(tmp_path / ".b_1.png")
    (tmp_path / ".cache").mkdir()
    _img(tmp_path / ".cache" / "c_1.png")
    (tmp_path / "a_1.tem").write_text("3\n")
    (tmp_path / "notes.txt").write_text("x")
    ds = load_folder(tmp_path)
    assert [s.subject for s in ds.samples] == ["a"]


@pytest.mark.parametrize(
    "setup, exc, needle",
    [
        (lambda d: None, ValueError, "no image files found"),
        (lambda d: (d / "x.txt").write_text("x"), ValueError, "no image files found"),
        (lambda d: _img(d / "__.png"), ValueError, "no file name matches"),
        (
            lambda d: (_img(d / "a_1.png"), (d / "sub").mkdir(), _img(d / "sub" / "a_1.jpg")),
            ValueError,
            "a_1.png and sub/a_1.jpg both give subject 'a' with capture '1'",
        ),
        (lambda d: (d / "a_1.jpg").write_bytes(b"not an image"), ImageError, "a_1.jpg"),
    ],
    ids=["empty", "no-images", "no-match", "duplicate", "corrupt"],
)
def test_bad_folders(tmp_path: Path, setup, exc, needle):
    setup(tmp_path)
    with pytest.raises(exc, match=None) as info:
        load_folder(tmp_path)
    assert needle in str(info.value)


def test_missing_folder_and_file_given(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_folder(tmp_path / "nope")
    f = _img(tmp_path / "a_1.png")
    with pytest.raises(ValueError, match="not a folder"):
        load_folder(f)


@pytest.mark.parametrize(
    "pattern, needle",
    [("(?P<subject>[a-z", "invalid file-name pattern"), (r"(?P<id>\d+)", "no named group 'subject'")],
)
def test_bad_patterns(pattern: str, needle: str):
    with pytest.raises(ValueError, match=needle):
        compile_pattern(pattern)


def test_pattern_matching_empty_subject(tmp_path: Path):
    _img(tmp_path / "_1.png")
    with pytest.raises(ValueError, match="empty subject id"):
        load_folder(tmp_path, pattern=r"(?P<subject>[a-z]*)_(?P<capture>\d)")


def test_metadata_columns_and_warnings(tmp_path: Path, caplog):
    for s in ("a", "b", "c"):
        _img(tmp_path / f"{s}_1.png")
    meta = tmp_path / "meta.csv"
    meta.write_text("Age,ID,Sex\n30,a,F\n41,b,m\n50,zz,woman\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="morphlab"):
        ds = load_folder(tmp_path, metadata=meta, meta_id_column="ID")
    md = {s.subject: dict(s.metadata) for s in ds.samples}
    assert md == {"a": {"age": "30", "gender": "female"}, "b": {"age": "41", "gender": "male"}, "c": {}}
    # metadata rows without images: a one-line note; images without metadata: a warning
    notes = [r for r in caplog.records if r.getMessage().startswith("metadata: ")]
    assert [r.levelno for r in notes] == [logging.INFO]
    assert "1 of 3 subjects have no images in" in notes[0].getMessage() and "zz" in caplog.text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "1 subject(s)" in warned[0] and "no metadata row" in warned[0]


def test_metadata_explicit_gender_column(tmp_path: Path):
    meta = tmp_path / "m.csv"
    meta.write_text("\ufeffsubject,g,other_sex\n1,M,x\n", encoding="utf-8")  # BOM accepted
    assert read_metadata(meta, gender_column="g") == {"1": {"gender": "male", "other_sex": "x"}}
    # 'gender' is preferred over 'sex'; an explicit column wins over one named gender
    meta.write_text("subject,gender,sex\n1,M,F\n", encoding="utf-8")
    assert read_metadata(meta) == {"1": {"gender": "male", "sex": "F"}}
    assert read_metadata(meta, gender_column="sex") == {
        "1": {"gender": "female", "gender_original": "M"}
    }
    # two *_gender columns: no guess, both kept as they are
    meta.write_text("subject,a_gender,b_gender\n1,M,F\n", encoding="utf-8")
    assert read_metadata(meta) == {"1": {"a_gender": "M", "b_gender": "F"}}


@pytest.mark.parametrize(
    "text, kwargs, needle",
    [
        ("", {}, "metadata CSV is empty"),
        ("id,gender\na,f\n", {"id_column": "face_id"}, "no subject-id column 'face_id'; columns are id, gender"),
        ("id,gender\na,f\n", {"gender_column": "sex"}, "no gender column 'sex'"),
        ("id,gender\na,f\nb,m\na,m\n", {}, "line 4: subject 'a' already has a row (line 2)"),
        ("id,gender\n,f\n", {}, "line 2: empty subject id"),
        ("id,gender\na,f,x\n", {}, "line 2: 3 fields, the header has 2"),
    ],
)
def test_bad_metadata(tmp_path: Path, text: str, kwargs: dict, needle: str):
    meta = tmp_path / "m.csv"
    meta.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_metadata(meta, **kwargs)
    assert needle in str(info.value) and str(meta) in str(info.value)


def test_metadata_missing_or_unrelated(tmp_path: Path):
    _img(tmp_path / "a_1.png")
    with pytest.raises(FileNotFoundError, match="metadata CSV not found"):
        load_folder(tmp_path, metadata=tmp_path / "nope.csv")
    meta = tmp_path / "m.csv"
    meta.write_text("id,gender\nx,f\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no subject id in the metadata matches"):
        load_folder(tmp_path, metadata=meta)


def test_normalise_gender():
    assert [normalise_gender(v) for v in ("F", " female ", "Woman", "M", "MALE", "nb")] == [
        "female", "female", "female", "male", "male", "nb",
    ]
