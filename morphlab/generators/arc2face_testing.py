"""Random stand-ins for the Arc2Face release, in its folder layout.

No Arc2Face weights exist where the tests run, so the tests and
``benchmarks/arc2face_throughput.py`` write a folder with the *layout* of the release
(see :mod:`morphlab.generators.arc2face`) filled with seeded random weights, and run the
real loading and generation code on it. Two sizes:

- ``"tiny"``: a few thousand parameters (UNet and VAE with 4-8 channels, a 2-layer CLIP
  text encoder of width 32, a 16-d "ArcFace"); a 64×64 image in 2 steps takes well under
  a second on a CPU.
- ``"sd15"``: the Stable Diffusion 1.5 / CLIP ViT-L/14 / 512-d ArcFace shapes, so the
  compute is identical to the real model's (the images are noise).

``write_random_release(..., controlnet=True)`` adds a random ControlNet of the UNet's
shape (:func:`random_controlnet`) for pose conditioning.

The tokenizer is a tiny CLIP BPE vocabulary holding the words of Arc2Face's prompt
(``photo of a id person``) and the letters; the "ArcFace" is the recognition module's
tiny ONNX stand-in (:func:`morphlab.recognition.testing.make_tiny_fr_onnx`). Needs torch,
diffusers, transformers, safetensors and onnx.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

#: UNet / VAE / text-encoder shapes of each preset.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "unet": dict(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(4, 8),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=2,
            norm_num_groups=2,
        ),
        "vae": dict(
            in_channels=3,
            out_channels=3,
            block_out_channels=(4, 8),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            norm_num_groups=2,
            sample_size=64,
        ),
        "text": dict(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=32,
        ),
        "arcface_dim": 16,
        "image_size": 64,
        # one stride-2 stage: the tiny VAE downsamples by 2
        "controlnet_cond_channels": (4, 8),
    },
    "sd15": {
        "unet": dict(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
        ),
        "vae": dict(
            in_channels=3,
            out_channels=3,
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=2,
            norm_num_groups=32,
            sample_size=512,
        ),
        "text": dict(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            projection_dim=768,
            hidden_act="quick_gelu",
        ),
        "arcface_dim": 512,
        "image_size": 512,
        "controlnet_cond_channels": (16, 32, 96, 256),
    },
}

#: Stable Diffusion 1.5's ``scheduler/scheduler_config.json`` (a PNDM config; the
#: generator builds DPM-Solver++ or LCM from it, as the reference does).
SD15_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
#: Words the tiny vocabulary spells as single tokens.
WORDS = ("photo", "of", "a", "id", "person")


def write_tokenizer(folder: str | Path, words: tuple[str, ...] = WORDS) -> Path:
    """Write a tiny CLIP BPE tokenizer (``vocab.json``, ``merges.txt``, config) to ``folder``.

    Every lowercase letter is a token (with and without the end-of-word mark ``</w>``)
    and each of ``words`` becomes one token through a chain of merges, so
    ``"photo of a id person"`` tokenises like the real CLIP tokenizer does: one token per
    word, ``id`` included. Ids 0 and 1 are ``<|startoftext|>`` and ``<|endoftext|>``
    (padding uses the latter, as in Stable Diffusion 1.5's tokenizer).

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {BOS: 0, EOS: 1}
    merges: list[str] = []

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for c in "abcdefghijklmnopqrstuvwxyz":
        add(c)
        add(c + "</w>")
    for word in words:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        cur = parts[0]
        for part in parts[1:]:
            merge = f"{cur} {part}"
            if merge not in merges:
                merges.append(merge)
            cur += part
            add(cur)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    return folder


def _preset(preset: str) -> dict[str, Any]:
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None


def random_modules(preset: str = "tiny", *, seed: int = 0, device: Optional[str] = None,
                   vocab_size: int = 0) -> dict[str, Any]:
    """Seeded random ``unet``, ``vae`` and ``text_encoder`` of a preset, in float32.

    Args:
        preset: ``"tiny"`` or ``"sd15"``.
        seed: torch seed for the initialisation.
        device: where to build them (``"cuda"`` initialises the SD1.5 UNet much faster).
        vocab_size: text-encoder vocabulary (0: 128 for ``tiny``, enough for the tiny
            tokenizer; CLIP's 49408 for ``sd15``).

    Returns:
        ``{"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}``.
    """
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from morphlab.generators.arc2face import _diffusers

    d = _diffusers()
    p = _preset(preset)
    if not vocab_size:
        vocab_size = 49408 if preset == "sd15" else 128
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        **p["text"],
    )
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        unet = d.UNet2DConditionModel(**p["unet"])
        vae = d.AutoencoderKL(**p["vae"])
        text_encoder = CLIPTextModel(text_config)
    return {"unet": unet.eval(), "vae": vae.eval(), "text_encoder": text_encoder.eval()}


def random_controlnet(unet, preset: str = "tiny", *, seed: int = 0, scale: float = 0.5):
    """A seeded random ControlNet for ``unet`` (Arc2Face's ControlNet has the UNet's shape).

    Built with ``diffusers.ControlNetModel.from_unet`` (the encoder copies the UNet's
    weights, the conditioning embedding gets :data:`PRESETS` ``controlnet_cond_channels``),
    then the zero-initialised output convolutions get random weights of std ``scale`` so
    the pose map really changes the images.
    """
    import torch

    from morphlab.generators.arc2face import _diffusers

    d = _diffusers()
    p = _preset(preset)
    cnet = d.ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=tuple(p["controlnet_cond_channels"]))
    gen = torch.Generator("cpu").manual_seed(seed + 1)
    zero_convs = [*cnet.controlnet_down_blocks, cnet.controlnet_mid_block,
                  cnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for conv in zero_convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * scale)
    return cnet.eval()


def write_random_release(
    root: str | Path,
    preset: str = "tiny",
    *,
    seed: int = 0,
    base: Optional[str | Path] = None,
    dtype: str = "float32",
    device: Optional[str] = None,
    controlnet: bool = False,
) -> Path:
    """Write seeded random weights in the Arc2Face release layout.

    ``root`` receives ``arc2face/`` (UNet ``config.json`` +
    ``diffusion_pytorch_model.safetensors``), ``encoder/`` (``config.json`` +
    ``pytorch_model.bin`` with ``text_model.*`` keys, as the release's) and
    ``arcface.onnx`` (and, with ``controlnet``, ``controlnet/``); ``base`` (default: ``root`` too) receives the Stable Diffusion 1.5
    components ``vae/``, ``tokenizer/`` and ``scheduler/``.

    Args:
        root: the weights folder to create.
        preset: ``"tiny"`` or ``"sd15"`` (see :data:`PRESETS`).
        seed: seed of every random weight.
        base: separate folder for the SD1.5 components.
        dtype: ``"float32"`` or ``"float16"`` for the saved UNet/VAE/encoder weights.
        device: where to initialise the modules (see :func:`random_modules`).
        controlnet: also write ``controlnet/`` (config + safetensors; a
            :func:`random_controlnet` of the UNet), for ``pose`` other than ``none``.

    Returns:
        ``root``.
    """
    import torch

    from morphlab.recognition.testing import make_tiny_fr_onnx

    root = Path(root)
    base = Path(base) if base is not None else root
    p = _preset(preset)
    tok_dir = write_tokenizer(base / "tokenizer")
    vocab = 0 if preset == "sd15" else len(json.loads((tok_dir / "vocab.json").read_text()))
    mods = random_modules(preset, seed=seed, device=device, vocab_size=vocab)
    if controlnet:
        mods["controlnet"] = random_controlnet(mods["unet"], preset, seed=seed)
    if dtype != "float32":
        for m in mods.values():
            m.to(getattr(torch, dtype))
    if controlnet:
        mods["controlnet"].save_pretrained(root / "controlnet", safe_serialization=True)
    mods["unet"].save_pretrained(root / "arc2face", safe_serialization=True)
    mods["vae"].save_pretrained(base / "vae", safe_serialization=True)
    enc = mods["text_encoder"]
    (root / "encoder").mkdir(parents=True, exist_ok=True)
    enc.config.save_pretrained(root / "encoder")
    cfg_path = root / "encoder" / "config.json"  # as the release's: saved from a wrapper class
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(architectures=["CLIPTextModelWrapper"], transformers_version="4.34.1")
    cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    state = {f"text_model.{k}": v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}
    torch.save(state, root / "encoder" / "pytorch_model.bin")
    (base / "scheduler").mkdir(parents=True, exist_ok=True)
    (base / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(SD15_SCHEDULER_CONFIG, indent=2), encoding="utf-8"
    )
    make_tiny_fr_onnx(root / "arcface.onnx", embedding_dim=p["arcface_dim"], seed=seed)
    return root
