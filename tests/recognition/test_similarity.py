"""``pairs --strategy similar``: look-alike pairs first, same gender, under a chosen system."""

from __future__ import annotations

import numpy as np

from morphlab.datasets.folder import load_folder
from morphlab.datasets.pairs import make_pairs
from morphlab.recognition.base import create_system
from morphlab.recognition.similarity import pairwise_similarity


def test_similar_pairs_are_the_most_similar_same_gender_pairs(sample_dir):
    ds = load_folder(sample_dir, metadata=sample_dir / "london_info.csv",
                     meta_id_column="face_id")
    similar = make_pairs(ds, strategy="similar", capture="03", per_subject=1)
    random = make_pairs(ds, strategy="same-gender", capture="03", per_subject=1, seed=1)
    assert similar.protocol["parameters"]["capture"] == "03"
    # independent: dlib-resnet similarities computed here, by hand
    system = create_system("dlib-resnet")
    paths = sorted({p for pr in similar.pairs + random.pairs for p in (pr.image_a, pr.image_b)})
    from morphlab.face.cache import get_face
    from morphlab.io import read_image

    emb = {p: system.embed(read_image(p), get_face("dlib", p)) for p in paths}
    sim = lambda pr: system.compare(emb[pr.image_a], emb[pr.image_b])  # noqa: E731
    s_sim = [sim(p) for p in similar.pairs]
    assert all(p.gender_a == p.gender_b for p in similar.pairs)
    assert s_sim == sorted(s_sim, reverse=True)  # chosen greedily, most similar first
    assert np.mean(s_sim) > np.mean([sim(p) for p in random.pairs])
    # the first pair is the most similar same-gender pair of all
    enrol = {s.subject: s for s in ds.samples if s.capture == "03"}
    subs = sorted(enrol)
    mat = pairwise_similarity([enrol[s].path for s in subs])
    best = max(((mat[i, j], subs[i], subs[j]) for i in range(len(subs))
                for j in range(i + 1, len(subs)) if enrol[subs[i]].gender == enrol[subs[j]].gender))
    first = similar.pairs[0]
    assert {first.subject_a, first.subject_b} == {best[1], best[2]}
    assert np.isclose(s_sim[0], best[0], atol=1e-5)


def test_similar_with_another_system_and_any_gender(sample_dir):
    ds = load_folder(sample_dir / "neutral")
    pairs = make_pairs(ds, strategy="similar", same_gender=False, system="lbph", n_pairs=3)
    assert len(pairs.pairs) == 3 and pairs.protocol["parameters"]["system"] == "lbph"
