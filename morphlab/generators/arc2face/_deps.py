"""Heavy imports of the arc2face generator (torch, diffusers), made on first use."""

from __future__ import annotations

import logging
import types


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
        a namespace with ``StableDiffusionPipeline``, ``StableDiffusionControlNetPipeline``,
        ``UNet2DConditionModel``, ``ControlNetModel``, ``AutoencoderKL``,
        ``DPMSolverMultistepScheduler`` and ``LCMScheduler``.
    """
    _torch()
    noisy = logging.getLogger("transformers.utils.import_utils")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        from diffusers import (
            AutoencoderKL,
            ControlNetModel,
            DPMSolverMultistepScheduler,
            LCMScheduler,
            StableDiffusionControlNetPipeline,
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
        StableDiffusionControlNetPipeline=StableDiffusionControlNetPipeline,
        ControlNetModel=ControlNetModel,
        UNet2DConditionModel=UNet2DConditionModel,
        AutoencoderKL=AutoencoderKL,
        DPMSolverMultistepScheduler=DPMSolverMultistepScheduler,
        LCMScheduler=LCMScheduler,
    )

