"""``arcface-onnx``: any insightface-family ArcFace model in ONNX format, run with onnxruntime.

Models of this family (insightface model zoo): ``w600k_r50.onnx`` of the ``buffalo_l``
pack, ``glintr100.onnx`` of ``antelopev2``, and other ArcFace/CosFace exports that take
``(N, 3, 112, 112)`` float32 and return ``(N, 512)`` embeddings. morphlab never downloads
weights: fetch the model pack yourself and pass the ``.onnx`` path
(``--fr arcface-onnx=/models/w600k_r50.onnx``).

Alignment and preprocessing follow insightface exactly: the five points (eye centres,
nose tip, mouth corners; :func:`morphlab.face.schemes.five_points`) are mapped to
insightface's ``arcface_dst`` template by a similarity transform
(:func:`morphlab.face.align.similarity_align`), giving a 112×112 RGB crop; pixels are
normalised as ``(x - 127.5) / 127.5`` and laid out NCHW in RGB order (insightface reads
BGR with OpenCV and swaps to RGB in ``blobFromImages``). Old MXNet-converted models that
normalise inside the graph (their first nodes are ``Sub``/``Mul``) get mean 0, std 1, as
insightface does.

Score: cosine similarity of the L2-normalised embeddings. No threshold is published for
these models (it depends on the model and the data), so calibrate one at a target FMR.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from morphlab.face.base import Face
from morphlab.io import sha256_file
from morphlab.recognition.base import RECOGNITION, RecognitionSystem, check_batch

log = logging.getLogger(__name__)

INPUT_SIZE = 112

_WHERE = (
    "arcface-onnx takes an insightface-family ArcFace recognition model in ONNX format: "
    "input (N, 3, 112, 112) float32 (RGB, (x - 127.5) / 127.5), output (N, 512) embeddings. "
    "Such models come from the insightface model zoo "
    "(https://github.com/deepinsight/insightface/tree/master/model_zoo), e.g. "
    "w600k_r50.onnx in the buffalo_l pack or glintr100.onnx in antelopev2. morphlab never "
    "downloads weights: download the pack yourself and pass the path, "
    "e.g. --fr arcface-onnx=/models/buffalo_l/w600k_r50.onnx"
)


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "arcface-onnx needs onnxruntime: pip install 'morphlab[onnx]'"
        ) from None
    return onnxruntime


def _graph_normalises(path: Path) -> bool:
    """True for MXNet-converted models whose first nodes subtract and multiply (insightface rule)."""
    try:
        import onnx
    except ImportError:
        return False
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # unreadable graph: onnxruntime reports it properly later
        return False
    names = [n.name for n in graph.node[:8]]
    find_sub = any(n.startswith("Sub") or n.startswith("_minus") for n in names)
    find_mul = any(n.startswith("Mul") or n.startswith("_mul") for n in names)
    return find_sub and find_mul


def _dim_ok(dim, want: int) -> bool:
    """A fixed dim must equal ``want``; symbolic/unknown dims (str or None) are accepted."""
    return not isinstance(dim, int) or dim in (want, -1)


@RECOGNITION.register("arcface-onnx")
class ArcFaceONNX(RecognitionSystem):
    """ArcFace-family ONNX model from a local path.

    Args:
        model_path: the ``.onnx`` file (required).
        input_mean, input_std: pixel normalisation ``(x - mean) / std``; ``None`` (default)
            follows insightface: 127.5/127.5, or 0/1 for MXNet-converted graphs that
            normalise internally.
        threads: onnxruntime intra-op threads (0 = onnxruntime's choice).
        providers: onnxruntime execution providers (default CPU only).
        batch_size: faces per model call in :meth:`embed_aligned`.

    Raises:
        FileNotFoundError: the model file does not exist (the message says what model is
            expected and where such models come from).
        ValueError: the model's input or output has the wrong shape.
    """

    name = "arcface-onnx"
    score_description = "cosine similarity of the L2-normalised 512-d ArcFace embeddings"

    def __init__(
        self,
        model_path: Optional[str | Path] = None,
        *,
        input_mean: Optional[float] = None,
        input_std: Optional[float] = None,
        threads: int = 0,
        providers: Optional[Sequence[str]] = None,
        batch_size: int = 32,
    ) -> None:
        if model_path is None:
            raise ValueError(f"arcface-onnx needs model_path. {_WHERE}")
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: ArcFace ONNX model not found. {_WHERE}")
        if (input_mean is None) != (input_std is None):
            raise ValueError("give both input_mean and input_std, or neither")
        if input_mean is None:
            in_graph = _graph_normalises(self.model_path)
            input_mean, input_std = (0.0, 1.0) if in_graph else (127.5, 127.5)
        if not input_std:
            raise ValueError("input_std must be non-zero")
        self.input_mean = float(input_mean)
        self.input_std = float(input_std)
        self.threads = int(threads)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.batch_size = max(1, int(batch_size))
        digest = sha256_file(self.model_path)[:16]
        self.version = f"{digest}-n{self.input_mean:g}_{self.input_std:g}"
        self._sess = None
        self._load()  # validate now: a wrong model should fail before any work is done

    # -- model ------------------------------------------------------------------------
    def _load(self):
        if self._sess is not None:
            return self._sess
        ort = _import_onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(self.model_path), opts, providers=self.providers)
        except Exception as exc:
            raise ValueError(
                f"{self.model_path}: onnxruntime cannot load this model "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). {_WHERE}"
            ) from None
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        if len(inputs) != 1:
            raise ValueError(
                f"{self.model_path}: model has {len(inputs)} inputs, expected 1. {_WHERE}"
            )
        shape = list(inputs[0].shape)
        if len(shape) != 4 or not all(_dim_ok(d, w) for d, w in zip(shape[1:], (3, 112, 112))):
            raise ValueError(
                f"{self.model_path}: model input {inputs[0].name!r} has shape {shape}, "
                f"expected (N, 3, 112, 112). {_WHERE}"
            )
        if inputs[0].type != "tensor(float)":
            raise ValueError(
                f"{self.model_path}: model input is {inputs[0].type}, expected float32. {_WHERE}"
            )
        out_shape = list(outputs[0].shape)
        if len(out_shape) != 2:
            raise ValueError(
                f"{self.model_path}: model output {outputs[0].name!r} has shape {out_shape}, "
                f"expected (N, 512). {_WHERE}"
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.embedding_dim = out_shape[1] if isinstance(out_shape[1], int) else None
        self._sess = sess
        return sess

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_sess"] = None  # onnxruntime sessions do not pickle; reload in the worker
        return state

    # -- embedding --------------------------------------------------------------------
    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """``(N, 112, 112, 3)`` RGB uint8 crops → ``(N, 3, 112, 112)`` float32 model input."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(
                f"embed_aligned expects (N, 112, 112, 3) RGB uint8 crops, got {crops.shape}"
            )
        x = (crops.astype(np.float32) - self.input_mean) / self.input_std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings of already aligned faces.

        Args:
            crops: ``(N, 112, 112, 3)`` RGB uint8, aligned to insightface's template
                (e.g. by :meth:`align`).

        Returns:
            ``(N, D)`` float32, each row L2-normalised (D = 512 for insightface models).
        """
        x = self.preprocess(crops)
        sess = self._load()
        step = self._fixed_batch or self.batch_size
        if self._fixed_batch is not None and len(x) % step:
            raise ValueError(
                f"{self.model_path}: model has a fixed batch of {step}; give a multiple of it"
            )
        out = [
            sess.run([self._output_name], {self._input_name: x[i : i + step]})[0]
            for i in range(0, len(x), step)
        ]
        emb = np.concatenate(out).astype(np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(x):
            raise ValueError(
                f"{self.model_path}: model returned shape {emb.shape} for {len(x)} faces, "
                f"expected ({len(x)}, 512). {_WHERE}"
            )
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 112×112 RGB uint8 crop of ``face`` aligned to insightface's ArcFace template."""
        from morphlab.face.align import similarity_align
        from morphlab.face.schemes import five_points

        crop, _ = similarity_align(image, five_points(face), size=INPUT_SIZE)
        return crop

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_aligned(self.align(image, face)[None])[0]

    def embed_batch(self, images: Sequence[np.ndarray], faces: Sequence[Face]) -> np.ndarray:
        check_batch(images, faces)
        crops = np.stack([self.align(im, f) for im, f in zip(images, faces)])
        return self.embed_aligned(crops)

    def describe(self) -> dict:
        d = super().describe()
        d.update(model_path=str(self.model_path), input_mean=self.input_mean,
                 input_std=self.input_std)
        return d
