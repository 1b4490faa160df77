"""The ``arc2face`` generator: contributors' ArcFace embeddings → morph images."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from morphlab.face.base import FaceError, FaceBackend, create_backend
from morphlab.face.segmentation import parse_colour, replace_background
from morphlab.generators.arc2face._deps import _torch
from morphlab.generators.arc2face.identity import DEFAULT_MODE, MODES, morph_prompt_embeds
from morphlab.generators.arc2face.layout import (
    _LCM,
    CONTROLNET_LAYOUT,
    LAYOUT,
    PathLike,
    check_weights,
    layout_listing,
    weights_error,
    weights_sha256,
)
from morphlab.generators.arc2face.pipeline import (
    load_pipeline,
    negative_prompt_embeds,
    optimize_pipeline,
    render,
    resolve_device_dtype,
)
from morphlab.generators.arc2face.pose import (
    REFERENCE_CONVENTION,
    PoseMap,
    PoseSource,
    create_pose_source,
    pose_source_name,
)
from morphlab.generators.base import GENERATORS, Contributor, Generator, MorphOutput
from morphlab.io import ImageError, read_image, sha256_file

log = logging.getLogger(__name__)

#: Smallest input image side accepted (the ArcFace crop is 112 px).
MIN_SIDE = 64
#: The one output tag of this generator.
TAG = "morph"
#: ``seed_mode`` values: ``pair`` (default; each pair's own seed, CPU generator) or
#: ``reference`` (:data:`REFERENCE_SEED` for every pair, generator on the pipeline's
#: device, as ``morph_multiple.py``).
SEED_MODES = ("pair", "reference")
#: The seed ``morph_multiple.py`` uses for every pair (its ``--seed`` default).
REFERENCE_SEED = 23
#: Guidance scale by scheduler: the reference's 3.0 with DPM-Solver++, Arc2Face's
#: README's 1.0 (no classifier-free guidance) with the LCM-LoRA.
DEFAULT_GUIDANCE = {"dpm-solver++-multistep": 3.0, "lcm": 1.0}
#: What ``pose=none`` means, as the manifest says it.
NO_POSE_NOTE = ("no ControlNet (pose=none): pose, expression and framing come from "
                "Arc2Face's prior, unlike the reference")


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
        steps, guidance, size: sampler steps (25), guidance scale (default 3.0, or 1.0
            with ``lcm_lora`` as Arc2Face's README; an explicit value wins), side (512).
        pose: pose conditioning (see :mod:`morphlab.generators.arc2face.pose`): ``none``
            (default; no ControlNet, morphlab's earlier behaviour), ``file`` (normal maps
            from ``pose_dir``; Arc2Face's ControlNet, ``DIR/controlnet/``), a registered
            source name or a callable ``(a, b) -> PoseMap``.
        pose_dir: the folder of normal maps for ``pose=file``.
        background: ``R,G,B`` — replace each kept morph's background with this uniform
            colour (:mod:`morphlab.face.segmentation`, the same code as the
            ``background`` post-processing operator, so bona fide images can get the
            same treatment); default: keep the model's background.
        seed_mode: ``pair`` (default: each pair's own seed from the run seed and pair id,
            CPU generators, so images do not depend on batching or device) or
            ``reference`` (seed 23 for every pair, generator on the pipeline's device,
            as ``morph_multiple.py``; on CUDA the noise is then the reference's).
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
        guidance: Optional[float] = None,
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
        pose: Union[str, PoseSource, None] = "none",
        pose_dir: Optional[PathLike] = None,
        seed_mode: str = "pair",
        background: Optional[str] = None,
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
        self.scheduler = "lcm" if self.lcm_lora else "dpm-solver++-multistep"
        self.guidance = (DEFAULT_GUIDANCE[self.scheduler] if guidance in (None, "")
                         else float(guidance))
        #: uniform background colour (R,G,B) put behind every kept morph, as Arc2Morph
        #: removes backgrounds; None keeps the model's own background
        self.background = (None if background in (None, "", "none")
                           else ",".join(map(str, parse_colour(background, "background"))))
        self.seed_mode = str(seed_mode).strip().lower()
        if self.seed_mode not in SEED_MODES:
            raise ValueError(f"unknown seed_mode {seed_mode!r}; choose one of {', '.join(SEED_MODES)}")
        self.pose = pose_source_name(pose if pose not in ("", None) else "none")
        self.pose_dir = _opt_path(pose_dir)
        if self.pose_dir is not None and self.pose == "none":
            raise ValueError("pose_dir is set but pose=none; use pose=file to condition on its maps")
        options = {"pose_dir": self.pose_dir} if self.pose_dir is not None or self.pose == "file" else {}
        self._pose_source = create_pose_source(pose if pose not in ("", None) else "none", **options)
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
        self._paths = check_weights(self.weights, self.base,  # fail before any work
                                    controlnet=self._pose_source is not None)
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
            for f in LAYOUT + (CONTROLNET_LAYOUT if self._pose_source is not None else ()):
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
            "scheduler": self.scheduler,
            "pose": self.pose,
            "pose_dir": str(self.pose_dir) if self.pose_dir else None,
            "seed_mode": self.seed_mode,
            "background": self.background,
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
                                 lcm_lora=self.lcm_lora, controlnet=self._pose_source is not None)
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

    @property
    def arcface_sha256(self) -> str:
        """sha256 of ``arcface.onnx``, the model that conditions every morph (cached)."""
        return weights_sha256(self._paths["arcface"])

    def selection_models(self) -> dict[str, Optional[str]]:
        """``{system name: sha256 of its model file or None}`` of the system that selects
        among candidates (``{"arcface": …}`` by default: the conditioning model itself)."""
        scorer, _ = self._scoring()
        if scorer is self._arcface:
            return {"arcface": self.arcface_sha256}
        path = getattr(scorer, "model_path", None)
        digest = weights_sha256(path) if path is not None and Path(path).is_file() else None
        return {str(scorer.name): digest}

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

    def render_seed(self, seed: int) -> int:
        """The seed a pair's first candidate is rendered with: its own (``seed_mode=pair``)
        or :data:`REFERENCE_SEED` (``seed_mode=reference``)."""
        return REFERENCE_SEED if self.seed_mode == "reference" else int(seed)

    @property
    def generator_device(self) -> str:
        """Where the seeded noise generators live: the CPU, or the pipeline's device
        with ``seed_mode=reference``."""
        return self.device if self.seed_mode == "reference" else "cpu"

    def pose_map(self, a: Contributor, b: Contributor) -> Optional[PoseMap]:
        """The pair's pose map from the pose source (``None`` for ``pose=none``); the
        record gets the map's ``sha256`` (of its file, else of its pixels)."""
        if self._pose_source is None:
            return None
        pm = self._pose_source(a, b)
        if not isinstance(pm, PoseMap):
            raise TypeError(f"pose source {self.pose!r} returned {type(pm).__name__}, not a PoseMap")
        img = np.asarray(pm.image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ImageError(f"pose source {self.pose!r}: map for {a.subject_id}/{b.subject_id} must "
                             f"be (H, W, 3) uint8, got {img.shape} {img.dtype}")
        rec = {"source": self.pose, **pm.record, "convention": REFERENCE_CONVENTION}
        rec.setdefault("sha256", hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest())
        return PoseMap(img, rec)

    def render_morphs(self, arc_a: np.ndarray, arc_b: np.ndarray, seeds: Sequence[int],
                      control: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
        """Render the morphs of a batch of pairs, all candidates in one pipeline call.

        Args:
            arc_a, arc_b: ``(N, D)`` ArcFace embeddings of subjects A and B.
            seeds: N pair seeds; each pair gets :func:`candidate_seeds` of
                :meth:`render_seed` of its seed.
            control: N pose maps (RGB uint8) when ``pose`` is not ``none``.

        Returns:
            ``(N, candidates, size, size, 3)`` RGB uint8.
        """
        torch = _torch()
        pipe = self.pipe
        embeds = morph_prompt_embeds(pipe.text_encoder, pipe.tokenizer, arc_a, arc_b, self.t, self.mode)
        k = self.candidates
        embeds = embeds.repeat_interleave(k, dim=0) if k > 1 else embeds
        all_seeds = [s for seed in seeds for s in candidate_seeds(self.render_seed(seed), k)]
        if control is not None:
            control = [m for m in control for _ in range(k)]
        with torch.inference_mode():
            images = render(pipe, embeds, all_seeds, steps=self.steps, guidance=self.guidance,
                            size=self.size, negative=self._negative, control=control,
                            generator_device=self.generator_device)
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
        valid, poses = [], {}
        for i, (a, b, _) in enumerate(jobs):
            bad = [arc[Path(c.path)] for c in (a, b) if isinstance(arc[Path(c.path)], Exception)]
            if not bad:
                try:
                    poses[i] = self.pose_map(a, b)
                except (ValueError, OSError) as exc:  # a missing or unreadable map
                    bad = [exc]
            if bad:
                results[i] = bad[0]
            else:
                valid.append(i)
        if not valid:
            return results
        arc_a = np.stack([arc[Path(jobs[i][0].path)] for i in valid])
        arc_b = np.stack([arc[Path(jobs[i][1].path)] for i in valid])
        seeds = [int(jobs[i][2]) for i in valid]
        control = None if self._pose_source is None else [poses[i].image for i in valid]
        images = self.render_morphs(arc_a, arc_b, seeds, control)
        conditioning = {"arcface": self.arcface_sha256}
        for row, i in enumerate(valid):
            a, b, seed = jobs[i]
            cand_seeds = candidate_seeds(self.render_seed(seed), self.candidates)
            extra: dict[str, Any] = {
                "arcface_sim_ab": float(np.dot(arc_a[row], arc_b[row])),
                "model": "Arc2Face (SD1.5)" + ("" if self._pose_source is None else " + ControlNet"),
                "conditioning_models": dict(conditioning),
                "seed_mode": self.seed_mode,
                "generator_device": self.generator_device,
                "pose": ({"source": "none", "note": NO_POSE_NOTE} if poses[i] is None
                         else poses[i].record),
            }
            chosen = 0
            if self.candidates > 1:
                sim_a, sim_b = self._score(images[row], [Path(a.path), Path(b.path)],
                                           np.stack([arc_a[row], arc_b[row]]))
                chosen = select_candidate(sim_a, sim_b)
                scorer, _ = self._scoring()
                extra["selection_models"] = self.selection_models()
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
            image = images[row, chosen]
            if self.background is not None:
                image, notes = replace_background(image, parse_colour(self.background))
                extra["background"] = {"source": "mediapipe selfie segmentation (general)",
                                       **notes}
            results[i] = [MorphOutput(
                image=image,
                tag=TAG,
                params={"candidate": chosen, "candidate_seed": cand_seeds[chosen]},
                extra=extra,
            )]
        return results
