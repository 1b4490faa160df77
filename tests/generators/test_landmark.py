"""The landmark morph generator on real FRLL photos (downscaled, with their .tem landmarks)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from morphlab import geometry as geo
from morphlab.face import NoFaceError
from morphlab.face.file_backend import read_tem
from morphlab.generators.base import GENERATORS, Contributor, create_generator
from morphlab.generators.landmark import (FACE_REGION, RING_SCALE, LandmarkMorph,
                                         splice_region_points)
from morphlab.io import encode_image, read_image, write_image

SIZE = 360


def _write_tem(path: Path, points: np.ndarray) -> None:
    path.write_text(f"{len(points)}\n" + "".join(f"{x:.3f}\t{y:.3f}\n" for x, y in points))


@pytest.fixture(scope="module")
def photos(frll_photo, tmp_path_factory) -> dict[str, Path]:
    """FRLL portraits 002, 003 (women), 025 (a woman of another skin tone), downscaled from
    600 px (the embedded sample; 025: tests/fixtures/frll_600), each with its .tem sidecar
    scaled accordingly (for the ``file`` backend)."""
    out = tmp_path_factory.mktemp("frll_small")
    paths = {}
    for fid in ("002", "003", "025"):
        src = frll_photo(fid)
        img = read_image(src)
        pts = read_tem(src.with_suffix(".tem"))
        img, pts = geo.resize_with_points(img, pts, SIZE)
        write_image(out / f"{fid}.png", img)
        _write_tem(out / f"{fid}.tem", pts)
        paths[fid] = out / f"{fid}.png"
    return paths


def _pair(photos, a="002", b="003"):
    return Contributor(a, photos[a]), Contributor(b, photos[b])


def _gen(**kw) -> LandmarkMorph:
    kw.setdefault("landmarks", "file")
    return create_generator("landmark", **kw)


# ----------------------------------------------------------------------------------------
# interface
# ----------------------------------------------------------------------------------------
def test_registered_with_documented_defaults():
    assert "landmark" in GENERATORS.names()
    g = create_generator("landmark")
    assert isinstance(g, LandmarkMorph)
    p = g.get_params()
    assert p == {
        "shape_alpha": 0.5, "texture_alpha": 0.5, "landmarks": "dlib",
        "variants": ["complete", "spliced"], "splice_into": "a", "blend": "poisson",
        "color_match": True, "feather": 0.05, "splice_region": "extended", "size": None,
        "crop": None,
    }
    json.dumps(p)
    assert g.output_tags() == ["complete", "spliced"]


def test_alpha_sets_both_and_explicit_values_win():
    g = create_generator("landmark", alpha=0.3)
    assert (g.shape_alpha, g.texture_alpha) == (0.3, 0.3)
    g = create_generator("landmark", alpha=0.3, texture_alpha=0.6)
    assert (g.shape_alpha, g.texture_alpha) == (0.3, 0.6)
    g = create_generator("landmark", variants="spliced", size=256)
    assert g.output_tags() == ["spliced"] and g.get_params()["size"] == [256, 256]


@pytest.mark.parametrize("kw", [
    {"alpha": 1.5}, {"shape_alpha": -0.1}, {"texture_alpha": "x"}, {"variants": ["x"]},
    {"variants": []}, {"variants": ["complete", "complete"]}, {"splice_into": "c"},
    {"blend": "alpha"}, {"size": 8}, {"size": (100,)}, {"crop": "square"}, {"feather": -1},
    {"landmarks": ""},
])
def test_bad_parameters_raise_value_error(kw):
    with pytest.raises(ValueError):
        create_generator("landmark", **kw)


# ----------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_outputs(photos):
    return _gen().generate(*_pair(photos), seed=0)


def test_generates_one_output_per_variant(default_outputs):
    assert [o.tag for o in default_outputs] == ["complete", "spliced"]
    for o in default_outputs:
        assert o.image.shape == (SIZE, SIZE, 3) and o.image.dtype == np.uint8
        assert o.params == {"variant": o.tag}
        assert o.extra["landmarks"] == "file" and o.extra["scheme"] == "tem189"
        assert o.extra["n_points"] == 189 and o.extra["n_triangles"] > 300
        json.dumps(o.extra)
    assert default_outputs[1].extra["splice_into"] == "a"


def test_deterministic_bytes(photos, default_outputs):
    again = _gen().generate(*_pair(photos), seed=123)  # a new instance, another seed
    for x, y in zip(default_outputs, again):
        assert encode_image(x.image, ".png") == encode_image(y.image, ".png")


def _ring_region(photos, a, b):
    """Pixels the spliced variant may touch (inside the anchor ring), and the inner face."""
    pa = read_tem(photos[a].with_suffix(".tem"))
    pb = read_tem(photos[b].with_suffix(".tem"))
    shape = geo.average_points(pa, pb, 0.5)
    region = shape[list(FACE_REGION["tem189"])]
    ring = geo.anchor_ring(splice_region_points(shape, "tem189", (SIZE, SIZE)), (SIZE, SIZE),
                           RING_SCALE)
    near = cv2.dilate(geo.hull_mask(ring, (SIZE, SIZE)), np.ones((5, 5), np.uint8)) > 0
    face = geo.erode_mask(geo.hull_mask(region, (SIZE, SIZE)), 20) > 0
    return near, face


@pytest.mark.parametrize("into", ["a", "b"])
@pytest.mark.parametrize("blend", ["poisson", "feather"])
def test_spliced_keeps_the_target_outside_the_face(photos, into, blend):
    a, b = _pair(photos)
    out = _gen(variants=["complete", "spliced"], splice_into=into, blend=blend).generate(a, b, seed=0)
    complete, spliced = out[0].image, out[1].image
    target = read_image(photos["002" if into == "a" else "003"])
    near, face = _ring_region(photos, "002", "003")
    far = ~near
    assert far.mean() > 0.5
    # no ghosting: hair, shoulders and background are the target's own pixels...
    assert np.array_equal(spliced[far], target[far])
    # ...whereas the complete morph blends them
    assert np.abs(complete.astype(int) - target)[far].mean() > 3
    # and the face is morphed
    assert np.abs(spliced.astype(int) - target)[face].mean() > 3


def test_colour_matching_hides_the_seam(photos):
    """Splicing B's texture-heavy face into A: matching colours shrinks the step at the edge."""
    a, b = _pair(photos, "002", "025")

    def step(color_match):
        # the landmark hull's edge runs over skin, where colour matching matters most
        g = _gen(variants=["spliced"], blend="feather", texture_alpha=0.8, color_match=color_match,
                 splice_region="hull")
        img = g.generate(a, b, seed=0)[0].image
        pa, pb = read_tem(photos["002"].with_suffix(".tem")), read_tem(photos["025"].with_suffix(".tem"))
        shape = geo.average_points(pa, pb, 0.5)
        hull = geo.hull_mask(shape[list(FACE_REGION["tem189"])], (SIZE, SIZE))
        r = max(1, round(0.05 * np.sqrt((hull > 0).sum())))
        inner = (geo.erode_mask(hull, 2 * r + 2) > 0) & ~(geo.erode_mask(hull, 2 * r + 8) > 0)
        outer = (cv2.dilate(hull, np.ones((13, 13), np.uint8)) > 0) & ~(hull > 0)
        lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
        return float(np.linalg.norm(lab[inner].mean(0) - lab[outer].mean(0)))

    with_match, without = step(True), step(False)
    assert with_match < 0.7 * without


def test_shape_alpha_zero_spliced_into_a_keeps_a_geometry(photos):
    """With A's shape the target needs no warp: outside the face A is returned untouched."""
    a, b = _pair(photos)
    out = _gen(variants=["spliced"], shape_alpha=0.0, blend="feather").generate(a, b, seed=0)[0]
    img_a = read_image(photos["002"])
    hull = geo.hull_mask(splice_region_points(read_tem(photos["002"].with_suffix(".tem")),
                                              "tem189", (SIZE, SIZE)), (SIZE, SIZE))
    assert np.array_equal(out.image[hull == 0], img_a[hull == 0])


# ----------------------------------------------------------------------------------------
# frames and sizes
# ----------------------------------------------------------------------------------------
def test_output_size_and_icao_crop(photos):
    a, b = _pair(photos)
    out = _gen(variants=["complete"], size=(200, 240)).generate(a, b, seed=0)[0]
    assert out.image.shape == (240, 200, 3)
    out = _gen(crop="icao").generate(a, b, seed=0)
    assert [o.image.shape for o in out] == [(450, 350, 3)] * 2
    assert out[0].extra["frame"] == [350, 450]
    out = _gen(variants=["complete"], crop="icao", size=(175, 225)).generate(a, b, seed=0)[0]
    assert out.image.shape == (225, 175, 3)


def test_contributors_of_different_sizes_are_aligned(photos, tmp_path):
    """B is mapped into A's frame by the similarity fitting its landmarks onto A's."""
    a, b = _pair(photos)

    def smaller(fid, size, name):
        img, pts = geo.resize_with_points(read_image(photos[fid]),
                                          read_tem(photos[fid].with_suffix(".tem")), size)
        write_image(tmp_path / f"{name}.png", img)
        _write_tem(tmp_path / f"{name}.tem", pts)
        return Contributor(fid, tmp_path / f"{name}.png")

    # A with a smaller copy of itself: aligned back exactly, so the morph is A again
    out = _gen(variants=["complete"]).generate(a, smaller("002", 300, "a300"), seed=0)[0]
    assert out.image.shape == (SIZE, SIZE, 3) and out.extra["b_aligned_to_a"] is True
    assert np.abs(out.image.astype(int) - read_image(photos["002"])).mean() < 2.5
    # a real pair with B at another size: a morph in A's frame, the face where A's is
    out = _gen().generate(a, smaller("003", 300, "b300"), seed=0)
    assert [o.image.shape for o in out] == [(SIZE, SIZE, 3)] * 2
    assert out[0].extra["b_aligned_to_a"] is True


def test_different_landmark_schemes_are_refused(photos, tmp_path):
    a, _ = _pair(photos)
    img = read_image(photos["003"])
    write_image(tmp_path / "x.png", img)
    np.save(tmp_path / "x.npy", read_tem(photos["003"].with_suffix(".tem"))[:68])
    with pytest.raises(ValueError, match="different landmark schemes"):
        _gen().generate(a, Contributor("x", tmp_path / "x.png"), seed=0)


# ----------------------------------------------------------------------------------------
# the default (dlib) backend and a face-less image
# ----------------------------------------------------------------------------------------
def test_dlib_landmarks_end_to_end(photos):
    a, b = _pair(photos)
    out = create_generator("landmark").generate(a, b, seed=0)
    assert [o.tag for o in out] == ["complete", "spliced"]
    assert out[0].extra["scheme"] == "dlib68" and out[0].extra["n_points"] == 68


def test_no_face_raises_naming_the_file(photos, tmp_path):
    wall = read_image(photos["002"])[:120, :120]  # plain studio background
    path = tmp_path / "background.png"
    write_image(path, cv2.resize(wall, (SIZE, SIZE)))
    a, _ = _pair(photos)
    with pytest.raises(NoFaceError, match="background.png"):
        create_generator("landmark").generate(a, Contributor("bg", path), seed=0)
    with pytest.raises(NoFaceError, match="background.png"):
        create_generator("landmark").generate(Contributor("bg", path), a, seed=0)
