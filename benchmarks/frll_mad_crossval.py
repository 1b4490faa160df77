"""Does a detector trained on one morph variant catch another? FRLL, subject-disjoint.

The FRLL identities are split in two halves (seeded). In each half, same-gender contributor
pairs are morphed with the landmark generator (variants ``complete`` and ``spliced``,
written as JPEG like the FRLL photos). Every baseline is trained on the training half —
bona fide neutral + smiling photos and ``complete`` morphs (``--train-variants complete
spliced``: both) — and tested on the other half's bona fide photos against (a) its
``complete`` and (b) its ``spliced`` morphs.

The differential baseline (``embedding-diff``) sees pairs: the suspected image with a live
probe, the smiling photo of the person presenting it — a bona fide pair is neutral vs
smiling of the same person; a morph is paired with each contributor's smiling photo.

Usage::

    python benchmarks/frll_mad_crossval.py [--frll ../shared/data/frll] [-o out/frll_mad]
        [--per-subject 4] [--seed 0] [-j 2] [--detectors lbp-svm freq-logreg deep-svm cnn embedding-diff]
        [--train-variants complete spliced]

Prints a Markdown table of D-EER, BPCER@APCER=10 % and APCER@BPCER=10 % per detector and
test variant, and writes it with every detector's model and report under the output
folder. The attack sets of a previous run in the same folder (same seed and settings) are
reused, and so are the results of detectors not named again: run one detector at a time
and the table lists all of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Training settings of the figure (defaults otherwise).
PARAMS = {"cnn": {"epochs": 40}}


def make_halves(frll: Path, out: Path, *, seed: int, per_subject: int, jobs: int) -> dict:
    from morphlab.datasets.folder import load_folder
    from morphlab.datasets.pairs import make_pairs, write_pairs
    from morphlab.detect import split_subjects
    from morphlab.generators.runner import generate_attack_set

    ds = load_folder(frll / "neutral", metadata=frll / "london_info.csv", meta_id_column="face_id")
    train, test = split_subjects(ds.subjects(), test_fraction=0.5, seed=seed)
    halves = {}
    for name, ids in (("train", train), ("test", test)):
        half = replace(ds, samples=tuple(s for s in ds.samples if s.subject in ids))
        pairs = out / f"{name}_pairs.csv"
        write_pairs(make_pairs(half, strategy="same-gender", per_subject=per_subject, seed=seed), pairs)
        t0 = time.perf_counter()
        if (out / f"{name}_attacks" / "manifest.jsonl").is_file():  # every detector, same morphs
            logging.info("%s half: reusing the attack set in %s", name, out / f"{name}_attacks")
        else:
            run = generate_attack_set(pairs, "landmark", {}, out / f"{name}_attacks", jobs=jobs,
                                      seed=seed, image_format="jpg", quality=90)
            logging.info("%s half: %d pairs, %d morphs, %d failed (%.0f s)", name, run.pairs,
                         run.morphs, run.failed, time.perf_counter() - t0)
        lists = {}
        for capture, suffix in (("neutral", "03"), ("smiling", "08")):
            f = out / f"{name}_{capture}.txt"
            f.write_text("".join(f"{frll / capture / f'{s}_{suffix}.jpg'}\n" for s in sorted(ids)))
            lists[capture] = f
        halves[name] = {"subjects": sorted(ids), "attacks": out / f"{name}_attacks", **lists}
    return halves


def run(detector: str, halves: dict, out: Path, train_variants: list[str]) -> dict:
    from morphlab.detect import build_presentations, evaluate_detector, train_detector
    from morphlab.detectors.base import DETECTORS, DIFFERENTIAL

    tr, te = halves["train"], halves["test"]
    if DETECTORS.get(detector).kind == DIFFERENTIAL:
        train = build_presentations([tr["neutral"]], [tr["attacks"]], live=[tr["smiling"]],
                                    variants=train_variants)
        test = build_presentations([te["neutral"]], [te["attacks"]], live=[te["smiling"]])
    else:
        train = build_presentations([tr["neutral"], tr["smiling"]], [tr["attacks"]], variants=train_variants)
        test = build_presentations([te["neutral"], te["smiling"]], [te["attacks"]])
    tag = detector + ("" if train_variants == ["complete"] else "-" + "+".join(train_variants))
    summary = train_detector(detector, train, out / tag / "model", params=PARAMS.get(detector),
                             overwrite=True)
    res = evaluate_detector(out / tag / "model", test, out / tag / "report", overwrite=True,
                            title=f"{detector}: FRLL, trained on {' + '.join(train_variants)} morphs")
    return {"train": summary, "metrics": res["metrics"], "info": res["info"], "notes": res["notes"],
            "folder": tag}


def calibration_check(tag: str, halves: dict, out: Path, seed: int) -> dict:
    """The test half split again by identity: calibrate a copy of the model on one part
    (``detect calibrate``, BPCER 10 %) and compare the rates on the other part at the
    training threshold and at the calibrated one."""
    import shutil

    from morphlab.detect import (build_presentations, calibrate_detector, evaluate_detector,
                                 split_keeping_morphs)

    te = halves["test"]
    test = build_presentations([te["neutral"], te["smiling"]], [te["attacks"]])
    calib_ids, eval_ids = split_keeping_morphs(test, test_fraction=0.5, seed=seed)
    calib, held = test.restrict(calib_ids), test.restrict(eval_ids)
    model, copy = out / tag / "model", out / tag / "model-calibrated"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(model, copy)
    rec = calibrate_detector(copy, calib, bpcer=0.1, progress=False)
    rows = {}
    for name, folder in (("training D-EER", model), ("calibrated BPCER=10 %", copy)):
        m = evaluate_detector(folder, held, None, progress=False)["metrics"]
        rows[name] = {"threshold": m["threshold"], "BPCER": m["intervals"]["BPCER"],
                      "APCER": m["intervals"]["APCER"],
                      "APCER per species": m["intervals"].get("APCER per species")}
    return {"calibration": {k: rec[k] for k in ("n_bona_fide", "n_attack", "achieved")},
            "n_calibration_ids": len(calib_ids), "n_eval_ids": len(eval_ids), "rows": rows}


def _rate(d: dict) -> str:
    lo, hi = d["ci95"]
    return f"{100 * d['rate']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] ({d['k']}/{d['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frll", type=Path, default=REPO.parent / "shared" / "data" / "frll")
    ap.add_argument("-o", "--out", type=Path, default=REPO / "out" / "frll_mad")
    ap.add_argument("--per-subject", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--calibrate", action="store_true",
                    help="also split the test half by identity, calibrate each model on one part "
                         "at BPCER 10 %% and report the rates on the other part before/after")
    ap.add_argument("--train-variants", nargs="+", default=["complete"],
                    help="morph variants of the training half (default: complete only)")
    ap.add_argument("--detectors", nargs="+", default=["lbp-svm", "freq-logreg", "deep-svm"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("morphlab.detectors.preprocess", "morphlab.face"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    halves = make_halves(args.frll, args.out, seed=args.seed, per_subject=args.per_subject, jobs=args.jobs)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for det in args.detectors:
        t0 = time.perf_counter()
        key = det if args.train_variants == ["complete"] else f"{det} ({' + '.join(args.train_variants)})"
        results[key] = run(det, halves, args.out, args.train_variants)
        results[key]["seconds"] = round(time.perf_counter() - t0, 1)
        if args.calibrate:
            results[key]["calibration_check"] = calibration_check(results[key]["folder"], halves,
                                                                  args.out, args.seed)
        results_file.write_text(json.dumps(results, indent=2, default=str) + "\n")

    lines = ["| detector | kind | trained on (bona fide / morphs) | test: complete D-EER | "
             "complete BPCER@APCER=10% | complete APCER@BPCER=10% | test: spliced D-EER | "
             "spliced BPCER@APCER=10% | spliced APCER@BPCER=10% | time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for det, r in results.items():
        per = r["metrics"]["per species"]
        n = r["train"]["n_by_species"]
        cells = []
        for v in ("landmark/complete", "landmark/spliced"):
            cells += [f"{100 * per[v][k]:.1f}%" for k in ("D-EER", "BPCER@APCER=10%", "APCER@BPCER=10%")]
        lines.append(f"| {det} | {r['info']['kind']} | {n.get('bona fide', 0)} / "
                     f"{sum(v for k, v in n.items() if k != 'bona fide')} | " + " | ".join(cells) + f" | {r['seconds']} |")
    te = results[next(iter(results))]["metrics"]
    lines.append("")
    lines.append(f"Test half: {len(halves['test']['subjects'])} identities, none seen in training; "
                 f"S-MAD test set {te['n_bona_fide']} bona fide, "
                 + ", ".join(f"{k}: {v['n']}" for k, v in te["per species"].items()) + ".")
    checked = {k: r["calibration_check"] for k, r in results.items() if "calibration_check" in r}
    if checked:
        lines += ["", "Thresholds on unseen identities (test half split again: calibrate on one part, "
                      "rates on the other):", "",
                  "| detector | threshold | BPCER | APCER complete | APCER spliced |", "|---|---|---|---|---|"]
        for k, c in checked.items():
            for name, row in c["rows"].items():
                per = row["APCER per species"] or {}
                lines.append(f"| {k} | {name} ({row['threshold']:.3g}) | {_rate(row['BPCER'])} | "
                             + " | ".join(_rate(per[v]) if v in per else "-"
                                          for v in ("landmark/complete", "landmark/spliced")) + " |")
    table = "\n".join(lines)
    print(table)
    (args.out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
