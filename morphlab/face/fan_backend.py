"""The ``face-alignment`` backend: Bulat & Tzimiropoulos' FAN (2DFAN-4), 68 points.

Uses the ``face_alignment`` package for the network's input crop and heatmap decoding,
with the 2D FAN network loaded **only from a local file**: the package's own loader
downloads the weights on first use, which fails on an offline machine (and is not
something a lab run should do silently). Face boxes come from dlib's HOG detector (the
``dlib`` backend), as with ``face_alignment``'s own ``face_detector="dlib"`` option,
so no S3FD detector weights are needed either. Scheme ``fan68`` (same indices as
``dlib68``).

Set-up: ``pip install face-alignment torch==2.13.0`` (``face-alignment`` depends on
``opencv-python``; keep only the ``opencv-contrib-python`` build that mediapipe needs),
then download the weights once, elsewhere, **as a state dict** — the network is built
from ``face_alignment.models.FAN`` and the file read with ``torch.load(weights_only=True)``
(PyTorch >= 2.6), never ``torch.jit.load``, which would run code from the file: the
state-dict release ``2DFAN4-11f355bf06.pth.tar`` of
``https://www.adrianbulat.com/downloads/python-fan/``, or one of the TorchScript builds
(``2DFAN4-cd938726ad.zip``, …) converted once on a trusted machine with
``torch.save(torch.jit.load(zip).state_dict(), "2DFAN4.pth")``. Pass the file as
``weights=`` or set ``$MORPHLAB_FAN_WEIGHTS``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from morphlab.face.base import FACE_BACKENDS, Face, FaceBackend
from morphlab.face.dlib_backend import DlibBackend, _check_rgb

#: TorchScript builds of the 2D FAN network the package publishes (convert one to a state
#: dict before use, see :func:`_weights_help`).
FAN_WEIGHT_FILES = ("2DFAN4-cd938726ad.zip", "2DFAN4_1.6-c827573f02.zip", "2DFAN4_1.5-a60332318a.zip")
FAN_WEIGHTS_URL = "https://www.adrianbulat.com/downloads/python-fan/"
#: The 2D FAN-4 weights as a plain state dict (face_alignment 1.0-1.2 loaded this file).
FAN_STATE_DICT_FILE = "2DFAN4-11f355bf06.pth.tar"
WEIGHTS_ENV = "MORPHLAB_FAN_WEIGHTS"

#: face_alignment's box-to-crop scale divisor for its detectors (``reference_scale``).
REFERENCE_SCALE = 195.0

_nets: dict[tuple[int, str, str], Any] = {}
_lock = threading.Lock()


def _weights_help() -> str:
    return (
        "the 'face-alignment' backend only loads FAN weights from a local state-dict file "
        "(.pth/.pth.tar checkpoint, .safetensors or .npz; never a TorchScript archive, whose "
        "loading runs code), because face_alignment's own loader downloads them at run time "
        "(which fails offline). "
        f"Use the state-dict release {FAN_STATE_DICT_FILE} from {FAN_WEIGHTS_URL}, or convert "
        f"one of {', '.join(FAN_WEIGHT_FILES)} once, on a machine you trust: python -c \"import "
        "torch; torch.save(torch.jit.load('2DFAN4-cd938726ad.zip').state_dict(), '2DFAN4.pth')\"; "
        f"pass its path as weights=... or set ${WEIGHTS_ENV}"
    )


@FACE_BACKENDS.register("face-alignment")
class FanBackend(FaceBackend):
    """FAN 68-point landmarks on dlib HOG face boxes.

    Args:
        weights: path of the 2D FAN-4 state-dict file (see the module docstring);
            default ``$MORPHLAB_FAN_WEIGHTS``.
        device: torch device, default ``"cpu"``.
        flip_input: also run the mirrored crop and average (slower, a little steadier).
        upsample, max_side: options of the dlib face detector
            (:class:`~morphlab.face.dlib_backend.DlibBackend`).

    Raises:
        ImportError: ``face_alignment`` or ``torch`` is not installed.
        FileNotFoundError: no weights file given, or it does not exist.
    """

    name = "face-alignment"
    version = "1"
    scheme = "fan68"

    def __init__(self, *, weights: Optional[str] = None, device: str = "cpu",
                 flip_input: bool = False, upsample: int = 1, max_side: Optional[int] = 640) -> None:
        missing = [pkg for pkg, mod in (("face-alignment", "face_alignment"), ("torch", "torch"))
                   if importlib.util.find_spec(mod) is None]
        if missing:
            raise ImportError(
                f"the 'face-alignment' face backend needs {' and '.join(missing)}; install with "
                "`pip install face-alignment torch==2.13.0` (or `pip install 'morphlab[fan]'`), "
                "then supply the FAN weights locally: " + _weights_help()
            )
        weights = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
        if weights is None:
            raise FileNotFoundError("no FAN weights given: " + _weights_help())
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: FAN weights file not found; " + _weights_help())
        self.weights = str(path.resolve())
        self.device = str(device)
        self.flip_input = bool(flip_input)
        self._detector = DlibBackend(upsample=upsample, max_side=max_side)

    def cache_key(self) -> str:
        from morphlab.io import sha256_file

        return (f"{self.name}-{self.version}-{sha256_file(self.weights)[:16]}-flip{int(self.flip_input)}"
                f"|{self._detector.cache_key()}")

    def _net(self) -> Any:
        """The 2D FAN-4 network with the weights of ``self.weights``, read as a state dict
        (:func:`morphlab.weights.read_state_dict`: no code from the file runs — a
        TorchScript archive is refused, since ``torch.jit.load`` would execute it)."""
        from morphlab.weights import read_state_dict, require_safe_torch

        torch = require_safe_torch("the 'face-alignment' backend")
        key = (os.getpid(), self.weights, self.device)
        with _lock:
            if key not in _nets:
                from face_alignment.models import FAN

                sd = read_state_dict(self.weights, what="FAN weights")
                net = FAN(4)
                try:
                    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
                except RuntimeError as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise ValueError(f"{self.weights}: not 2D FAN-4 weights ({first}); "
                                     + _weights_help()) from None
                net.eval()
                _nets[key] = net.to(self.device)
            return _nets[key]

    def detect(self, image: np.ndarray, *, source: Optional[Path] = None) -> list[Face]:
        import torch
        from face_alignment.utils import crop, flip, get_preds_fromhm

        image = np.ascontiguousarray(_check_rgb(image, source))
        net = self._net()
        faces = []
        for box, score in self._detector.boxes(image, source=source):
            # face_alignment.FaceAlignment.get_landmarks_from_image, for one box
            x0, y0, x1, y1 = box
            center = np.array([x1 - (x1 - x0) / 2.0, y1 - (y1 - y0) / 2.0 - (y1 - y0) * 0.12])
            scale = ((x1 - x0) + (y1 - y0)) / REFERENCE_SCALE
            inp = torch.from_numpy(crop(image, center, scale).transpose((2, 0, 1))).float()
            inp = inp.to(self.device).div_(255.0).unsqueeze_(0)
            with torch.no_grad():
                out = net(inp).detach()
                if self.flip_input:
                    out += flip(net(flip(inp)).detach(), is_label=True)
            heatmaps = out.to(device="cpu", dtype=torch.float32).numpy()
            pts_img = np.asarray(get_preds_fromhm(heatmaps, center, scale)[1], dtype=np.float64)
            faces.append(Face(box=box, landmarks=pts_img.reshape(68, 2), scheme=self.scheme, score=score))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces
