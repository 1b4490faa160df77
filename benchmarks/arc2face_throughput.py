"""Morphs per second of the arc2face generator against the reference usage, one short run.

Builds Arc2Face-shaped modules with seeded random weights directly in the device's
memory (Stable Diffusion 1.5 UNet and VAE, CLIP ViT-L/14 text encoder; the compute of
the real model, noise images; nothing multi-GB is written to disk), composes the
pipeline with morphlab's own :func:`assemble_pipeline`, and measures at 512², 25 steps,
guidance 3.0 (DPM-Solver++):

reference      the usage of Arc2Face's README and Arc2Morph's ``morph_multiple.py``: one
               identity projection and one pipeline call per image (diffusers encodes the
               empty negative prompt each call), PIL output, no speed options;
batch-B        ``Arc2FaceGenerator.render_morphs`` — morphlab's batched path (projection
               of all pairs in one encoder pass, one pipeline call with classifier-free
               guidance for B pairs, CUDA speed options channels-last + fused QKV) — for
               each B of ``--batch-sizes`` (default 8, 16, 32, 64);
cudnn          the best batch size again with ``torch.backends.cudnn.benchmark = True``;
compile        the best batch size with ``torch.compile`` of the UNet, default mode
               (compile time reported separately).

Each section records seconds, morphs/s and the peak CUDA memory
(``torch.cuda.max_memory_allocated``); the JSON (``--json``) is rewritten after every
section, so a run cut short by a time limit still returns its numbers. A section that
fails (e.g. out of memory at B = 64) records its error and the run goes on. Target on
one H200 (fp16): >= 10 morphs/s (the FLOP bound is about 18.5).

The generator object is constructed on a tiny random release written to a temporary
folder (its weight-layout checks need files; a few hundred KB) and then given the
in-memory pipeline, so ``render_morphs`` runs exactly as in ``morphlab generate``.

Usage::

    # on a lent GPU (diffusers/transformers carried as wheels if the image lacks them):
    pip download diffusers==0.42.1 transformers==5.24.0 --no-deps -d .whl/   # here, once
    # device command (carry .whl):
    python -c "import diffusers, transformers" 2>/dev/null || pip install -q --no-deps .whl/*.whl; \\
      PYTHONPATH=. python benchmarks/arc2face_throughput.py --device cuda \\
      --json $OUT/arc2face_throughput.json
    # CPU smoke test (tiny modules, 64², 2 steps; < 1 min):
    python benchmarks/arc2face_throughput.py --tiny --device cpu --json /tmp/a2f.json

Not a test: nothing is asserted (``tests/test_benchmarks_smoke.py`` runs ``--tiny``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

import numpy as np

#: Morphs/s aimed at on one H200 at 512², 25 steps, CFG 3 (fp16).
TARGET_MORPHS_PER_S = 10.0
SECTIONS = ("reference", "batch", "cudnn", "compile")


class Report:
    """The results dict, rewritten atomically to ``path`` after every section."""

    def __init__(self, path: Optional[Path], env: dict) -> None:
        self.path = path
        self.data: dict = {"env": env, "sections": {}, "done": []}
        self.write()

    def write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)

    def section(self, name: str, fn: Callable[[], dict]) -> Optional[dict]:
        """Run one section; record its figures or its error; write the JSON."""
        t0 = time.perf_counter()
        try:
            rec = fn()
        except Exception as exc:  # recorded: the run goes on with the next section
            rec = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                   "traceback": traceback.format_exc(limit=4)}
            print(f"[{name}] FAILED: {rec['error']}", flush=True)
            _free()
        rec["section_s"] = round(time.perf_counter() - t0, 3)
        self.data["sections"][name] = rec
        self.data["done"].append(name)
        self.write()
        if "error" not in rec and "morphs_per_s" in rec:
            mem = rec.get("peak_mem_gib")
            print(f"[{name}] {rec['morphs']} morphs in {rec['seconds']:.2f} s: "
                  f"{rec['morphs_per_s']:.2f} morphs/s"
                  + (f", peak {mem:.1f} GiB" if mem is not None else ""), flush=True)
        return None if "error" in rec else rec


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def _sync(device: str) -> None:
    import torch

    if _cuda(device):
        torch.cuda.synchronize()


def _free() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _reset_peak(device: str) -> None:
    import torch

    if _cuda(device):
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: str) -> Optional[float]:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if _cuda(device) else None


def build_pipeline(preset: str, device: str, dtype: str, tokenizer_dir: Path):
    """Random Arc2Face-shaped modules built on ``device``, composed by morphlab."""
    import torch
    from transformers import CLIPTokenizer

    from morphlab.generators.arc2face import assemble_pipeline
    from morphlab.generators.arc2face_testing import SD15_SCHEDULER_CONFIG, random_modules

    mods = random_modules(preset, seed=0, device=device,
                          vocab_size=0 if preset == "sd15" else 128)
    tdtype = getattr(torch, dtype)
    if tdtype != torch.float32:  # built in float32
        for m in mods.values():
            m.to(dtype=tdtype)
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    pipe = assemble_pipeline(mods["unet"], mods["vae"], mods["text_encoder"], tokenizer,
                             dict(SD15_SCHEDULER_CONFIG))
    return pipe.to(device)


def bench_reference(pipe, args) -> dict:
    """One projection + one pipeline call per image (the reference scripts' usage)."""
    import torch

    from morphlab.generators import arc2face as A

    dim = args.arcface_dim
    embs = np.random.default_rng(0).standard_normal((args.reference_images + 1, dim)).astype(np.float32)

    def one(i: int):
        pe = A.project_face_embs(pipe.text_encoder, pipe.tokenizer, embs[i : i + 1])
        gen = torch.Generator(device=args.device).manual_seed(23)
        with torch.no_grad():
            return pipe(prompt_embeds=pe, num_inference_steps=args.steps,
                        guidance_scale=args.guidance, height=args.size, width=args.size,
                        generator=gen).images[0]

    one(args.reference_images)  # warm-up
    _sync(args.device)
    _reset_peak(args.device)
    t0 = time.perf_counter()
    for i in range(args.reference_images):
        one(i)
    _sync(args.device)
    dt = time.perf_counter() - t0
    n = args.reference_images
    return {"morphs": n, "batch": 1, "calls": n, "seconds": dt, "morphs_per_s": n / dt,
            "peak_mem_gib": _peak_gib(args.device)}


def make_generator(pipe, args, release: Path):
    """``Arc2FaceGenerator`` with the in-memory pipeline (and its speed defaults)."""
    from morphlab.generators.arc2face import (
        Arc2FaceGenerator,
        negative_prompt_embeds,
        optimize_pipeline,
    )

    gen = Arc2FaceGenerator(weights=release, device=args.device, dtype=args.dtype,
                            steps=args.steps, guidance=args.guidance, size=args.size,
                            face_backend="file", hash_weights=False)
    gen._pipe = optimize_pipeline(pipe, channels_last=gen.channels_last, fuse_qkv=gen.fuse_qkv)
    gen._negative = negative_prompt_embeds(gen._pipe)
    return gen


def bench_batch(gen, args, batch: int, repeats: int) -> dict:
    """``repeats`` timed ``render_morphs`` calls of ``batch`` pairs after one untimed."""
    rng = np.random.default_rng(batch)
    dim = args.arcface_dim

    def call(k: int):
        a = rng.standard_normal((batch, dim)).astype(np.float32)
        b = rng.standard_normal((batch, dim)).astype(np.float32)
        return gen.render_morphs(a, b, [1000 * k + i for i in range(batch)])

    t0 = time.perf_counter()
    out = call(0)
    _sync(args.device)
    first = time.perf_counter() - t0
    assert out.shape == (batch, 1, args.size, args.size, 3)
    _reset_peak(args.device)
    t0 = time.perf_counter()
    for k in range(repeats):
        call(k + 1)
    _sync(args.device)
    dt = time.perf_counter() - t0
    n = batch * repeats
    return {"morphs": n, "batch": batch, "calls": repeats, "seconds": dt, "morphs_per_s": n / dt,
            "first_call_s": first, "peak_mem_gib": _peak_gib(args.device),
            "channels_last": gen.channels_last, "fuse_qkv": gen.fuse_qkv}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny random modules (smoke test anywhere)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N [cuda if available]")
    ap.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), float32, float16")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps [25; tiny: 2]")
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=None, help="image side [512; tiny: 64]")
    ap.add_argument("--batch-sizes", default=None, help="comma list of pairs per call [8,16,32,64; tiny: 1,2]")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per batch size [2; tiny: 1]")
    ap.add_argument("--reference-images", type=int, default=None, help="images for the reference [8; tiny: 1]")
    ap.add_argument("--sections", default=None,
                    help=f"comma list of sections to run [{','.join(SECTIONS)}; on a CPU without "
                         "compile, which builds C++ kernels for minutes]")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here (after every section)")
    args = ap.parse_args(argv)
    if args.sections is not None:
        args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in args.sections or () if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {', '.join(bad)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from morphlab.generators.arc2face import resolve_device_dtype
    from morphlab.generators.arc2face_testing import PRESETS, write_random_release, write_tokenizer

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.device, args.dtype = resolve_device_dtype(args.device, args.dtype)
    preset = "tiny" if args.tiny else "sd15"
    if args.sections is None:
        args.sections = list(SECTIONS) if _cuda(args.device) else [s for s in SECTIONS if s != "compile"]
    args.arcface_dim = 16 if args.tiny else 512
    args.steps = args.steps or (2 if args.tiny else 25)
    args.size = args.size or (PRESETS["tiny"]["image_size"] if args.tiny else 512)
    sizes = args.batch_sizes or ("1,2" if args.tiny else "8,16,32,64")
    batch_sizes = [int(b) for b in str(sizes).split(",") if b.strip()]
    repeats = args.repeats or (1 if args.tiny else 2)
    args.reference_images = args.reference_images or (1 if args.tiny else 8)

    import diffusers
    import transformers

    env = {
        "device": (torch.cuda.get_device_name(args.device) if _cuda(args.device)
                   else platform.processor() or "cpu"),
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0], "dtype": args.dtype, "preset": preset,
        "size": args.size, "steps": args.steps, "guidance": args.guidance,
        "batch_sizes": batch_sizes, "repeats": repeats, "sections": args.sections,
        "target_morphs_per_s": TARGET_MORPHS_PER_S,
    }
    print(" ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    report = Report(args.json, env)
    secs = report.data["sections"]

    with tempfile.TemporaryDirectory(prefix="arc2face-bench-") as tmp:
        tmp = Path(tmp)
        tok_dir = write_tokenizer(tmp / "tokenizer")
        release = write_random_release(tmp / "tiny-release", "tiny", seed=0)  # layout checks only
        holder: dict = {}

        def build() -> dict:
            t0 = time.perf_counter()
            holder["pipe"] = build_pipeline(preset, args.device, args.dtype, tok_dir)
            _sync(args.device)
            n_params = sum(p.numel() for m in (holder["pipe"].unet, holder["pipe"].vae,
                                               holder["pipe"].text_encoder) for p in m.parameters())
            return {"seconds": time.perf_counter() - t0, "parameters": n_params,
                    "peak_mem_gib": _peak_gib(args.device)}

        if report.section("build", build) is None:
            return 1
        pipe = holder.pop("pipe")
        if "reference" in args.sections:
            report.section("reference", lambda: bench_reference(pipe, args))
        gen = make_generator(pipe, args, release)
        best: Optional[tuple[float, int]] = None
        if "batch" in args.sections:
            for b in batch_sizes:
                rec = report.section(f"batch-{b}", lambda b=b: bench_batch(gen, args, b, repeats))
                if rec is not None and (best is None or rec["morphs_per_s"] > best[0]):
                    best = (rec["morphs_per_s"], b)
        best_b = best[1] if best else batch_sizes[0]
        cudnn_on = False
        if "cudnn" in args.sections:
            torch.backends.cudnn.benchmark = True
            rec = report.section(f"cudnn-batch-{best_b}", lambda: {
                **bench_batch(gen, args, best_b, repeats), "cudnn_benchmark": True})
            cudnn_on = rec is not None and best is not None and rec["morphs_per_s"] > best[0]
            torch.backends.cudnn.benchmark = cudnn_on  # keep it only where it helped
        if "compile" in args.sections:
            def compiled() -> dict:
                from morphlab.generators.arc2face import optimize_pipeline

                optimize_pipeline(gen.pipe, compile=True)  # torch.compile, default mode
                return {**bench_batch(gen, args, best_b, repeats), "compile": "default",
                        "cudnn_benchmark": cudnn_on}

            report.section(f"compile-batch-{best_b}", compiled)

    ok = {k: v for k, v in secs.items() if "morphs_per_s" in v and k != "reference"}
    summary: dict = {}
    if ok:
        name, top = max(ok.items(), key=lambda kv: kv[1]["morphs_per_s"])
        summary = {"best": name, "best_morphs_per_s": top["morphs_per_s"],
                   "best_peak_mem_gib": top.get("peak_mem_gib")}
        ref = secs.get("reference", {}).get("morphs_per_s")
        if ref:
            summary["speedup_over_reference"] = top["morphs_per_s"] / ref
        if not args.tiny and _cuda(args.device):
            summary["target_met"] = top["morphs_per_s"] >= TARGET_MORPHS_PER_S
    report.data["summary"] = summary
    report.write()

    print(f"{'section':<22} {'batch':>5} {'morphs':>6} {'seconds':>8} {'morphs/s':>9} {'peak GiB':>8}")
    for name, r in secs.items():
        if "morphs_per_s" in r:
            mem = "" if r.get("peak_mem_gib") is None else f"{r['peak_mem_gib']:.1f}"
            print(f"{name:<22} {r['batch']:>5} {r['morphs']:>6} {r['seconds']:>8.2f} "
                  f"{r['morphs_per_s']:>9.2f} {mem:>8}")
        elif "error" in r:
            print(f"{name:<22} FAILED: {r['error']}")
    if summary:
        print("best: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in summary.items()))
    failed = [k for k, v in secs.items() if "error" in v]
    return 1 if not ok or failed == list(secs) else 0


if __name__ == "__main__":
    sys.exit(main())
