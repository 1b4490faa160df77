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
        if len(images) != len(faces):
            raise ValueError(f"embed_batch: {len(images)} images but {len(faces)} faces")
        if not len(images):
            raise ValueError("embed_batch: no faces given")
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


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (D,) or (N, D), got shape {x.shape}")
    return x


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
