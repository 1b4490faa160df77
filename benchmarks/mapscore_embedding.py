"""Faces/s of map-score's embedding step, per recognition system, with a cold embedding cache.

Usage::

    .venv/bin/python benchmarks/mapscore_embedding.py [--data morphlab/sample/frll] [--n 24]
        [--fr dlib-resnet --fr facenet --fr mobilefacenet] [--cores 2] [--repeat 2] [-j 1]

Landmarks are found once first (dlib backend, into a temporary cache) and are cached for
every figure below, so the figures are what a first ``map-score`` of images whose faces
are known costs. Two figures per system:

- ``embed_files``: that system alone over the files (hashing, reading, landmark lookup,
  alignment, network, cache writes), faces/s = files / wall seconds — the pre-batching
  map-score path, one system after the other, each reading every image again.
- ``embed_many`` (map-score's path; absent in morphlab versions without it): all
  systems in one pass, every image read and its face looked up once; per system the
  alignment + network seconds and faces/s, plus the shared reading time and the wall
  time of the whole pass. With ``-j 2`` its faces/s are per worker (seconds summed over
  the workers): compare the wall times.

The best of ``--repeat`` runs is printed (the machine is shared; noise only slows), with
the CPU seconds of this process (``time.process_time``; with ``--cores 1`` the figure
least disturbed by other load; worker processes of ``-j`` are not in it).
Run it from another checkout (``PYTHONPATH=/path/to/old/checkout``) for a before figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="morphlab/sample/frll",
                    help="folder with neutral/ and smiling/ photos (FRLL layout)")
    ap.add_argument("--n", type=int, default=24, help="number of photos")
    ap.add_argument("--fr", action="append", default=None, help="system (repeatable)")
    ap.add_argument("--cores", type=int, default=2, help="CPU cores to use")
    ap.add_argument("--repeat", type=int, default=2, help="runs per figure (best shown)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    args = ap.parse_args()
    cores = list(range(min(args.cores, os.cpu_count() or 1)))
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)

    import cv2

    import morphlab
    from morphlab.face.cache import get_face
    from morphlab.io import read_image
    from morphlab.recognition import cache as cache_mod
    from morphlab.recognition.base import create_system

    cv2.setNumThreads(len(cores))
    names = args.fr or ["dlib-resnet", "facenet", "mobilefacenet"]
    systems = [create_system(n) for n in names]  # model files from the usual cache
    tmp = Path(tempfile.mkdtemp(prefix="morphlab-bench-"))
    os.environ["MORPHLAB_CACHE"] = str(tmp / "cache")  # landmarks and embeddings: fresh
    data = Path(args.data)
    paths = sorted(data.glob("neutral/*.jpg")) + sorted(data.glob("smiling/*.jpg"))
    paths = paths[: args.n]
    if not paths:
        raise SystemExit(f"no photos in {data}/neutral or {data}/smiling")
    shape = read_image(paths[0]).shape
    print(f"morphlab {morphlab.__version__} from {Path(morphlab.__file__).parent}")
    print(f"{len(paths)} photos of {data} ({shape[1]}x{shape[0]}), {len(cores)} core(s), "
          f"{args.jobs} worker process(es)")
    t = time.perf_counter()
    for p in paths:
        get_face("dlib", p, read_image(p))
    print(f"(landmarks found in {time.perf_counter() - t:.1f} s, cached below)")
    for s in systems:  # model load and first-call costs out of the figures
        cache_mod.embed_files(s, paths[:2], use_cache=False)

    def fresh() -> Path:
        d = Path(tempfile.mkdtemp(dir=tmp))
        (d / "landmarks").symlink_to(tmp / "cache" / "landmarks")
        return d

    print(f"\n{'embed_files (one system at a time)':<40}{'s':>8}{'faces/s':>9}{'CPU s':>8}")
    total = cpu_total = 0.0
    for name, s in zip(names, systems):
        wall, cpu = min(_timed(lambda: cache_mod.embed_files(s, paths, cache_dir=fresh(),
                                                             workers=args.jobs))
                        for _ in range(args.repeat))
        total += wall
        cpu_total += cpu
        print(f"  {name:<38}{wall:>8.2f}{len(paths) / wall:>9.1f}{cpu:>8.2f}")
    print(f"  {'all systems, one after the other':<38}{total:>8.2f}{'':>9}{cpu_total:>8.2f}")
    if not hasattr(cache_mod, "embed_many"):
        return
    runs = []
    for _ in range(args.repeat):
        cpu = time.process_time()
        run = cache_mod.embed_many(systems, paths, cache_dir=fresh(), workers=args.jobs)
        runs.append((run.wall_seconds, time.process_time() - cpu, run))
    wall, cpu, run = min(runs, key=lambda r: r[0])
    print(f"\n{'embed_many (all systems, one pass)':<40}{'s':>8}{'faces/s':>9}{'CPU s':>8}")
    for name, res in zip(names, run.results):
        print(f"  {name + ' (align + network)':<38}{res.seconds:>8.2f}"
              f"{res.faces_per_second:>9.1f}")
    print(f"  {'reading images + landmark lookup':<38}{run.prepare_seconds:>8.2f}")
    print(f"  {'wall, all systems':<38}{wall:>8.2f}{'':>9}{cpu:>8.2f}")


def _timed(fn) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process)`` of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


if __name__ == "__main__":
    main()
