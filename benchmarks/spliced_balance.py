"""A/B balance of landmark morphs on FRLL same-gender pairs: old vs new spliced morphs.

Usage::

    .venv/bin/python benchmarks/spliced_balance.py [--data ../shared/data/frll] [--pairs 16]
        [--systems dlib-resnet,facenet] [--config NAME ...]

Pairs: subjects sorted by id, split by gender, consecutive subjects of one gender paired
(``--pairs`` of them, alternating genders). Each pair is morphed (alpha 0.5, dlib
landmarks by default, in A's 1350x1350 frame) with every configuration in :data:`CONFIGS` — the
complete morph, the old spliced morph (68-point hull, colour matched to A: the behaviour
before the balance fix) and the new one (extended region, colour matched) plus the
single changes in between — and compared with the **smiling** probe image of subject A
and of subject B (``smiling/NNN_08.jpg``, not used to make the morph). Prints, per system
and configuration, the median and mean distance (dlib-resnet: Euclidean distance;
others: 1 - cosine similarity) to A and to B and the median of d(B) - d(A) (0 =
balanced; > 0 leans towards A).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

#: name -> (variant, LandmarkMorph parameters)
CONFIGS: dict[str, tuple[str, dict]] = {
    "complete": ("complete", {}),
    "spliced-old": ("spliced", {"splice_region": "hull", "color_match": True}),
    "spliced-hull-nocolour": ("spliced", {"splice_region": "hull", "color_match": False}),
    "spliced-ext-nocolour": ("spliced", {"splice_region": "extended", "color_match": False}),
    "spliced-new": ("spliced", {}),
    "spliced-new-feather": ("spliced", {"blend": "feather"}),
}


def _pairs(data: Path, n: int) -> list[tuple[str, str]]:
    with open(data / "london_info.csv", newline="") as fh:
        gender = {r["face_id"].zfill(3): r["face_gender"] for r in csv.DictReader(fh)}
    ids = sorted(p.stem.split("_")[0] for p in (data / "neutral").glob("*_03.jpg"))
    ids = [i for i in ids if (data / "smiling" / f"{i}_08.jpg").is_file() and i in gender]
    by_g: dict[str, list[tuple[str, str]]] = {}
    for g in sorted({gender[i] for i in ids}):
        sub = [i for i in ids if gender[i] == g]
        by_g[g] = [(sub[k], sub[k + 1]) for k in range(0, len(sub) - 1, 2)]
    out: list[tuple[str, str]] = []
    while len(out) < n and any(by_g.values()):
        for g in sorted(by_g):
            if by_g[g] and len(out) < n:
                out.append(by_g[g].pop(0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent
                                          / "shared" / "data" / "frll"))
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--systems", default="dlib-resnet,facenet")
    ap.add_argument("--landmarks", default="dlib", help="face backend of the morphs")
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS),
                    help="configurations to run (default: all)")
    args = ap.parse_args()

    from morphlab.face import create_backend, get_face
    from morphlab.generators.landmark import LandmarkMorph
    from morphlab.io import read_image
    from morphlab.recognition.base import create_system

    data = Path(args.data)
    names = args.config or list(CONFIGS)
    systems = [create_system(s) for s in args.systems.split(",")]
    detector = create_backend("dlib")
    pairs = _pairs(data, args.pairs)
    gens = {n: LandmarkMorph(alpha=0.5, variants=[CONFIGS[n][0]], landmarks=args.landmarks,
                             **CONFIGS[n][1]) for n in names}
    probe = {}
    for sid in sorted({s for p in pairs for s in p}):
        path = data / "smiling" / f"{sid}_08.jpg"
        img = read_image(path)
        face = get_face("dlib", path, img)
        probe[sid] = [s.embed(img, face) for s in systems]
    dist = {n: {s.name: [] for s in systems} for n in names}  # lists of (dA, dB)
    t0 = time.perf_counter()
    for a, b in pairs:
        pa, pb = data / "neutral" / f"{a}_03.jpg", data / "neutral" / f"{b}_03.jpg"
        ia, ib = read_image(pa), read_image(pb)
        fa, fb = get_face(args.landmarks, pa, ia), get_face(args.landmarks, pb, ib)
        for n in names:
            img = gens[n].morph_images(ia, ib, fa, fb)[0].image
            face = detector.landmarks(img)
            for k, s in enumerate(systems):
                e = s.embed(img, face)
                sims = [s.compare(e, probe[x][k]) for x in (a, b)]
                dist[n][s.name].append([1.0 - v for v in sims])
    print(f"{len(pairs)} same-gender FRLL pairs, alpha 0.5, {args.landmarks} landmarks, "
          "probes = smiling "
          f"images ({time.perf_counter() - t0:.0f} s)\n")
    print("| system | morph | median d(A) | median d(B) | mean d(A) | mean d(B) | median d(B)-d(A) |")
    print("|---|---|---|---|---|---|---|")
    for s in systems:
        for n in names:
            d = np.array(dist[n][s.name])
            print(f"| {s.name} | {n} | {np.median(d[:, 0]):.3f} | {np.median(d[:, 1]):.3f} | "
                  f"{d[:, 0].mean():.3f} | {d[:, 1].mean():.3f} | "
                  f"{np.median(d[:, 1] - d[:, 0]):+.3f} |")


if __name__ == "__main__":
    main()
