"""Background and framing: the ``background`` operator (mediapipe selfie segmentation) and
an ``icao`` operator that never fills the frame by replicating edge pixels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from morphlab.face.align import (
    estimate_background,
    ffhq_transform,
    fit_inside,
    icao_crop,
    icao_transform,
    outside_mask,
)
from morphlab.generators.base import Contributor, Generator, MorphOutput
from morphlab.generators.runner import generate_attack_set
from morphlab.io import read_image, write_image
from morphlab.postprocess import (
    Background,
    apply_ops,
    load_set,
    parse_op,
    postprocess_set,
)

MAGENTA = (255, 0, 255)


@pytest.fixture(scope="module")
def portrait(sample_dir: Path) -> np.ndarray:
    """A real sample portrait (600², plain studio background)."""
    return read_image(sample_dir / "neutral" / "002_03.jpg")


@pytest.fixture(scope="module")
def ffhq512(sample_dir: Path, tmp_path_factory) -> Path:
    """A sample face framed like FFHQ (face small and centred) in a 512² PNG whose outermost
    pixel ring is magenta: whatever copies edge pixels into the frame shows up as magenta."""
    from morphlab.face.cache import get_face
    from morphlab.face.schemes import eye_centres, five_points

    src = sample_dir / "neutral" / "003_03.jpg"
    img = read_image(src)
    face = get_face("dlib", src, img)
    M = ffhq_transform(eye_centres(face), five_points(face)[3:], 512)
    framed = cv2.warpAffine(img, M, (512, 512), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    framed[0, :] = framed[-1, :] = framed[:, 0] = framed[:, -1] = MAGENTA
    out = tmp_path_factory.mktemp("ffhq") / "003_ffhq512.png"
    write_image(out, framed)
    return out


def _magenta(image: np.ndarray) -> np.ndarray:
    return np.all(np.abs(image.astype(int) - MAGENTA) <= 8, axis=2)


# ----------------------------------------------------------------------------------------
# background
# ----------------------------------------------------------------------------------------
def test_background_spec_and_errors():
    op = parse_op("background:colour=255,0,0,feather=0.01")
    assert op.colour == "255,0,0" and op.feather == 0.01 and parse_op(op.spec()) == op
    assert parse_op("background") == Background(colour="240,240,240")
    assert Background(colour=[1, 2, 3]).colour == "1,2,3"
    for bad, msg in (("background:colour=1,2", "RGB colour"), ("background:colour=300,0,0", "RGB"),
                     ("background:colour=grey", "RGB colour"), ("background:feather=-1", r"\[0, 0.1\]"),
                     ("background:model=portrait", "general, landscape")):
        with pytest.raises(ValueError, match=msg):
            parse_op(bad)


def test_background_applies_the_mask_and_is_uniform(portrait: np.ndarray):
    op = Background(colour="10,200,30")
    mask = op.mask(portrait)
    assert mask.shape == portrait.shape[:2] and mask.dtype == np.float32
    assert 0.2 < (mask > 0.5).mean() < 0.7  # a head and shoulders, not all or nothing
    assert mask[:60, :60].max() == 0 and mask[:60, -60:].max() == 0  # studio corners
    assert mask[300, 300] == 1  # the face (centre of the sample portrait)
    notes: list = []
    out, _ = apply_ops(portrait, [op], notes=notes)
    bg, fg = mask == 0, mask == 1
    assert np.all(out[bg] == (10, 200, 30))  # everything outside the person: exactly the colour
    assert np.array_equal(out[fg], portrait[fg])  # the person untouched
    soft = (mask > 0) & (mask < 1)
    assert soft.any()
    between = out[soft].astype(float)
    expect = mask[soft, None] * portrait[soft] + (1 - mask[soft, None]) * np.array([10, 200, 30])
    assert np.abs(between - expect).max() <= 0.5 + 1e-6  # the composite, rounded
    assert notes[0]["colour"] == [10, 200, 30]
    assert notes[0]["foreground_fraction"] == pytest.approx(float(mask.mean()), abs=1e-6)
    # the feather widens the soft edge
    hard = Background(feather=0).mask(portrait)
    assert ((hard > 0) & (hard < 1)).sum() < soft.sum()


def test_background_is_deterministic(portrait: np.ndarray, sample_dir: Path):
    first, _ = apply_ops(portrait, ["background"])
    other = read_image(sample_dir / "neutral" / "004_03.jpg")
    apply_ops(other, ["background"])  # another image in between: no state carried over
    again, _ = apply_ops(portrait, ["background"])
    assert np.array_equal(first, again)


class _CopyA(Generator):
    """A stand-in "morph": subject A's own photo, so it has a bona fide twin."""

    name = "copy-a"
    version = "1"

    def get_params(self) -> dict:
        return {}

    def output_tags(self) -> list[str]:
        return ["copy"]

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        return [MorphOutput(read_image(a.path), "copy", {})]


def test_same_background_op_on_morphs_and_bona_fide(sample_dir: Path, tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for s in ("002", "004"):
        img = cv2.resize(read_image(sample_dir / "neutral" / f"{s}_03.jpg"), (300, 300),
                         interpolation=cv2.INTER_AREA)
        write_image(photos / f"{s}_03.png", img)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("pair_id,subject_a,image_a,subject_b,image_b\n"
                     "0001,002,002_03.png,004,004_03.png\n")
    generate_attack_set(pairs, _CopyA, {}, tmp_path / "set", dataset_dir=photos, progress=False)
    ops = ["background:colour=200,200,200", "icao:width=140,height=180"]
    postprocess_set(tmp_path / "set", tmp_path / "morphs", ops, progress=False)
    postprocess_set(photos, tmp_path / "bona", ops, progress=False)
    (morph,) = load_set(tmp_path / "morphs")
    bona = {r["relpath"]: r for r in load_set(tmp_path / "bona")}
    twin = bona["002_03.png"]
    assert morph["kind"] == "morph" and twin["kind"] == "bona-fide"
    assert morph["postprocess"][-1]["ops"] == twin["postprocess"][-1]["ops"]
    # the morph is A's photo: the same processing gives the same bytes
    assert morph["sha256"] == twin["sha256"]
    assert morph["postprocess"][-1]["op_notes"] == twin["postprocess"][-1]["op_notes"]
    bg_note, icao_note = twin["postprocess"][-1]["op_notes"]
    assert bg_note["op"].startswith("background:") and bg_note["colour"] == [200, 200, 200]
    assert icao_note["fill"] == "background" and icao_note["colour"] == [200, 200, 200]


# ----------------------------------------------------------------------------------------
# icao: no border replication
# ----------------------------------------------------------------------------------------
def test_icao_old_replication_streaks_on_ffhq_frames(ffhq512: Path):
    """The input really needs filling: the old ``border="replicate"`` streaks magenta."""
    from morphlab.face.cache import get_face
    from morphlab.face.schemes import eye_centres

    img = read_image(ffhq512)
    before, M = icao_crop(img, eye_centres(get_face("dlib", ffhq512, img)), (350, 450),
                          border="replicate")
    filled = outside_mask(M, (512, 512), (350, 450), margin=1.0)
    assert filled.mean() > 0.1  # 8-25 % of the frame lies outside an FFHQ 512² frame
    assert _magenta(before)[filled].mean() > 0.9  # replicated edge pixels: streaks


@pytest.mark.parametrize("fill", ["background", "90,120,150"])
def test_icao_pads_uniformly_on_ffhq_frames(ffhq512: Path, fill: str):
    img = read_image(ffhq512)
    notes: list = []
    crop, _ = apply_ops(img, [f"icao:fill={fill}"], source=ffhq512, notes=notes)
    (note,) = notes
    M = np.array(note["matrix"])
    filled = outside_mask(M, (512, 512), (350, 450), margin=1.0)
    assert filled.mean() > 0.1
    assert note["padded_fraction"] == pytest.approx(outside_mask(M, (512, 512), (350, 450)).mean(),
                                                    abs=1e-6)
    colour = note["colour"]
    if fill == "background":
        assert colour == list(estimate_background(img)) and colour != list(MAGENTA)
    else:
        assert colour == [90, 120, 150]
    # replicated-border fraction 0: every pixel of pure fill is the one colour
    assert np.all(crop[filled] == colour)
    # and no edge pixel is copied into the frame: magenta only on the 1-pixel seam
    seam = outside_mask(M, (512, 512), (350, 450), margin=-1.0) & ~filled
    assert not (_magenta(crop) & ~seam).any()


def test_icao_crop_mode_stays_inside_the_image(ffhq512: Path):
    img = read_image(ffhq512)
    notes: list = []
    crop, _ = apply_ops(img, ["icao:fill=crop"], source=ffhq512, notes=notes)
    (note,) = notes
    assert crop.shape == (450, 350, 3) and note["fill"] == "crop" and "colour" not in note
    M = np.array(note["matrix"])
    assert not outside_mask(M, (512, 512), (350, 450)).any()  # nothing to fill
    # both recorded to 6 digits
    assert note["zoom"] > 1.1
    assert note["eye_distance"] == pytest.approx(0.25 * note["zoom"], abs=2e-6)
    # the eyes stay level, centred, on the eye line: the anchor of the zoom
    from morphlab.face.align import transform_points
    from morphlab.face.cache import get_face
    from morphlab.face.schemes import eye_centres

    eyes = transform_points(eye_centres(get_face("dlib", ffhq512, img)), M)
    assert np.allclose(eyes[:, 1], 0.45 * 450, atol=0.5)
    assert eyes.mean(axis=0)[0] == pytest.approx(175, abs=0.5)
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(0.25 * note["zoom"] * 350, rel=1e-3)
    assert not _magenta(crop[2:-2, 2:-2]).any()


def test_icao_on_a_photo_that_fits_is_unchanged(sample_dir: Path, tmp_path: Path):
    """FRLL bona fide photos: the frame fits, nothing padded, crop mode does not zoom."""
    src = sample_dir / "neutral" / "002_03.jpg"
    img = read_image(src)
    notes: list = []
    pad, _ = apply_ops(img, ["icao"], source=src, notes=notes)
    crop, _ = apply_ops(img, ["icao:fill=crop"], source=src, notes=notes)
    assert notes[0]["padded_fraction"] == 0 and notes[1]["zoom"] == 1.0
    assert np.array_equal(pad, crop)


def test_fit_inside_and_background_by_hand():
    # identity frame 200x200 over a 100x100 image, anchored at (50, 50): the corner
    # (199, 199) must come to (99, 99): zoom (199 - 50) / (99 - 50)
    M = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    M2, zoom = fit_inside(M, (100, 100), (200, 200), (50.0, 50.0))
    assert zoom == pytest.approx(149 / 49, rel=1e-6)
    assert not outside_mask(M2, (100, 100), (200, 200)).any()
    assert outside_mask(M2, (100, 100), (200, 200), margin=-0.01).any()  # tight: the largest
    assert fit_inside(M, (300, 300), (200, 200), (50.0, 50.0)) == (M, 1.0)
    with pytest.raises(ValueError, match="outside"):
        fit_inside(M, (100, 100), (200, 200), (150.0, 50.0))
    img = np.full((90, 60, 3), (12, 34, 56), np.uint8)
    img[30:, 15:45] = 200  # a "person" reaching the bottom edge
    assert estimate_background(img) == (12, 34, 56)
    eyes = np.array([[40.0, 50.0], [60.0, 50.0]])
    T = icao_transform(eyes, (100, 120))
    assert np.allclose(T[:, :2] @ eyes.T + T[:, 2:], [[37.5, 62.5], [54, 54]])


def test_icao_fill_spec_and_errors():
    assert parse_op("icao").fill == "background"
    op = parse_op("icao:fill=1,2,3,width=100")
    assert op.fill == "1,2,3" and op.width == 100 and parse_op(op.spec()) == op
    for bad in ("icao:fill=replicate", "icao:fill=1,2", "icao:fill=1,2,999"):
        with pytest.raises(ValueError, match="fill"):
            parse_op(bad)


def test_manifest_records_the_fill(ffhq512: Path, tmp_path: Path):
    s = postprocess_set([{"path": str(ffhq512), "relpath": ffhq512.name}], tmp_path / "out",
                        ["icao:fill=crop"], progress=False)
    assert s.processed == 1
    line = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[0])
    (note,) = line["postprocess"][-1]["op_notes"]
    assert note["fill"] == "crop" and note["zoom"] > 1 and len(note["matrix"]) == 2
