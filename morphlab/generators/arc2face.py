"""``arc2face``: morphs made in the identity space of Arc2Face (the Arc2Morph method).

Arc2Face (Papantoniou et al., 2024) is Stable Diffusion 1.5 conditioned only on an ArcFace
identity embedding: the L2-normalised 512-d ArcFace vector is zero-padded to the CLIP
width (768) and put in place of the token embedding of ``id`` in the prompt
``"photo of a id person"``; Arc2Face's fine-tuned CLIP text encoder turns that into the
77×768 ``prompt_embeds`` that condition its UNet. Arc2Morph (Di Domenico, Franco,
Ferrara, Maltoni, 2026; reference script ``morph_multiple.py`` of MI-BioLab/arc2morph)
morphs two identities by mixing them in that space:

- ``arcface-lerp`` / ``arcface-slerp``: mix the two normalised ArcFace vectors,
  re-normalise, project;
- ``encoded-lerp`` / ``encoded-slerp`` (default): project each identity, then
  interpolate the two 77×768 embeddings token by token (slerp falls back to lerp where
  two token vectors are nearly parallel, ``|cos| > 0.9995``, as the reference does).

``t`` is the morph factor: ``t = 0`` gives subject A's embedding, ``t = 1`` subject B's
(the reference mixes its accomplice → criminal at 0.5). Sampling defaults follow the
reference: DPM-Solver++ multistep, 25 steps, classifier-free guidance 3.0 against the
encoder's embedding of the empty prompt, 512×512; float16 on a GPU, float32 on a CPU.
Beyond the reference, ``candidates=K`` renders K images per pair (seeds derived from
the pair's seed, all in one batch) and keeps the one maximising
``min(sim(morph, A), sim(morph, B))`` under a recognition system (default: the ArcFace of
the weights folder); every candidate's scores go to the manifest.

Weights (never downloaded; fetch them yourself)
----------------------------------------------
``weights=DIR`` (CLI ``--weights DIR``) is the Arc2Face release folder; ``base=DIR``
holds the Stable Diffusion 1.5 components and defaults to the same folder::

    DIR/                                      Hugging Face repo FoivosPar/Arc2Face
      arc2face/config.json                    UNet config                       ~2 KB
      arc2face/diffusion_pytorch_model.safetensors   UNet weights             ~3.4 GB
      encoder/config.json                     CLIP text-encoder config          ~1 KB
      encoder/pytorch_model.bin               text encoder (text_model.* keys) ~490 MB
      arcface.onnx                            ArcFace R100 (Glint360K, 512-d)  ~250 MB
    BASE/  (default DIR)                      repo stable-diffusion-v1-5/stable-diffusion-v1-5
      vae/config.json                                                          ~1 KB
      vae/diffusion_pytorch_model.safetensors (or .bin)                       ~330 MB
      tokenizer/vocab.json, merges.txt, tokenizer_config.json          ~1 MB, ~500 KB, ~1 KB
      scheduler/scheduler_config.json                                           ~1 KB

A missing or malformed file raises one :class:`Arc2FaceWeightsError` listing every
expected file, its state, size class and where it is published. The encoder's state
dict is read with ``torch.load(weights_only=True)`` (no code runs from the file).
Optional ``lcm_lora=PATH``: the LCM-LoRA for SD1.5 (repo latent-consistency/lcm-lora-sdv1-5,
``pytorch_lora_weights.safetensors``, ~135 MB; a folder holding it or the file); it
switches to the LCM scheduler and is fused into the UNet; use it with few steps
(e.g. ``steps=4``) — the defaults stay the reference's.

Usage::

    morphlab generate pairs.csv -g arc2face -o attacks/arc2face \\
        --param weights=/models/arc2face --param mode=encoded-slerp --param t=0.5 \\
        --param candidates=4 --param device=cuda --param batch_size=8

    from morphlab.generators.base import Contributor, create_generator
    gen = create_generator("arc2face", weights="/models/arc2face", device="cuda")
    [morph] = gen.generate(Contributor("A", a_path), Contributor("B", b_path), seed=1)

Provenance: :meth:`Arc2FaceGenerator.get_params` records, besides every parameter, each
weight file's size and sha256. Hashing ~4.5 GB takes tens of seconds, so a digest is
computed once per file and cached under ``<cache>/weights-sha256/`` (``$MORPHLAB_CACHE``
or ``~/.cache/morphlab``), keyed by the file's absolute path, size and mtime;
``hash_weights=False`` records sizes only.

Speed: pairs arrive ``batch_size`` at a time; all pairs × candidates of a call are
projected in one text-encoder pass and rendered in one pipeline call (batched UNet with
classifier-free guidance, batched VAE decode). On CUDA the UNet runs channels-last with
PyTorch's fused attention and fused QKV projections; ``compile=True`` (or a
``torch.compile`` mode such as ``"max-autotune"``) compiles it. ``benchmarks/
arc2face_throughput.py`` measures images/s against the reference usage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import types
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from morphlab.face.base import FaceError, FaceBackend, create_backend
from morphlab.generators.base import GENERATORS, Contributor, Generator, MorphOutput
from morphlab.io import ImageError, atomic_write_text, read_image, sha256_file

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Interpolation modes (see the module docstring).
MODES = ("arcface-lerp", "arcface-slerp", "encoded-lerp", "encoded-slerp")
DEFAULT_MODE = "encoded-slerp"
#: Arc2Face's prompt; the embedding of ``id`` is replaced by the identity vector.
PROMPT = "photo of a id person"
ID_WORD = "id"
#: |cos| above which slerp falls back to lerp (the reference's DOT_THRESHOLD).
DOT_THRESHOLD = 0.9995
#: Smallest input image side accepted (the ArcFace crop is 112 px).
MIN_SIDE = 64
#: The one output tag of this generator.
TAG = "morph"

_A2F = "Hugging Face repo FoivosPar/Arc2Face"
_SD15 = (
    "Hugging Face repo stable-diffusion-v1-5/stable-diffusion-v1-5 "
    "(formerly runwayml/stable-diffusion-v1-5)"
)
_LCM = "Hugging Face repo latent-consistency/lcm-lora-sdv1-5, pytorch_lora_weights.safetensors (~135 MB)"


# ----------------------------------------------------------------------------------------
# the release layout
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One file of the expected layout.

    Attributes:
        key: short name used in code (``"unet"``, ``"vae_config"``…).
        root: ``"weights"`` (the Arc2Face folder) or ``"base"`` (the SD1.5 folder).
        names: accepted paths relative to the root, preferred first.
        what: description.
        size: size class of the real file.
        source: where it is published.
    """

    key: str
    root: str
    names: tuple[str, ...]
    what: str
    size: str
    source: str


LAYOUT: tuple[WeightFile, ...] = (
    WeightFile("unet_config", "weights", ("arc2face/config.json",),
               "Arc2Face UNet config", "~2 KB", _A2F),
    WeightFile("unet", "weights", ("arc2face/diffusion_pytorch_model.safetensors",),
               "Arc2Face UNet weights", "~3.4 GB", _A2F),
    WeightFile("encoder_config", "weights", ("encoder/config.json",),
               "Arc2Face CLIP text-encoder config", "~1 KB", _A2F),
    WeightFile("encoder", "weights", ("encoder/pytorch_model.bin",),
               "Arc2Face CLIP text-encoder state dict (text_model.* keys)", "~490 MB", _A2F),
    WeightFile("arcface", "weights", ("arcface.onnx",),
               "ArcFace R100 trained on Glint360K, 512-d (insightface antelopev2 glintr100)",
               "~250 MB", _A2F),
    WeightFile("vae_config", "base", ("vae/config.json",), "SD1.5 VAE config", "~1 KB", _SD15),
    WeightFile("vae", "base",
               ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin"),
               "SD1.5 VAE weights", "~330 MB", _SD15),
    WeightFile("vocab", "base", ("tokenizer/vocab.json",), "CLIP tokenizer vocabulary", "~1 MB", _SD15),
    WeightFile("merges", "base", ("tokenizer/merges.txt",), "CLIP tokenizer BPE merges", "~500 KB", _SD15),
    WeightFile("tokenizer_config", "base", ("tokenizer/tokenizer_config.json",),
               "CLIP tokenizer config", "~1 KB", _SD15),
    WeightFile("scheduler_config", "base", ("scheduler/scheduler_config.json",),
               "SD1.5 scheduler config", "~1 KB", _SD15),
)
_BY_KEY = {f.key: f for f in LAYOUT}


class Arc2FaceWeightsError(FileNotFoundError, ValueError):
    """The weights folders lack a file or hold a malformed one.

    Catchable as ``FileNotFoundError`` or ``ValueError``; the message lists every expected
    file with its state (ok / MISSING / MALFORMED: reason), size class and source.
    """


def _roots(weights: PathLike, base: Optional[PathLike]) -> dict[str, Path]:
    w = Path(weights).expanduser()
    return {"weights": w, "base": Path(base).expanduser() if base is not None else w}


def _resolve(f: WeightFile, roots: dict[str, Path]) -> Path:
    """The first accepted name that exists (else the preferred one)."""
    root = roots[f.root]
    for name in f.names:
        if (root / name).is_file():
            return root / name
    return root / f.names[0]


def _sniff(path: Path) -> Optional[str]:
    """Why the file is malformed, from a cheap look at its bytes; ``None`` if it looks fine."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file"
        suffix = path.suffix.lower()
        if suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return f"not valid JSON ({exc})"
            return None if isinstance(data, dict) else "JSON is not an object"
        with open(path, "rb") as fh:
            head = fh.read(16)
        if suffix == ".safetensors":
            n = int.from_bytes(head[:8], "little")
            if size < 10 or not 2 <= n <= size - 8 or head[8:9] != b"{":
                return "not a safetensors file (bad header)"
        elif suffix == ".bin":
            if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
                return "not a PyTorch checkpoint (neither zip nor pickle)"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def layout_listing(roots: Optional[dict[str, Path]] = None,
                   problems: Optional[dict[str, str]] = None) -> str:
    """Every expected file with its size class and source, one entry per file.

    With ``roots`` the entries are absolute paths prefixed by their state (``[ok]``,
    ``[MISSING]``, ``[MALFORMED: …]`` from ``problems``); without, the layout alone.
    """
    problems = problems or {}
    lines = []
    for f in LAYOUT:
        alt = f" (or {', '.join(f.names[1:])})" if len(f.names) > 1 else ""
        where = f"{_resolve(f, roots)}" if roots else f"{'DIR' if f.root == 'weights' else 'BASE'}/{f.names[0]}"
        state = f"[{problems.get(f.key, 'ok')}] " if roots else ""
        lines.append(f"  {state}{where}{alt}\n      {f.what}, {f.size}; from the {f.source}: {f.names[0]}")
    here = f" (here weights={roots['weights']}, base={roots['base']})" if roots else ""
    lines.append(
        "Expected layout: weights=DIR (--weights DIR) holds the Arc2Face release "
        "(arc2face/, encoder/, arcface.onnx); base=BASE holds the Stable Diffusion 1.5 "
        f"components (vae/, tokenizer/, scheduler/) and defaults to the weights folder{here}. "
        "morphlab never downloads weights: fetch these files yourself."
    )
    return "\n".join(lines)


def weights_error(weights: PathLike, base: Optional[PathLike], problems: dict[str, str]) -> Arc2FaceWeightsError:
    """The one error listing every expected file; ``problems`` maps file keys to reasons."""
    roots = _roots(weights, base)
    if len(problems) <= 2:
        what = ", ".join(f"{_BY_KEY[k].names[0]} {why}" for k, why in problems.items())
    else:
        what = f"{len(problems)} of {len(LAYOUT)} files missing or malformed"
    gone = [f"{name} folder {root} does not exist" for name, root in roots.items()
            if not root.is_dir() and (name == "weights" or root != roots["weights"])]
    what = "; ".join([what] + gone)
    return Arc2FaceWeightsError(f"arc2face weights unusable ({what}):\n" + layout_listing(roots, problems))


def check_weights(weights: PathLike, base: Optional[PathLike] = None) -> dict[str, Path]:
    """Check the layout without loading anything heavy.

    Every file must exist; configs must parse as JSON objects; weight files must look
    like safetensors / PyTorch checkpoints; the UNet's ``cross_attention_dim`` must equal
    the encoder's ``hidden_size``.

    Args:
        weights: the Arc2Face release folder.
        base: the SD1.5 components folder (default: ``weights``).

    Returns:
        ``{key: path}`` for every file of :data:`LAYOUT`.

    Raises:
        Arc2FaceWeightsError: listing every expected file, if any is missing or malformed.
    """
    roots = _roots(weights, base)
    paths = {f.key: _resolve(f, roots) for f in LAYOUT}
    problems: dict[str, str] = {}
    for key, path in paths.items():
        if not path.is_file():
            problems[key] = "MISSING"
        else:
            why = _sniff(path)
            if why:
                problems[key] = f"MALFORMED: {why}"
    if "unet_config" not in problems and "encoder_config" not in problems:
        unet_cfg = json.loads(paths["unet_config"].read_text(encoding="utf-8"))
        enc_cfg = json.loads(paths["encoder_config"].read_text(encoding="utf-8"))
        enc_cfg = enc_cfg.get("text_config", enc_cfg)
        cad, hid = unet_cfg.get("cross_attention_dim"), enc_cfg.get("hidden_size")
        if not isinstance(cad, int):
            problems["unet_config"] = "MALFORMED: no integer cross_attention_dim (not a UNet config?)"
        if not isinstance(hid, int):
            problems["encoder_config"] = "MALFORMED: no integer hidden_size (not a CLIP text config?)"
        elif isinstance(cad, int) and cad != hid:
            problems["encoder_config"] = (
                f"MALFORMED: hidden_size {hid} differs from the UNet's cross_attention_dim {cad}"
            )
    if problems:
        raise weights_error(weights, base, problems)
    return paths


def _weights_cache_dir() -> Path:
    from morphlab.face.cache import default_cache_root

    return default_cache_root() / "weights-sha256"


def weights_sha256(path: PathLike) -> str:
    """sha256 of a (large) weight file, computed once and cached.

    The cache entry is keyed by the absolute path and remembers the size and
    ``mtime_ns``; a changed file is hashed again.
    """
    path = Path(path).resolve()
    st = path.stat()
    entry = _weights_cache_dir() / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    try:
        cached = json.loads(entry.read_text(encoding="utf-8"))
        if (cached.get("path"), cached.get("size"), cached.get("mtime_ns")) == (
            str(path), st.st_size, st.st_mtime_ns
        ):
            return str(cached["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    if st.st_size > 64 << 20:
        log.info("hashing %s (%.1f GB) once for the manifest; cached in %s",
                 path, st.st_size / 1e9, entry.parent)
    digest = sha256_file(path)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(entry, json.dumps(
            {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        ))
    except OSError as exc:  # a read-only cache only costs time
        log.warning("could not cache the sha256 of %s: %s", path, exc)
    return digest


# ----------------------------------------------------------------------------------------
# heavy imports
# ----------------------------------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            "the arc2face generator needs torch and diffusers: "
            "pip install torch 'morphlab[diffusion]'"
        ) from None
    return torch


def _diffusers():
    """The diffusers classes used here, imported quietly.

    Importing the SD pipeline imports transformers' CLIP image processor, which logs that
    torchvision is absent and falls back to PIL; the pipeline never uses it here
    (``feature_extractor=None``), so that notice is silenced during the import.

    Returns:
        a namespace with ``StableDiffusionPipeline``, ``UNet2DConditionModel``,
        ``AutoencoderKL``, ``DPMSolverMultistepScheduler`` and ``LCMScheduler``.
    """
    _torch()
    noisy = logging.getLogger("transformers.utils.import_utils")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        from diffusers import (
            AutoencoderKL,
            DPMSolverMultistepScheduler,
            LCMScheduler,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
    except ImportError:
        raise ImportError(
            "the arc2face generator needs diffusers and transformers: "
            "pip install 'morphlab[diffusion]'"
        ) from None
    finally:
        noisy.setLevel(level)
    return types.SimpleNamespace(
        StableDiffusionPipeline=StableDiffusionPipeline,
        UNet2DConditionModel=UNet2DConditionModel,
        AutoencoderKL=AutoencoderKL,
        DPMSolverMultistepScheduler=DPMSolverMultistepScheduler,
        LCMScheduler=LCMScheduler,
    )


def resolve_device_dtype(device: str = "cpu", dtype: str = "auto") -> tuple[str, str]:
    """``("cpu"|"cuda"|"cuda:N"|…, "float32"|"float16"|"bfloat16")`` from user values.

    ``device="auto"`` picks CUDA when available; ``dtype="auto"`` is float16 on CUDA and
    float32 elsewhere.
    """
    torch = _torch()
    device = str(device or "cpu").strip().lower()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available to torch")
    aliases = {"fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32",
               "bf16": "bfloat16"}
    dtype = aliases.get(str(dtype).lower(), str(dtype).lower())
    if dtype == "auto":
        dtype = "float16" if dev.type == "cuda" else "float32"
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
    return device, dtype


# ----------------------------------------------------------------------------------------
# the identity projection and interpolation
# ----------------------------------------------------------------------------------------
def id_token_id(tokenizer) -> int:
    """Token id of the word ``id`` (a single token in CLIP's vocabulary)."""
    ids = tokenizer.encode(ID_WORD, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the tokenizer splits {ID_WORD!r} into {len(ids)} tokens; expected CLIP's")
    return int(ids[0])


@contextlib.contextmanager
def _token_embeddings(text_encoder, token_embs):
    """Make the encoder's token-embedding layer return ``token_embs`` for the next calls."""
    layer = text_encoder.get_input_embeddings()
    handle = layer.register_forward_hook(lambda _mod, _args, _out: token_embs)
    try:
        yield
    finally:
        handle.remove()


def project_face_embs(text_encoder, tokenizer, face_embs):
    """Arc2Face's identity projection, batched (``project_face_embs`` of the release).

    Tokenise ``"photo of a id person"`` padded to the tokenizer's 77 tokens, L2-normalise
    each ArcFace vector, zero-pad it to the encoder width, put it in place of the token
    embedding of ``id`` and run the text transformer (position embeddings, causal mask,
    final layer norm). The transformer is the encoder's own forward (the token-embedding
    layer's output is swapped by a hook), so this works on every transformers version.

    Args:
        text_encoder: ``transformers.CLIPTextModel`` (Arc2Face's encoder).
        tokenizer: the SD1.5 ``CLIPTokenizer``.
        face_embs: ``(N, D)`` ArcFace embeddings (torch tensor or array), ``D <= hidden``.

    Returns:
        ``(N, 77, hidden)`` tensor of the encoder's dtype and device: ``prompt_embeds``.
    """
    torch = _torch()
    import torch.nn.functional as F

    param = next(text_encoder.parameters())
    hidden = int(text_encoder.config.hidden_size)
    embs = torch.as_tensor(np.asarray(face_embs) if not torch.is_tensor(face_embs) else face_embs)
    if embs.ndim != 2 or embs.shape[1] > hidden:
        raise ValueError(f"face_embs must be (N, D) with D <= {hidden}, got {tuple(embs.shape)}")
    embs = F.normalize(embs.to(param.device, torch.float32), dim=-1)
    padded = F.pad(embs, (0, hidden - embs.shape[1])).to(param.dtype)
    length = min(int(tokenizer.model_max_length), int(text_encoder.config.max_position_embeddings))
    ids = tokenizer(PROMPT, truncation=True, padding="max_length", max_length=length,
                    return_tensors="pt").input_ids.to(param.device)
    where = (ids[0] == id_token_id(tokenizer)).nonzero().flatten()
    if len(where) != 1:
        raise ValueError(f"prompt {PROMPT!r} holds the {ID_WORD!r} token {len(where)} times")
    ids = ids.repeat(len(embs), 1)
    with torch.no_grad():
        token_embs = text_encoder.get_input_embeddings()(ids).clone()
        token_embs[:, int(where[0])] = padded
        with _token_embeddings(text_encoder, token_embs):
            return text_encoder(input_ids=ids)[0]


def lerp(v0, v1, t: float):
    """Linear interpolation ``v0 + t (v1 - v0)`` of tensors (computed in float32)."""
    out = v0.float() + float(t) * (v1.float() - v0.float())
    return out.to(v0.dtype)


def slerp(v0, v1, t: float, dot_threshold: float = DOT_THRESHOLD):
    """Spherical interpolation along the last axis, row by row (as the reference).

    Rows whose directions are nearly parallel (``|cos| > dot_threshold``) or zero fall
    back to :func:`lerp`. For rows of equal norm the result keeps that norm.

    Args:
        v0, v1: tensors of the same shape ``(..., D)``.
        t: 0 gives ``v0``, 1 gives ``v1``.

    Returns:
        Tensor of ``v0``'s shape and dtype.
    """
    torch = _torch()
    if v0.shape != v1.shape:
        raise ValueError(f"slerp: shapes differ, {tuple(v0.shape)} vs {tuple(v1.shape)}")
    a, b = v0.float(), v1.float()
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    dot = ((a / na) * (b / nb)).sum(-1, keepdim=True)
    use_lerp = dot.isnan() | (dot.abs() > dot_threshold)
    theta = torch.where(use_lerp, torch.zeros_like(dot), dot.clamp(-1.0, 1.0).arccos())
    sin = theta.sin()
    safe = torch.where(use_lerp, torch.ones_like(sin), sin)
    s0 = torch.sin((1.0 - float(t)) * theta) / safe
    s1 = torch.sin(float(t) * theta) / safe
    slerped = s0 * a + s1 * b
    lerped = a + float(t) * (b - a)
    return torch.where(use_lerp, lerped, slerped).to(v0.dtype)


def interpolate(v0, v1, t: float, method: str):
    """``lerp`` or ``slerp`` by name."""
    if method == "lerp":
        return lerp(v0, v1, t)
    if method == "slerp":
        return slerp(v0, v1, t)
    raise ValueError(f"unknown interpolation {method!r}; use lerp or slerp")


def morph_prompt_embeds(text_encoder, tokenizer, arc_a, arc_b, t: float, mode: str = DEFAULT_MODE):
    """The morph's ``prompt_embeds`` for a batch of pairs.

    Args:
        text_encoder, tokenizer: Arc2Face's encoder and the SD1.5 tokenizer.
        arc_a, arc_b: ``(N, D)`` ArcFace embeddings of subjects A and B (row i is pair i).
        t: morph factor; 0 → A, 1 → B.
        mode: one of :data:`MODES`.

    Returns:
        ``(N, 77, hidden)`` tensor.
    """
    torch = _torch()
    import torch.nn.functional as F

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    space, method = mode.split("-")
    a = torch.as_tensor(np.asarray(arc_a, dtype=np.float32)) if not torch.is_tensor(arc_a) else arc_a
    b = torch.as_tensor(np.asarray(arc_b, dtype=np.float32)) if not torch.is_tensor(arc_b) else arc_b
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    if space == "arcface":
        mixed = F.normalize(interpolate(a, b, t, method), dim=-1)
        return project_face_embs(text_encoder, tokenizer, mixed)
    both = project_face_embs(text_encoder, tokenizer, torch.cat([a, b]))
    return interpolate(both[: len(a)], both[len(a):], t, method)


def candidate_seeds(seed: int, k: int) -> list[int]:
    """The seeds of a pair's ``k`` candidates: the pair seed first, then derived ones.

    Candidate ``i >= 1`` gets ``SeedSequence([seed, i])``'s first 32-bit word, so the
    seeds are reproducible and independent of how pairs are batched.
    """
    seed = int(seed)
    out = [seed]
    for i in range(1, int(k)):
        ss = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, i])
        out.append(int(ss.generate_state(1, dtype=np.uint32)[0]))
    return out


def select_candidate(sim_a: Sequence[float], sim_b: Sequence[float]) -> int:
    """Index of the candidate maximising ``min(sim_a, sim_b)``.

    Similarities are higher-is-more-similar; NaN marks an unscored candidate (no face
    found) and is never chosen unless all are NaN, when 0 is returned. Ties go to the
    lowest index.
    """
    worst = np.minimum(np.asarray(sim_a, dtype=np.float64), np.asarray(sim_b, dtype=np.float64))
    if worst.size == 0:
        raise ValueError("select_candidate: no candidates")
    if np.all(np.isnan(worst)):
        return 0
    return int(np.nanargmax(worst))


# ----------------------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------------------
def _load_text_encoder(config_path: Path, weights_path: Path, dtype):
    """CLIPTextModel from ``config.json`` + a ``text_model.*`` state dict (``weights_only``)."""
    from morphlab.weights import require_safe_torch

    torch = require_safe_torch(f"reading the text encoder weights {weights_path}")
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig.from_pretrained(str(config_path.parent), local_files_only=True)
    model = CLIPTextModel(config)
    state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"holds a {type(state).__name__}, not a state dict")
    own = model.state_dict()
    prefix = "text_model." if any(k.startswith("text_model.") for k in own) else ""
    fixed = {}
    for k, v in state.items():
        k = k[len("text_model."):] if k.startswith("text_model.") else k
        if prefix + k in own:
            fixed[prefix + k] = v
        elif not k.endswith("position_ids"):  # a buffer older transformers saved
            fixed[prefix + k] = v
    missing, unexpected = model.load_state_dict(fixed, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(
            f"state dict does not fit the config: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    return model.to(dtype).eval()


def assemble_pipeline(unet, vae, text_encoder, tokenizer, scheduler_config: dict, *,
                      lcm_lora: Optional[PathLike] = None):
    """Compose diffusers' ``StableDiffusionPipeline`` from Arc2Face's components.

    No safety checker or feature extractor; DPM-Solver++ multistep built from the SD1.5
    scheduler config (as the reference), or the LCM scheduler with the LCM-LoRA fused
    into the UNet when ``lcm_lora`` is given. The progress bar is off (the attack-set
    runner shows its own).
    """
    d = _diffusers()
    if lcm_lora is None:
        scheduler = d.DPMSolverMultistepScheduler.from_config(scheduler_config)
    else:
        scheduler = d.LCMScheduler.from_config(scheduler_config)
    pipe = d.StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    if lcm_lora is not None:
        path = Path(lcm_lora).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{path}: LCM-LoRA not found; expected the {_LCM}, or a folder holding it")
        if path.is_file():
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="lcm")
        else:
            pipe.load_lora_weights(str(path), adapter_name="lcm")
        pipe.fuse_lora()
        pipe.unload_lora_weights()  # the fused weights stay
    return pipe


def load_pipeline(weights: PathLike, base: Optional[PathLike] = None, *, device: str = "cpu",
                  dtype: str = "auto", lcm_lora: Optional[PathLike] = None):
    """Load the Arc2Face release from local folders and assemble the pipeline.

    Args:
        weights: the Arc2Face folder (see the module docstring for the layout).
        base: the SD1.5 components folder (default: ``weights``).
        device, dtype: see :func:`resolve_device_dtype`.
        lcm_lora: optional LCM-LoRA file or folder.

    Returns:
        ``diffusers.StableDiffusionPipeline`` on ``device``.

    Raises:
        Arc2FaceWeightsError: a file is missing, malformed or does not load.
    """
    paths = check_weights(weights, base)
    torch = _torch()
    d = _diffusers()
    from transformers import CLIPTokenizer

    device, dtype = resolve_device_dtype(device, dtype)
    tdtype = getattr(torch, dtype)

    def attempt(key: str, fn):
        try:
            return fn()
        except Exception as exc:  # any loader failure → the one layout error
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise weights_error(weights, base, {key: f"MALFORMED: {type(exc).__name__}: {msg}"}) from None

    unet = attempt("unet", lambda: d.UNet2DConditionModel.from_pretrained(
        str(paths["unet"].parent), torch_dtype=tdtype, local_files_only=True, use_safetensors=True))
    vae = attempt("vae", lambda: d.AutoencoderKL.from_pretrained(
        str(paths["vae"].parent), torch_dtype=tdtype, local_files_only=True,
        use_safetensors=paths["vae"].suffix == ".safetensors"))
    text_encoder = attempt("encoder", lambda: _load_text_encoder(
        paths["encoder_config"], paths["encoder"], tdtype))
    tokenizer = attempt("vocab", lambda: CLIPTokenizer.from_pretrained(
        str(paths["vocab"].parent), local_files_only=True))
    attempt("vocab", lambda: id_token_id(tokenizer))
    sched_cfg = attempt("scheduler_config", lambda: json.loads(
        paths["scheduler_config"].read_text(encoding="utf-8")))
    if vae.config.latent_channels != unet.config.in_channels:
        raise weights_error(weights, base, {"vae_config": (
            f"MALFORMED: latent_channels {vae.config.latent_channels} differs from the UNet's "
            f"in_channels {unet.config.in_channels}")})
    pipe = assemble_pipeline(unet, vae, text_encoder, tokenizer, sched_cfg, lcm_lora=lcm_lora)
    return pipe.to(device)


def optimize_pipeline(pipe, *, channels_last: bool = False, fuse_qkv: bool = False,
                      compile: Union[bool, str] = False):
    """Speed options that keep the outputs' meaning (same model, same sampler).

    Args:
        pipe: the assembled pipeline.
        channels_last: UNet and VAE in channels-last memory format (faster convolutions
            on GPUs).
        fuse_qkv: fuse the attention Q/K/V projections into one matmul.
        compile: ``torch.compile`` the UNet: ``True`` for the default mode or a mode name
            (``"max-autotune"``, ``"reduce-overhead"`` for CUDA graphs…).
    """
    torch = _torch()
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if fuse_qkv:
        pipe.fuse_qkv_projections()
    if compile:
        mode = None if compile is True or compile == "default" else str(compile)
        pipe.unet.compile(mode=mode)
    return pipe


def negative_prompt_embeds(pipe):
    """The encoder's embedding of the empty prompt, ``(1, 77, hidden)``.

    Computed by diffusers' own ``encode_prompt`` exactly as the reference pipeline call
    (which passes no negative prompt) computes it.
    """
    torch = _torch()
    with torch.no_grad():
        _, neg = pipe.encode_prompt("", pipe.device, 1, True)
    return neg


def render(pipe, prompt_embeds, seeds: Sequence[int], *, steps: int = 25,
           guidance: float = 3.0, size: int = 512, negative=None) -> np.ndarray:
    """Sample one image per row of ``prompt_embeds``, in one pipeline call.

    Each image's initial noise comes from its own CPU ``torch.Generator`` seeded with its
    seed, so an image depends on its seed, not on its batch or device's RNG.

    Args:
        pipe: the assembled pipeline.
        prompt_embeds: ``(N, 77, hidden)``.
        seeds: N seeds.
        steps, guidance, size: sampler steps, guidance scale, output side (multiple of 8).
        negative: ``(1, 77, hidden)`` negative embedding (default: the empty prompt's).

    Returns:
        ``(N, size, size, 3)`` RGB uint8.
    """
    torch = _torch()
    n = len(prompt_embeds)
    if len(seeds) != n:
        raise ValueError(f"render: {n} embeddings but {len(seeds)} seeds")
    if negative is None:
        negative = negative_prompt_embeds(pipe)
    dtype = pipe.unet.dtype
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    with torch.no_grad():
        out = pipe(
            prompt_embeds=prompt_embeds.to(pipe.device, dtype),
            negative_prompt_embeds=negative.to(pipe.device, dtype).expand(n, -1, -1),
            num_inference_steps=int(steps), guidance_scale=float(guidance),
            height=int(size), width=int(size), generator=gens, output_type="np",
        ).images
    out = np.nan_to_num(np.asarray(out, dtype=np.float32))
    return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)


# ----------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------
def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off", "none", ""):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _as_compile(value: Any) -> Union[bool, str]:
    if isinstance(value, str) and value.strip().lower() not in (
        "1", "true", "yes", "on", "0", "false", "no", "off", "none", ""
    ):
        return value.strip()
    return _as_bool(value, "compile")


def _backend_name(backend: Union[str, FaceBackend]) -> str:
    return backend.name if isinstance(backend, FaceBackend) else str(backend)


def _opt_path(value: Optional[PathLike]) -> Optional[Path]:
    return None if value in (None, "") else Path(value).expanduser().resolve()


@GENERATORS.register("arc2face")
class Arc2FaceGenerator(Generator):
    """Arc2Morph: morph in Arc2Face's identity space (see the module docstring).

    Args:
        weights: the Arc2Face release folder (required).
        base: the SD1.5 components folder (default: ``weights``).
        mode: one of :data:`MODES` (default ``encoded-slerp``).
        t: morph factor in [0, 1]; 0 → subject A, 1 → subject B.
        candidates: images rendered per pair; the best by min-similarity is kept.
        steps, guidance, size: sampler steps (25), guidance scale (3.0), side (512).
        device: ``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto``.
        dtype: ``auto`` (float16 on CUDA, float32 on CPU), ``float32``, ``float16``…
        lcm_lora: optional LCM-LoRA file/folder (LCM scheduler; use few ``steps``).
        face_backend: face backend (name or instance) for the contributors' landmarks,
            cached: ``dlib`` (default), ``mediapipe``, ``file`` (sidecar landmarks)…
        score_backend: face backend finding the face in each candidate (default
            ``face_backend``, or ``dlib`` when that is ``file``, which needs sidecars).
        recognition: system scoring candidates, as a spec (``"dlib-resnet"``,
            ``"arcface-onnx=/path.onnx"``); default: ``arcface.onnx`` of ``weights``.
        batch_size: pairs per call (default 1 on CPU, 8 on CUDA); each call renders
            ``batch_size × candidates`` images in one pipeline call.
        channels_last, fuse_qkv: memory-format and attention speed-ups (default: on for
            CUDA).
        compile: ``torch.compile`` the UNet (``True`` or a mode name).
        hash_weights: record the weight files' sha256 (computed once, cached).

    Raises:
        Arc2FaceWeightsError: the weights folders are incomplete (at construction).
        ValueError: a parameter is out of range.
    """

    name = "arc2face"
    version = "1"
    runtime_params = frozenset({"batch_size", "channels_last", "fuse_qkv", "compile", "hash_weights"})

    def __init__(
        self,
        *,
        weights: Optional[PathLike] = None,
        base: Optional[PathLike] = None,
        mode: str = DEFAULT_MODE,
        t: float = 0.5,
        candidates: int = 1,
        steps: int = 25,
        guidance: float = 3.0,
        size: int = 512,
        device: str = "cpu",
        dtype: str = "auto",
        lcm_lora: Optional[PathLike] = None,
        face_backend: Union[str, FaceBackend] = "dlib",
        score_backend: Union[str, FaceBackend, None] = None,
        recognition: Optional[str] = None,
        batch_size: Optional[int] = None,
        channels_last: Optional[bool] = None,
        fuse_qkv: Optional[bool] = None,
        compile: Union[bool, str] = False,
        hash_weights: bool = True,
    ) -> None:
        if weights in (None, ""):
            raise ValueError(
                "arc2face needs weights=DIR (--weights DIR), the Arc2Face release folder:\n"
                + layout_listing()
            )
        self.weights = Path(weights).expanduser().resolve()
        self.base = _opt_path(base) or self.weights
        self.mode = str(mode)
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.t = float(t)
        if not 0.0 <= self.t <= 1.0:
            raise ValueError(f"t must lie in [0, 1] (0 = subject A, 1 = subject B), got {t!r}")
        self.candidates = int(candidates)
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.size = int(size)
        if self.candidates < 1 or self.steps < 1:
            raise ValueError(f"candidates and steps must be >= 1, got {candidates!r}, {steps!r}")
        if self.size < 64 or self.size % 8:
            raise ValueError(f"size must be a multiple of 8, at least 64, got {size!r}")
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        cuda = self.device.startswith("cuda")
        self.lcm_lora = _opt_path(lcm_lora)
        if self.lcm_lora is not None and not self.lcm_lora.exists():
            raise FileNotFoundError(f"{self.lcm_lora}: LCM-LoRA not found; expected the {_LCM}")
        self.face_backend = face_backend
        if not score_backend:
            score_backend = "dlib" if _backend_name(face_backend) == "file" else face_backend
        self.score_backend = score_backend
        self.recognition = recognition or None
        self.batch_size = int(batch_size) if batch_size not in (None, "") else (8 if cuda else 1)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.channels_last = cuda if channels_last in (None, "") else _as_bool(channels_last, "channels_last")
        self.fuse_qkv = cuda if fuse_qkv in (None, "") else _as_bool(fuse_qkv, "fuse_qkv")
        self.compile = _as_compile(compile)
        self.hash_weights = _as_bool(hash_weights, "hash_weights")
        self._paths = check_weights(self.weights, self.base)  # fail before any work
        self._files: Optional[dict[str, dict[str, Any]]] = None
        self._pipe = None
        self._negative = None
        self._arcface = None
        self._scorer = None
        self._score_backend: Optional[FaceBackend] = None
        self._face: Optional[FaceBackend] = None
        #: ArcFace embeddings of contributor images by (path, size, mtime_ns)
        self._memo: dict[tuple[str, int, int], np.ndarray] = {}

    # -- description --------------------------------------------------------------------
    def _file_record(self) -> dict[str, dict[str, Any]]:
        if self._files is None:
            files = {}
            for f in LAYOUT:
                path = self._paths[f.key]
                rec: dict[str, Any] = {"bytes": path.stat().st_size}
                if self.hash_weights:
                    rec["sha256"] = weights_sha256(path)
                files[str(path.relative_to(self.weights if f.root == "weights" else self.base))] = rec
            if self.lcm_lora is not None:
                lora = self.lcm_lora if self.lcm_lora.is_file() else (
                    self.lcm_lora / "pytorch_lora_weights.safetensors")
                if lora.is_file():
                    rec = {"bytes": lora.stat().st_size}
                    if self.hash_weights:
                        rec["sha256"] = weights_sha256(lora)
                    files["lcm_lora"] = rec
            self._files = files
        return self._files

    def get_params(self) -> dict[str, Any]:
        return {
            "weights": str(self.weights),
            "base": str(self.base),
            "mode": self.mode,
            "t": self.t,
            "candidates": self.candidates,
            "steps": self.steps,
            "guidance": self.guidance,
            "size": self.size,
            "scheduler": "lcm" if self.lcm_lora else "dpm-solver++-multistep",
            "device": self.device,
            "dtype": self.dtype,
            "lcm_lora": str(self.lcm_lora) if self.lcm_lora else None,
            "face_backend": _backend_name(self.face_backend),
            "score_backend": _backend_name(self.score_backend),
            "recognition": self.recognition or f"arcface-onnx={self._paths['arcface']}",
            "batch_size": self.batch_size,
            "channels_last": self.channels_last,
            "fuse_qkv": self.fuse_qkv,
            "compile": self.compile,
            "files": self._file_record(),
        }

    def output_tags(self) -> list[str]:
        return [TAG]

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_pipe", "_negative", "_arcface", "_scorer", "_score_backend", "_face"):
            state[key] = None  # models are reloaded lazily in a worker process
        state["_memo"] = {}
        return state

    # -- models (lazy) ------------------------------------------------------------------
    @property
    def pipe(self):
        """The assembled ``StableDiffusionPipeline`` (loaded on first use)."""
        if self._pipe is None:
            pipe = load_pipeline(self.weights, self.base, device=self.device, dtype=self.dtype,
                                 lcm_lora=self.lcm_lora)
            self._pipe = optimize_pipeline(pipe, channels_last=self.channels_last,
                                           fuse_qkv=self.fuse_qkv, compile=self.compile)
            self._negative = negative_prompt_embeds(self._pipe)
        return self._pipe

    @property
    def arcface(self):
        """The ArcFace of the weights folder (conditions the model)."""
        if self._arcface is None:
            from morphlab.recognition.arcface_onnx import ArcFaceONNX

            providers = ["CPUExecutionProvider"]
            if self.device.startswith("cuda"):
                import onnxruntime

                if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                    providers.insert(0, "CUDAExecutionProvider")
            try:
                self._arcface = ArcFaceONNX(model_path=self._paths["arcface"], providers=providers)
            except (ValueError, OSError) as exc:
                raise weights_error(self.weights, self.base, {"arcface": f"MALFORMED: {exc}"}) from None
        return self._arcface

    def _scoring(self):
        if self._scorer is None:
            if self.recognition is None:
                self._scorer = self.arcface
            else:
                from morphlab.recognition.base import system_from_spec

                self._scorer = system_from_spec(self.recognition)
            sb = self.score_backend
            self._score_backend = sb if isinstance(sb, FaceBackend) else create_backend(sb)
        return self._scorer, self._score_backend

    # -- stages -------------------------------------------------------------------------
    def _face_backend(self) -> FaceBackend:
        if self._face is None:
            fb = self.face_backend
            self._face = fb if isinstance(fb, FaceBackend) else create_backend(fb)
        return self._face

    def _contributor(self, path: Path):
        """``(image, face)`` of a contributor; raises the usual image/face errors."""
        from morphlab.face.cache import get_face

        image = read_image(path)
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ImageError(
                f"{path}: image is {w}x{h} pixels, too small for arc2face "
                f"(at least {MIN_SIDE} px a side)"
            )
        return image, get_face(self._face_backend(), path, image)

    def embed_contributors(self, paths: Sequence[PathLike]) -> dict[Path, Union[np.ndarray, Exception]]:
        """ArcFace embeddings of contributor images (the model's conditioning).

        Each image is embedded once: from this generator's memory, else from the
        recognition embedding cache (:class:`morphlab.recognition.cache.EmbeddingCache`,
        keyed by image sha256 and landmark backend; not for the ``file`` backend), else
        computed — all misses in one ArcFace batch — and stored there.

        Returns:
            ``{path: (D,) float32 L2-normalised}``, or the exception (``FileNotFoundError``,
            ``ImageError`` for unreadable or too small images, ``NoFaceError``…) per path.
        """
        from morphlab.recognition.cache import EmbeddingCache

        out: dict[Path, Any] = {}
        todo: dict[Path, tuple[str, int, int]] = {}
        for p in dict.fromkeys(Path(x) for x in paths):
            try:
                st = p.stat()
            except OSError:
                out[p] = FileNotFoundError(f"{p}: image file not found")
                continue
            key = (str(p), st.st_size, st.st_mtime_ns)
            if key in self._memo:
                out[p] = self._memo[key]
            else:
                todo[p] = key
        if not todo:
            return out
        backend = self._face_backend()
        cache = EmbeddingCache(self.arcface) if getattr(backend, "cacheable", True) else None
        shas: dict[Path, str] = {}
        if cache is not None:
            shas = {p: sha256_file(p) for p in todo}
            found = cache.get_many(shas.values(), backend.cache_key())
            for p in list(todo):
                if shas[p] in found:
                    out[p] = self._memo[todo.pop(p)] = found[shas[p]]
        crops = {}
        for p in todo:
            try:
                crops[p] = self.arcface.align(*self._contributor(p))
            except (ValueError, OSError) as exc:  # ImageError, FaceError, scheme without 5 points
                out[p] = exc
        if crops:
            emb = self.arcface.embed_aligned(np.stack(list(crops.values())))
            for p, v in zip(crops, emb):
                out[p] = self._memo[todo[p]] = v
            if cache is not None:
                cache.put_many(((shas[p], out[p]) for p in crops), backend.cache_key())
        return out

    def render_morphs(self, arc_a: np.ndarray, arc_b: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """Render the morphs of a batch of pairs, all candidates in one pipeline call.

        Args:
            arc_a, arc_b: ``(N, D)`` ArcFace embeddings of subjects A and B.
            seeds: N pair seeds; each pair gets :func:`candidate_seeds` of its seed.

        Returns:
            ``(N, candidates, size, size, 3)`` RGB uint8.
        """
        torch = _torch()
        pipe = self.pipe
        embeds = morph_prompt_embeds(pipe.text_encoder, pipe.tokenizer, arc_a, arc_b, self.t, self.mode)
        k = self.candidates
        embeds = embeds.repeat_interleave(k, dim=0) if k > 1 else embeds
        all_seeds = [s for seed in seeds for s in candidate_seeds(seed, k)]
        with torch.inference_mode():
            images = render(pipe, embeds, all_seeds, steps=self.steps, guidance=self.guidance,
                            size=self.size, negative=self._negative)
        return images.reshape(len(seeds), k, *images.shape[1:])

    def _score(self, cands: np.ndarray, paths: list[Path], arcs: np.ndarray):
        """``(sim_a, sim_b)`` of one pair's candidates (NaN where no face is found).

        ``paths`` and ``arcs`` are subjects A and B's image files and ArcFace embeddings
        (reused when the scorer is that ArcFace; other systems embed the images).
        """
        scorer, backend = self._scoring()
        faces, keep = [], []
        for i, img in enumerate(cands):
            try:
                faces.append(backend.landmarks(img))
                keep.append(i)
            except FaceError:
                log.debug("no face in candidate %d", i)
        sim = np.full((len(cands), 2), np.nan)
        if keep:
            emb = scorer.embed_batch([cands[i] for i in keep], faces)
            if scorer is self.arcface:
                ref = arcs
            else:
                images, ref_faces = zip(*(self._contributor(p) for p in paths))
                ref = scorer.embed_batch(list(images), list(ref_faces))
            sim[keep] = scorer.similarity(emb, ref)
        return sim[:, 0], sim[:, 1]

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        out = self.generate_batch([(a, b, seed)])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def generate_batch(
        self, jobs: Sequence[tuple[Contributor, Contributor, int]]
    ) -> list[list[MorphOutput] | Exception]:
        """Morph several pairs; a pair whose image is unusable yields its exception.

        Contributors' ArcFace embeddings come from :meth:`embed_contributors` (each image
        embedded once); every pair × candidate is rendered in one pipeline call. Errors
        of the model itself (weights, device memory) are raised, not recorded.
        """
        results: list[Any] = [None] * len(jobs)
        arc = self.embed_contributors([Path(c.path) for a, b, _ in jobs for c in (a, b)])
        valid = []
        for i, (a, b, _) in enumerate(jobs):
            bad = [arc[Path(c.path)] for c in (a, b) if isinstance(arc[Path(c.path)], Exception)]
            if bad:
                results[i] = bad[0]
            else:
                valid.append(i)
        if not valid:
            return results
        arc_a = np.stack([arc[Path(jobs[i][0].path)] for i in valid])
        arc_b = np.stack([arc[Path(jobs[i][1].path)] for i in valid])
        seeds = [int(jobs[i][2]) for i in valid]
        images = self.render_morphs(arc_a, arc_b, seeds)
        for row, i in enumerate(valid):
            a, b, seed = jobs[i]
            cand_seeds = candidate_seeds(seed, self.candidates)
            extra: dict[str, Any] = {
                "arcface_sim_ab": float(np.dot(arc_a[row], arc_b[row])),
                "model": "Arc2Face (SD1.5)",
            }
            chosen = 0
            if self.candidates > 1:
                sim_a, sim_b = self._score(images[row], [Path(a.path), Path(b.path)],
                                           np.stack([arc_a[row], arc_b[row]]))
                chosen = select_candidate(sim_a, sim_b)
                scorer, _ = self._scoring()
                extra["selection"] = {
                    "rule": "argmax min(sim_a, sim_b)",
                    "recognition": scorer.name,
                    "recognition_version": scorer.version,
                    "chosen": chosen,
                    "candidates": [
                        {"seed": s,
                         "sim_a": None if np.isnan(x) else float(x),
                         "sim_b": None if np.isnan(y) else float(y)}
                        for s, x, y in zip(cand_seeds, sim_a, sim_b)
                    ],
                }
                if np.all(np.isnan(sim_a)):
                    extra["selection"]["note"] = "no face found in any candidate; kept the first"
            results[i] = [MorphOutput(
                image=images[row, chosen],
                tag=TAG,
                params={"candidate": chosen, "candidate_seed": cand_seeds[chosen]},
                extra=extra,
            )]
        return results
