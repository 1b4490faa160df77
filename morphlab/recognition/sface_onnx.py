"""``sface-onnx``: OpenCV's SFace recogniser (``cv2.FaceRecognizerSF``) from a local ONNX file.

The model is OpenCV Zoo's ``face_recognition_sface_2021dec.onnx`` (Zhong et al., "SFace:
Sigmoid-constrained hypersphere loss for robust face recognition", IEEE TIP 2021), input
``(1, 3, 112, 112)`` (an aligned BGR crop; OpenCV swaps to RGB inside ``feature``), output
``(1, 128)``. morphlab never downloads weights: get the file from
https://github.com/opencv/opencv_zoo/tree/main/models/face_recognition_sface and pass its
path (``--fr sface-onnx=/models/face_recognition_sface_2021dec.onnx``).

Alignment: OpenCV's ``FaceRecognizerSF.alignCrop`` maps YuNet's five points onto
insightface's ArcFace template with a similarity transform; we do the same with
:func:`morphlab.face.align.similarity_align` (same template, same 112 px crop) from the
five points of any landmark scheme, so no YuNet detection is needed.

Score: cosine similarity (``FaceRecognizerSF.match`` with ``FR_COSINE``); OpenCV publishes
the threshold 0.363 (:attr:`SFaceONNX.default_threshold`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from morphlab.face.base import Face
from morphlab.io import sha256_file
from morphlab.recognition.base import RECOGNITION, RecognitionSystem

log = logging.getLogger(__name__)

_WHERE = (
    "sface-onnx takes OpenCV's SFace face recognition model in ONNX format: input "
    "(1, 3, 112, 112) (an aligned face crop), output (1, 128) features. It comes from the "
    "OpenCV Zoo (https://github.com/opencv/opencv_zoo/tree/main/models/face_recognition_sface, "
    "face_recognition_sface_2021dec.onnx). morphlab never downloads weights: download it "
    "yourself and pass the path, e.g. --fr sface-onnx=/models/face_recognition_sface_2021dec.onnx"
)


@RECOGNITION.register("sface-onnx")
class SFaceONNX(RecognitionSystem):
    """OpenCV SFace from a local ONNX path, run by OpenCV's DNN module.

    Args:
        model_path: the ``.onnx`` file (required).

    Raises:
        FileNotFoundError: the model file does not exist.
        ValueError: OpenCV cannot load the model or it does not map a 112×112 crop to a
            feature vector.
    """

    name = "sface-onnx"
    default_threshold = 0.363
    score_description = "cosine similarity of SFace's 128-d features (OpenCV threshold 0.363)"

    def __init__(self, model_path: Optional[str | Path] = None) -> None:
        if model_path is None:
            raise ValueError(f"sface-onnx needs model_path. {_WHERE}")
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: SFace ONNX model not found. {_WHERE}")
        self.version = sha256_file(self.model_path)[:16]
        self._rec = None
        self._load()  # fail now, before any work, if the model is unusable

    def _load(self):
        if self._rec is not None:
            return self._rec
        try:
            rec = cv2.FaceRecognizerSF.create(str(self.model_path), "")
            out = np.asarray(rec.feature(np.zeros((112, 112, 3), np.uint8)))
        except cv2.error as exc:
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            raise ValueError(
                f"{self.model_path}: OpenCV cannot run this model on a 112x112 crop ({msg}). "
                f"{_WHERE}"
            ) from None
        if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 2:
            raise ValueError(
                f"{self.model_path}: model output has shape {out.shape}, expected (1, 128). "
                f"{_WHERE}"
            )
        self.embedding_dim = int(out.shape[1])
        self._rec = rec
        return rec

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_rec"] = None
        return state

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 112×112 RGB uint8 crop aligned like ``FaceRecognizerSF.alignCrop``."""
        from morphlab.face.align import similarity_align
        from morphlab.face.schemes import five_points

        crop, _ = similarity_align(image, five_points(face), size=112)
        return crop

    def embed_aligned(self, crop: np.ndarray) -> np.ndarray:
        """Feature of one aligned ``(112, 112, 3)`` RGB uint8 crop, ``(128,)`` float32."""
        bgr = np.ascontiguousarray(crop[:, :, ::-1])
        return np.asarray(self._load().feature(bgr), dtype=np.float32).reshape(-1)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_aligned(self.align(image, face))
