"""The tiny stand-in ONNX models: float32 everywhere (NumPy 2 promotes float32 / float64
scalars to float64, which onnxruntime refuses in a float MatMul)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package (morphlab[onnx]) builds the tiny models")


@pytest.mark.parametrize("kwargs", [{}, {"input_shape": (1, 3, 112, 112), "embedding_dim": 128}])
def test_tiny_model_initialisers_are_float32(tmp_path: Path, kwargs):
    from onnx import TensorProto, numpy_helper

    from morphlab.recognition.testing import make_tiny_fr_onnx

    model = onnx.load(str(make_tiny_fr_onnx(tmp_path / "m.onnx", **kwargs)))
    inits = list(model.graph.initializer)
    assert inits, "the embedding model has a projection weight"
    for t in inits:
        assert t.data_type == TensorProto.FLOAT, f"{t.name} is {TensorProto.DataType.Name(t.data_type)}"
        assert numpy_helper.to_array(t).dtype == np.float32
    for v in list(model.graph.input) + list(model.graph.output):
        assert v.type.tensor_type.elem_type == TensorProto.FLOAT


def test_tiny_model_runs_in_onnxruntime(tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    from morphlab.recognition.testing import make_tiny_fr_onnx

    sess = ort.InferenceSession(str(make_tiny_fr_onnx(tmp_path / "m.onnx")),
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 3, 112, 112), dtype=np.float32)
    (emb,) = sess.run(None, {"input": x})
    assert emb.shape == (2, 512) and emb.dtype == np.float32
    # the weight is a scaled Gaussian: the scale 1/sqrt(pooled) was kept through the cast
    w = onnx.numpy_helper.to_array(onnx.load(str(tmp_path / "m.onnx")).graph.initializer[0])
    assert 0.8 / np.sqrt(w.shape[0]) < w.std() < 1.2 / np.sqrt(w.shape[0])
