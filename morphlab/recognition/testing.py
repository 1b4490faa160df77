"""Tiny stand-in ONNX models with the input/output contract of real FR models.

Used by the tests and benchmarks to exercise the ``arcface-onnx`` and ``sface-onnx``
code paths where no real weights are available. The models are *not* face recognisers:
an 8×8 average pool followed by a fixed random projection, so that similar images give
similar embeddings and nothing more. Needs the ``onnx`` package (``morphlab[onnx]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def make_tiny_fr_onnx(
    path: str | Path,
    *,
    input_shape: Sequence[int | str] = ("N", 3, 112, 112),
    embedding_dim: int = 512,
    flatten: bool = True,
    seed: int = 0,
) -> Path:
    """Write a tiny ONNX model ``(N, C, H, W) float32 -> (N, embedding_dim) float32``.

    Args:
        path: where to write the ``.onnx`` file.
        input_shape: the declared input shape; strings are symbolic (dynamic) dims. Use
            ``(1, 3, 112, 112)`` with ``embedding_dim=128`` for an SFace look-alike, or a
            wrong shape such as ``("N", 3, 96, 96)`` to test the shape checks.
        embedding_dim: output width.
        flatten: ``False`` returns the pooled ``(N, C, H/8, W/8)`` tensor instead of an
            embedding, to test the output-shape checks.
        seed: seed of the random projection.

    Returns:
        ``path``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c, h, w = (int(d) for d in input_shape[1:])
    pooled = c * (h // 8) * (w // 8)
    rng = np.random.default_rng(seed)
    # float32 throughout: under NumPy 2 a float32 array / np.float64 scalar is float64,
    # a double initialiser onnxruntime refuses for a float MatMul
    weight = (rng.standard_normal((pooled, embedding_dim)) / np.sqrt(pooled)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pool"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["embedding"]),
    ]
    out_shape = [input_shape[0], embedding_dim]
    if not flatten:
        nodes = nodes[:1]
        nodes[0].output[0] = "embedding"
        out_shape = [input_shape[0], c, h // 8, w // 8]
    graph = helper.make_graph(
        nodes,
        "tiny_fr",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(weight, "W")] if flatten else [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
