"""Embedding throughput of every built-in recognition system, and the embedding-cache hit path.

Usage::

    .venv/bin/python benchmarks/recognition_throughput.py [--n 32] [--cores 2]
        [--arcface PATH.onnx] [--sface PATH.onnx] [--data ../shared/data/frll]

For each system it prints faces/s of ``embed_batch`` on FRLL photos (1350x1350) with the
landmarks already found (alignment + network; image decoding and landmark detection
excluded), then the time of :func:`morphlab.recognition.cache.embed_files` on the same
files with a cold embedding cache (landmarks cached) and again with a warm one (the
re-scoring path: hashing + one SQLite query; no image is read).

Without ``--arcface``/``--sface`` the ONNX systems run the tiny stand-in models of
:mod:`morphlab.recognition.testing` (an 8x8 average pool + projection): their figures
then measure the alignment and onnxruntime/OpenCV-DNN overhead only, **not** a real
ResNet-50/100 or SFace network.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="number of photos")
    ap.add_argument("--cores", type=int, default=2, help="CPU cores to use")
    ap.add_argument("--arcface", default=None, help="a real ArcFace ONNX model")
    ap.add_argument("--sface", default=None, help="a real SFace ONNX model")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent
                                          / "shared" / "data" / "frll"))
    args = ap.parse_args()

    cores = list(range(min(args.cores, os.cpu_count() or 1)))
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(len(cores))

    import cv2

    from morphlab.face.cache import get_face
    from morphlab.io import read_image
    from morphlab.recognition.base import create_system
    from morphlab.recognition.cache import embed_files
    from morphlab.recognition.testing import make_tiny_fr_onnx

    cv2.setNumThreads(len(cores))
    tmp = Path(tempfile.mkdtemp(prefix="morphlab-bench-"))
    os.environ["MORPHLAB_CACHE"] = str(tmp / "cache")
    paths = sorted(Path(args.data, "neutral").glob("*.jpg"))[: args.n]
    if not paths:
        raise SystemExit(f"no photos in {args.data}/neutral")
    print(f"{len(paths)} FRLL photos (1350x1350), {len(cores)} core(s); landmarks: dlib backend")
    t = time.perf_counter()
    images = [read_image(p) for p in paths]
    faces = [get_face("dlib", p, im) for p, im in zip(paths, images)]
    print(f"(landmarks found in {time.perf_counter() - t:.1f} s, cached for the runs below)")

    arc = args.arcface or make_tiny_fr_onnx(tmp / "tiny_arcface.onnx")
    sf = args.sface or make_tiny_fr_onnx(tmp / "tiny_sface.onnx", input_shape=(1, 3, 112, 112),
                                          embedding_dim=128)
    systems = [
        ("dlib-resnet", create_system("dlib-resnet"), ""),
        ("lbph", create_system("lbph"), ""),
        ("arcface-onnx", create_system("arcface-onnx", model_path=arc, threads=len(cores)),
         "" if args.arcface else "tiny stand-in model"),
        ("sface-onnx", create_system("sface-onnx", model_path=sf),
         "" if args.sface else "tiny stand-in model"),
    ]
    print(f"\n{'system':<14}{'faces/s':>9}{'ms/face':>9}{'cold run s':>12}{'warm run s':>12}"
          f"{'warm ms/img':>12}  note")
    for name, system, note in systems:
        system.embed_batch(images[:2], faces[:2])  # warm-up (model load)
        t = time.perf_counter()
        system.embed_batch(images, faces)
        dt = time.perf_counter() - t
        t = time.perf_counter()
        cold = embed_files(system, paths)
        t_cold = time.perf_counter() - t
        t = time.perf_counter()
        warm = embed_files(system, paths)
        t_warm = time.perf_counter() - t
        assert warm.hits == len(paths) and cold.computed == len(paths)
        print(f"{name:<14}{len(paths) / dt:>9.1f}{1000 * dt / len(paths):>9.1f}{t_cold:>12.2f}"
              f"{t_warm:>12.3f}{1000 * t_warm / len(paths):>12.2f}  {note}")
    print("\ncold run: embed_files with landmarks cached (reads + aligns + embeds + stores);"
          "\nwarm run: the same call again — sha256 of each file + one cache query.")


if __name__ == "__main__":
    main()
