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

Package layout (module and function names are stable; tests and benchmarks import them)
------------------------------------------------------------------------------------
- :mod:`.layout` — the release layout and its checks: :data:`LAYOUT` (:class:`WeightFile`
  entries), :func:`check_weights`, :func:`layout_listing`, :func:`weights_error`,
  :class:`Arc2FaceWeightsError`, :func:`weights_sha256` (cached digests).
- :mod:`.identity` — the identity projection and interpolation: :data:`PROMPT`,
  :data:`MODES`, :func:`id_token_id`, :func:`project_face_embs`, :func:`lerp`,
  :func:`slerp`, :func:`interpolate`, :func:`morph_prompt_embeds`.
- :mod:`.pipeline` — pipeline assembly and rendering: :func:`resolve_device_dtype`,
  :func:`assemble_pipeline`, :func:`load_pipeline`, :func:`optimize_pipeline`,
  :func:`negative_prompt_embeds`, :func:`render`.
- :mod:`.generator` — :class:`Arc2FaceGenerator` (registered as ``arc2face``),
  :func:`candidate_seeds`, :func:`select_candidate`.
- :mod:`._deps` — the lazy torch / diffusers imports.

Every public name is re-exported here: ``from morphlab.generators import arc2face as A``
then ``A.render``, ``A.LAYOUT``… as before the split.
"""

from __future__ import annotations

from morphlab.generators.arc2face._deps import _diffusers, _torch  # noqa: F401  (arc2face_testing, benchmarks)
from morphlab.generators.arc2face.generator import (
    MIN_SIDE,
    TAG,
    Arc2FaceGenerator,
    candidate_seeds,
    select_candidate,
)
from morphlab.generators.arc2face.identity import (
    DEFAULT_MODE,
    DOT_THRESHOLD,
    ID_WORD,
    MODES,
    PROMPT,
    id_token_id,
    interpolate,
    lerp,
    morph_prompt_embeds,
    project_face_embs,
    slerp,
)
from morphlab.generators.arc2face.layout import (
    LAYOUT,
    Arc2FaceWeightsError,
    PathLike,
    WeightFile,
    check_weights,
    layout_listing,
    weights_error,
    weights_sha256,
)
from morphlab.generators.arc2face.pipeline import (
    assemble_pipeline,
    load_pipeline,
    negative_prompt_embeds,
    optimize_pipeline,
    render,
    resolve_device_dtype,
)

__all__ = [
    "DEFAULT_MODE", "DOT_THRESHOLD", "ID_WORD", "LAYOUT", "MIN_SIDE", "MODES", "PROMPT", "TAG",
    "Arc2FaceGenerator", "Arc2FaceWeightsError", "PathLike", "WeightFile",
    "assemble_pipeline", "candidate_seeds", "check_weights", "id_token_id", "interpolate",
    "layout_listing", "lerp", "load_pipeline", "morph_prompt_embeds", "negative_prompt_embeds",
    "optimize_pipeline", "project_face_embs", "render", "resolve_device_dtype",
    "select_candidate", "slerp", "weights_error", "weights_sha256",
]
