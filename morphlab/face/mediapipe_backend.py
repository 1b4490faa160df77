"""The ``mediapipe`` face backend: MediaPipe Face Mesh (468 points, models ship with the wheel).

Landmarks are the mesh's ``x, y`` scaled to pixels (its ``z`` is dropped); scheme
``mediapipe468``, or ``mediapipe478`` with ``refine_landmarks=True`` (adds the irises).
The mesh has no face box or score of its own: the box is the landmarks' extent and the
score is 1.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from morphlab.face.base import FACE_BACKENDS, Face, FaceBackend, option_number
from morphlab.face.dlib_backend import _check_rgb


@FACE_BACKENDS.register("mediapipe")
class MediaPipeBackend(FaceBackend):
    """MediaPipe Face Mesh in static-image mode.

    Args:
        max_num_faces: most faces reported per image (default 5, so that several faces
            are noticed and the policy of :meth:`landmarks` applies).
        refine_landmarks: add the 10 iris points (478 points, scheme ``mediapipe478``).
        min_detection_confidence: face-detector threshold in [0, 1].
    """

    name = "mediapipe"
    version = "1"
    scheme = "mediapipe468"

    def __init__(self, *, max_num_faces: int = 5, refine_landmarks: bool = False,
                 min_detection_confidence: float = 0.5) -> None:
        self.max_num_faces = option_number("max_num_faces", max_num_faces, int, minimum=1)
        self.refine_landmarks = bool(refine_landmarks)
        self.min_detection_confidence = option_number(
            "min_detection_confidence", min_detection_confidence, minimum=0.0, maximum=1.0)
        self._mesh: Optional[tuple[int, Any]] = None
        self._lock = threading.Lock()
        if self.refine_landmarks:
            self.scheme = "mediapipe478"

    def cache_key(self) -> str:
        return (f"{self.name}-{self.version}-n{self.max_num_faces}-r{int(self.refine_landmarks)}"
                f"-c{self.min_detection_confidence:g}")

    def _face_mesh(self) -> Any:
        # one FaceMesh graph per instance and process (graphs do not survive a fork)
        if self._mesh is None or self._mesh[0] != os.getpid():
            try:
                from mediapipe.python.solutions import face_mesh
            except ImportError as exc:
                raise ImportError(
                    "the 'mediapipe' face backend needs mediapipe; install it with "
                    "`pip install mediapipe==0.10.21`"
                ) from exc
            mesh = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=self.max_num_faces,
                refine_landmarks=self.refine_landmarks,
                min_detection_confidence=self.min_detection_confidence,
            )
            self._mesh = (os.getpid(), mesh)
        return self._mesh[1]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_mesh"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, *, source: Optional[Path] = None) -> list[Face]:
        image = np.ascontiguousarray(_check_rgb(image, source))
        h, w = image.shape[:2]
        with self._lock:  # a FaceMesh graph is not re-entrant
            result = self._face_mesh().process(image)
        faces = []
        for lms in result.multi_face_landmarks or ():
            pts = np.array([(p.x * w, p.y * h) for p in lms.landmark], dtype=np.float64)
            box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
            faces.append(Face(box=box, landmarks=pts, scheme=self.scheme, score=1.0))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces
