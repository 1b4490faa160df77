"""Images per second of the arc2face generator against the reference usage.

Builds the Arc2Face pipeline from seeded random weights with the real model's shapes
(Stable Diffusion 1.5 UNet and VAE, CLIP ViT-L/14 text encoder; identical compute, noise
images), written in the release's folder layout and loaded by the generator's own code,
then measures at 512×512, 25 steps, guidance 3.0:

(a) reference   the usage of Arc2Face's and Arc2Morph's scripts: one identity projection
                and one pipeline call per image (diffusers encodes the empty negative
                prompt each call), PIL output, no speed options;
(b) generator   ``Arc2FaceGenerator.generate_batch`` end to end on the embedded FRLL
                sample pairs: contributor landmarks (sidecar ``.tem``), ArcFace, the
                projection, one batched pipeline call per ``--batch-size`` pairs ×
                ``--candidates``, candidate scoring when K > 1; CUDA defaults:
                channels-last, fused QKV, PyTorch SDPA attention;
(c) render      only the generator's batched sampling (``render_morphs``), same batches.

Usage::

    python benchmarks/arc2face_throughput.py --tiny            # CPU smoke test, ~1 min
    python benchmarks/arc2face_throughput.py --device cuda     # SD1.5-sized, fp16
    python benchmarks/arc2face_throughput.py --device cuda --batch-size 16 \\
        --compile max-autotune-no-cudagraphs --json out.json

``--tiny`` uses the tiny preset (64×64, few steps) so the whole path runs anywhere.
The weights are written once under ``--workdir`` (default: a temporary folder) and
reused when it is given again. Prints one table and, with ``--json``, writes the
figures. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _pairs(n: int):
    """``n`` pairs of the embedded FRLL sample (neutral images with .tem landmarks)."""
    from morphlab.generators.base import Contributor
    from morphlab.sample import sample_dir

    files = sorted((sample_dir() / "neutral").glob("*.jpg"))
    combos = list(combinations(files, 2))
    out = []
    for i in range(n):
        a, b = combos[i % len(combos)]
        out.append((Contributor(a.stem[:3], a), Contributor(b.stem[:3], b), 1000 + i))
    return out


def ensure_weights(workdir: Path, preset: str, device: str) -> Path:
    from morphlab.generators.arc2face_testing import write_random_release

    root = workdir / f"arc2face-{preset}"
    stamp = root / ".complete"
    if stamp.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    dtype = "float16" if device.startswith("cuda") else "float32"
    write_random_release(root, preset, seed=0, dtype=dtype,
                         device=device if device.startswith("cuda") else None)
    stamp.write_text("ok")
    print(f"wrote {preset} random weights ({dtype}) to {root} in {time.perf_counter() - t0:.1f} s")
    return root


def bench_reference(weights: Path, args, n: int) -> dict:
    """One projection + one pipeline call per image, as the reference scripts do."""
    import torch

    from morphlab.generators import arc2face as A

    pipe = A.load_pipeline(weights, device=args.device, dtype=args.dtype)
    dim = 16 if args.tiny else 512
    embs = np.random.default_rng(0).standard_normal((n + 1, dim)).astype(np.float32)

    def one(i: int):
        pe = A.project_face_embs(pipe.text_encoder, pipe.tokenizer, embs[i : i + 1])
        gen = torch.Generator(device=args.device).manual_seed(i)
        return pipe(prompt_embeds=pe, num_inference_steps=args.steps, guidance_scale=args.guidance,
                    height=args.size, width=args.size, generator=gen).images[0]

    one(n)  # warm-up
    _sync(args.device)
    t0 = time.perf_counter()
    for i in range(n):
        one(i)
    _sync(args.device)
    dt = time.perf_counter() - t0
    del pipe
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"images": n, "seconds": dt, "images_per_s": n / dt}


def bench_generator(weights: Path, args, n_pairs: int) -> tuple[dict, dict]:
    """generate_batch end to end, then render_morphs alone, on the same batches."""
    import torch

    from morphlab.generators.arc2face import Arc2FaceGenerator

    gen = Arc2FaceGenerator(
        weights=weights, device=args.device, dtype=args.dtype, steps=args.steps,
        guidance=args.guidance, size=args.size, candidates=args.candidates,
        batch_size=args.batch_size, compile=args.compile or False, face_backend="file",
        hash_weights=False,
    )
    jobs = _pairs(n_pairs)
    batches = [jobs[i : i + args.batch_size] for i in range(0, len(jobs), args.batch_size)]
    t0 = time.perf_counter()
    warm = gen.generate_batch(batches[0])  # loads the model, compiles, fills the landmark cache
    _sync(args.device)
    load_s = time.perf_counter() - t0
    errors = [r for r in warm if isinstance(r, Exception)]
    if errors:
        raise RuntimeError(f"warm-up failed: {errors[0]!r}")

    t0 = time.perf_counter()
    for batch in batches:
        for r in gen.generate_batch(batch):
            if isinstance(r, Exception):
                raise r
    _sync(args.device)
    dt = time.perf_counter() - t0
    images = len(jobs) * args.candidates
    full = {"pairs": len(jobs), "images": images, "seconds": dt, "images_per_s": images / dt,
            "pairs_per_s": len(jobs) / dt, "first_call_s": load_s,
            "params": {k: v for k, v in gen.get_params().items() if k != "files"}}

    dim = 16 if args.tiny else 512
    rng = np.random.default_rng(1)
    arcs = [(rng.standard_normal((len(b), dim)).astype(np.float32),
             rng.standard_normal((len(b), dim)).astype(np.float32),
             [s for *_, s in b]) for b in batches]
    _sync(args.device)
    t0 = time.perf_counter()
    for a, b, seeds in arcs:
        gen.render_morphs(a, b, seeds)
    _sync(args.device)
    dt = time.perf_counter() - t0
    render = {"images": images, "seconds": dt, "images_per_s": images / dt}
    del gen
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return full, render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true",
                    help="tiny random components (smoke test on any machine)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N [cuda if available]")
    ap.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), float32, float16")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps [25; tiny: 4]")
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=None, help="image side [512; tiny: 64]")
    ap.add_argument("--pairs", type=int, default=None, help="pairs for (b) and (c) [64; tiny: 8]")
    ap.add_argument("--reference-images", type=int, default=None, help="images for (a) [8; tiny: 4]")
    ap.add_argument("--batch-size", type=int, default=None, help="pairs per call [16 on CUDA, else 4]")
    ap.add_argument("--candidates", type=int, default=1)
    ap.add_argument("--compile", default=None, help="torch.compile the UNet: default or a mode name")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None, help="where the random weights live (kept)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    import torch

    from morphlab.generators.arc2face import resolve_device_dtype

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.device, args.dtype = resolve_device_dtype(args.device, args.dtype)
    cuda = args.device.startswith("cuda")
    args.steps = args.steps or (4 if args.tiny else 25)
    args.size = args.size or (64 if args.tiny else 512)
    args.pairs = args.pairs or (8 if args.tiny else 64)
    n_ref = args.reference_images or (4 if args.tiny else 8)
    args.batch_size = args.batch_size or (16 if cuda else 4)
    preset = "tiny" if args.tiny else "sd15"

    import diffusers

    env = {
        "device": torch.cuda.get_device_name(args.device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "diffusers": diffusers.__version__, "dtype": args.dtype,
        "preset": preset, "size": args.size, "steps": args.steps, "guidance": args.guidance,
    }
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="arc2face-bench-")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        weights = ensure_weights(workdir, preset, args.device)
        results: dict = {"env": env}
        if not args.skip_reference:
            results["reference"] = bench_reference(weights, args, n_ref)
        results["generator"], results["render"] = bench_generator(weights, args, args.pairs)
    finally:
        if tmp is not None:
            tmp.cleanup()

    print(f"{'usage':<44} {'images':>7} {'seconds':>8} {'images/s':>9}")
    rows = [
        ("(a) reference: 1 image per call", results.get("reference")),
        (f"(b) generator: batch {args.batch_size} pairs x {args.candidates} cand.", results["generator"]),
        ("(c) render_morphs only, same batches", results["render"]),
    ]
    for label, r in rows:
        if r:
            print(f"{label:<44} {r['images']:>7} {r['seconds']:>8.2f} {r['images_per_s']:>9.2f}")
    g = results["generator"]
    print(f"generator: {g['pairs_per_s']:.2f} morphs/s kept; first call (load"
          f"{', compile' if args.compile else ''}, warm-up) {g['first_call_s']:.1f} s; "
          f"channels_last={g['params']['channels_last']} fuse_qkv={g['params']['fuse_qkv']} "
          f"compile={g['params']['compile']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
