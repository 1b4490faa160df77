"""End-to-end ``morphlab generate`` throughput against the LearnOpenCV recipe, in one run.

Printed, on FRLL 1350² photos (``$MORPHLAB_TEST_DATA/frll``, default ``../shared/data``),
the landmark generator with both variants (``complete`` + ``spliced``) and the default
``dlib`` landmarks:

- per-stage times of one pair in this process (decode both photos, dlib landmarks on
  both, the morph of both variants, then per image: PNG encode at the run's level and at
  level 3, sha256, atomic write);
- ``generate_attack_set`` wall time and morphs/s with ``-j 1`` and ``-j 2``, each with a
  cold landmark cache (a fresh ``$MORPHLAB_CACHE``) and then cached (same cache, fresh
  output folder); the pairs share no photo, so a cold run detects every face once;
- the reference, measured in the same run: the widely copied LearnOpenCV "Face Morph
  Using OpenCV" recipe end to end, written here (``cv2.imread``, dlib's detector at full
  resolution with one upsampling + 68 points, 8 frame points, ``cv2.Subdiv2D`` Delaunay,
  per-triangle ``getAffineTransform`` / ``warpAffine`` / ``fillConvexPoly`` blend in
  float32, ``cv2.imwrite`` PNG), one complete morph per pair, one process;
- the machine's load average (``os.getloadavg``) at the start and the end: other work on
  the machine slows every figure.

Usage::

    python benchmarks/throughput.py [--pairs 12] [--ref-pairs 3] [--jobs 1,2]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

DATA = Path(os.environ.get("MORPHLAB_TEST_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))


# ----------------------------------------------------------------------------------------
# the reference: LearnOpenCV's faceMorph recipe, end to end
# ----------------------------------------------------------------------------------------
def _ref_landmarks(detector, predictor, img: np.ndarray) -> np.ndarray:
    rects = detector(img, 1)
    if not rects:
        raise ValueError("no face")
    rect = max(rects, key=lambda r: r.area())
    shape = predictor(img, rect)
    pts = [(p.x, p.y) for p in shape.parts()]
    h, w = img.shape[:2]
    pts += [(0, 0), (w // 2, 0), (w - 1, 0), (w - 1, h // 2), (w - 1, h - 1), (w // 2, h - 1),
            (0, h - 1), (0, h // 2)]
    return np.float32(pts)


def _ref_delaunay(size: tuple[int, int], points: np.ndarray) -> list[tuple[int, int, int]]:
    w, h = size
    subdiv = cv2.Subdiv2D((0, 0, w, h))
    lookup = {}
    for i, (x, y) in enumerate(points):
        px, py = min(max(float(x), 0.0), w - 1.0), min(max(float(y), 0.0), h - 1.0)
        subdiv.insert((px, py))
        lookup[(round(px, 2), round(py, 2))] = i
    tris = []
    for t in subdiv.getTriangleList():
        idx = [lookup.get((round(float(t[k]), 2), round(float(t[k + 1]), 2))) for k in (0, 2, 4)]
        if None not in idx:
            tris.append(tuple(idx))
    return tris


def _ref_morph_triangle(img1, img2, out, t1, t2, t, alpha):
    r1, r2, r = cv2.boundingRect(np.float32([t1])), cv2.boundingRect(np.float32([t2])), \
        cv2.boundingRect(np.float32([t]))
    t1r = [(p[0] - r1[0], p[1] - r1[1]) for p in t1]
    t2r = [(p[0] - r2[0], p[1] - r2[1]) for p in t2]
    tr = [(p[0] - r[0], p[1] - r[1]) for p in t]
    mask = np.zeros((r[3], r[2], 3), dtype=np.float32)
    cv2.fillConvexPoly(mask, np.int32(tr), (1.0, 1.0, 1.0), 16, 0)
    p1 = img1[r1[1]:r1[1] + r1[3], r1[0]:r1[0] + r1[2]]
    p2 = img2[r2[1]:r2[1] + r2[3], r2[0]:r2[0] + r2[2]]
    size = (r[2], r[3])
    w1 = cv2.warpAffine(p1, cv2.getAffineTransform(np.float32(t1r), np.float32(tr)), size, None,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    w2 = cv2.warpAffine(p2, cv2.getAffineTransform(np.float32(t2r), np.float32(tr)), size, None,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    patch = (1.0 - alpha) * w1 + alpha * w2
    roi = out[r[1]:r[1] + r[3], r[0]:r[0] + r[2]]
    roi[...] = roi * (1 - mask) + patch * mask


def reference_pair(path_a: Path, path_b: Path, out_png: Path, detector, predictor,
                   alpha: float = 0.5) -> None:
    """Decode, detect, triangulate, warp + blend per triangle, write: one morph."""
    img1 = cv2.imread(str(path_a))
    img2 = cv2.imread(str(path_b))
    p1 = _ref_landmarks(detector, predictor, cv2.cvtColor(img1, cv2.COLOR_BGR2RGB))
    p2 = _ref_landmarks(detector, predictor, cv2.cvtColor(img2, cv2.COLOR_BGR2RGB))
    img1, img2 = np.float32(img1), np.float32(img2)
    pts = (1 - alpha) * p1 + alpha * p2
    out = np.zeros(img1.shape, dtype=img1.dtype)
    for i, j, k in _ref_delaunay((img1.shape[1], img1.shape[0]), pts):
        _ref_morph_triangle(img1, img2, out, [p1[i], p1[j], p1[k]], [p2[i], p2[j], p2[k]],
                            [pts[i], pts[j], pts[k]], alpha)
    cv2.imwrite(str(out_png), np.uint8(np.clip(out, 0, 255)))


# ----------------------------------------------------------------------------------------
# morphlab
# ----------------------------------------------------------------------------------------
def write_pairs_csv(folder: Path, n_pairs: int) -> tuple[Path, Path]:
    """``n_pairs`` pairs of FRLL neutral photos sharing no photo; (pairs file, dataset)."""
    root = DATA / "frll"
    photos = sorted((root / "neutral").glob("*_03.jpg"))[: 2 * n_pairs]
    if len(photos) < 2 * n_pairs:
        raise SystemExit(f"{root}: {len(photos)} photos, need {2 * n_pairs}")
    path = folder / "pairs.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["pair_id", "subject_a", "image_a", "subject_b", "image_b"])
        for i in range(n_pairs):
            a, b = photos[2 * i], photos[2 * i + 1]
            w.writerow([f"{i + 1:04d}", a.stem.split("_")[0], a.relative_to(root).as_posix(),
                        b.stem.split("_")[0], b.relative_to(root).as_posix()])
    return path, root


def stage_times(pairs_csv: Path, root: Path, work: Path, repeat: int = 3) -> dict[str, float]:
    """ms of each stage for the first pair, in this process (landmarks uncached): the
    fastest of ``repeat`` rounds, after one warm-up round."""
    from morphlab import io as mio
    from morphlab.face import create_backend
    from morphlab.generators.landmark import LandmarkMorph
    try:
        from morphlab.generators.runner import PNG_COMPRESSION
    except ImportError:  # morphlab before the level was chosen: always level 3
        PNG_COMPRESSION = 3

    def encode(image, level):
        if level == 3:
            return mio.encode_image(image, ".png")
        return mio.encode_image(image, ".png", png_compression=level)

    with open(pairs_csv) as fh:
        row = next(iter(csv.DictReader(fh)))
    pa, pb = root / row["image_a"], root / row["image_b"]
    backend = create_backend("dlib")
    gen = LandmarkMorph()
    runs: list[dict[str, float]] = []
    for _ in range(repeat + 1):  # the first round loads models and numba's kernel: dropped
        ms: dict[str, float] = {}

        def timed(key, fn, *args, ms=ms, **kw):
            t = time.perf_counter()
            res = fn(*args, **kw)
            ms[key] = ms.get(key, 0.0) + (time.perf_counter() - t) * 1e3
            return res

        img_a = timed("decode (2 photos)", mio.read_image, pa)
        img_b = timed("decode (2 photos)", mio.read_image, pb)
        fa = timed("dlib landmarks (2 photos)", backend.detect, img_a)[0]
        fb = timed("dlib landmarks (2 photos)", backend.detect, img_b)[0]
        outs = timed("morph (complete + spliced)", gen.morph_images, img_a, img_b, fa, fb)
        for o in outs:
            data = timed(f"PNG encode {PNG_COMPRESSION!r} (2 images)", encode, o.image,
                         PNG_COMPRESSION)
            data3 = timed("PNG encode level 3 (2 images)", encode, o.image, 3)
            timed("sha256 (2 images)", mio.sha256_bytes, data)
            timed("atomic write (2 images)", mio.atomic_write_bytes, work / f"{o.tag}.png", data)
        ms[f"size {PNG_COMPRESSION!r} MB (per image)"] = len(data) / 1e6
        ms["size level 3 MB (per image)"] = len(data3) / 1e6
        runs.append(ms)
    ms = {k: min(r[k] for r in runs[1:]) for k in runs[0]}
    return ms


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_generate(pairs_csv: Path, root: Path, work: Path, jobs: int, tag: str,
                  cache: Path) -> tuple[float, float]:
    """(wall s, CPU s of this process and its workers) of one ``generate_attack_set``."""
    from morphlab.generators.runner import generate_attack_set

    os.environ["MORPHLAB_CACHE"] = str(cache)
    t, c = time.perf_counter(), _cpu_s()
    s = generate_attack_set(pairs_csv, "landmark", {}, work / f"out-{tag}-j{jobs}",
                            jobs=jobs, dataset_dir=root, progress=False)
    wall, cpu = time.perf_counter() - t, _cpu_s() - c
    if s.failed or s.morphs != 2 * s.pairs:
        raise SystemExit(f"generate -j {jobs} ({tag}): {s.failed} pairs failed")
    return wall, cpu


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--ref-pairs", type=int, default=3)
    ap.add_argument("--jobs", default="1,2")
    args = ap.parse_args(argv)
    import morphlab

    load0 = os.getloadavg()
    print(f"morphlab from {Path(morphlab.__file__).parent}")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} "
          f"({os.cpu_count()} CPUs); OpenCV {cv2.__version__}")
    with tempfile.TemporaryDirectory(prefix="morphlab-throughput-") as tmp:
        work = Path(tmp)
        pairs_csv, root = write_pairs_csv(work, args.pairs)

        print("\nstages, one pair, this process (ms):")
        for k, v in stage_times(pairs_csv, root, work).items():
            print(f"  {k:<36} {v:8.2f}")

        print(f"\nmorphlab generate, {args.pairs} pairs x 2 variants, 1350x1350:")
        print(f"  {'run':<22} {'wall s':>8} {'morphs/s':>9} {'CPU s/morph':>12}")
        rates = {}
        for jobs in (int(j) for j in args.jobs.split(",")):
            cache = work / f"cache-j{jobs}"
            for tag in ("cold", "cached"):
                wall, cpu = time_generate(pairs_csv, root, work, jobs, tag, cache)
                rates[(jobs, tag)] = 2 * args.pairs / wall
                print(f"  -j {jobs} {tag + ' landmarks':<17} {wall:8.2f} "
                      f"{rates[(jobs, tag)]:9.2f} {cpu / (2 * args.pairs):12.3f}")

        import dlib

        from morphlab.face._models import model_path
        from morphlab.face.dlib_backend import PREDICTOR_FILE

        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(str(model_path(PREDICTOR_FILE)))
        with open(pairs_csv) as fh:
            rows = list(csv.DictReader(fh))[: args.ref_pairs]
        t, c = time.perf_counter(), _cpu_s()
        for i, row in enumerate(rows):
            reference_pair(root / row["image_a"], root / row["image_b"], work / f"ref{i}.png",
                           detector, predictor)
        ref_wall, ref_cpu = time.perf_counter() - t, _cpu_s() - c
        ref_rate = len(rows) / ref_wall
        print(f"\nLearnOpenCV recipe, {len(rows)} pairs x 1 morph, one process: "
              f"{ref_wall:.2f} s, {ref_rate:.3f} morphs/s "
              f"({ref_wall / len(rows):.2f} s, CPU {ref_cpu / len(rows):.2f} s per morph)")
        for (jobs, tag), rate in rates.items():
            print(f"  generate -j {jobs} {tag}: {rate / ref_rate:6.1f}x the recipe's morphs/s "
                  f"({rate / 2 / ref_rate:.1f}x per pair)")
    load1 = os.getloadavg()
    print(f"\nload average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    main()
