"""End-to-end throughput of morphlab's stages, each beside its reference, in one run.

Printed, on FRLL 1350² photos (``--data``, default ``$MORPHLAB_TEST_DATA/frll`` or
``../shared/data/frll``):

- **generate** (the landmark generator, both variants ``complete`` + ``spliced``, the
  default ``dlib`` landmarks, lossless PNG): per-stage times of one pair in this process
  (decode both photos, dlib landmarks on both, the morph of both variants, then per
  image: PNG encode at the run's level and at level 3, sha256, atomic write); then
  ``generate_attack_set`` wall time, morphs/s and CPU s per morph with ``-j 1`` and
  ``-j 2``, each with a cold landmark cache (a fresh ``$MORPHLAB_CACHE``) and then cached
  (same cache, fresh output folder); the pairs share no photo, so a cold run detects
  every face once. Runs in this process: its imports and models are loaded already (a
  CLI run pays them once more, a few seconds).
- the **reference**, measured in the same run: the widely copied LearnOpenCV "Face Morph
  Using OpenCV" recipe end to end, written here (``cv2.imread``, dlib's detector at full
  resolution with one upsampling + 68 points, 8 frame points, ``cv2.Subdiv2D`` Delaunay,
  per-triangle ``getAffineTransform`` / ``warpAffine`` / ``fillConvexPoly`` blend in
  float32, ``cv2.imwrite`` PNG), one complete morph per pair, one process;
- **map-score's embedding** (:func:`morphlab.recognition.cache.embed_many`, what
  ``map-score`` calls), per recognition system, faces/s on the generated morphs and
  their contributors' photos: uncached (``use_cache=False``: the reference), with cold
  caches (a fresh cache folder: landmarks and embeddings computed and stored) and
  cached (the same folder again);
- **detect eval's crops** (:func:`morphlab.detect.evaluate_detector` of a
  ``freq-logreg`` model trained here on the same set, no report written): crops/s
  (presentations aligned and scored per second) uncached (``use_cache=False``: the
  reference), with a cold crop cache, and cached;
- the machine's load average (``os.getloadavg``) at the start and the end: other work on
  the machine slows every figure, so compare the ratios measured within one run.

Usage::

    python benchmarks/throughput.py [--pairs 12] [--ref-pairs 3] [--jobs 1,2]
        [--systems dlib-resnet,facenet,mobilefacenet] [--faces 40] [--json FILE]
        [--data DIR] [--sections generate,reference,map-score,detect]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the per-triangle warp + blend of LearnOpenCV's recipe: one copy, in landmark_morph.py
from landmark_morph import _morph_triangle  # noqa: E402

DATA = Path(os.environ.get("MORPHLAB_TEST_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data")) / "frll"
SECTIONS = ("generate", "reference", "map-score", "detect")


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
        _morph_triangle(img1, img2, out, [p1[i], p1[j], p1[k]], [p2[i], p2[j], p2[k]],
                            [pts[i], pts[j], pts[k]], alpha)
    cv2.imwrite(str(out_png), np.uint8(np.clip(out, 0, 255)))


# ----------------------------------------------------------------------------------------
# morphlab
# ----------------------------------------------------------------------------------------
def write_pairs_csv(folder: Path, n_pairs: int, root: Path = DATA) -> tuple[Path, Path]:
    """``n_pairs`` pairs of FRLL neutral photos (``root/neutral/*_03.jpg``) sharing no
    photo; (pairs file, dataset folder)."""
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


def reference_rate(pairs_csv: Path, root: Path, work: Path, n: int) -> dict[str, float]:
    """The LearnOpenCV recipe on the first ``n`` pairs: wall s, CPU s, morphs/s."""
    import dlib

    from morphlab.face._models import model_path
    from morphlab.face.dlib_backend import PREDICTOR_FILE

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_path(PREDICTOR_FILE)))
    with open(pairs_csv) as fh:
        rows = list(csv.DictReader(fh))[:n]
    t, c = time.perf_counter(), _cpu_s()
    for i, row in enumerate(rows):
        reference_pair(root / row["image_a"], root / row["image_b"], work / f"ref{i}.png",
                       detector, predictor)
    wall, cpu = time.perf_counter() - t, _cpu_s() - c
    return {"pairs": len(rows), "wall_s": wall, "cpu_s": cpu, "morphs_per_s": len(rows) / wall}


def _timed(fn, *args, **kw) -> tuple[float, float, object]:
    t, c = time.perf_counter(), _cpu_s()
    res = fn(*args, **kw)
    return time.perf_counter() - t, _cpu_s() - c, res


def map_score_rates(paths: list[Path], systems: list[str], work: Path) -> dict[str, dict]:
    """faces/s of :func:`embed_many` per system: uncached, cold caches, cached."""
    from morphlab.recognition.base import create_system
    from morphlab.recognition.cache import embed_many

    out: dict[str, dict] = {}
    for name in systems:
        system = create_system(name)
        embed_many([system], paths[:1], use_cache=False)  # loads the model: not timed
        rec: dict[str, dict] = {}
        cache = work / f"emb-cache-{name}"
        for mode, kw in (("uncached", {"use_cache": False}), ("cold", {"cache_dir": cache}),
                         ("cached", {"cache_dir": cache})):
            wall, cpu, run = _timed(embed_many, [system], paths, **kw)
            res = run.results[0]
            if res.failures:
                raise SystemExit(f"{name}: {len(res.failures)} faces failed: "
                                 f"{next(iter(res.failures.values()))}")
            rec[mode] = {"faces": len(paths), "wall_s": wall, "cpu_s": cpu,
                         "faces_per_s": len(paths) / wall, "hits": res.hits,
                         "computed": res.computed}
        out[name] = rec
    return out


def detect_rates(root: Path, pairs_csv: Path, attack_set: Path, work: Path,
                 detector: str = "freq-logreg") -> dict[str, dict]:
    """crops/s of :func:`evaluate_detector` (no report): uncached, cold and cached crops."""
    from morphlab.detect import build_presentations, evaluate_detector, train_detector

    with open(pairs_csv) as fh:
        rows = list(csv.DictReader(fh))
    listing = work / "bona_fide.txt"
    listing.write_text("".join(f"{(root / r[k]).resolve()}\n" for r in rows
                               for k in ("image_a", "image_b")))
    data = build_presentations([listing], [attack_set])
    model = work / f"model-{detector}"
    train_detector(detector, data, model, progress=False, use_cache=False)
    out: dict[str, dict] = {}
    cache = work / "crop-cache"
    for mode, kw in (("uncached", {"use_cache": False}), ("cold", {"cache_dir": cache}),
                     ("cached", {"cache_dir": cache})):
        wall, cpu, _ = _timed(evaluate_detector, model, data, None, allow_overlap=True,
                              progress=False, **kw)
        out[mode] = {"crops": len(data), "wall_s": wall, "cpu_s": cpu,
                     "crops_per_s": len(data) / wall}
    return out


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--ref-pairs", type=int, default=3)
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--systems", default="dlib-resnet,facenet,mobilefacenet",
                    help="recognition systems of the map-score section")
    ap.add_argument("--faces", type=int, default=40,
                    help="faces embedded per system and mode (morphs, then photos)")
    ap.add_argument("--detector", default="freq-logreg")
    ap.add_argument("--data", type=Path, default=DATA,
                    help="an FRLL-like folder with neutral/NNN_03.jpg")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--stage-repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    sections = [x for x in args.sections.split(",") if x]
    bad = sorted(set(sections) - set(SECTIONS))
    if bad:
        raise SystemExit(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    import morphlab
    from morphlab.models import MODELS_ENV, models_dir

    # the runs below point $MORPHLAB_CACHE at fresh folders: keep finding the models
    os.environ.setdefault(MODELS_ENV, str(models_dir()))
    report: dict = {"load_start": _load(), "cpus": os.cpu_count(), "opencv": cv2.__version__,
                    "pairs": args.pairs, "sections": sections}
    print(f"morphlab from {Path(morphlab.__file__).parent}")
    print(f"load average at start: {' '.join(map(str, report['load_start']))} "
          f"({os.cpu_count()} CPUs); OpenCV {cv2.__version__}")
    with tempfile.TemporaryDirectory(prefix="morphlab-throughput-") as tmp:
        work = Path(tmp)
        pairs_csv, root = write_pairs_csv(work, args.pairs, args.data)
        first_set = None
        if "generate" in sections:
            print("\nstages, one pair, this process (ms):")
            stages = stage_times(pairs_csv, root, work, repeat=args.stage_repeat)
            report["stages_ms"] = stages
            for k, v in stages.items():
                print(f"  {k:<36} {v:8.2f}")
            n = 2 * args.pairs
            print(f"\nmorphlab generate, {args.pairs} pairs x 2 variants, {root.name}:")
            print(f"  {'run':<22} {'wall s':>8} {'morphs/s':>9} {'CPU s/morph':>12}")
            gen = {}
            for jobs in (int(j) for j in args.jobs.split(",")):
                cache = work / f"cache-j{jobs}"
                for tag in ("cold", "cached"):
                    wall, cpu = time_generate(pairs_csv, root, work, jobs, tag, cache)
                    gen[f"j{jobs}-{tag}"] = {"jobs": jobs, "landmarks": tag, "wall_s": wall,
                                             "cpu_s": cpu, "morphs_per_s": n / wall}
                    first_set = first_set or work / f"out-{tag}-j{jobs}"
                    print(f"  -j {jobs} {tag + ' landmarks':<17} {wall:8.2f} "
                          f"{n / wall:9.2f} {cpu / n:12.3f}")
            report["generate"] = gen
        if "reference" in sections:
            ref = reference_rate(pairs_csv, root, work, args.ref_pairs)
            report["reference"] = ref
            print(f"\nLearnOpenCV recipe, {ref['pairs']} pairs x 1 morph, one process: "
                  f"{ref['wall_s']:.2f} s, {ref['morphs_per_s']:.3f} morphs/s "
                  f"({ref['wall_s'] / ref['pairs']:.2f} s, CPU {ref['cpu_s'] / ref['pairs']:.2f} s "
                  "per morph)")
            for key, g in report.get("generate", {}).items():
                g["x_reference"] = g["morphs_per_s"] / ref["morphs_per_s"]
                print(f"  generate -j {g['jobs']} {g['landmarks']}: {g['x_reference']:6.1f}x "
                      f"the recipe's morphs/s ({g['x_reference'] / 2:.1f}x per pair)")
        if ("map-score" in sections or "detect" in sections) and first_set is None:
            from morphlab.generators.runner import generate_attack_set

            first_set = work / "attack-set"
            os.environ["MORPHLAB_CACHE"] = str(work / "cache-set")
            generate_attack_set(pairs_csv, "landmark", {}, first_set, dataset_dir=root,
                                progress=False)
        if "map-score" in sections:
            morphs = sorted(first_set.glob("*.png"))
            with open(pairs_csv) as fh:
                photos = [root / r[k] for r in csv.DictReader(fh) for k in ("image_a", "image_b")]
            faces = (morphs + photos)[: args.faces]
            systems = [x for x in args.systems.split(",") if x]
            ms = map_score_rates(faces, systems, work)
            report["map_score"] = ms
            print(f"\nmap-score embedding (embed_many), {len(faces)} faces "
                  f"({sum(f in morphs for f in faces)} morphs), faces/s:")
            print(f"  {'system':<16} {'uncached':>9} {'cold':>9} {'cached':>9} {'cached/uncached':>16}")
            for name, rec in ms.items():
                r = {m: rec[m]["faces_per_s"] for m in ("uncached", "cold", "cached")}
                print(f"  {name:<16} {r['uncached']:9.1f} {r['cold']:9.1f} {r['cached']:9.1f} "
                      f"{r['cached'] / r['uncached']:15.1f}x")
        if "detect" in sections:
            dr = detect_rates(root, pairs_csv, first_set, work, args.detector)
            report["detect_eval"] = dr
            n = dr["uncached"]["crops"]
            print(f"\ndetect eval ({args.detector}, no report), {n} presentations, crops/s:")
            for mode in ("uncached", "cold", "cached"):
                print(f"  {mode:<10} {dr[mode]['crops_per_s']:9.1f}  ({dr[mode]['wall_s']:.2f} s)")
            print(f"  cached / uncached: {dr['cached']['crops_per_s'] / dr['uncached']['crops_per_s']:.1f}x")
    report["load_end"] = _load()
    print(f"\nload average at end: {' '.join(map(str, report['load_end']))}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
