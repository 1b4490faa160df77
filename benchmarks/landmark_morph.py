"""Speed and quality of the landmark morph against the per-triangle reference.

The reference is the widely copied LearnOpenCV recipe ("Face Morph Using OpenCV"): for
every triangle, crop the bounding boxes, ``cv2.getAffineTransform`` + ``cv2.warpAffine``
each source patch, build a triangle mask with ``cv2.fillConvexPoly``, blend the two
patches and paste them through the mask, all in float32. It lives here, not in the
package. Both methods get the same landmarks, the same 8 frame points and the same
Delaunay triangulation (:func:`morphlab.geometry.triangulate`).

Reported, in one run, at 1350x1350 (the FRLL originals) and 512x512 (downscaled with
INTER_AREA):

- ms per morph with the landmarks given (the FRLL ``.tem`` points, 189 + 8 frame points);
- ms per morph including landmark detection (the default ``dlib`` backend, uncached, on
  both images; the morph then uses dlib's 68 points);
- morphs/s with 2 worker processes (one OpenCV thread each), landmarks given;
- quality: PSNR and maximum absolute difference of each method against an exact float64
  evaluation of the same piecewise-affine morph (scipy barycentric maps + bilinear
  ``map_coordinates``), and of ours against the reference, on the whole frame and inside
  the face (landmark hull).

The first morph in a process imports numba and compiles morphlab's rasterising kernel,
or loads it from numba's on-disk cache after the first run on a machine; its time is
printed (not included in the timings).

Single-process timings use OpenCV's default thread count (morphlab's banded warp uses the
same number of threads). The machine's load average is printed: other work running at
the same time slows both methods.

Usage::

    python benchmarks/landmark_morph.py [--pairs 6] [--repeat 5] [--jobs 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from morphlab import geometry as geo
from morphlab.face import create_backend
from morphlab.face.file_backend import read_tem
from morphlab.io import read_image

DATA = Path(os.environ.get("MORPHLAB_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# ----------------------------------------------------------------------------------------
# the per-triangle reference (LearnOpenCV style)
# ----------------------------------------------------------------------------------------
def _warp_patch(src, src_tri, dst_tri, size):
    m = cv2.getAffineTransform(np.float32(src_tri), np.float32(dst_tri))
    return cv2.warpAffine(src, m, size, None, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _morph_triangle(img1, img2, out, t1, t2, t, alpha):
    r1 = cv2.boundingRect(np.float32([t1]))
    r2 = cv2.boundingRect(np.float32([t2]))
    r = cv2.boundingRect(np.float32([t]))
    t1r = [(p[0] - r1[0], p[1] - r1[1]) for p in t1]
    t2r = [(p[0] - r2[0], p[1] - r2[1]) for p in t2]
    tr = [(p[0] - r[0], p[1] - r[1]) for p in t]
    mask = np.zeros((r[3], r[2], 3), dtype=np.float32)
    cv2.fillConvexPoly(mask, np.int32(tr), (1.0, 1.0, 1.0), 16, 0)
    p1 = img1[r1[1]:r1[1] + r1[3], r1[0]:r1[0] + r1[2]]
    p2 = img2[r2[1]:r2[1] + r2[3], r2[0]:r2[0] + r2[2]]
    w1 = _warp_patch(p1, t1r, tr, (r[2], r[3]))
    w2 = _warp_patch(p2, t2r, tr, (r[2], r[3]))
    patch = (1.0 - alpha) * w1 + alpha * w2
    roi = out[r[1]:r[1] + r[3], r[0]:r[0] + r[2]]
    out[r[1]:r[1] + r[3], r[0]:r[0] + r[2]] = roi * (1 - mask) + patch * mask


def reference_morph(img_a, img_b, pts_a, pts_b, alpha=0.5, triangles=None):
    """The per-triangle reference morph (float32 throughout, truncated to uint8 as in the tutorial)."""
    size = geo.image_size(img_a)
    pa, pb = geo.with_boundary(pts_a, size), geo.with_boundary(pts_b, size)
    pm = (1 - alpha) * pa + alpha * pb
    if triangles is None:
        triangles = geo.triangulate(pm)
    f1, f2 = np.float32(img_a), np.float32(img_b)
    out = np.zeros(f1.shape, dtype=np.float32)
    for i, j, k in triangles:
        _morph_triangle(f1, f2, out, [pa[i], pa[j], pa[k]], [pb[i], pb[j], pb[k]],
                        [pm[i], pm[j], pm[k]], alpha)
    return np.uint8(out)


def exact_morph(img_a, img_b, pts_a, pts_b, alpha=0.5):
    """The same morph evaluated exactly: float64 barycentric maps, bilinear sampling, rounding."""
    from scipy.ndimage import map_coordinates
    from scipy.spatial import Delaunay

    w, h = geo.image_size(img_a)
    pa, pb = geo.with_boundary(pts_a, (w, h)), geo.with_boundary(pts_b, (w, h))
    pm = (1 - alpha) * pa + alpha * pb
    tri = Delaunay(pm)
    ys, xs = np.mgrid[0:h, 0:w]
    q = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    s = tri.find_simplex(q)
    T = tri.transform[s]
    b = np.einsum("nij,nj->ni", T[:, :2], q - T[:, 2])
    bary = np.concatenate([b, 1 - b.sum(axis=1, keepdims=True)], axis=1)
    out = np.zeros((h * w, 3))
    for img, pts, wgt in ((img_a, pa, 1 - alpha), (img_b, pb, alpha)):
        src = np.einsum("nk,nkd->nd", bary, pts[tri.simplices[s]])
        for c in range(3):
            out[:, c] += wgt * map_coordinates(img[:, :, c].astype(np.float64), [src[:, 1], src[:, 0]],
                                               order=1, mode="nearest")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(h, w, 3)


def ours(img_a, img_b, pts_a, pts_b, alpha=0.5, triangles=None, threads=None):
    return geo.morph(img_a, img_b, pts_a, pts_b, shape_alpha=alpha, texture_alpha=alpha,
                     triangles=triangles, threads=threads)


METHODS = {"reference (per-triangle)": reference_morph, "morphlab": ours}


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------
def load_pairs(n_pairs: int, size: int):
    """``n_pairs`` same-gender FRLL pairs at ``size`` px: (img_a, img_b, tem_a, tem_b, name)."""
    info = (DATA / "frll" / "london_info.csv").read_text().splitlines()[1:]
    by_gender: dict[str, list[str]] = {}
    for line in info:
        fid, _, gender, _ = line.split(",")
        if (DATA / "frll" / "neutral" / f"{fid}_03.jpg").exists():
            by_gender.setdefault(gender, []).append(fid)
    ids = [g[i:i + 2] for g in by_gender.values() for i in range(0, len(g) - 1, 2)]
    pairs = []
    for fa, fb in ids[:n_pairs]:
        row = []
        for fid in (fa, fb):
            img = read_image(DATA / "frll" / "neutral" / f"{fid}_03.jpg")
            pts = read_tem(DATA / "frll" / "neutral" / f"{fid}_03.tem")
            row.append(geo.resize_with_points(img, pts, size))
        pairs.append((row[0][0], row[1][0], row[0][1], row[1][1], f"{fa}/{fb}"))
    return pairs


# ----------------------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------------------
def _ms(fn, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts


def time_given(pairs, repeat):
    """Median ms per morph for each method, interleaved so both see the same load."""
    res = {m: [] for m in METHODS}
    for a, b, pa, pb, _ in pairs:
        tri = geo.triangulate(geo.average_points(geo.with_boundary(pa, geo.image_size(a)),
                                                 geo.with_boundary(pb, geo.image_size(a)), 0.5))
        for m, fn in METHODS.items():
            fn(a, b, pa, pb)  # warm-up
        for _ in range(repeat):
            for m, fn in METHODS.items():
                res[m] += _ms(lambda: fn(a, b, pa, pb), 1)
    return ({m: (1000 * statistics.median(v), 1000 * min(v)) for m, v in res.items()},
            len(tri))


def time_with_landmarks(pairs, repeat):
    """Median ms per morph including dlib landmark detection on both images (no cache)."""
    backend = create_backend("dlib")
    backend.landmarks(pairs[0][0])  # load the models
    res = {m: [] for m in METHODS}
    for a, b, *_ in pairs:
        for _ in range(repeat):
            for m, fn in METHODS.items():
                def run():
                    fa, fb = backend.landmarks(a), backend.landmarks(b)
                    fn(a, b, fa.landmarks, fb.landmarks)
                res[m] += _ms(run, 1)
    return {m: (1000 * statistics.median(v), 1000 * min(v)) for m, v in res.items()}


_WORK: dict = {}


def _init_worker(pairs):
    cv2.setNumThreads(1)
    _WORK["pairs"] = pairs


def _job(args):
    method, i = args
    a, b, pa, pb, _ = _WORK["pairs"][i]
    METHODS[method](a, b, pa, pb)
    return i


def throughput(pairs, jobs, n_morphs):
    """Morphs per second with ``jobs`` worker processes (one OpenCV thread each)."""
    ctx = mp.get_context("spawn")  # fork after OpenCV threads ran can deadlock
    out = {}
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(pairs,)) as pool:
        for m in METHODS:
            pool.map(_job, [(m, i % len(pairs)) for i in range(jobs)])  # warm-up
            tasks = [(m, i % len(pairs)) for i in range(n_morphs)]
            t = time.perf_counter()
            pool.map(_job, tasks, chunksize=1)
            out[m] = n_morphs / (time.perf_counter() - t)
    return out


def first_call_s() -> float:
    """Seconds of the first morph in this process (tiny images): numba import + JIT/cache load."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pts = np.array([[10.0, 10.0], [20.0, 12.0], [15.0, 22.0]])
    t = time.perf_counter()
    geo.morph(img, img, pts, pts + 1.0)
    return time.perf_counter() - t


def _psnr(x, y, mask=None):
    d = (x.astype(np.float64) - y.astype(np.float64)) ** 2
    mse = d[mask].mean() if mask is not None else d.mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def quality(pair):
    a, b, pa, pb, name = pair
    size = geo.image_size(a)
    exact = exact_morph(a, b, pa, pb)
    ref = reference_morph(a, b, pa, pb)
    our = ours(a, b, pa, pb)
    face = geo.hull_mask(geo.average_points(pa, pb, 0.5), size) > 0
    rows = []
    for label, x, y in (("morphlab vs exact", our, exact), ("reference vs exact", ref, exact),
                        ("morphlab vs reference", our, ref)):
        diff = np.abs(x.astype(int) - y)
        rows.append((label, _psnr(x, y), _psnr(x, y, face), int(diff.max()), int(diff[face].max()),
                     float(diff.mean())))
    return name, rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=6, help="FRLL same-gender pairs (default 6)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats per pair (default 5)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes for morphs/s (default 2)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1350, 512])
    ap.add_argument("--no-landmarks", action="store_true", help="skip the dlib-included timing")
    args = ap.parse_args(argv)

    print(f"landmark morph benchmark: {args.pairs} same-gender FRLL pairs, alpha 0.5, "
          f"{args.repeat} repeats, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(f"first morph in this process (numba import + kernel compile or cache load): "
          f"{first_call_s():.2f} s")
    table, qual = [], []
    for size in args.sizes:
        pairs = load_pairs(args.pairs, size)
        given, n_tri = time_given(pairs, args.repeat)
        incl = ({m: (float("nan"),) * 2 for m in METHODS} if args.no_landmarks
                else time_with_landmarks(pairs, max(1, args.repeat // 2)))
        tput = throughput(pairs, args.jobs, n_morphs=max(4 * args.jobs, {1350: 24}.get(size, 60)))
        table.append((size, n_tri, given, incl, tput))
        qual.append((size, quality(pairs[0])))

    print()
    print("ms/morph: median (best) over pairs x repeats; morphs/s: wall clock, all workers")
    hdr = f"{'size':>9}  {'method':<25} {'ms/morph, landmarks given':>26} " \
          f"{'ms/morph, + dlib landmarks':>27} {'morphs/s, -j ' + str(args.jobs):>15}"
    print(hdr)
    print("-" * len(hdr))
    ref, our = list(METHODS)

    def cell(v, width):
        return f"{f'{v[0]:.1f} ({v[1]:.1f})':>{width}}"

    for size, n_tri, given, incl, tput in table:
        for m in METHODS:
            print(f"{size:>4}x{size:<4}  {m:<25} {cell(given[m], 26)} {cell(incl[m], 27)} "
                  f"{tput[m]:>15.1f}")
        print(f"{'':>9}  {'speed-up':<25} "
              f"{cell((given[ref][0] / given[our][0], given[ref][1] / given[our][1]), 26)} "
              f"{cell((incl[ref][0] / incl[our][0], incl[ref][1] / incl[our][1]), 27)} "
              f"{tput[our] / tput[ref]:>15.1f}")
    print(f"({table[0][1]} triangles with the .tem landmarks; dlib's 68 points give ~140)")
    print()
    hdr = f"{'size':>9}  {'pair':<8} {'comparison':<22} {'PSNR dB':>8} {'PSNR face':>10} " \
          f"{'max|d|':>7} {'max|d| face':>12} {'mean|d|':>8}"
    print(hdr)
    print("-" * len(hdr))
    for size, (name, rows) in qual:
        for label, p, pf, mx, mxf, mean in rows:
            print(f"{size:>4}x{size:<4}  {name:<8} {label:<22} {p:>8.2f} {pf:>10.2f} {mx:>7d} "
                  f"{mxf:>12d} {mean:>8.3f}")


if __name__ == "__main__":
    main()
