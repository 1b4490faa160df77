"""A quick subject-disjoint train-and-evaluate run on a small attack set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from morphlab.detect.evaluate import evaluate_detector
from morphlab.detect.outputs import PathLike
from morphlab.detect.train import train_detector
from morphlab.detectors.presentations import (
    PresentationSet,
    build_presentations,
    split_keeping_morphs,
)


def quick_detector_demo(
    attack_manifest: PathLike,
    bona_fide_paths: Sequence[PathLike],
    out_dir: PathLike,
    *,
    detector: str = "freq-logreg",
    train_variant: Optional[str] = "complete",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate a detector on a small attack set, subject-disjointly.

    The identities are split in two (:func:`split_keeping_morphs`); the detector is trained
    on one half's bona fide images and ``train_variant`` morphs, and evaluated on the other
    half's bona fide images and morphs of every variant.

    Args:
        attack_manifest: an attack set (``manifest.jsonl`` or its folder).
        bona_fide_paths: bona fide images, folders or list files (subject from the name).
        out_dir: receives ``model/`` and ``report/`` (metrics.json, det.png, report.md/html).
        detector: registered detector name (default ``freq-logreg``: fast, and a linear
            model on 45 features copes with the few images of a demo).
        train_variant: variant to train on (``None``: all).
        seed: seed of the identity split.

    Returns:
        ``{"model": path, "report": path, "D-EER": pooled D-EER, "BPCER@APCER=10%": …,
        "metrics": all pooled metrics, "train_subjects", "test_subjects"}``.
    """
    data = build_presentations(bona_fide_paths, [attack_manifest])
    train_ids, test_ids = split_keeping_morphs(data, test_fraction=0.5, seed=seed)
    train = data.restrict(train_ids)
    if train_variant is not None:
        kept = [it for it in train.items if it.label == 0 or it.species.split("/", 1)[-1] == train_variant]
        train = PresentationSet(kept or train.items, train.skipped)
    out = Path(out_dir)
    # the demo redoes its own model/ and report/ each run (files it did not write stay)
    train_detector(detector, train, out / "model", progress=progress, overwrite=True)
    res = evaluate_detector(out / "model", data.restrict(test_ids), out / "report", progress=progress,
                            title=f"{detector}: quick subject-disjoint demo", overwrite=True)
    m = res["metrics"]
    return {"model": out / "model", "report": out / "report" / "report.html", "D-EER": m["D-EER"],
            "BPCER@APCER=10%": m["BPCER@APCER=10%"], "metrics": m,
            "train_subjects": sorted(train_ids), "test_subjects": sorted(test_ids)}
