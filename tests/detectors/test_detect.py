"""The detect library on real photos: alignment, subject-disjoint train/eval, reports, D-MAD."""

from __future__ import annotations

import json

import numpy as np
import pytest

from morphlab.detect import (
    attack_presentations,
    bona_fide_presentations,
    evaluate_detector,
    list_images,
    score_files,
    split_subjects,
    train_detector,
    with_live_probes,
)
from morphlab.detectors.preprocess import CANONICAL_DLIB68_112, align_faces

pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")


def test_align_faces_reports_images_without_a_face(sample_dir, no_face_image):
    paths = sorted((sample_dir / "neutral").glob("*.jpg"))[:3] + [no_face_image]
    r = align_faces(paths, size=96, progress=False)
    assert r.crops.shape == (3, 96, 96, 3) and r.crops.dtype == np.uint8
    assert r.index.tolist() == [0, 1, 2]
    assert r.n_failed == 1 and r.failures[0][0] == no_face_image
    assert "no face" in r.failures[0][1]
    with pytest.raises(FileNotFoundError):
        align_faces([sample_dir / "nope.jpg"], progress=False)


def test_canonical_landmarks_match_the_sample(sample_dir):
    """The stored mean crop landmarks (from all FRLL photos) fit the embedded sample."""
    from morphlab.face.align import transform_points
    from morphlab.face.cache import get_face
    from morphlab.io import read_image
    from morphlab.detectors.preprocess import align_image

    pts = []
    for p in sorted(sample_dir.glob("*/*.jpg")):
        img = read_image(p)
        face = get_face("dlib", p, img)
        _, M = align_image(img, face, 112)
        pts.append(transform_points(face.landmarks, M))
    err = np.linalg.norm(np.mean(pts, axis=0) - CANONICAL_DLIB68_112, axis=1)
    assert err.mean() < 1.0 and err.max() < 2.5  # pixels of a 112 px crop


def test_presentations_from_lists_and_manifests(split_sample, sample_dir, tmp_path):
    tr = split_sample["train"]
    bf = bona_fide_presentations([tr["neutral"], tr["smiling"]])
    assert len(bf) == 12 and {it.subjects[0] for it in bf.items} == tr["subjects"]
    at = attack_presentations([tr["attacks"]], variants=["complete"])
    assert at.counts() == {"landmark/complete": len(at)} and len(at) >= 6
    assert all(set(it.subjects) <= tr["subjects"] for it in at.items)
    both = attack_presentations([tr["attacks"] / "manifest.jsonl"])
    assert set(both.counts()) == {"landmark/complete", "landmark/spliced"}
    with pytest.raises(ValueError, match="no usable morph.*nonsense"):
        attack_presentations([tr["attacks"]], variants=["nonsense"])
    # D-MAD: bona fide neutral ↔ smiling of the same person; a morph ↔ each contributor
    d = with_live_probes(bf + at, [tr["smiling"]])
    pairs = [(it.path.name, it.live.name) for it in d.items if it.label == 0]
    assert all(a[:3] == b[:3] and a != b for a, b in pairs)
    assert len(pairs) == 6  # smiling images have no other smiling probe: skipped
    assert len(d.skipped) == 6 and "no live probe" in d.skipped[0][1]
    assert sum(it.label for it in d.items) == 2 * len(at)
    assert len(with_live_probes(at, [tr["smiling"]], contributors="a")) == len(at)
    # file names must give a subject
    bad = tmp_path / "list.txt"
    bad.write_text(f"{sample_dir / 'neutral' / '002_03.jpg'}\n")
    assert list_images(bad) == [(sample_dir / "neutral" / "002_03.jpg", "002")]
    with pytest.raises(ValueError, match="subject pattern"):
        list_images(bad, pattern=r"^(?P<subject>x\d+)")
    a, b = split_subjects([f"{i:03d}" for i in range(10)], test_fraction=0.3, seed=0)
    assert len(b) == 3 and not a & b and len(a | b) == 10


def test_train_and_evaluate_subject_disjoint(split_sample, no_face_image, tmp_path):
    tr, te = split_sample["train"], split_sample["test"]
    train = bona_fide_presentations([tr["neutral"], tr["smiling"]]) + \
        attack_presentations([tr["attacks"]], variants=["complete"])
    summary = train_detector("lbp-svm", train, tmp_path / "model", params={"grid": [3, 3]},
                             crop_size=96, progress=False)
    assert summary["subjects"] == sorted(tr["subjects"])
    assert summary["n_by_species"]["bona fide"] == 12 and summary["n_no_face"] == 0
    info = json.loads((tmp_path / "model" / "detector.json").read_text())
    assert info["metadata"]["preprocess"]["crop_size"] == 96

    extra = bona_fide_presentations([no_face_image])
    extra.items[0] = extra.items[0].__class__(no_face_image, 0, ("999",))
    test = bona_fide_presentations([te["neutral"], te["smiling"]]) + extra + \
        attack_presentations([te["attacks"]])
    res = evaluate_detector(tmp_path / "model", test, tmp_path / "report", progress=False)
    m = res["metrics"]
    assert m["n_bona_fide"] == 12 and m["n_attack"] == len(test) - 13
    assert set(m["per species"]) == {"landmark/complete", "landmark/spliced"}
    assert 0.0 <= m["D-EER"] <= 1.0 and "BPCER@APCER=10%" in m and "max APCER" in m
    assert res["info"]["subject-disjoint"].startswith("yes")
    assert res["failures"]["n_no_face"] == 1 and "999_01.jpg" in res["notes"][0]
    for f in ("metrics.json", "det.png", "report.md", "report.html", "scores.csv"):
        assert (tmp_path / "report" / f).stat().st_size > 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "subject-disjoint | yes" in md and "landmark/spliced" in md
    assert len((tmp_path / "report" / "scores.csv").read_text().splitlines()) == len(test)

    # the training identities again: refused unless explicitly allowed, then flagged
    with pytest.raises(ValueError, match="share 6 identities.*--allow-overlap"):
        evaluate_detector(tmp_path / "model", train, progress=False)
    res = evaluate_detector(tmp_path / "model", train, allow_overlap=True, progress=False)
    assert res["info"]["subject-disjoint"].startswith("NO")
    assert any(n.startswith("WARNING: not subject-disjoint") for n in res["notes"])

    morph = attack_presentations([te["attacks"]]).items[0].path
    rows = score_files(tmp_path / "model", [no_face_image, morph], progress=False)
    assert "error" in rows[0] and rows[1]["decision"] in ("morph", "bona fide")
    with pytest.raises(ValueError, match="takes no live probe"):
        score_files(tmp_path / "model", [no_face_image], live=[no_face_image], progress=False)


def test_differential_embedding_diff_with_dlib_resnet(split_sample, tmp_path):
    """D-MAD on real photos: live probe = the smiling image of the person presenting."""
    tr, te = split_sample["train"], split_sample["test"]

    def dmad(half, variants):
        data = bona_fide_presentations([half["neutral"]]) + \
            attack_presentations([half["attacks"]], variants=variants)
        return with_live_probes(data, [half["smiling"]])

    train_detector("embedding-diff", dmad(tr, ["complete"]), tmp_path / "dmad", crop_size=128,
                   progress=False)
    res = evaluate_detector(tmp_path / "dmad", dmad(te, None), tmp_path / "dreport", progress=False)
    m = res["metrics"]
    assert m["n_bona_fide"] == 6 and res["info"]["kind"] == "differential"
    # morphs resemble the live probe less than a genuine photo does: better than chance
    assert m["D-EER"] < 0.5
    rows = score_files(tmp_path / "dmad", [te["neutral"].read_text().split()[0]],
                       live=[te["smiling"].read_text().split()[0]], progress=False)
    assert rows[0]["decision"] in ("morph", "bona fide") and "live" in rows[0]
    with pytest.raises(ValueError, match="needs a live probe"):
        score_files(tmp_path / "dmad", [te["neutral"].read_text().split()[0]], progress=False)


def test_split_keeping_morphs_and_quick_demo(sample_dir, tmp_path):
    from morphlab.datasets.folder import load_folder
    from morphlab.datasets.pairs import make_pairs, write_pairs
    from morphlab.detect import build_presentations, quick_detector_demo, split_keeping_morphs
    from morphlab.generators.runner import generate_attack_set

    write_pairs(make_pairs(load_folder(sample_dir / "neutral"), per_subject=1, seed=3), tmp_path / "p.csv")
    generate_attack_set(tmp_path / "p.csv", "landmark", {"variants": ["complete", "spliced"]},
                        tmp_path / "attacks", image_format="jpg", quality=90, progress=False)
    sources = [sample_dir / "neutral", sample_dir / "smiling"]
    data = build_presentations(sources, [tmp_path / "attacks"])
    train, test = split_keeping_morphs(data, seed=0)
    assert not train & test and len(train) == len(test) == 6
    # every morph's two contributors land on one side: nothing is lost
    assert len(data.restrict(train)) + len(data.restrict(test)) == len(data)

    res = quick_detector_demo(tmp_path / "attacks", sources, tmp_path / "demo", progress=False)
    assert res["report"].is_file() and (res["model"] / "detector.json").is_file()
    assert res["metrics"]["n_bona_fide"] == 12 and res["metrics"]["n_attack"] == 6
    assert set(res["metrics"]["per species"]) == {"landmark/complete", "landmark/spliced"}
    assert not set(res["train_subjects"]) & set(res["test_subjects"])
