"""Shared fixtures: a few real FRLL faces of the embedded sample (600 px, dlib landmarks)
and tiny stand-in ONNX models."""

from __future__ import annotations

from pathlib import Path

import pytest

from morphlab.face.cache import get_face
from morphlab.io import read_image

#: FRLL identities used by the recognition tests (2 women, 2 men).
FRLL_IDS = ("002", "003", "004", "005")


@pytest.fixture(scope="session")
def frll_pairs(sample_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(id, neutral path, smiling path)`` for :data:`FRLL_IDS` (embedded sample)."""
    out = []
    for i in FRLL_IDS:
        n, s = sample_dir / "neutral" / f"{i}_03.jpg", sample_dir / "smiling" / f"{i}_08.jpg"
        assert n.is_file() and s.is_file(), f"missing FRLL test photo for {i}"
        out.append((i, n, s))
    return out


@pytest.fixture(scope="session")
def frll_faces(frll_pairs):
    """``{path: (image, Face)}`` with dlib-backend landmarks for every photo of frll_pairs."""
    out = {}
    for _, n, s in frll_pairs:
        for p in (n, s):
            img = read_image(p)
            out[p] = (img, get_face("dlib", p, img))
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny ONNX models with real FR models' input/output contracts (needs onnx)."""
    pytest.importorskip("onnx", reason="the onnx package (morphlab[onnx]) builds the tiny models")
    from morphlab.recognition.testing import make_tiny_fr_onnx

    d = tmp_path_factory.mktemp("onnx")
    return {
        "arcface": make_tiny_fr_onnx(d / "arcface.onnx"),
        "arcface_b1": make_tiny_fr_onnx(d / "arcface_b1.onnx", input_shape=(1, 3, 112, 112)),
        "sface": make_tiny_fr_onnx(d / "sface.onnx", input_shape=(1, 3, 112, 112),
                                   embedding_dim=128),
        "wrong_input": make_tiny_fr_onnx(d / "wrong_input.onnx", input_shape=("N", 3, 96, 96)),
        "wrong_output": make_tiny_fr_onnx(d / "wrong_output.onnx", flatten=False),
    }
