"""Self-morph training vs real morphs: FRLL, subject-disjoint, clean and post-processed tests.

The FRLL identities are split in two halves and landmark morphs (``complete`` and
``spliced``) are made within each half, exactly as ``benchmarks/frll_mad_crossval.py``
does (its ``make_halves`` is reused). Each single-image detector is trained on the
training half in three modes:

(a) ``real``: bona fide neutral + smiling photos and the half's real landmark morphs;
(b) ``self-morph``: the same bona fide photos and synthetic attacks made from them alone
    (``train_detector(self_morph=...)``, ``morphlab detect train --self-morph``);
(c) ``both``: (a) plus the synthetic attacks of (b).

Every model is tested on the other half: bona fide photos against its ``complete`` and
``spliced`` morphs, clean and post-processed (``print-scan`` and ``jpeg:quality=75``, applied by
:func:`morphlab.postprocess.sets.postprocess_set` to the morphs *and* to the bona fide
test photos, so a detector cannot just spot the processing).

Usage::

    python benchmarks/frll_selfmorph.py [--frll ../shared/data/frll] [-o out/frll_selfmorph]
        [--per-subject 2] [--seed 0] [-j 2] [--detectors lbp-svm freq-logreg]
        [--modes real self-morph both] [--ratio 1.0]

Prints a Markdown table (D-EER, BPCER@APCER=10 %, APCER@BPCER=10 % with Wilson 95 %
intervals, per detector, mode and test set, with the numbers of test presentations) and writes it, the models and
``results.json`` under the output folder. Attack sets and post-processed sets of a
previous run in the same folder are reused.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Post-processing of the test sets (``morphlab postprocess --op``).
OPS = {"print-scan": "print-scan", "jpeg75": "jpeg:quality=75"}
#: Training settings of the figure (defaults otherwise): the cnn at 40 epochs, as in frll_mad_crossval.py.
PARAMS = {"cnn": {"epochs": 40}}


def _crossval():
    """``benchmarks/frll_mad_crossval.py`` as a module (its split and attack sets)."""
    spec = importlib.util.spec_from_file_location("frll_mad_crossval", REPO / "benchmarks" / "frll_mad_crossval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def processed_tests(halves: dict, out: Path, *, seed: int, jobs: int) -> dict:
    """``{condition: (bona fide sources, attack sets)}``: clean, and each of :data:`OPS`."""
    from morphlab.postprocess.sets import image_items, postprocess_set

    te = halves["test"]
    bona = [Path(line) for f in (te["neutral"], te["smiling"]) for line in f.read_text().split()]
    tests = {"clean": ([te["neutral"], te["smiling"]], [te["attacks"]])}
    for name, op in OPS.items():
        a_dir, b_dir = out / f"test_attacks_{name}", out / f"test_bona_fide_{name}"
        if not (a_dir / "manifest.jsonl").is_file():
            postprocess_set(te["attacks"], a_dir, [op], seed=seed, jobs=jobs, overwrite=True)
        if not (b_dir / "manifest.jsonl").is_file():
            items = image_items(bona, bona[0].parents[1])
            postprocess_set(items, b_dir, [op], seed=seed, jobs=jobs, overwrite=True)
        tests[name] = ([b_dir], [a_dir])
    return tests


def train(detector: str, mode: str, halves: dict, out: Path, *, ratio: float, seed: int) -> dict:
    from morphlab.detect import build_presentations, train_detector

    tr = halves["train"]
    attacks = [] if mode == "self-morph" else [tr["attacks"]]
    data = build_presentations([tr["neutral"], tr["smiling"]], attacks)
    sm = {"ratio": ratio, "seed": seed} if mode != "real" else None
    return train_detector(detector, data, out / tag(detector, mode, ratio) / "model", overwrite=True,
                          params=PARAMS.get(detector), self_morph=sm, progress=False)


def tag(detector: str, mode: str, ratio: float) -> str:
    """Model folder name of a detector, mode and self-morph ratio."""
    return f"{detector}-{mode}" + (f"-r{ratio:g}" if mode != "real" and ratio != 1 else "")


def main() -> None:
    from morphlab.detect import build_presentations, prepare_inputs
    from morphlab.detectors.base import load_detector
    from morphlab.metrics.intervals import rate
    from morphlab.metrics.pad import pad_summary

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frll", type=Path, default=REPO.parent / "shared" / "data" / "frll")
    ap.add_argument("-o", "--out", type=Path, default=REPO / "out" / "frll_selfmorph")
    ap.add_argument("--per-subject", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--ratio", type=float, default=1.0, help="self-morphs per bona fide image")
    ap.add_argument("--detectors", nargs="+", default=["lbp-svm", "freq-logreg"])
    ap.add_argument("--modes", nargs="+", default=["real", "self-morph", "both"],
                    choices=["real", "self-morph", "both"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("morphlab.detectors.preprocess", "morphlab.face"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    halves = _crossval().make_halves(args.frll, args.out, seed=args.seed,
                                     per_subject=args.per_subject, jobs=args.jobs)
    tests = processed_tests(halves, args.out, seed=args.seed, jobs=args.jobs)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    inputs: dict = {}  # (condition, crop size) -> aligned inputs, shared by every model
    for det_name in args.detectors:
        for mode in args.modes:
            t0 = time.perf_counter()
            summary = train(det_name, mode, halves, args.out, ratio=args.ratio, seed=args.seed)
            det = load_detector(args.out / tag(det_name, mode, args.ratio) / "model")
            size = int(summary.get("crop_size") or det.metadata_["preprocess"]["crop_size"])
            rows = {}
            for cond, (bona, attacks) in tests.items():
                if (cond, size) not in inputs:
                    data = build_presentations(bona, attacks)
                    inputs[(cond, size)] = prepare_inputs(data, det.kind, size=size, progress=False)
                inp = inputs[(cond, size)]
                scores = det.decision_function(inp.X)
                b, a = scores[inp.y == 0], scores[inp.y == 1]
                sp = [it.species.split("/", 1)[-1] for it in inp.items if it.label == 1]
                rows[cond] = pad_summary(b, a, species=sp)
            label = mode + (f" (ratio {args.ratio:g})" if mode != "real" and args.ratio != 1 else "")
            results[f"{det_name} / {label}"] = {
                "detector": det_name, "mode": label, "train": summary, "tests": rows,
                "seconds": round(time.perf_counter() - t0, 1)}
            results_file.write_text(json.dumps(results, indent=2, default=str) + "\n")
            logging.info("%s / %s done (%.0f s)", det_name, mode, time.perf_counter() - t0)

    lines = ["| detector | trained on | bona fide / attacks in training | test set | morphs | "
             "D-EER | BPCER@APCER=10% | APCER@BPCER=10% |", "|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        n = r["train"]["n_by_species"]
        trained = f"{n.get('bona fide', 0)} / " + " + ".join(
            f"{v} {k.split('/', 1)[-1] if k.startswith('landmark') else 'self-morph'}"
            for k, v in n.items() if k != "bona fide")
        for cond, m in r["tests"].items():
            nb = m["n_bona_fide"]
            for v, pv in m["per species"].items():
                bp = rate(round(pv["BPCER@APCER=10%"] * nb), nb)
                ap = rate(round(pv["APCER@BPCER=10%"] * pv["n"]), pv["n"])
                lines.append(f"| {r['detector']} | {r['mode']} | {trained} | {cond} | {v} ({pv['n']} "
                             f"vs {nb} bona fide) | {100 * pv['D-EER']:.1f}% | {bp.format()} | "
                             f"{ap.format()} |")
    lines += ["", f"Test half: {len(halves['test']['subjects'])} identities, none seen in training "
                  f"({len(halves['train']['subjects'])} training identities)."]
    table = "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    print()
    print(summary_table(results))


def summary_table(results: dict) -> str:
    """One row per detector and mode: ``D-EER / BPCER@APCER=10% / APCER@BPCER=10%`` (in %)
    per test set and variant (the intervals and counts are in the long table)."""
    first = next(iter(results.values()))["tests"]
    cols = [(c, v) for c in first for v in first[c]["per species"]]
    lines = ["| detector | trained on | " + " | ".join(f"{c} {v}" for c, v in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for r in results.values():
        cells = [" / ".join(f"{100 * r['tests'][c]['per species'][v][k]:.1f}" for k in
                            ("D-EER", "BPCER@APCER=10%", "APCER@BPCER=10%")) for c, v in cols]
        lines.append(f"| {r['detector']} | {r['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
