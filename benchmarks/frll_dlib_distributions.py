"""dlib-resnet on FRLL: genuine/impostor distributions, thresholds at FMR 0.1% and 1%, FNMR.

Usage::

    .venv/bin/python benchmarks/frll_dlib_distributions.py [--data ../shared/data/frll]
        [--system dlib-resnet] [--out frll_dist] [--backend dlib]

Enrolment = ``neutral/NNN_03.jpg``, probe = ``smiling/NNN_08.jpg``. Genuine comparisons:
each probe against its own subject's enrolment image; impostor comparisons: each probe
against every other subject's enrolment image. Prints the score statistics, the
threshold at FMR 0.1% and 1% (:func:`morphlab.metrics.thresholds.calibrate`) with the
FNMR there, and FMR/FNMR at the system's published threshold (dlib: distance 0.6, i.e.
similarity 0.4). Writes a histogram to ``OUT/<system>_frll.png``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent
                                          / "shared" / "data" / "frll"))
    ap.add_argument("--system", default="dlib-resnet")
    ap.add_argument("--backend", default="dlib")
    ap.add_argument("--out", default="frll_dist")
    args = ap.parse_args()

    from morphlab.metrics.thresholds import calibrate, fixed
    from morphlab.recognition.base import system_from_spec
    from morphlab.recognition.cache import embed_files
    from morphlab.reports.document import save_figure
    from morphlab.reports.map_report import plot_score_histograms

    data = Path(args.data)
    ids = sorted(p.stem.split("_")[0] for p in (data / "neutral").glob("*_03.jpg"))
    ids = [i for i in ids if (data / "smiling" / f"{i}_08.jpg").is_file()]
    enrol = [str(data / "neutral" / f"{i}_03.jpg") for i in ids]
    probes = [str(data / "smiling" / f"{i}_08.jpg") for i in ids]
    system = system_from_spec(args.system)
    res = embed_files(system, enrol + probes, backend=args.backend, progress=True)
    if res.failures:
        print("not embedded:", res.failures)
    ok = [k for k, (e, p) in enumerate(zip(enrol, probes))
          if e in res.embeddings and p in res.embeddings]
    E = np.stack([res.embeddings[enrol[k]] for k in ok])
    P = np.stack([res.embeddings[probes[k]] for k in ok])
    sim = system.similarity(P, E)  # (probes, enrolments)
    genuine = np.diag(sim)
    impostor = sim[~np.eye(len(ok), dtype=bool)]
    dist = (lambda s: 1 - s) if system.name == "dlib-resnet" else None

    print(f"\n{system.name} on FRLL: {len(ok)} subjects, {genuine.size} genuine and "
          f"{impostor.size} impostor comparisons (smiling probe vs neutral enrolment)")
    for name, s in (("genuine", genuine), ("impostor", impostor)):
        line = (f"  {name:<9} similarity mean {s.mean():.4f} sd {s.std():.4f} "
                f"min {s.min():.4f} max {s.max():.4f}")
        if dist:
            line += f"   (distance mean {dist(s).mean():.4f}, range {dist(s).min():.4f}-{dist(s).max():.4f})"
        print(line)
    ops = {}
    for target in (0.001, 0.01):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            op = calibrate(genuine, impostor, target, what=system.name)
        ops[target] = op
        d = f" (distance {1 - op.threshold:.4f})" if dist else ""
        print(f"  FMR target {100 * target:g}%: threshold {op.threshold:.4f}{d}, achieved FMR "
              f"{100 * op.fmr:.3f}% ({round(op.fmr * impostor.size)}/{impostor.size}), FNMR "
              f"{100 * op.fnmr:.2f}% ({round(op.fnmr * genuine.size)}/{genuine.size})"
              + ("  [fewer impostors than 10/FMR]" if w else ""))
    if system.default_threshold is not None:
        op = fixed(system.default_threshold, genuine, impostor)
        d = f" (distance {1 - op.threshold:.2f})" if dist else ""
        print(f"  published threshold {op.threshold:.4f}{d}: FMR {100 * op.fmr:.3f}% "
              f"({round(op.fmr * impostor.size)}/{impostor.size}), FNMR {100 * op.fnmr:.2f}%")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = plot_score_histograms(f"{system.name} on FRLL (threshold at FMR 0.1%)", genuine,
                                impostor, np.zeros(0), ops[0.001])
    print("  figure:", save_figure(fig, out / f"{system.name}_frll.png"))


if __name__ == "__main__":
    main()
