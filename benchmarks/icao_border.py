"""How much of the ICAO frame is filled by border replication, before and after.

Arc2Face renders faces in the FFHQ frame (512², face small and centred); the ICAO frame
(eye distance W/4, eye line 0.45 H, 35:45) reaches beyond it at the top and bottom. The
``icao`` operator used to fill that part with ``BORDER_REPLICATE`` (vertical streaks, on
morphs only: a free cue for detectors). This script frames embedded-sample faces like
FFHQ (:func:`morphlab.face.align.ffhq_transform`, 512²) and measures, per image:

- ``outside``: the fraction of the ICAO frame that lies outside the 512² input;
- ``replicated``: the fraction of frame pixels made of border fill alone (their
  bilinear sample lies more than one pixel beyond the input's edge) whose value is
  **not** one uniform fill colour (the pixel test for streaks; the 1-pixel seam that
  blends the edge with the fill is not counted). *Before* is the old code
  path (``icao_crop``'s ``border="replicate"``, measured against the estimated
  background colour); *after* is the ``icao`` operator as it is now, ``fill=background``
  (uniform pad) and ``fill=crop`` (largest ICAO frame inside: nothing outside), with and
  without the ``background`` operator in front.

Run:  python benchmarks/icao_border.py [--images 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def ffhq_inputs(sample: Path, n: int, folder: Path) -> list[Path]:
    """The first ``n`` neutral sample portraits framed like FFHQ at 512² (PNG files)."""
    import cv2

    from morphlab.face.align import ffhq_transform
    from morphlab.face.cache import get_face
    from morphlab.face.schemes import eye_centres, five_points
    from morphlab.io import read_image, write_image

    out = []
    for src in sorted((sample / "neutral").glob("*.jpg"))[:n]:
        img = read_image(src)
        face = get_face("dlib", src, img)
        M = ffhq_transform(eye_centres(face), five_points(face)[3:], 512)
        framed = cv2.warpAffine(img, M, (512, 512), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
        dst = folder / f"{src.stem}_ffhq512.png"
        write_image(dst, framed)
        out.append(dst)
    return out


def replicated_fraction(crop: np.ndarray, outside: np.ndarray, colour) -> float:
    """Fraction of the frame outside the input whose pixels differ from ``colour``."""
    differs = np.any(crop.astype(int) != np.asarray(colour, dtype=int), axis=2)
    return float((outside & differs).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8, help="sample portraits to frame (the embedded sample has 12)")
    args = ap.parse_args(argv)

    from morphlab.face.align import (
        estimate_background,
        icao_crop,
        icao_transform,
        outside_mask,
    )
    from morphlab.face.cache import get_face
    from morphlab.face.schemes import eye_centres
    from morphlab.io import read_image
    from morphlab.postprocess import apply_ops
    from morphlab.sample import sample_dir

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in ffhq_inputs(sample_dir(), args.images, Path(tmp)):
            img = read_image(path)
            eyes = eye_centres(get_face("dlib", path, img))
            M = icao_transform(eyes, (350, 450))
            outside = outside_mask(M, (512, 512), (350, 450))
            filled = outside_mask(M, (512, 512), (350, 450), margin=1.0)  # fill alone
            before, _ = icao_crop(img, eyes, (350, 450), border="replicate")
            row = {"image": path.name, "outside": float(outside.mean()),
                   "before": replicated_fraction(before, filled, estimate_background(img))}
            for label, ops in (("after_pad", ["icao"]), ("after_crop", ["icao:fill=crop"]),
                               ("after_bg_pad", ["background", "icao"])):
                notes: list = []
                crop, _ = apply_ops(img, ops, source=path, notes=notes)
                icao = [n for n in notes if n["op"].startswith("icao")][-1]
                # what lies outside the input in the frame the operator used
                m_op = np.array(icao["matrix"])
                colour = icao.get("colour")
                if colour is None:  # crop: nothing may lie outside, not even the seam
                    row[label] = float(outside_mask(m_op, (512, 512), (350, 450)).mean())
                else:
                    filled_op = outside_mask(m_op, (512, 512), (350, 450), margin=1.0)
                    row[label] = replicated_fraction(crop, filled_op, colour)
                if icao["fill"] == "crop":
                    row["crop_zoom"] = icao["zoom"]
            rows.append(row)

    print(f"ICAO frame 350x450 from {len(rows)} sample faces framed like FFHQ at 512x512")
    print(f"{'image':24s} {'outside':>8s} {'before':>8s} {'pad':>8s} {'crop':>8s} "
          f"{'bg+pad':>8s} {'zoom':>6s}")
    for r in rows:
        print(f"{r['image']:24s} {r['outside']:8.1%} {r['before']:8.1%} {r['after_pad']:8.1%} "
              f"{r['after_crop']:8.1%} {r['after_bg_pad']:8.1%} {r['crop_zoom']:6.3f}")
    mean = {k: np.mean([r[k] for r in rows]) for k in ("outside", "before", "after_pad",
                                                      "after_crop", "after_bg_pad", "crop_zoom")}
    print(f"{'mean':24s} {mean['outside']:8.1%} {mean['before']:8.1%} {mean['after_pad']:8.1%} "
          f"{mean['after_crop']:8.1%} {mean['after_bg_pad']:8.1%} {mean['crop_zoom']:6.3f}")
    worst_after = max(max(r["after_pad"], r["after_crop"], r["after_bg_pad"]) for r in rows)
    print(f"replicated-border fraction: before {min(r['before'] for r in rows):.1%}-"
          f"{max(r['before'] for r in rows):.1%}, after (every mode) max {worst_after:.4%}")
    return 0 if worst_after == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
