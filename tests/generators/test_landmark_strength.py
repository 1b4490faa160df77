"""Attack strength of the landmark generator: identity-balanced spliced morphs and the
FR-guided morph factor (``alpha="auto"``), on the embedded FRLL sample."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from morphlab import geometry as geo
from morphlab.face import create_backend, get_face
from morphlab.face.base import Face
from morphlab.generators.landmark import LandmarkMorph, splice_region_points
from morphlab.generators.runner import RUN_NAME, generate_attack_set, load_manifest
from morphlab.io import read_image
from morphlab.mapscore.job import selection_overlap
from morphlab.recognition.base import RecognitionSystem, create_system


def _load(path: Path):
    img = read_image(path)
    return img, get_face("dlib", path, img)


@pytest.fixture(scope="module")
def neutral(frll_photo):
    return {i: _load(frll_photo(i)) for i in ("002", "003", "004", "005", "006", "007", "025")}


# ----------------------------------------------------------------------------------------
# identity balance of the spliced variant
# ----------------------------------------------------------------------------------------
def test_spliced_morph_no_longer_leans_towards_the_target(neutral, sample_dir):
    """dlib-resnet similarity to A minus to B (smiling probes, not the morph inputs): the
    68-point hull (the old region) leaves A's forehead, jaw and neck, so the morph is
    more A than B; the extended region removes most of that lean."""
    fr = create_system("dlib-resnet")
    detect = create_backend("dlib")
    gaps = {"hull": [], "extended": []}
    for a, b in (("002", "003"), ("004", "005"), ("006", "007")):
        probes = [fr.embed(*_load(sample_dir / "smiling" / f"{s}_08.jpg")) for s in (a, b)]
        for region in gaps:
            g = LandmarkMorph(variants=["spliced"], splice_region=region)
            img = g.morph_images(*neutral[a][:1], *neutral[b][:1], neutral[a][1], neutral[b][1])[0].image
            e = fr.embed(img, detect.landmarks(img))
            gaps[region].append(fr.compare(e, probes[0]) - fr.compare(e, probes[1]))
    old, new = np.mean(gaps["hull"]), np.mean(gaps["extended"])
    assert old > 0.1  # the lean the issue measured on FRLL
    assert new < old - 0.08
    assert abs(new) < 0.5 * old


def _strips(la, lb, size):
    """Forehead and jaw-neck strips: inside the extended region (less the splice's
    transition width), outside the landmark hull."""
    shape = geo.average_points(la, lb, 0.5)
    old = geo.hull_mask(shape, size) > 0
    ext = geo.hull_mask(splice_region_points(shape, "dlib68", size), size)
    core = geo.erode_mask(ext, int(round(0.05 * np.sqrt((ext > 0).sum())))) > 0
    ys = np.arange(size[1])[:, None]
    return {"forehead": core & ~old & (ys < shape[17:27, 1].min()),
            "jaw-neck": core & ~old & (ys > shape[8, 1] - 2)}


def _gradients(img: np.ndarray) -> np.ndarray:
    lum = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]
    return np.dstack([cv2.Sobel(lum, cv2.CV_32F, 1, 0), cv2.Sobel(lum, cv2.CV_32F, 0, 1)])


def test_forehead_and_jaw_band_are_morphed_not_the_targets(neutral):
    """The pale band above the brows and A's own jaw shadow came from the strips between
    the landmark hull and the real face edge: with the extended region their structure
    (luminance gradients) is the morph's, where the old variant kept A's. (Their colour
    stays close to A's either way: Poisson cloning takes the low frequencies from the
    target's surroundings, which is what hides the seam.)"""
    (ia, fa), (ib, fb) = neutral["002"], neutral["025"]  # two very different skin tones
    size = geo.image_size(ia)
    out = {r: {o.tag: o.image for o in LandmarkMorph(splice_region=r).morph_images(ia, ib, fa, fb)}
           for r in ("hull", "extended")}
    grad = {k: _gradients(v) for k, v in (("complete", out["extended"]["complete"]),
                                         ("old", out["hull"]["spliced"]),
                                         ("new", out["extended"]["spliced"]))}
    for name, strip in _strips(fa.landmarks, fb.landmarks, size).items():
        assert strip.sum() > 300, name
        d_old = np.abs(grad["old"][strip] - grad["complete"][strip]).mean()
        d_new = np.abs(grad["new"][strip] - grad["complete"][strip]).mean()
        assert d_new < {"forehead": 0.85, "jaw-neck": 0.5}[name] * d_old, (name, d_new, d_old)
    # and far from the face nothing changed: the target's own pixels
    assert np.array_equal(out["extended"]["spliced"][:20], ia[:20])


def test_hull_region_reproduces_the_old_variant(neutral):
    """``splice_region="hull"`` is the region before the fix (the benchmark's baseline):
    its spliced face region is the landmarks' hull and the extended one contains it."""
    (ia, fa), (ib, fb) = neutral["002"], neutral["003"]
    shape = geo.average_points(fa.landmarks, fb.landmarks, 0.5)
    size = geo.image_size(ia)
    hull = geo.hull_mask(splice_region_points(shape, "dlib68", size, "hull"), size) > 0
    ext = geo.hull_mask(splice_region_points(shape, "dlib68", size), size) > 0
    assert np.array_equal(hull, geo.hull_mask(shape, size) > 0)
    assert not (hull & ~ext).any() and ext.sum() > 1.25 * hull.sum()
    old = LandmarkMorph(variants=["spliced"], splice_region="hull")
    again = LandmarkMorph(variants=["spliced"], splice_region="hull")
    a = old.morph_images(ia, ib, fa, fb)[0].image
    assert np.array_equal(a, again.morph_images(ia, ib, fa, fb)[0].image)  # deterministic
    assert np.array_equal(a[~(cv2.dilate(hull.astype(np.uint8), np.ones((61, 61))) > 0)][:1000],
                          ia[~(cv2.dilate(hull.astype(np.uint8), np.ones((61, 61))) > 0)][:1000])


def test_splice_region_is_validated():
    with pytest.raises(ValueError, match="splice_region"):
        LandmarkMorph(splice_region="forehead")


# ----------------------------------------------------------------------------------------
# alpha="auto": the FR-guided morph factor
# ----------------------------------------------------------------------------------------
class BrightnessFR(RecognitionSystem):
    """A fake FR system whose score we control: the embedding is the face box's mean
    brightness to the 4th power, the similarity minus the absolute difference. The
    nonlinearity puts the max-min factor away from 0.5 when the two faces differ in
    brightness."""

    name = "fake-brightness"
    version = "1"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        self.calls += 1
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        m = float(image[max(0, y0):y1, max(0, x0):x1].mean()) / 255.0
        return np.array([m ** 4], np.float32)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return -np.abs(np.atleast_2d(a)[:, :1] - np.atleast_2d(b)[:, :1].T).astype(np.float64)


def _face_at(points):
    pts = np.asarray(points, np.float64)
    return Face(box=np.concatenate([pts.min(0), pts.max(0)]), landmarks=pts, scheme="dlib68")


def test_auto_alpha_picks_the_candidate_with_the_best_minimum_similarity(neutral):
    (ia, fa), (ib, fb) = neutral["002"], neutral["025"]
    fr = BrightnessFR()
    g = LandmarkMorph(alpha="auto", selection_systems=[fr])
    outs = g.morph_images(ia, ib, fa, fb)
    assert fr.calls == 2 + 5 * 2  # contributors once per pair, then each candidate morph
    ref = BrightnessFR()
    ea, eb = ref.embed(ia, _face_at(fa.landmarks)), ref.embed(ib, _face_at(fb.landmarks))
    fixed = {c: {x.tag: x.image for x in LandmarkMorph(alpha=c).morph_images(ia, ib, fa, fb)}
             for c in (0.3, 0.4, 0.5, 0.6, 0.7)}
    for o in outs:
        rec = o.extra["alpha_search"]
        assert rec["selection_systems"] == ["fake-brightness"]
        assert [c["alpha"] for c in rec["candidates"]] == [0.3, 0.4, 0.5, 0.6, 0.7]
        # independently: make every candidate with a fixed factor and score it
        mins = []
        for c in rec["candidates"]:
            img = fixed[c["alpha"]][o.tag]
            e = ref.embed(img, _face_at(geo.average_points(fa.landmarks, fb.landmarks, c["alpha"])))
            sims = [ref.compare(e, ea), ref.compare(e, eb)]
            assert c["similarity_ab"]["fake-brightness"] == pytest.approx(sims, abs=1e-5)
            mins.append(min(sims))
            if c["alpha"] == rec["alpha"]:
                assert np.array_equal(img, o.image)  # the chosen candidate's image
        best = rec["candidates"][int(np.argmax(mins))]["alpha"]
        assert rec["alpha"] == best
        assert best != 0.5  # the nonlinearity moves it: a real choice, not the default
        assert o.params["shape_alpha"] == o.params["texture_alpha"] == best


def test_auto_alpha_params_and_validation():
    g = LandmarkMorph(alpha="auto", alpha_range=(0.4, 0.6), alpha_candidates=3,
                      selection_systems="mobilefacenet")
    p = g.get_params()
    assert p["shape_alpha"] == p["texture_alpha"] == "auto"
    assert p["alpha_range"] == [0.4, 0.6] and p["alpha_candidates"] == 3
    assert p["selection_systems"] == ["mobilefacenet"]
    assert g.candidates() == [0.4, 0.5, 0.6]
    assert "selection_systems" not in LandmarkMorph(alpha=0.5).get_params()
    with pytest.raises(ValueError, match="shape_alpha"):
        LandmarkMorph(alpha="auto", shape_alpha=0.4)
    with pytest.raises(ValueError, match="alpha_range"):
        LandmarkMorph(alpha="auto", alpha_range=(0.7, 0.3))
    with pytest.raises(ValueError, match="alpha_candidates"):
        LandmarkMorph(alpha="auto", alpha_candidates=40)
    with pytest.raises(KeyError, match="dlib-resnet"):  # lists the valid names
        LandmarkMorph(alpha="auto", selection_systems=["no-such-system"])
    with pytest.raises(ValueError, match="alpha"):
        LandmarkMorph(alpha="best")


def _pairs_file(tmp_path: Path, pairs) -> Path:
    path = tmp_path / "pairs.csv"
    rows = ["pair_id,subject_a,image_a,subject_b,image_b"]
    rows += [f"{k:04d},{a},neutral/{a}_03.jpg,{b},neutral/{b}_03.jpg"
             for k, (a, b) in enumerate(pairs, start=1)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_manifest_records_the_choice_and_map_score_warns_on_circularity(sample_dir, tmp_path):
    pairs = _pairs_file(tmp_path, [("002", "003")])
    out = tmp_path / "set"
    generate_attack_set(pairs, "landmark", params={
        "alpha": "auto", "alpha_candidates": 3, "selection_systems": ["lbph"], "size": 300},
        out_dir=out, dataset_dir=sample_dir, progress=False)
    recs = load_manifest(out / "manifest.jsonl")
    assert sorted(r["tag"] for r in recs) == ["complete", "spliced"]
    for r in recs:
        search = r["extra"]["alpha_search"]
        assert r["params"]["selection_systems"] == ["lbph"] == search["selection_systems"]
        assert r["params"]["shape_alpha"] == search["alpha"] in (0.3, 0.5, 0.7)
        assert len(search["candidates"]) == 3
        assert all(set(c["similarity_ab"]) == {"lbph"} for c in search["candidates"])
    config = json.loads((out / RUN_NAME).read_text())
    assert config["params"]["selection_systems"] == ["lbph"]
    assert config["params"]["shape_alpha"] == "auto"
    # the warning: a selection system among the evaluation systems, and only then
    msg = selection_overlap(recs, [create_system("lbph"), create_system("dlib-resnet")])
    assert "circular" in msg and "lbph" in msg
    assert selection_overlap(recs, [create_system("dlib-resnet")]) == ""
    assert selection_overlap([{"params": {"shape_alpha": 0.5}}], [create_system("lbph")]) == ""


def test_map_score_warns_when_it_evaluates_with_a_selection_system(sample_dir, tmp_path):
    from morphlab.mapscore import map_score

    pairs = _pairs_file(tmp_path, [("002", "003"), ("005", "008")])
    out = tmp_path / "set"
    generate_attack_set(pairs, "landmark", params={
        "alpha": "auto", "alpha_candidates": 2, "selection_systems": ["lbph"],
        "variants": ["complete"], "size": 300}, out_dir=out, dataset_dir=sample_dir,
        progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        map_score(out, sample_dir / "smiling", tmp_path / "map", systems=["lbph"],
                  progress=False)
    assert any("circular evaluation: lbph" in str(w.message) for w in caught)
    doc = json.loads((tmp_path / "map" / "map.json").read_text())
    assert any("circular" in n for n in json.dumps(doc).split('"') if n)
