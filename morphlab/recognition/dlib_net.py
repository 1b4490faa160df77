"""dlib's face recognition ResNet read from its ``.dat`` file and run in NumPy, in batches.

The ``dlib-bin`` wheels are built without BLAS, so dlib's own forward pass
(``face_recognition_model_v1.compute_face_descriptor``) computes its convolutions with
plain loops: about 0.1 s per face on one core whatever the batch. This module computes the
same network with NumPy's BLAS matrix products on a whole batch of chips at once
(im2col convolutions), from the same weights, read straight from dlib's file.

The network (dlib's ``dnn_face_recognition_ex.cpp``, ``anet_type``)::

    input_rgb_image_sized<150>: (pixel - channel mean) / 256, RGB
    con<32,7,7,2,2> affine relu max_pool<3,3,2,2>
    level4: 3 x ares<32>          level3: ares_down<64>, 3 x ares<64>
    level2: ares_down<128>, 2 x ares<128>   level1: ares_down<256>, 2 x ares<256>
    level0: ares_down<256>        avg_pool_everything, fc_no_bias<128>

``ares<N>`` = relu(x + affine(con3x3(relu(affine(con3x3(x)))))) and ``ares_down<N>`` the
same with the first convolution at stride 2 and ``avg_pool<2,2,2,2>(x)`` as the shortcut.
dlib's conventions, followed exactly: a stride-2 layer has no padding (a stride-1 3x3
convolution pads 1), an output side is ``1 + (in + 2 * pad - k) // stride``, and
``add_prev`` adds tensors of different shapes by zero-padding both to the larger one
(channels, rows and columns: the stride-2 block output is 3x3 where the pooled
shortcut is 4x4, and 32 channels meet 64).

The file format (dlib's ``serialize``): integers are a control byte (length in the low
bits, 0x80 for negative) followed by that many little-endian bytes; strings a packed
length and the bytes; floats outside tensors a packed int64 mantissa and int16 exponent;
tensors (version 2) a packed version, num_samples, k, nr, nc and raw little-endian float32
data. Layers are written input first, each named (``con_4``, ``affine_``, ``fc_2``, …).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

#: The 150 px chip the network takes.
CHIP = 150


class DlibModelFormatError(ValueError):
    """The ``.dat`` file is not dlib's face recognition ResNet in the format read here."""


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.b = data
        self.i = 0
        self.path = path

    def fail(self, what: str) -> DlibModelFormatError:
        return DlibModelFormatError(
            f"{self.path}: not dlib's face recognition ResNet as expected ({what} at byte "
            f"{self.i}); use engine='dlib'")

    def int(self) -> int:
        if self.i >= len(self.b):
            raise self.fail("file ends early")
        ctrl = self.b[self.i]
        size, neg = ctrl & 0x0F, ctrl & 0x80
        if size > 8:
            raise self.fail(f"bad integer control byte {ctrl:#x}")
        v = int.from_bytes(self.b[self.i + 1 : self.i + 1 + size], "little")
        self.i += 1 + size
        return -v if neg else v

    def string(self) -> str:
        n = self.int()
        s = self.b[self.i : self.i + n]
        self.i += n
        return s.decode("latin-1")

    def real(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0 ** exponent

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise self.fail("tensor of an unknown version")
        shape = (self.int(), self.int(), self.int(), self.int())
        n = int(np.prod(shape))
        end = self.i + 4 * n
        if end > len(self.b):
            raise self.fail("tensor runs past the end of the file")
        out = np.frombuffer(self.b, dtype="<f4", count=n, offset=self.i).reshape(shape)
        self.i = end
        return out.astype(np.float32)

    def find(self, name: str) -> bool:
        """Move to just after the next serialized string ``name``; False at the end."""
        key = bytes([1, len(name)]) + name.encode()
        j = self.b.find(key, self.i)
        if j < 0:
            return False
        self.i = j + len(key)
        return True


@dataclass
class _Conv:
    w: np.ndarray  # (k*k*C, F): im2col weights for NHWC windows
    b: np.ndarray  # (F,)
    k: int
    stride: int
    pad: int


@dataclass
class DlibResNetWeights:
    """The weights of dlib's face recognition ResNet (see the module docstring)."""

    mean: np.ndarray  # (3,) RGB channel means subtracted before / 256
    convs: list = field(default_factory=list)  # [_Conv], in forward order (29)
    affines: list = field(default_factory=list)  # [(gamma (C,), beta (C,))], one per conv
    fc: np.ndarray = field(default_factory=lambda: np.zeros((256, 128), np.float32))


def read_weights(path: Union[str, Path]) -> DlibResNetWeights:
    """Read dlib's ``dlib_face_recognition_resnet_model_v1.dat``.

    Raises:
        DlibModelFormatError: the file is not that network in dlib's format.
    """
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    if not r.find("input_rgb_image_sized"):
        raise r.fail("no input_rgb_image_sized layer")
    mean = np.array([r.real(), r.real(), r.real()], dtype=np.float32)
    weights = DlibResNetWeights(mean=mean)
    while True:
        j_con = r.b.find(b"\x01\x05con_4", r.i)
        j_aff = r.b.find(b"\x01\x07affine_", r.i)
        if j_con < 0 and j_aff < 0:
            break
        if j_con >= 0 and (j_aff < 0 or j_con < j_aff):
            r.find("con_4")
            params = r.tensor().ravel()
            filters, nr, nc = r.int(), r.int(), r.int()
            stride_y, stride_x, pad_y, pad_x = r.int(), r.int(), r.int(), r.int()
            if nr != nc or stride_y != stride_x or pad_y != pad_x:
                raise r.fail("a non-square convolution")
            c_in = (params.size - filters) // (filters * nr * nc)
            if c_in * filters * nr * nc + filters != params.size:
                raise r.fail("convolution weights of an unexpected size")
            w = params[: -filters].reshape(filters, c_in, nr, nc)
            weights.convs.append(_Conv(
                w=np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(nr * nc * c_in, filters)),
                b=params[-filters:].copy(), k=nr, stride=stride_y, pad=pad_y))
        else:
            r.find("affine_")
            params = r.tensor().ravel()
            half = params.size // 2
            weights.affines.append((params[:half].copy(), params[half:].copy()))
    if not r.find("fc_2"):
        raise r.fail("no fc layer")
    outputs, inputs = r.int(), r.int()
    fc = r.tensor()
    if fc.shape[:2] != (inputs, outputs):
        raise r.fail(f"fc weights {fc.shape} for {inputs} inputs and {outputs} outputs")
    weights.fc = np.ascontiguousarray(fc.reshape(fc.shape[0], fc.shape[1]))
    if len(weights.convs) != 29 or len(weights.affines) != 29 or weights.fc.shape != (256, 128):
        raise r.fail(f"{len(weights.convs)} convolutions, {len(weights.affines)} affine "
                     f"layers and an fc of {weights.fc.shape} (expected 29, 29, (256, 128))")
    return weights


# -- the forward pass, NHWC float32 --------------------------------------------------------
def _windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """``(N, Ho, Wo, C, k, k)`` view of the k x k windows of ``x`` (N, H, W, C) at ``stride``."""
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    return win[:, ::stride, ::stride]


def _conv(x: np.ndarray, conv: _Conv) -> np.ndarray:
    if conv.pad:
        p = conv.pad
        x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    win = _windows(x, conv.k, conv.stride)
    n, ho, wo = win.shape[:3]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, -1)
    out = cols @ conv.w
    out += conv.b
    return out.reshape(n, ho, wo, -1)


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's ``add_prev``: both zero-padded to the larger shape, then added."""
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape))
    out = np.zeros(shape, np.float32)
    out[: a.shape[0], : a.shape[1], : a.shape[2], : a.shape[3]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out


def forward(weights: DlibResNetWeights, chips: np.ndarray) -> np.ndarray:
    """Descriptors of ``(N, 150, 150, 3)`` RGB uint8 chips, ``(N, 128)`` float32."""
    x = (chips.astype(np.float32) - weights.mean) / np.float32(256.0)
    convs, affines = weights.convs, weights.affines

    def conv_affine(x: np.ndarray, i: int) -> np.ndarray:
        y = _conv(x, convs[i])
        gamma, beta = affines[i]
        y *= gamma
        y += beta
        return y

    x = np.maximum(conv_affine(x, 0), 0)
    x = _windows(x, 3, 2).max(axis=(4, 5))  # max_pool<3,3,2,2>
    for i in range(1, len(convs), 2):
        y = np.maximum(conv_affine(x, i), 0)
        y = conv_affine(y, i + 1)
        shortcut = x if convs[i].stride == 1 else _windows(x, 2, 2).mean(axis=(4, 5))
        x = np.maximum(_add(y, shortcut), 0)
    pooled = x.mean(axis=(1, 2))  # avg_pool_everything
    return (pooled @ weights.fc).astype(np.float32)
