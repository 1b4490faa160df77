"""Assembling the diffusers pipeline from the release and rendering images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from morphlab.generators.arc2face._deps import _diffusers, _torch
from morphlab.generators.arc2face.identity import id_token_id
from morphlab.generators.arc2face.layout import _LCM, PathLike, check_weights, weights_error



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
                      lcm_lora: Optional[PathLike] = None, controlnet=None):
    """Compose diffusers' ``StableDiffusionPipeline`` from Arc2Face's components.

    With ``controlnet`` (a ``diffusers.ControlNetModel``, Arc2Face's pose ControlNet) the
    pipeline is a ``StableDiffusionControlNetPipeline`` of the same components, as
    ``morph_multiple.py`` builds it; :func:`render` then needs one control image per row.
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
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                 requires_safety_checker=False)
    if controlnet is None:
        pipe = d.StableDiffusionPipeline(**parts)
    else:
        pipe = d.StableDiffusionControlNetPipeline(controlnet=controlnet, **parts)
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
                  dtype: str = "auto", lcm_lora: Optional[PathLike] = None,
                  controlnet: bool = False):
    """Load the Arc2Face release from local folders and assemble the pipeline.

    Args:
        weights: the Arc2Face folder (see the module docstring for the layout).
        base: the SD1.5 components folder (default: ``weights``).
        device, dtype: see :func:`resolve_device_dtype`.
        lcm_lora: optional LCM-LoRA file or folder.
        controlnet: load Arc2Face's ControlNet (``DIR/controlnet/``) and assemble a
            ``StableDiffusionControlNetPipeline`` (pose conditioning).

    Returns:
        ``diffusers.StableDiffusionPipeline`` (or ``StableDiffusionControlNetPipeline``)
        on ``device``.

    Raises:
        Arc2FaceWeightsError: a file is missing, malformed or does not load.
    """
    paths = check_weights(weights, base, controlnet=controlnet)
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
            raise weights_error(weights, base, {key: f"MALFORMED: {type(exc).__name__}: {msg}"},
                                controlnet=controlnet) from None

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
    cnet = None
    if controlnet:
        cnet = attempt("controlnet", lambda: d.ControlNetModel.from_pretrained(
            str(paths["controlnet"].parent), torch_dtype=tdtype, local_files_only=True,
            use_safetensors=True))
    pipe = assemble_pipeline(unet, vae, text_encoder, tokenizer, sched_cfg, lcm_lora=lcm_lora,
                             controlnet=cnet)
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
        if getattr(pipe, "controlnet", None) is not None:
            pipe.controlnet.to(memory_format=torch.channels_last)
    if fuse_qkv:
        pipe.fuse_qkv_projections()
    if compile:
        mode = None if compile is True or compile == "default" else str(compile)
        pipe.unet.compile(mode=mode)
        if getattr(pipe, "controlnet", None) is not None:
            pipe.controlnet.compile(mode=mode)
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


def control_images(maps: Sequence[np.ndarray]) -> list:
    """Pose maps as the ControlNet pipeline's ``image`` input: a list of RGB PIL images.

    The reference passes its EMOCA map as a PIL image; handing PIL images on keeps
    diffusers' own control-image preprocessing (resize to the output size with its
    default Lanczos resampling, scale to [0, 1]) exactly as there.

    Args:
        maps: N RGB uint8 ``(H, W, 3)`` normal maps, any size.
    """
    from PIL import Image

    out = []
    for m in maps:
        m = np.asarray(m)
        if m.dtype != np.uint8 or m.ndim != 3 or m.shape[2] != 3:
            raise ValueError(f"pose map must be (H, W, 3) uint8, got {m.shape} {m.dtype}")
        out.append(Image.fromarray(np.ascontiguousarray(m)))  # (H, W, 3) uint8 → RGB
    return out


def render(pipe, prompt_embeds, seeds: Sequence[int], *, steps: int = 25,
           guidance: float = 3.0, size: int = 512, negative=None, control=None,
           generator_device: str = "cpu") -> np.ndarray:
    """Sample one image per row of ``prompt_embeds``, in one pipeline call.

    Each image's initial noise comes from its own ``torch.Generator`` seeded with its
    seed, on ``generator_device`` (default the CPU, so an image depends on its seed, not
    on its batch or device's RNG; the reference seeds a generator on the pipeline's
    device, reproduced with ``generator_device=pipe.device``).

    Args:
        pipe: the assembled pipeline.
        prompt_embeds: ``(N, 77, hidden)``.
        seeds: N seeds.
        steps, guidance, size: sampler steps, guidance scale, output side (multiple of 8).
        negative: ``(1, 77, hidden)`` negative embedding (default: the empty prompt's).
        control: with a ControlNet pipeline, the N pose maps (RGB uint8 ``(H, W, 3)``
            arrays, see :func:`control_images`); required there, refused otherwise.
        generator_device: where the seeded generators live.

    Returns:
        ``(N, size, size, 3)`` RGB uint8.
    """
    torch = _torch()
    n = len(prompt_embeds)
    if len(seeds) != n:
        raise ValueError(f"render: {n} embeddings but {len(seeds)} seeds")
    has_cnet = getattr(pipe, "controlnet", None) is not None
    extra = {}
    if has_cnet:
        if control is None or len(control) != n:
            raise ValueError(f"render: the ControlNet pipeline needs {n} pose maps, got "
                             f"{'none' if control is None else len(control)}")
        extra["image"] = control_images(control)
    elif control is not None:
        raise ValueError("render: pose maps given but the pipeline has no ControlNet")
    if negative is None:
        negative = negative_prompt_embeds(pipe)
    dtype = pipe.unet.dtype
    gens = [torch.Generator(str(generator_device)).manual_seed(int(s)) for s in seeds]
    with torch.no_grad():
        out = pipe(
            prompt_embeds=prompt_embeds.to(pipe.device, dtype),
            negative_prompt_embeds=negative.to(pipe.device, dtype).expand(n, -1, -1),
            num_inference_steps=int(steps), guidance_scale=float(guidance),
            height=int(size), width=int(size), generator=gens, output_type="np", **extra,
        ).images
    out = np.nan_to_num(np.asarray(out, dtype=np.float32))
    return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)
