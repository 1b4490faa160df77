"""Bad landmarks and face-backend options: clear per-pair failures, never a smeared "ok".

Uses the embedded sample (FRLL portraits with their .tem landmarks), downscaled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from morphlab import geometry as geo
from morphlab.datasets.pairs import read_pairs
from morphlab.face import Face, LandmarkError, create_backend, validate_landmarks
from morphlab.face.file_backend import SidecarError, read_tem
from morphlab.generators.base import Contributor, create_generator
from morphlab.generators.runner import generate_attack_set
from morphlab.io import read_image, write_image

SIZE = 160


def _write_tem(path: Path, points: np.ndarray, count: int | None = None) -> None:
    n = len(points) if count is None else count
    path.write_text(f"{n}\n" + "".join(f"{x:.3f}\t{y:.3f}\n" for x, y in points))


@pytest.fixture(scope="module")
def data(sample_dir: Path, tmp_path_factory) -> Path:
    """Three sample portraits at 160x160 with their scaled .tem files."""
    out = tmp_path_factory.mktemp("lm")
    for fid in ("002", "003", "004"):
        img = read_image(sample_dir / "neutral" / f"{fid}_03.jpg")
        pts = read_tem(sample_dir / "neutral" / f"{fid}_03.tem")
        img, pts = geo.resize_with_points(img, pts, SIZE)
        write_image(out / f"{fid}_03.png", img)
        _write_tem(out / f"{fid}_03.tem", pts)
    return out


# ----------------------------------------------------------------------------------------
# the one check (item 9)
# ----------------------------------------------------------------------------------------
def _face_points(n: int = 20) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([50 + 30 * np.cos(t), 60 + 40 * np.sin(t)], axis=1)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: np.where(np.arange(len(p))[:, None] == 3, np.nan, p), "1 of 20 landmarks are NaN"),
        (lambda p: np.where(np.arange(len(p))[:, None] == 0, np.inf, p), "NaN or infinite (first: point 0)"),
        (lambda p: np.full_like(p, 42.0), "all 20 landmarks are (nearly) the same point (42.0, 42.0)"),
        (lambda p: np.stack([p[:, 0], 2 * p[:, 0] + 1], axis=1), "all 20 landmarks lie on one line"),
        (lambda p: p + 500, "20 of 20 landmarks lie outside the 100x120 image"),
        (lambda p: np.vstack([p[:-1], [[-400.0, 10.0]]]), "1 of 20 landmarks lie outside the 100x120 image (e.g. point 19 at (-400.0, 10.0))"),
        (lambda p: p[:2], "at least 3 landmarks"),
    ],
    ids=["nan", "inf", "all-equal", "collinear", "outside", "one-far-point", "too-few"],
)
def test_degenerate_landmarks_are_refused(make, needle):
    pts = make(_face_points())
    with pytest.raises(LandmarkError) as info:
        validate_landmarks(pts, (120, 100, 3), "subject A (x.png)")
    assert str(info.value).startswith("subject A (x.png): ") and needle in str(info.value)


def test_good_landmarks_pass_even_a_little_outside():
    pts = _face_points()
    pts[0] = (-5.0, 60.0)  # a jaw point cut by the frame
    out = validate_landmarks(pts, (120, 100, 3))
    assert out.dtype == np.float64 and np.array_equal(out, pts)


@pytest.mark.parametrize("kind", ["all-equal", "collinear", "nan"])
def test_generator_refuses_degenerate_faces(data: Path, kind: str):
    img = read_image(data / "002_03.png")
    good = read_tem(data / "002_03.tem")
    bad = {"all-equal": np.full_like(good, 80.0),
           "collinear": np.stack([good[:, 0], good[:, 0]], axis=1),
           "nan": np.where(np.arange(len(good))[:, None] == 7, np.nan, good)}[kind]
    gen = create_generator("landmark", landmarks="file")
    fa = Face(box=np.array([0, 0, SIZE, SIZE], float), landmarks=good, scheme="tem189")
    fb = Face(box=np.array([0, 0, SIZE, SIZE], float), landmarks=bad, scheme="tem189")
    with pytest.raises(LandmarkError, match=r"^subject B \(b\.png\): "):
        gen.morph_images(img, img, fa, fb, names=("a.png", "b.png"))


def _pairs(data: Path, rows: list[tuple[str, str, str]]) -> Path:
    p = data / "pairs.csv"
    p.write_text("pair_id,subject_a,image_a,subject_b,image_b\n" + "".join(
        f"{pid},{a},{a}_03.png,{b},{b}_03.png\n" for pid, a, b in rows))
    return p


def test_degenerate_tem_is_a_per_pair_failure_naming_the_file(data: Path, tmp_path: Path):
    bad = tmp_path / "d"
    bad.mkdir()
    for f in data.glob("00*_03.*"):
        (bad / f.name).write_bytes(f.read_bytes())
    _write_tem(bad / "004_03.tem", np.full((189, 2), 80.0))  # every point the same
    p = _pairs(bad, [("0001", "002", "003"), ("0002", "002", "004")])
    s = generate_attack_set(p, "landmark", {"landmarks": "file", "variants": ["complete"]},
                            tmp_path / "out", progress=False)
    assert (s.generated, s.failed) == (1, 1)
    err = s.failures[0]["error"]
    assert s.failures[0]["pair_id"] == "0002"
    assert "004_03.tem" in err and "all 189 landmarks are (nearly) the same point" in err
    recs = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in recs) == ["failed", "ok"]


def test_tem_with_a_wrong_point_count_is_named(data: Path, tmp_path: Path):
    for f in data.glob("00[23]_03.*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    pts = read_tem(data / "003_03.tem")
    _write_tem(tmp_path / "003_03.tem", pts, count=100)  # says 100, holds 189 lines
    gen = create_generator("landmark", landmarks="file", variants=["complete"])
    with pytest.raises(LandmarkError) as info:
        gen.generate(Contributor("002", tmp_path / "002_03.png"),
                     Contributor("003", tmp_path / "003_03.png"))
    msg = str(info.value)
    assert "189 points from" in msg and "100 points from" in msg
    assert str(tmp_path / "003_03.tem") in msg and str(tmp_path / "002_03.tem") in msg
    # and a .tem claiming more points than it has names itself and the counts
    _write_tem(tmp_path / "003_03.tem", pts[:50], count=189)
    with pytest.raises(SidecarError, match=r"003_03\.tem: says 189 points but has only 50"):
        gen.generate(Contributor("002", tmp_path / "002_03.png"),
                     Contributor("003", tmp_path / "003_03.png"))


# ----------------------------------------------------------------------------------------
# unknown backend, bad backend options (item 16)
# ----------------------------------------------------------------------------------------
def test_unknown_backend_is_refused_before_any_pair(data: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="unknown face backend 'nope'; valid names: dlib"):
        create_generator("landmark", landmarks="nope")
    p = _pairs(data, [("0001", "002", "003")])
    read_pairs(p)  # the pairs file itself is fine
    with pytest.raises(ValueError, match="unknown face backend 'nope'"):
        generate_attack_set(p, "landmark", {"landmarks": "nope"}, tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "manifest.jsonl").exists()


@pytest.mark.parametrize(
    "name, opts, needle",
    [
        ("dlib", {"threshold": "abc"}, "face backend 'dlib' (threshold='abc'): threshold must be a number"),
        ("dlib", {"upsample": 1.5}, "upsample must be an integer, got 1.5"),
        ("dlib", {"max_side": 8}, "max_side (None or pixels) must be an integer in [32, inf]"),
        ("mediapipe", {"min_detection_confidence": "x"}, "min_detection_confidence must be a number"),
        ("mediapipe", {"min_detection_confidence": 2}, "in [0, 1], got 2"),
        ("file", {"bogus": 1}, "face backend 'file' (bogus=1): "),
    ],
)
def test_bad_backend_options_name_backend_and_option(name, opts, needle):
    with pytest.raises(ValueError) as info:
        create_backend(name, **opts)
    assert needle in str(info.value)
    assert "could not convert string to float" not in str(info.value)


def test_numeric_options_given_as_text_are_accepted():
    b = create_backend("dlib", threshold="0.25", upsample=2.0)
    assert b.threshold == 0.25 and b.upsample == 2 and isinstance(b.upsample, int)


# ----------------------------------------------------------------------------------------
# one unreadable photo: a per-pair failure, not the end of the run (item 16)
# ----------------------------------------------------------------------------------------
def test_unreadable_photo_fails_its_pairs_only(data: Path, tmp_path: Path, monkeypatch):
    import builtins

    d = tmp_path / "d"
    d.mkdir()
    for f in data.glob("00*_03.*"):
        (d / f.name).write_bytes(f.read_bytes())
    locked = d / "004_03.png"
    os.chmod(locked, 0)
    if os.access(locked, os.R_OK):  # root reads anything: refuse it like the kernel would
        real_open = builtins.open

        def deny(file, *args, **kwargs):
            if os.fspath(file) == str(locked):
                raise PermissionError(13, "Permission denied", str(locked))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", deny)
    p = _pairs(d, [("0001", "002", "003"), ("0002", "002", "004")])
    s = generate_attack_set(p, "landmark", {"landmarks": "file", "variants": ["complete"]},
                            tmp_path / "out", progress=False)
    assert (s.generated, s.failed) == (1, 1)
    assert s.failures[0]["pair_id"] == "0002"
    err = s.failures[0]["error"]
    assert err.startswith("ImageError: ") and str(locked) in err and "cannot be read" in err


# ----------------------------------------------------------------------------------------
# landmark files that are not what they claim (items 15, 16)
# ----------------------------------------------------------------------------------------
def test_hostile_sidecars_are_named_errors(tmp_path: Path):
    import pickle

    from morphlab.face.file_backend import read_sidecar

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SidecarError, match=r"deep\.json: .*nested too deeply"):
        read_sidecar(deep)
    big = tmp_path / "big.npy"  # an 80-byte header claiming 160 GB
    with open(big, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (10**10, 2)})
    assert big.stat().st_size < 200
    with pytest.raises(SidecarError, match=r"big\.npy: holds an array of shape \(10000000000, 2\)"):
        read_sidecar(big)
    pkl = tmp_path / "p.npy"
    pkl.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(SidecarError, match=r"p\.npy: not a readable \.npy array"):
        read_sidecar(pkl)


def test_deeply_nested_pairs_sidecar(data: Path, tmp_path: Path):
    from morphlab.datasets.pairs import PairsError

    p = _pairs(data, [("0001", "002", "003")])
    side = Path(str(p) + ".json")
    side.write_text("[" * 100_000 + "]" * 100_000)
    try:
        with pytest.raises(PairsError, match=r"pairs\.csv\.json: not a valid protocol file"):
            read_pairs(p)
    finally:
        side.unlink()
