"""The face recognition (FR) interface: embed an aligned face, compare two embeddings.

Every system does its own alignment from the landmarks it is given (dlib's 150 px chip,
ArcFace's 112 px five-point similarity transform, …), so callers pass the whole image and
a :class:`~morphlab.face.base.Face` found by any face backend.

Score direction: :meth:`RecognitionSystem.compare` and :meth:`RecognitionSystem.similarity`
return a **similarity — higher means more likely the same person**. Systems whose native
score is a distance convert it once, here at the boundary, and document the conversion
(e.g. ``dlib-resnet``: similarity = 1 − Euclidean distance). A comparison is accepted when
``similarity >= threshold``.

Built-ins: ``dlib-resnet``, ``facenet``, ``mobilefacenet`` (the :data:`DEFAULT_SYSTEMS`),
``arcface-onnx``, ``sface-onnx``, ``lbph``; third-party systems plug in through the
``morphlab.recognition`` entry-point group.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Optional, Sequence

import numpy as np

from morphlab._registry import Registry
from morphlab.face.base import Face

log = logging.getLogger(__name__)

#: Face recognition systems; plug-ins use the ``morphlab.recognition`` entry-point group.
RECOGNITION: Registry = Registry(
    "recognition system",
    "morphlab.recognition",
    builtins=(
        "morphlab.recognition.dlib_resnet",
        "morphlab.recognition.facenet",
        "morphlab.recognition.mobilefacenet",
        "morphlab.recognition.arcface_onnx",
        "morphlab.recognition.sface_onnx",
        "morphlab.recognition.lbph",
    ),
)


#: The systems ``map-score`` uses without ``--fr`` (and the demo): every embedded deep FR
#: system that runs offline once ``morphlab models install --all`` has run. ``lbph`` stays
#: registered as a classical baseline but is not a system anyone deploys, so it is left out.
DEFAULT_SYSTEMS: tuple[str, ...] = ("dlib-resnet", "facenet", "mobilefacenet")


class RecognitionSystem(ABC):
    """A face recognition system: landmarks-aligned embedding plus a similarity.

    Subclasses set ``name``, ``version`` (changes whenever embeddings would change: the
    model file, the alignment, options), ``default_threshold`` (on the similarity scale,
    where the model's authors publish one; else ``None``) and implement :meth:`embed`
    (or :meth:`embed_batch`). ``__init__`` takes keyword options only and must stay
    cheap: load models lazily so that a system can be pickled to worker processes.

    The default :meth:`similarity` is the cosine similarity; override it for other
    metrics.
    """

    name: ClassVar[str] = ""
    version: str = "0"
    default_threshold: Optional[float] = None
    #: Human-readable statement of the score, e.g. "cosine similarity".
    score_description: ClassVar[str] = "cosine similarity of the embeddings"

    # -- embedding --------------------------------------------------------------------
    @abstractmethod
    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Embedding of one face.

        Args:
            image: RGB uint8 ``(H, W, 3)``.
            face: the face in ``image`` (landmarks in ``(x, y)`` pixels of ``image``).

        Returns:
            ``(D,)`` float32 embedding.
        """

    def embed_batch(self, images: Sequence[np.ndarray], faces: Sequence[Face]) -> np.ndarray:
        """Embeddings of several faces, ``(N, D)`` float32 (``images[i]`` holds ``faces[i]``).

        The default calls :meth:`embed` once per face; systems with a batched model
        override it.
        """
        check_batch(images, faces)
        return np.stack([self.embed(im, f) for im, f in zip(images, faces)]).astype(np.float32)

    # -- comparison -------------------------------------------------------------------
    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """All-pairs similarity of two sets of embeddings.

        Args:
            a: ``(N, D)`` embeddings.
            b: ``(M, D)`` embeddings.

        Returns:
            ``(N, M)`` float64, higher = more similar. Default: cosine similarity.
        """
        a = _as_2d(a)
        b = _as_2d(b)
        na = np.linalg.norm(a, axis=1, keepdims=True)
        nb = np.linalg.norm(b, axis=1, keepdims=True)
        return (a / np.maximum(na, 1e-12)) @ (b / np.maximum(nb, 1e-12)).T

    def compare(self, a: np.ndarray, b: np.ndarray) -> float:
        """Similarity of two ``(D,)`` embeddings (higher = more similar)."""
        return float(self.similarity(a, b)[0, 0])

    # -- identity ---------------------------------------------------------------------
    def cache_key(self) -> str:
        """Identifies this system's embeddings for the embedding cache (name + version)."""
        return f"{self.name}-{self.version}"

    def describe(self) -> dict:
        """Settings recorded in reports (name, version, threshold, score)."""
        return {
            "name": self.name,
            "version": self.version,
            "default_threshold": self.default_threshold,
            "score": self.score_description,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version}>"


class CropRecognitionSystem(RecognitionSystem):
    """A system whose network embeds square aligned crops (``facenet``, ``mobilefacenet``).

    Subclasses set :attr:`input_size` and implement :meth:`align` (one face → crop) and
    :meth:`embed_aligned` (crops → embeddings); :meth:`embed` and :meth:`embed_batch`
    chain the two.
    """

    #: Side of the square RGB crop the network takes, in pixels.
    input_size: ClassVar[int] = 0

    @abstractmethod
    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The ``(input_size, input_size, 3)`` RGB uint8 crop of ``face`` in ``image``."""

    @abstractmethod
    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings ``(N, D)`` float32 of ``(N, input_size, input_size, 3)`` RGB uint8 crops."""

    def check_crops(self, crops: np.ndarray) -> np.ndarray:
        """``crops`` as ``(N, S, S, 3)`` (a single ``(S, S, 3)`` crop gets N = 1), or a
        ``ValueError`` naming the expected shape."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        size = self.input_size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or not len(crops):
            raise ValueError(
                f"{self.name} expects (N, {size}, {size}, 3) RGB crops, got {crops.shape}"
            )
        return crops

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_aligned(self.align(image, face)[None])[0]

    def embed_batch(self, images: Sequence[np.ndarray], faces: Sequence[Face]) -> np.ndarray:
        check_batch(images, faces)
        return self.embed_aligned(np.stack([self.align(im, f) for im, f in zip(images, faces)]))


def check_batch(images: Sequence[np.ndarray], faces: Sequence[Face]) -> None:
    """``ValueError`` unless ``images`` and ``faces`` are equally long and not empty."""
    if len(images) != len(faces):
        raise ValueError(f"embed_batch: {len(images)} images but {len(faces)} faces")
    if not len(images):
        raise ValueError("embed_batch: no faces given")


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (D,) or (N, D), got shape {x.shape}")
    return x


def five_point_crop(image: np.ndarray, face: Face, size: int, *, margin: float = 0.0,
                    rotate: bool = True, border: str = "replicate") -> np.ndarray:
    """A square face crop placed by the face's five points, anti-aliased.

    The five points (:func:`morphlab.face.schemes.five_points`) go onto insightface's
    ArcFace template (:data:`morphlab.face.align.ARCFACE_TEMPLATE_112`) shrunk by
    ``1 / (1 + margin)`` about the crop centre, i.e. a crop ``1 + margin`` times as wide
    as the ArcFace crop of the same face. ``rotate=True`` is the least-squares similarity
    transform (:func:`morphlab.face.align.similarity_align`); ``rotate=False`` keeps its
    scale but no rotation, an axis-aligned box centred where the similarity puts the
    points' centroid — a detector box plus margin, as FaceNet's MTCNN pipeline crops.
    When the crop would shrink the face by more than 2×, the image is first
    area-downscaled (``cv2.INTER_AREA``) so the bilinear warp does not alias.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        face: the face (landmarks in ``(x, y)`` pixels of ``image``).
        size: side of the square crop in pixels.
        margin: extra width as a fraction of the ArcFace crop (0 = the ArcFace crop).
        rotate: similarity transform (True) or axis-aligned box (False).
        border: ``"replicate"``, ``"constant"`` (black) or ``"reflect"`` outside the image.

    Returns:
        RGB uint8 ``(size, size, 3)``.
    """
    import cv2

    from morphlab.face.align import (ARCFACE_TEMPLATE_112, estimate_similarity,
                                     similarity_align)
    from morphlab.face.schemes import five_points

    if margin < 0 or not np.isfinite(margin):
        raise ValueError(f"margin must be a finite fraction >= 0, got {margin}")
    pts = np.asarray(five_points(face), dtype=np.float64)
    template = ARCFACE_TEMPLATE_112 / (1.0 + margin) + 56.0 * margin / (1.0 + margin)
    eye_dist = float(np.linalg.norm(pts[1] - pts[0]))
    target = 0.315 * size / (1.0 + margin)  # template inter-ocular distance at this size
    factor = target * 2.0 / max(eye_dist, 1e-6)
    if factor < 1.0:
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        pts = pts * np.array([nw / w, nh / h])
    if rotate:
        crop, _ = similarity_align(image, pts, size=size, template=template, border=border)
        return crop
    dst = template * (float(size) / 112.0)
    M = estimate_similarity(pts, dst)
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    box = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
    box[:, 2] = dst.mean(axis=0) - scale * pts.mean(axis=0)
    modes = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE,
             "reflect": cv2.BORDER_REFLECT_101}
    if border not in modes:
        raise ValueError(f"border must be one of {', '.join(modes)}, got {border!r}")
    return cv2.warpAffine(np.ascontiguousarray(image), box, (int(size), int(size)),
                          flags=cv2.INTER_LINEAR, borderMode=modes[border])


def create_system(name_or_class: str | type, **params) -> RecognitionSystem:
    """Instantiate a recognition system by registered name or class.

    Unknown names raise ``KeyError`` listing the valid ones.
    """
    return RECOGNITION.create(name_or_class, **params)


def system_from_spec(spec: str) -> RecognitionSystem:
    """Build a system from a CLI spec: ``"dlib-resnet"`` or ``"arcface-onnx=/path/model.onnx"``.

    The value after ``=`` is passed as the system's ``model_path``.
    """
    from morphlab._registry import parse_spec

    name, value = parse_spec(spec)
    cls = RECOGNITION.get(name)
    if value is None:
        return cls()
    return cls(model_path=value)
