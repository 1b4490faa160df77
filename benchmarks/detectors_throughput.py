"""Training and scoring throughput of every built-in detector, on aligned FRLL crops.

Inputs are real: the FRLL photos (neutral + smiling) are aligned once (landmarks through
the cache; alignment time is reported separately, per image), and "morphs" are pixel
averages of two aligned crops of different people — enough to exercise every code path
with realistic content; detection quality is measured by frll_mad_crossval.py, not here.
D-MAD pairs are (crop, the same person's other photo) and (averaged crop, contributor's
photo). Torch and BLAS use the threads they are given (run on 2 cores for the figures of
the project).

Usage::

    python benchmarks/detectors_throughput.py [--frll ../shared/data/frll] [-n 160]
        [--detectors lbp-svm freq-logreg cnn embedding-diff]

Prints a Markdown table: images (or pairs) per second for training (times epochs for the
cnn) and scoring, and the per-image cost of cutting the aligned crop once the landmarks are
in the cache (a first run also pays for landmark detection, see benchmarks of the face
backends).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"cnn": {"epochs": 40}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frll", type=Path, default=REPO.parent / "shared" / "data" / "frll")
    ap.add_argument("-n", type=int, default=160, help="training samples (half bona fide)")
    ap.add_argument("--detectors", nargs="+", default=["lbp-svm", "freq-logreg", "cnn", "embedding-diff"])
    args = ap.parse_args()

    from morphlab.detectors.base import DETECTORS, DIFFERENTIAL, create_detector
    from morphlab.detectors.preprocess import align_faces

    neutral = sorted((args.frll / "neutral").glob("*.jpg"))
    smiling = sorted((args.frll / "smiling").glob("*.jpg"))
    rng = np.random.default_rng(0)
    rows = []
    crops_by_size: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    for name in args.detectors:
        det = create_detector(name, **PARAMS.get(name, {}))
        size = det.crop_size
        if size not in crops_by_size:
            t0 = time.perf_counter()
            a = align_faces(neutral + smiling, size=size, progress=False)
            align_s = (time.perf_counter() - t0) / len(neutral + smiling)
            k = len(neutral)
            crops_by_size[size] = (a.crops[:k], a.crops[k:], align_s)
        neu, smi, align_s = crops_by_size[size]
        m = len(neu)
        n_half = args.n // 2
        idx = rng.integers(0, m, n_half)
        other = (idx + 1 + rng.integers(0, m - 1, n_half)) % m
        morphs = ((neu[idx].astype(np.uint16) + neu[other]) // 2).astype(np.uint8)
        bona = neu[rng.integers(0, m, n_half)]
        if DETECTORS.get(name).kind == DIFFERENTIAL:
            bona_idx = rng.integers(0, m, n_half)
            X = np.concatenate([np.stack([neu[bona_idx], smi[bona_idx]], 1),
                                np.stack([morphs, smi[idx]], 1)])
        else:
            X = np.concatenate([bona, morphs])
        y = np.r_[np.zeros(n_half), np.ones(n_half)].astype(np.int64)
        t0 = time.perf_counter()
        det.fit(X, y)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        det.decision_function(X)
        score_s = time.perf_counter() - t0
        unit = "pairs" if det.kind == DIFFERENTIAL else "images"
        passes = int(det.get_params().get("epochs", 1))  # iterative trainers see the data repeatedly
        rows.append(f"| {name} | {size} px | {len(X)} {unit} | {passes} | {fit_s:.1f} s "
                    f"| {len(X) * passes / fit_s:.1f} | {len(X) / score_s:.1f} | {1000 * align_s:.0f} ms |")
        print(rows[-1], flush=True)

    print()
    print(f"Threads: {os.cpu_count()} CPUs visible"
          + (f", torch {__import__('torch').get_num_threads()}" if "cnn" in args.detectors else ""))
    print("| detector | crop | training set | epochs | fit time | train samples·epochs /s | "
          "score /s | align per image (landmarks cached) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
