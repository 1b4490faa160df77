"""Detector test data: real landmark morphs of the embedded FRLL sample, split by subject."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def split_sample(sample_dir: Path, tmp_path_factory) -> dict:
    """The sample's 12 identities split 6/6; landmark morphs (complete + spliced, JPEG like
    the bona fide photos) made within each half; list files of bona fide photos.

    Returns ``{"train"|"test": {"subjects", "attacks" (folder), "neutral" (list file),
    "smiling" (list file)}}``.
    """
    from morphlab.datasets.folder import load_folder
    from morphlab.datasets.pairs import make_pairs, write_pairs
    from morphlab.detect import split_subjects
    from morphlab.generators.runner import generate_attack_set

    root = tmp_path_factory.mktemp("mad-sample")
    ds = load_folder(sample_dir / "neutral")
    train, test = split_subjects(ds.subjects(), test_fraction=0.5, seed=1)
    out = {}
    for name, subjects in (("train", train), ("test", test)):
        half = replace(ds, samples=tuple(s for s in ds.samples if s.subject in subjects))
        pairs = root / f"{name}_pairs.csv"
        write_pairs(make_pairs(half, per_subject=4, seed=0), pairs)
        summary = generate_attack_set(pairs, "landmark", {}, root / f"{name}_attacks",
                                      image_format="jpg", quality=90, progress=False)
        assert summary.failed == 0
        lists = {}
        for capture, suffix in (("neutral", "03"), ("smiling", "08")):
            f = root / f"{name}_{capture}.txt"
            f.write_text("".join(f"{sample_dir / capture / f'{s}_{suffix}.jpg'}\n" for s in sorted(subjects)))
            lists[capture] = f
        out[name] = {"subjects": subjects, "attacks": root / f"{name}_attacks", **lists}
    return out


@pytest.fixture(scope="session")
def no_face_image(tmp_path_factory) -> Path:
    """A photo-sized image without a face (smooth noise), named like subject 999."""
    import numpy as np

    from morphlab.io import write_image

    rng = np.random.default_rng(0)
    img = (rng.normal(128, 20, (300, 300, 3))).clip(0, 255).astype(np.uint8)
    p = tmp_path_factory.mktemp("noface") / "999_01.jpg"
    write_image(p, img)
    return p
