"""The Arc2Face release layout: expected files, the one layout error, weight digests.

Nothing heavy is imported here: :func:`check_weights` looks at the files' bytes only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional, Union

from morphlab.io import atomic_write_text, sha256_file

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

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
               "Arc2Face's ArcFace R100 (trained on WebFace42M, 512-d; not insightface's glintr100)",
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
#: Arc2Face's ControlNet (pose conditioning on a normal map); needed only with ``pose``
#: other than ``none``, so absent files are no error otherwise.
CONTROLNET_LAYOUT: tuple[WeightFile, ...] = (
    WeightFile("controlnet_config", "weights", ("controlnet/config.json",),
               "Arc2Face ControlNet config (only for pose != none)", "~2 KB", _A2F),
    WeightFile("controlnet", "weights", ("controlnet/diffusion_pytorch_model.safetensors",),
               "Arc2Face ControlNet weights, normal-map pose conditioning (only for pose != none)",
               "~1.4 GB", _A2F),
)
_BY_KEY = {f.key: f for f in LAYOUT + CONTROLNET_LAYOUT}


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
                   problems: Optional[dict[str, str]] = None, *, controlnet: bool = False) -> str:
    """Every expected file with its size class and source, one entry per file.

    With ``roots`` the entries are absolute paths prefixed by their state (``[ok]``,
    ``[MISSING]``, ``[MALFORMED: …]`` from ``problems``); without, the layout alone.
    The ControlNet files (:data:`CONTROLNET_LAYOUT`) are listed too, as ``[optional]``
    unless ``controlnet`` (pose conditioning asked for), when they are checked like the
    others.
    """
    problems = problems or {}
    lines = []
    for f in LAYOUT + CONTROLNET_LAYOUT:
        alt = f" (or {', '.join(f.names[1:])})" if len(f.names) > 1 else ""
        where = f"{_resolve(f, roots)}" if roots else f"{'DIR' if f.root == 'weights' else 'BASE'}/{f.names[0]}"
        optional = f in CONTROLNET_LAYOUT and not controlnet
        state = (f"[{'optional' if optional else problems.get(f.key, 'ok')}] " if roots else "")
        lines.append(f"  {state}{where}{alt}\n      {f.what}, {f.size}; from the {f.source}: {f.names[0]}")
    here = f" (here weights={roots['weights']}, base={roots['base']})" if roots else ""
    lines.append(
        "Expected layout: weights=DIR (--weights DIR) holds the Arc2Face release "
        "(arc2face/, encoder/, arcface.onnx; controlnet/ for pose != none); base=BASE holds the Stable Diffusion 1.5 "
        f"components (vae/, tokenizer/, scheduler/) and defaults to the weights folder{here}. "
        "morphlab never downloads weights: fetch these files yourself."
    )
    return "\n".join(lines)


def weights_error(weights: PathLike, base: Optional[PathLike], problems: dict[str, str], *,
                  controlnet: bool = False) -> Arc2FaceWeightsError:
    """The one error listing every expected file; ``problems`` maps file keys to reasons.

    ``controlnet``: the ControlNet files are required (pose conditioning) and a missing
    one is a problem like any other.
    """
    roots = _roots(weights, base)
    controlnet = controlnet or any(k in problems for k in (f.key for f in CONTROLNET_LAYOUT))
    if len(problems) <= 2:
        what = ", ".join(f"{_BY_KEY[k].names[0]} {why}" for k, why in problems.items())
    else:
        n = len(LAYOUT) + (len(CONTROLNET_LAYOUT) if controlnet else 0)
        what = f"{len(problems)} of {n} files missing or malformed"
    gone = [f"{name} folder {root} does not exist" for name, root in roots.items()
            if not root.is_dir() and (name == "weights" or root != roots["weights"])]
    what = "; ".join([what] + gone)
    return Arc2FaceWeightsError(
        f"arc2face weights unusable ({what}):\n" + layout_listing(roots, problems, controlnet=controlnet))


def check_weights(weights: PathLike, base: Optional[PathLike] = None, *,
                  controlnet: bool = False) -> dict[str, Path]:
    """Check the layout without loading anything heavy.

    Every file must exist; configs must parse as JSON objects; weight files must look
    like safetensors / PyTorch checkpoints; the UNet's ``cross_attention_dim`` must equal
    the encoder's ``hidden_size``.

    Args:
        weights: the Arc2Face release folder.
        base: the SD1.5 components folder (default: ``weights``).
        controlnet: also require the ControlNet files (:data:`CONTROLNET_LAYOUT`; pose
            conditioning).

    Returns:
        ``{key: path}`` for every file of :data:`LAYOUT` (and of
        :data:`CONTROLNET_LAYOUT` with ``controlnet``).

    Raises:
        Arc2FaceWeightsError: listing every expected file, if any is missing or malformed.
    """
    roots = _roots(weights, base)
    files = LAYOUT + (CONTROLNET_LAYOUT if controlnet else ())
    paths = {f.key: _resolve(f, roots) for f in files}
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
    if controlnet and "controlnet_config" not in problems and "unet_config" not in problems:
        cn_cfg = json.loads(paths["controlnet_config"].read_text(encoding="utf-8"))
        unet_cfg = json.loads(paths["unet_config"].read_text(encoding="utf-8"))
        for key in ("cross_attention_dim", "block_out_channels"):
            if cn_cfg.get(key) != unet_cfg.get(key):
                problems["controlnet_config"] = (
                    f"MALFORMED: {key} {cn_cfg.get(key)!r} differs from the UNet's {unet_cfg.get(key)!r}")
                break
    if problems:
        raise weights_error(weights, base, problems, controlnet=controlnet)
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

