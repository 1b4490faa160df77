"""Rebuild the embedded sample (morphlab/sample/frll) from the FRLL set in ../shared/data.

Usage: python tools/make_sample.py [FRLL_DIR]
Takes the first 6 women and 6 men (by face id) that have a neutral and a smiling image,
downscales both to 600x600 (INTER_AREA), rescales the .tem landmarks, and writes the
subset of london_info.csv. Deterministic.
"""
import csv
import sys
from pathlib import Path

import cv2

from morphlab.io import read_image, write_image, atomic_write_text

SIZE = 600
src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/frll")
dst = Path(__file__).resolve().parents[1] / "morphlab" / "sample" / "frll"
rows = list(csv.DictReader(open(src / "london_info.csv")))
chosen = {"female": [], "male": []}
for r in sorted(rows, key=lambda r: r["face_id"]):
    fid = r["face_id"]
    if (src / "neutral" / f"{fid}_03.jpg").exists() and (src / "smiling" / f"{fid}_08.jpg").exists():
        if len(chosen[r["face_gender"]]) < 6:
            chosen[r["face_gender"]].append(r)
keep = sorted(chosen["female"] + chosen["male"], key=lambda r: r["face_id"])
for r in keep:
    fid = r["face_id"]
    for sub, name in (("neutral", f"{fid}_03"), ("smiling", f"{fid}_08")):
        img = read_image(src / sub / f"{name}.jpg")
        scale = SIZE / img.shape[1]
        small = cv2.resize(img, (SIZE, round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        write_image(dst / sub / f"{name}.jpg", small, quality=92)
        tem = src / sub / f"{name}.tem"
        if tem.exists():
            lines = tem.read_text().splitlines()
            n = int(lines[0])
            pts = [f"{float(x) * scale:.2f}\t{float(y) * scale:.2f}"
                   for x, y in (l.split() for l in lines[1 : 1 + n])]
            atomic_write_text(dst / sub / f"{name}.tem", "\n".join([str(n)] + pts) + "\n")
fields = list(rows[0].keys())
out = ",".join(fields) + "\n" + "".join(",".join(r[f] for f in fields) + "\n" for r in keep)
atomic_write_text(dst / "london_info.csv", out)
print(f"wrote {len(keep)} identities to {dst}")
