"""The table of benchmarks/frll_map_strength.sh: MinMax-MMPMR and the A/B balance per set.

Usage: ``.venv/bin/python benchmarks/frll_map_strength_table.py OUT_DIR FMR``

Reads ``OUT_DIR/map_<set>_fmr<FMR>/map.json`` and ``scores.csv``. Per group (landmark/complete,
landmark/spliced) and system: MinMax-MMPMR with its Wilson 95 % interval (map-score's),
and the rates of morphs accepted as subject A and as subject B (any attempt at or above
the system's threshold), each with k/n and a Wilson interval; the median similarity to A
and to B; and, for the ``auto`` set, the chosen factors.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from morphlab.metrics.intervals import rate
from morphlab.reports.map_report import format_rate

SETS = (("alpha05", "0.5"), ("alpha05_hull", "0.5, old hull region"), ("auto", "auto (mobilefacenet)"))


def main() -> None:
    out, fmr_arg = Path(sys.argv[1]), sys.argv[2]
    print("| set (alpha) | variant | system | MinMax-MMPMR | accepted as A | accepted as B | "
          "median sim A | median sim B |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label in SETS:
        d = out / f"map_{name}_fmr{fmr_arg}"
        if not (d / "map.json").is_file():
            continue
        doc = json.loads((d / "map.json").read_text())
        thr = {s["label"]: s["operating_point"]["threshold"] for s in doc["systems"]}
        best: dict = defaultdict(lambda: -np.inf)  # (group, morph, system, a/b) -> max score
        with open(d / "scores.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                k = (r["group"], r["morph"], r["system"], r["subject"])
                best[k] = max(best[k], float(r["score"]))
        groups = doc["per_group"] or {next(iter({k[0] for k in best})): doc["overall"]}
        for g, res in groups.items():
            for lab in thr:
                morphs = sorted({k[1] for k in best if k[0] == g and k[2] == lab})
                sa = np.array([best[(g, m, lab, "a")] for m in morphs])
                sb = np.array([best[(g, m, lab, "b")] for m in morphs])
                ra = rate(int((sa >= thr[lab]).sum()), len(morphs))
                rb = rate(int((sb >= thr[lab]).sum()), len(morphs))
                mm = format_rate(res["per_system"][lab]["intervals"]["minmax_mmpmr"])
                print(f"| {label} | {g.split('/')[-1]} | {lab} | {mm} | {ra.format()} | "
                      f"{rb.format()} | {np.median(sa):.3f} | {np.median(sb):.3f} |")
        if doc.get("warnings"):
            for w in doc["warnings"]:
                print(f"\n{name}: warning: {w}")
    man = out / "set_auto" / "manifest.jsonl"
    if man.is_file():
        chosen: dict = defaultdict(Counter)
        for line in man.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("status") == "ok":
                chosen[rec["tag"]][rec["params"]["shape_alpha"]] += 1
        for tag, c in sorted(chosen.items()):
            print(f"\nauto, {tag}: chosen factors " + ", ".join(f"{a}: {n}" for a, n in sorted(c.items())))
    fmr = doc["settings"]["target_fmr"] if "doc" in locals() else None
    print(f"\nthresholds at FMR {fmr}: " + ", ".join(f"{k} {v:.4f}" for k, v in thr.items()))


if __name__ == "__main__":
    main()
