"""EER and FNMR at FMR 0.1 % / 1 % of the embedded deep FR systems on FRLL, with speed.

Usage::

    .venv/bin/python benchmarks/frll_fr_eer.py [--data ../shared/data/frll]
        [--systems dlib-resnet facenet mobilefacenet] [--backend dlib] [--facenet-crops]
        [--json out.json]

Enrolment = ``neutral/NNN_03.jpg``, probe = ``smiling/NNN_08.jpg`` (82 subjects): 82
genuine comparisons (each probe vs its own enrolment) and 82 × 81 impostor ones (each
probe vs every other subject's enrolment). For each system: the EER (the DET staircase
interpolated where FMR = FNMR, :func:`morphlab.metrics.pad.d_eer` on negated
similarities), FNMR at the thresholds that give FMR ≤ 0.1 % and ≤ 1 %
(:func:`morphlab.metrics.thresholds.threshold_at_fmr`; 6642 impostors allow 6 and 66
false matches), with Wilson 95 % intervals, the genuine and impostor score ranges, the
gap ``min genuine − max impostor`` (> 0: every genuine pair beats every impostor pair),
and faces/s of ``embed_batch`` (crop + network; landmarks come from the landmark cache
and are not timed). ``--facenet-crops`` also scores FaceNet's candidate crops (the
measurement behind ``facenet``'s default crop). Models must be installed first
(``morphlab models install --all``). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

FACENET_CROPS = (("similarity", 0.0), ("box", 0.1), ("box", 0.2), ("similarity", 0.2),
                 ("box", 0.4), ("similarity", 0.4))


def _faces(data: Path, backend: str):
    from morphlab.face.cache import get_face
    from morphlab.io import read_image

    ids = sorted(p.stem.split("_")[0] for p in (data / "neutral").glob("*_03.jpg"))
    ids = [i for i in ids if (data / "smiling" / f"{i}_08.jpg").is_file()]
    out = {}
    for kind, suffix in (("neutral", "03"), ("smiling", "08")):
        items = []
        for i in ids:
            p = data / kind / f"{i}_{suffix}.jpg"
            img = read_image(p)
            items.append((img, get_face(backend, p, img)))
        out[kind] = items
    return ids, out


def evaluate(system, faces) -> dict:
    from morphlab.metrics.intervals import rate
    from morphlab.metrics.pad import d_eer
    from morphlab.metrics.thresholds import threshold_at_fmr

    t0 = time.perf_counter()
    emb = {k: system.embed_batch([im for im, _ in v], [f for _, f in v]) for k, v in faces.items()}
    secs = time.perf_counter() - t0
    n_faces = sum(len(v) for v in faces.values())
    sim = system.similarity(emb["smiling"], emb["neutral"])  # (probes, enrolments)
    genuine = np.diag(sim)
    impostor = sim[~np.eye(len(sim), dtype=bool)]
    eer, _ = d_eer(-genuine, -impostor)
    row = {
        "system": system.name, "version": system.version,
        "subjects": int(len(genuine)), "impostors": int(impostor.size),
        "eer": eer,
        "genuine_range": [float(genuine.min()), float(genuine.max())],
        "impostor_range": [float(impostor.min()), float(impostor.max())],
        "gap": float(genuine.min() - impostor.max()),
        "faces_per_s": n_faces / secs,
    }
    for fmr in (0.001, 0.01):
        t = threshold_at_fmr(impostor, fmr)
        row[f"fnmr_at_fmr_{fmr:g}"] = rate(int((genuine < t).sum()), genuine.size).to_dict()
        row[f"threshold_at_fmr_{fmr:g}"] = t
    return row


def _fmt(row: dict) -> str:
    def r(key):
        d = row[key]
        lo, hi = d["ci95"]
        return f"{100 * d['rate']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] ({d['k']}/{d['n']})"

    g, i = row["genuine_range"], row["impostor_range"]
    return (f"| {row['system']} ({row['version']}) | {100 * row['eer']:.2f} % | "
            f"{r('fnmr_at_fmr_0.001')} | {r('fnmr_at_fmr_0.01')} | {g[0]:.3f} … {g[1]:.3f} | "
            f"{i[0]:.3f} … {i[1]:.3f} | {row['gap']:+.3f} | {row['faces_per_s']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent
                                          / "shared" / "data" / "frll"))
    ap.add_argument("--systems", nargs="+", default=["dlib-resnet", "facenet", "mobilefacenet"])
    ap.add_argument("--backend", default="dlib")
    ap.add_argument("--facenet-crops", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from morphlab.recognition.base import create_system

    ids, faces = _faces(Path(args.data), args.backend)
    systems = [create_system(n) for n in args.systems]
    if args.facenet_crops:
        systems += [create_system("facenet", crop=c, margin=m) for c, m in FACENET_CROPS]
    rows = []
    print(f"FRLL neutral (enrolment) vs smiling (probe): {len(ids)} subjects, "
          f"landmarks: {args.backend}\n")
    print("| system | EER | FNMR @ FMR 0.1 % | FNMR @ FMR 1 % | genuine | impostor | "
          "gap | faces/s |")
    print("|---|---|---|---|---|---|---|---|")
    for s in systems:
        row = evaluate(s, faces)
        rows.append(row)
        print(_fmt(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
