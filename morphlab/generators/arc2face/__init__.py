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
(the reference mixes its accomplice → criminal at 0.5, so A is its accomplice, B its
criminal). Sampling defaults follow the reference: DPM-Solver++ multistep, 25 steps,
classifier-free guidance 3.0 against the encoder's embedding of the empty prompt,
512×512; float16 on a GPU, float32 on a CPU. With ``lcm_lora`` the guidance defaults to
1.0 (no classifier-free guidance, as Arc2Face's README advises for LCM); an explicit
``guidance`` wins and the value used is in the manifest.

What differs from the reference unless asked for:

- **Pose.** The reference conditions Arc2Face's ControlNet on an EMOCA normal map. The
  default ``pose=none`` uses no ControlNet (a plain ``StableDiffusionPipeline``): pose,
  expression and framing come from the model's prior, and every manifest line says so
  (``extra.pose = {"source": "none", "note": …}``). ``pose=file`` with
  ``pose_dir=DIR`` composes a ``StableDiffusionControlNetPipeline`` with Arc2Face's
  ControlNet (``DIR/controlnet/``) and conditions each pair on a normal map from the
  folder: ``<stem of A's image>__<stem of B's image>.png`` (per pair) or
  ``<stem of A's image>.png`` (per subject A). The reference renders it with EMOCA from
  the 3-D face **shape of subject B** (its criminal) with the **pose and expression of
  subject A** (its accomplice), in **subject A's FFHQ-aligned 512² frame**; morphlab does
  not run EMOCA. Other providers plug in through
  :func:`~morphlab.generators.arc2face.pose.register_pose_source` (``pose=NAME``) or, from
  Python, a callable ``pose=fn(a, b) -> PoseMap``. The map's sha256 is recorded
  (``extra.pose.sha256``, with ``file`` and ``match``).
- **Seeds.** ``seed_mode=pair`` (default): each pair is rendered with its own seed (the
  runner's, from the run seed and pair id) on a CPU generator, so an image does not
  depend on batching or device. ``seed_mode=reference``: seed 23 for every pair on a
  generator on the pipeline's device, as ``morph_multiple.py`` (on CUDA this is the
  reference's noise). The mode and generator device go to the manifest
  (``params.seed_mode``, ``extra.seed_mode``, ``extra.generator_device``); the seed used
  is ``params.candidate_seed``.
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
      arcface.onnx                            Arc2Face's ArcFace (WebFace42M)  ~250 MB
      controlnet/config.json                  ControlNet config (pose != none)  ~2 KB
      controlnet/diffusion_pytorch_model.safetensors  ControlNet (pose != none) ~1.4 GB
    BASE/  (default DIR)                      repo stable-diffusion-v1-5/stable-diffusion-v1-5
      vae/config.json                                                          ~1 KB
      vae/diffusion_pytorch_model.safetensors (or .bin)                       ~330 MB
      tokenizer/vocab.json, merges.txt, tokenizer_config.json          ~1 MB, ~500 KB, ~1 KB
      scheduler/scheduler_config.json                                           ~1 KB

``arcface.onnx`` is the ArcFace R100 Arc2Face was trained with (WebFace42M, 512-d; its
README has it replace insightface's antelopev2 ``glintr100.onnx``, which lives in
another embedding space). A missing or malformed file raises one
:class:`Arc2FaceWeightsError` listing every expected file, its state, size class and
where it is published; the ControlNet files are listed as ``[optional]`` and checked
only when ``pose`` is not ``none``. The encoder's state
dict is read with ``torch.load(weights_only=True)`` (no code runs from the file).
Optional ``lcm_lora=PATH``: the LCM-LoRA for SD1.5 (repo latent-consistency/lcm-lora-sdv1-5,
``pytorch_lora_weights.safetensors``, ~135 MB; a folder holding it or the file); it
switches to the LCM scheduler and is fused into the UNet; use it with few steps
(e.g. ``steps=4``) — the defaults stay the reference's.

Usage::

    morphlab generate pairs.csv -g arc2face -o attacks/arc2face \\
        --param weights=/models/arc2face --param mode=encoded-slerp --param t=0.5 \\
        --param candidates=4 --param device=cuda --param batch_size=8

    # as the reference: ControlNet on your EMOCA normal maps, seed 23 for every pair
    morphlab generate pairs.csv -g arc2face -o attacks/arc2morph --weights /models/arc2face \\
        --param pose=file --param pose_dir=/data/normal_maps --param seed_mode=reference \\
        --param device=cuda

    from morphlab.generators.base import Contributor, create_generator
    gen = create_generator("arc2face", weights="/models/arc2face", device="cuda")
    [morph] = gen.generate(Contributor("A", a_path), Contributor("B", b_path), seed=1)

Provenance: :meth:`Arc2FaceGenerator.get_params` records, besides every parameter, each
weight file's size and sha256. Every manifest line also names the model that
conditioned the morph, ``extra.conditioning_models = {"arcface": sha256 of
arcface.onnx}`` (always hashed, whatever ``hash_weights``), and with ``candidates > 1``
the one that selected it, ``extra.selection_models = {system name: sha256 of its model
file or null}`` — ``map-score`` compares these with the FR systems it scores with. Hashing ~4.5 GB takes tens of seconds, so a digest is
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
  entries), :data:`CONTROLNET_LAYOUT`, :func:`check_weights` (``controlnet=True``), :func:`layout_listing`, :func:`weights_error`,
  :class:`Arc2FaceWeightsError`, :func:`weights_sha256` (cached digests).
- :mod:`.identity` — the identity projection and interpolation: :data:`PROMPT`,
  :data:`MODES`, :func:`id_token_id`, :func:`project_face_embs`, :func:`lerp`,
  :func:`slerp`, :func:`interpolate`, :func:`morph_prompt_embeds`.
- :mod:`.pipeline` — pipeline assembly and rendering: :func:`resolve_device_dtype`,
  :func:`assemble_pipeline` (``controlnet=`` for the pose pipeline),
  :func:`load_pipeline` (``controlnet=True``), :func:`optimize_pipeline`,
  :func:`negative_prompt_embeds`, :func:`control_images`, :func:`render`
  (``control=`` pose maps, ``generator_device=``).
- :mod:`.pose` — pose-map sources: :class:`PoseMap`, :class:`FilePoseSource`,
  :data:`POSE_SOURCES`, :func:`register_pose_source`, :func:`create_pose_source`,
  :data:`REFERENCE_CONVENTION`.
- :mod:`.generator` — :class:`Arc2FaceGenerator` (registered as ``arc2face``;
  :meth:`~Arc2FaceGenerator.render_morphs`, :meth:`~Arc2FaceGenerator.pose_map`,
  :meth:`~Arc2FaceGenerator.render_seed`, :attr:`~Arc2FaceGenerator.arcface_sha256`),
  :func:`candidate_seeds`, :func:`select_candidate`, :data:`SEED_MODES`,
  :data:`REFERENCE_SEED`, :data:`DEFAULT_GUIDANCE`.
- :mod:`._deps` — the lazy torch / diffusers imports.

Every public name is re-exported here: ``from morphlab.generators import arc2face as A``
then ``A.render``, ``A.LAYOUT``… as before the split.
"""

from __future__ import annotations

from morphlab.generators.arc2face._deps import _diffusers, _torch  # noqa: F401  (arc2face_testing, benchmarks)
from morphlab.generators.arc2face.generator import (
    DEFAULT_GUIDANCE,
    MIN_SIDE,
    NO_POSE_NOTE,
    REFERENCE_SEED,
    SEED_MODES,
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
    CONTROLNET_LAYOUT,
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
    control_images,
    load_pipeline,
    negative_prompt_embeds,
    optimize_pipeline,
    render,
    resolve_device_dtype,
)
from morphlab.generators.arc2face.pose import (
    POSE_SOURCES,
    REFERENCE_CONVENTION,
    FilePoseSource,
    PoseMap,
    create_pose_source,
    register_pose_source,
)

__all__ = [
    "CONTROLNET_LAYOUT", "DEFAULT_GUIDANCE", "NO_POSE_NOTE", "POSE_SOURCES",
    "REFERENCE_CONVENTION", "REFERENCE_SEED", "SEED_MODES", "FilePoseSource", "PoseMap",
    "control_images", "create_pose_source", "register_pose_source",
    "DEFAULT_MODE", "DOT_THRESHOLD", "ID_WORD", "LAYOUT", "MIN_SIDE", "MODES", "PROMPT", "TAG",
    "Arc2FaceGenerator", "Arc2FaceWeightsError", "PathLike", "WeightFile",
    "assemble_pipeline", "candidate_seeds", "check_weights", "id_token_id", "interpolate",
    "layout_listing", "lerp", "load_pipeline", "morph_prompt_embeds", "negative_prompt_embeds",
    "optimize_pipeline", "project_face_embs", "render", "resolve_device_dtype",
    "select_candidate", "slerp", "weights_error", "weights_sha256",
]
