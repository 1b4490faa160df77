"""Landmark accuracy of the face backends against hand-placed points.

Compares each backend's eye corners, nose tip and mouth corners
(:data:`morphlab.face.schemes.COMPARABLE_POINTS`) with the same points of the
hand-placed 189-point WebMorph ``.tem`` files of the FRLL neutral portraits
(1350x1350), and prints the mean error in pixels per point and overall, the error
normalised by the inter-ocular distance (outer eye corners), and the time per image.

    .venv/bin/python benchmarks/landmark_accuracy.py                     # all 82, dlib + mediapipe
    .venv/bin/python benchmarks/landmark_accuracy.py -b dlib -n 20
    .venv/bin/python benchmarks/landmark_accuracy.py -b dlib -b dlib:max_side=none

Note the ``.tem`` template has no nose-tip point; its nose tip is the midpoint of points
54 and 60 (see :mod:`morphlab.face.schemes`), so the nose-tip row mixes detector error
with that convention.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from morphlab.face import COMPARABLE_POINTS, comparable_points, create_backend
from morphlab.face.base import NoFaceError
from morphlab.face.file_backend import FileBackend
from morphlab.io import read_image

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "frll" / "neutral"


def parse_backend(spec: str):
    """``name`` or ``name:opt=value,opt=value`` (values: int, float, none, true/false)."""
    name, _, opts = spec.partition(":")
    params = {}
    for item in filter(None, opts.split(",")):
        key, _, raw = item.partition("=")
        low = raw.lower()
        if low in ("none", "null"):
            value = None
        elif low in ("true", "false"):
            value = low == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                value = float(raw)
        params[key] = value
    return create_backend(name, **params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of NNN_03.jpg + .tem")
    ap.add_argument("-b", "--backend", action="append", help="backend spec (repeatable)")
    ap.add_argument("-n", "--limit", type=int, default=None, help="first N images only")
    args = ap.parse_args()
    specs = args.backend or ["dlib", "mediapipe"]
    images = sorted(p for p in args.data.glob("*.jpg") if p.with_suffix(".tem").is_file())
    if args.limit:
        images = images[: args.limit]
    if not images:
        raise SystemExit(f"{args.data}: no .jpg images with .tem files")
    reference = FileBackend(suffix=".tem")
    loaded = [(p, read_image(p)) for p in tqdm(images, desc="reading")]
    refs = [comparable_points(reference.landmarks(img, source=p)) for p, img in loaded]

    print(f"{len(images)} images from {args.data} ({loaded[0][1].shape[1]}x{loaded[0][1].shape[0]})")
    header = "backend".ljust(28) + "".join(n[:11].rjust(12) for n in COMPARABLE_POINTS) + "   mean px  /IOD %  s/img  missed"
    print(header)
    for spec in specs:
        backend = parse_backend(spec)
        backend.detect(loaded[0][1])  # load models outside the timing
        errs, norm, missed, seconds = [], [], 0, 0.0
        for (p, img), ref in tqdm(list(zip(loaded, refs)), desc=spec, leave=False):
            t0 = time.perf_counter()
            try:
                face = backend.landmarks(img, source=p)
            except NoFaceError:
                missed += 1
                continue
            finally:
                seconds += time.perf_counter() - t0
            e = np.linalg.norm(comparable_points(face) - ref, axis=1)
            errs.append(e)
            norm.append(e.mean() / np.linalg.norm(ref[3] - ref[0]))
        errs = np.array(errs)
        row = spec[:27].ljust(28) + "".join(f"{v:12.2f}" for v in errs.mean(axis=0))
        row += f"{errs.mean():10.2f}{100 * np.mean(norm):8.2f}{seconds / len(loaded):7.3f}{missed:8d}"
        print(row)


if __name__ == "__main__":
    main()
