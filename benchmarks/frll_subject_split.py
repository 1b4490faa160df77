"""The FRLL subject split of the MAP benchmarks: 40 subjects for pairs, the others for calibration.

Writes symlink folders ``OUT/pair_src/`` (the 40 pair subjects' neutral images + .tem) and
``OUT/calibration/`` (the other subjects' neutral and smiling images), so thresholds are
calibrated on images disjoint from the attack evaluation. Seeded (random.Random(1)).

Usage: python benchmarks/frll_subject_split.py FRLL_DIR OUT_DIR
"""

import random
import sys
from pathlib import Path

frll, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
ids = sorted(p.stem.split("_")[0] for p in (frll / "neutral").glob("*_03.jpg"))
random.Random(1).shuffle(ids)
pair_ids, cal_ids = sorted(ids[:40]), sorted(ids[40:])
for name, files in (("pair_src", [f"neutral/{i}_03.{s}" for i in pair_ids for s in ("jpg", "tem")]),
                    ("calibration", [f"{d}/{i}_{c}.jpg" for i in cal_ids
                                     for d, c in (("neutral", "03"), ("smiling", "08"))])):
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for f in files:
        link = d / Path(f).name
        if not link.exists() and (frll / f).exists():
            link.symlink_to(frll / f)
print(f"{len(pair_ids)} subjects for pairs, {len(cal_ids)} for calibration")
