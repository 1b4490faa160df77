"""arc2face as Arc2Morph makes it: ControlNet pose maps, the reference seed, LCM guidance,
the conditioning model's digest in the manifest.

Tiny random release (``write_random_release(controlnet=True)``: UNet, VAE, CLIP encoder,
a ControlNet of the UNet's shape with random output convolutions, a 16-d ONNX
"ArcFace"), 64×64 images, 2 steps.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

for _mod, _why in (
    ("torch", "the arc2face generator needs torch"),
    ("diffusers", "the arc2face generator needs diffusers (morphlab[diffusion])"),
    ("transformers", "the arc2face generator needs transformers (morphlab[diffusion])"),
    ("onnx", "the tiny ArcFace stand-in is written with onnx (morphlab[onnx])"),
    ("onnxruntime", "ArcFace runs on onnxruntime (morphlab[onnx])"),
):
    pytest.importorskip(_mod, reason=_why)

import torch  # noqa: E402

from morphlab.generators import arc2face as A  # noqa: E402
from morphlab.generators.arc2face import pose as P  # noqa: E402
from morphlab.generators.arc2face_testing import write_random_release  # noqa: E402
from morphlab.generators.base import Contributor  # noqa: E402
from morphlab.io import read_image, sha256_file, write_image  # noqa: E402

SIZE, STEPS = 64, 2
KW = dict(face_backend="file", steps=STEPS, size=SIZE)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_random_release(tmp_path_factory.mktemp("a2fcn") / "weights", "tiny", seed=0,
                                controlnet=True)


@pytest.fixture(scope="module")
def pairs(sample_dir: Path) -> list[tuple[Contributor, Contributor, int]]:
    c = [Contributor(i, sample_dir / "neutral" / f"{i}_03.jpg") for i in ("002", "003", "004", "005")]
    return [(c[0], c[1], 11), (c[2], c[3], 12)]


def _map(seed: int, side: int = 96) -> np.ndarray:
    """A smooth random "normal map" (RGB uint8)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return np.kron(small, np.ones((side // 6, side // 6, 1), np.uint8))


@pytest.fixture()
def pose_dir(tmp_path, pairs) -> Path:
    """Per-pair map for the first pair, per-subject-A map for the second."""
    d = tmp_path / "poses"
    d.mkdir()
    (a0, b0, _), (a1, _, _) = pairs[0], pairs[1]
    write_image(d / f"{a0.path.stem}__{b0.path.stem}.png", _map(1))
    write_image(d / f"{a1.path.stem}.png", _map(2, 120))
    return d


# ----------------------------------------------------------------------------------------
# layout and pipeline
# ----------------------------------------------------------------------------------------
def test_controlnet_files_are_optional_unless_pose_is_asked_for(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "w")
    shutil.rmtree(copy / "controlnet")
    assert set(A.check_weights(copy)) == {f.key for f in A.LAYOUT}  # pose=none: fine
    A.Arc2FaceGenerator(weights=copy, **KW)
    with pytest.raises(A.Arc2FaceWeightsError) as err:
        A.Arc2FaceGenerator(weights=copy, pose="file", pose_dir=tmp_path, **KW)
    msg = str(err.value)
    assert f"[MISSING] {copy / 'controlnet/diffusion_pytorch_model.safetensors'}" in msg
    assert f"[MISSING] {copy / 'controlnet/config.json'}" in msg
    assert msg.count("[ok]") == len(A.LAYOUT) and "~1.4 GB" in msg and "FoivosPar/Arc2Face" in msg
    # without pose conditioning the listing names them as optional, not as problems
    with pytest.raises(A.Arc2FaceWeightsError) as err:
        (copy / "arcface.onnx").unlink()
        A.check_weights(copy)
    assert f"[optional] {copy / 'controlnet/config.json'}" in str(err.value)


def test_controlnet_config_must_fit_the_unet(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "w")
    cfg = json.loads((copy / "controlnet" / "config.json").read_text())
    cfg["cross_attention_dim"] = 48
    (copy / "controlnet" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(A.Arc2FaceWeightsError, match="cross_attention_dim 48 differs"):
        A.check_weights(copy, controlnet=True)


def test_controlnet_pipeline_is_composed_from_the_release(release):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from safetensors.torch import load_file

    pipe = A.load_pipeline(release, controlnet=True)
    assert isinstance(pipe, StableDiffusionControlNetPipeline)
    assert isinstance(pipe.controlnet, ControlNetModel) and pipe.safety_checker is None
    state = load_file(release / "controlnet" / "diffusion_pytorch_model.safetensors")
    key = "controlnet_mid_block.weight"
    torch.testing.assert_close(pipe.controlnet.state_dict()[key], state[key])
    assert float(state[key].abs().sum()) > 0  # the tiny ControlNet is not a zero-conv no-op
    pe = A.project_face_embs(pipe.text_encoder, pipe.tokenizer,
                             np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32))
    pe = pe.repeat(3, 1, 1)
    img = A.render(pipe, pe, [5, 5, 5], steps=STEPS, size=SIZE, control=[_map(1), _map(2), _map(1, 60)])
    assert img.shape == (3, SIZE, SIZE, 3)
    assert np.abs(img[0].astype(int) - img[1]).mean() > 0.2  # the map changes the image
    alone = A.render(pipe, pe[:1], [5], steps=STEPS, size=SIZE, control=[_map(1)])[0]
    assert np.abs(alone.astype(int) - img[0]).max() <= 1  # batching does not
    with pytest.raises(ValueError, match="needs 3 pose maps"):
        A.render(pipe, pe, [5, 5, 5], steps=STEPS, size=SIZE)
    with pytest.raises(ValueError, match="no ControlNet"):
        A.render(A.load_pipeline(release), pe[:1], [5], steps=STEPS, size=SIZE, control=[_map(1)])


def test_speed_options_keep_the_controlnet_images(release):
    pe = None
    imgs = []
    for opts in ({}, {"channels_last": True, "fuse_qkv": True}):
        pipe = A.optimize_pipeline(A.load_pipeline(release, controlnet=True), **opts)
        if pe is None:
            pe = A.project_face_embs(pipe.text_encoder, pipe.tokenizer,
                                     np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32))
        imgs.append(A.render(pipe, pe, [3], steps=STEPS, size=SIZE, control=[_map(7)])[0])
    assert pipe.controlnet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(imgs[0].astype(int) - imgs[1]).max() <= 2


# ----------------------------------------------------------------------------------------
# pose sources
# ----------------------------------------------------------------------------------------
def test_pose_file_per_pair_and_per_subject(release, pairs, pose_dir):
    gen = A.Arc2FaceGenerator(weights=release, pose="file", pose_dir=pose_dir, batch_size=2, **KW)
    res = gen.generate_batch(pairs)
    recs = [r[0].extra["pose"] for r in res]
    (a0, b0, s0), (a1, _, s1) = pairs
    f0, f1 = pose_dir / f"{a0.path.stem}__{b0.path.stem}.png", pose_dir / f"{a1.path.stem}.png"
    assert (recs[0]["match"], recs[0]["file"], recs[0]["sha256"]) == ("pair", str(f0), sha256_file(f0))
    assert (recs[1]["match"], recs[1]["file"], recs[1]["sha256"]) == ("subject", str(f1), sha256_file(f1))
    assert recs[0]["source"] == "file" and recs[0]["convention"]["shape_from"] == "subject B"
    assert recs[0]["convention"]["pose_expression_from"] == "subject A"
    assert res[0][0].extra["model"].endswith("+ ControlNet")
    p = gen.get_params()
    assert (p["pose"], p["pose_dir"]) == ("file", str(pose_dir))
    assert "controlnet/diffusion_pytorch_model.safetensors" in p["files"]
    # the image is the render with the recorded map
    pipe = gen.pipe
    from morphlab.face.cache import get_face

    ea, eb = gen.arcface.embed_aligned(np.stack(
        [gen.arcface.align(read_image(c.path), get_face("file", c.path)) for c in (a0, b0)]))
    emb = A.morph_prompt_embeds(pipe.text_encoder, pipe.tokenizer, ea[None], eb[None], 0.5)
    want = A.render(pipe, emb, [s0], steps=STEPS, size=SIZE, control=[read_image(f0)])[0]
    assert np.abs(want.astype(int) - res[0][0].image).max() <= 1
    other = A.render(pipe, emb, [s0], steps=STEPS, size=SIZE, control=[read_image(f1)])[0]
    assert np.abs(other.astype(int) - res[0][0].image).mean() > 0.2


def test_missing_pose_map_fails_its_pair_only(release, pairs, tmp_path):
    d = tmp_path / "poses"
    d.mkdir()
    (a0, b0, _), (a1, b1, _) = pairs
    write_image(d / f"{a0.path.stem}__{b0.path.stem}.jpg", _map(3))
    gen = A.Arc2FaceGenerator(weights=release, pose="file", pose_dir=d, batch_size=2, **KW)
    res = gen.generate_batch(pairs)
    assert isinstance(res[0], list) and res[0][0].extra["pose"]["match"] == "pair"
    assert isinstance(res[1], FileNotFoundError)
    msg = str(res[1])
    assert str(d) in msg and f"{a1.path.stem}__{b1.path.stem}.png" in msg and f"{a1.path.stem}.png" in msg


@pytest.mark.parametrize("kw, exc, match", [
    ({"pose": "file"}, FileNotFoundError, "pose=file needs pose_dir"),
    ({"pose": "file", "pose_dir": "/nonexistent/poses"}, FileNotFoundError, "not a folder"),
    ({"pose": "emoca-live"}, KeyError, "unknown pose source 'emoca-live'.*file"),
    ({"pose_dir": "/tmp"}, ValueError, "pose=none"),
    ({"seed_mode": "global"}, ValueError, "unknown seed_mode"),
])
def test_bad_pose_and_seed_parameters(release, kw, exc, match):
    with pytest.raises(exc, match=match):
        A.Arc2FaceGenerator(weights=release, **kw)


def test_pose_none_is_labelled_and_uses_no_controlnet(release, pairs):
    from diffusers import StableDiffusionControlNetPipeline

    gen = A.Arc2FaceGenerator(weights=release, **KW)
    (out,) = gen.generate(*pairs[0][:2], seed=1)
    assert out.extra["pose"]["source"] == "none" and "no ControlNet" in out.extra["pose"]["note"]
    assert gen.get_params()["pose"] == "none" and gen.get_params()["pose_dir"] is None
    assert not isinstance(gen.pipe, StableDiffusionControlNetPipeline)
    assert not any(k.startswith("controlnet/") for k in gen.get_params()["files"])


def test_plug_in_pose_sources(release, pairs):
    seen = []

    def from_pixels(a, b):
        seen.append((a.subject_id, b.subject_id))
        return P.PoseMap(_map(4), {"provider": "test"})

    P.register_pose_source("test-pixels")(lambda pose_dir=None: from_pixels)
    try:
        with pytest.raises(ValueError, match="already registered"):
            P.register_pose_source("test-pixels")(lambda: from_pixels)
        gen = A.Arc2FaceGenerator(weights=release, pose="test-pixels", **KW)
        (out,) = gen.generate(*pairs[0][:2], seed=1)
    finally:
        P.POSE_SOURCES.pop("test-pixels")
    rec = out.extra["pose"]
    assert seen == [("002", "003")] and rec["source"] == "test-pixels" and rec["provider"] == "test"
    import hashlib

    assert rec["sha256"] == hashlib.sha256(_map(4).tobytes()).hexdigest()
    # a callable from Python
    gen = A.Arc2FaceGenerator(weights=release, pose=from_pixels, **KW)
    (again,) = gen.generate(*pairs[0][:2], seed=1)
    assert np.abs(again.image.astype(int) - out.image).max() <= 1
    assert gen.get_params()["pose"].endswith("from_pixels")


# ----------------------------------------------------------------------------------------
# the reference seed protocol
# ----------------------------------------------------------------------------------------
def test_seed_mode_reference_uses_23_for_every_pair(release, pairs, monkeypatch):
    calls = []
    real = A.generator.render

    def spy(*args, **kw):
        calls.append((list(args[2]), kw["generator_device"]))
        return real(*args, **kw)

    monkeypatch.setattr(A.generator, "render", spy)
    ref = A.Arc2FaceGenerator(weights=release, seed_mode="reference", candidates=2,
                              score_backend=_fixed_face(), batch_size=2, **KW)
    res = ref.generate_batch(pairs)
    assert calls[-1] == ([23, A.candidate_seeds(23, 2)[1]] * 2, "cpu")
    for r in res:
        assert [c["seed"] for c in r[0].extra["selection"]["candidates"]] == A.candidate_seeds(23, 2)
        assert r[0].extra["seed_mode"] == "reference" and r[0].extra["generator_device"] == "cpu"
    assert ref.get_params()["seed_mode"] == "reference"
    # the pair's own seed no longer matters; in the default mode it does
    (a, b, _) = pairs[0]
    one = A.Arc2FaceGenerator(weights=release, seed_mode="reference", **KW)
    x, y = one.generate(a, b, seed=1)[0], one.generate(a, b, seed=999)[0]
    assert np.array_equal(x.image, y.image) and x.params["candidate_seed"] == 23
    plain = A.Arc2FaceGenerator(weights=release, **KW)
    assert plain.get_params()["seed_mode"] == "pair"
    p = plain.generate(a, b, seed=23)[0]
    assert np.abs(p.image.astype(int) - x.image).max() <= 1  # same seed, same CPU noise
    assert calls[-1] == ([23], "cpu") and p.extra["seed_mode"] == "pair"
    assert np.abs(plain.generate(a, b, seed=1)[0].image.astype(int) - x.image).mean() > 0.2


def test_reference_generator_sits_on_the_pipeline_device(release):
    gen = A.Arc2FaceGenerator(weights=release, seed_mode="reference")
    assert gen.generator_device == gen.device == "cpu"
    if torch.cuda.is_available():
        assert A.Arc2FaceGenerator(weights=release, seed_mode="reference",
                                   device="cuda").generator_device == "cuda"
        assert A.Arc2FaceGenerator(weights=release, device="cuda").generator_device == "cpu"


def _fixed_face():
    from morphlab.face.align import ARCFACE_TEMPLATE_112
    from morphlab.face.base import Face, FaceBackend

    class FixedFace(FaceBackend):
        name = "fixed-test"
        scheme = "tem189"

        def detect(self, image, *, source=None):
            h, w = image.shape[:2]
            pts = np.full((189, 2), (w / 2, h / 2))
            five = ARCFACE_TEMPLATE_112 * (np.array([w, h]) / 112.0)
            pts[[0, 1, 54, 87, 93]] = five
            pts[60] = five[2]
            return [Face(box=np.array([0, 0, w, h], float), landmarks=pts, scheme="tem189")]

    return FixedFace()


# ----------------------------------------------------------------------------------------
# LCM guidance and the conditioning model's digest
# ----------------------------------------------------------------------------------------
def test_lcm_lora_defaults_to_guidance_one(release, tmp_path, pairs, monkeypatch):
    lora = tmp_path / "pytorch_lora_weights.safetensors"
    lora.write_bytes(b"stand-in")  # not loaded: the pipeline is swapped below
    gen = A.Arc2FaceGenerator(weights=release, lcm_lora=lora, hash_weights=False, **KW)
    assert (gen.get_params()["guidance"], gen.get_params()["scheduler"]) == (1.0, "lcm")
    assert A.Arc2FaceGenerator(weights=release, lcm_lora=lora, guidance="2.5").get_params()["guidance"] == 2.5
    assert A.Arc2FaceGenerator(weights=release).get_params()["guidance"] == 3.0
    assert A.Arc2FaceGenerator(weights=release, guidance=1.5).get_params()["guidance"] == 1.5
    # the resolved value reaches the pipeline call
    pipe = A.load_pipeline(release)
    gen._pipe, gen._negative = pipe, A.negative_prompt_embeds(pipe)
    seen = []
    real = type(pipe).__call__
    monkeypatch.setattr(type(pipe), "__call__",
                        lambda self, *a, **k: seen.append(k["guidance_scale"]) or real(self, *a, **k))
    gen.generate(*pairs[0][:2], seed=1)
    assert seen == [1.0]


def test_manifest_names_the_conditioning_and_selecting_model(release, pairs):
    want = sha256_file(release / "arcface.onnx")
    gen = A.Arc2FaceGenerator(weights=release, candidates=2, score_backend=_fixed_face(),
                              hash_weights=False, **KW)
    (out,) = gen.generate(*pairs[0][:2], seed=3)
    assert out.extra["conditioning_models"] == {"arcface": want}
    assert out.extra["selection_models"] == {"arcface": want}
    (single,) = A.Arc2FaceGenerator(weights=release, **KW).generate(*pairs[0][:2], seed=3)
    assert single.extra["conditioning_models"] == {"arcface": want}
    assert "selection_models" not in single.extra


# ----------------------------------------------------------------------------------------
# the whole path through the command line
# ----------------------------------------------------------------------------------------
def test_cli_pose_file_and_reference_seeds(release, sample_dir, tmp_path):
    from click.testing import CliRunner

    from morphlab.cli import main
    from morphlab.generators.runner import load_manifest

    pairs = tmp_path / "pairs.csv"
    rows = [("0001", "002", "003"), ("0002", "004", "005")]
    with open(pairs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pair_id", "subject_a", "image_a", "subject_b", "image_b"])
        for pid, a, b in rows:
            w.writerow([pid, a, f"neutral/{a}_03.jpg", b, f"neutral/{b}_03.jpg"])
    poses = tmp_path / "poses"
    poses.mkdir()
    write_image(poses / "002_03__003_03.png", _map(5))
    write_image(poses / "004_03.png", _map(6))
    out = tmp_path / "out"
    args = ["generate", str(pairs), "-g", "arc2face", "-o", str(out), "--dataset-dir", str(sample_dir),
            "--weights", str(release), "--param", "steps=2", "--param", "size=64",
            "--param", "face_backend=file", "--param", "pose=file", "--param", f"pose_dir={poses}",
            "--param", "seed_mode=reference", "--batch-size", "2", "--no-progress"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    recs = [r for r in load_manifest(out / "manifest.jsonl") if r["status"] == "ok"]
    assert len(recs) == 2
    want = {"0001": poses / "002_03__003_03.png", "0002": poses / "004_03.png"}
    arcface = sha256_file(release / "arcface.onnx")
    for r in recs:
        assert (r["params"]["pose"], r["params"]["seed_mode"]) == ("file", "reference")
        assert r["params"]["candidate_seed"] == 23 != r["seed"]
        assert r["extra"]["pose"]["sha256"] == sha256_file(want[r["pair_id"]])
        assert r["extra"]["conditioning_models"] == {"arcface": arcface}
        assert "controlnet/diffusion_pytorch_model.safetensors" in r["params"]["files"]
        assert read_image(out / r["file"]).shape == (SIZE, SIZE, 3)
    # a missing map: that pair fails with the file named, the command says so
    (poses / "004_03.png").unlink()
    res = CliRunner().invoke(main, args + ["--overwrite"])
    recs = load_manifest(out / "manifest.jsonl", include_failed=True)
    failed = [r for r in recs if r["status"] != "ok"]
    assert [r["pair_id"] for r in failed] == ["0002"], res.output
    assert "004_03__005_03.png" in failed[0]["error"] and "1 failed" in res.output


# ----------------------------------------------------------------------------------------
# background (Arc2Morph removes backgrounds): the segmentation the postprocess operator uses
# ----------------------------------------------------------------------------------------
def test_background_option_replaces_the_background_of_the_kept_morph(release, pairs,
                                                                     monkeypatch):
    from morphlab.face import segmentation

    (plain,) = A.Arc2FaceGenerator(weights=release, **KW).generate(*pairs[0][:2], seed=5)
    assert "background" not in plain.extra

    def half(image, **kw):  # left half background, right half person
        m = np.ones(image.shape[:2], np.float32)
        m[:, : image.shape[1] // 2] = 0.0
        return m

    monkeypatch.setattr(segmentation, "person_mask", half)
    gen = A.Arc2FaceGenerator(weights=release, background="10,200,30", **KW)
    assert gen.get_params()["background"] == "10,200,30"
    (out,) = gen.generate(*pairs[0][:2], seed=5)
    left, right = out.image[:, : SIZE // 2], out.image[:, SIZE // 2:]
    assert (left == np.array([10, 200, 30], np.uint8)).all()
    assert np.array_equal(right, plain.image[:, SIZE // 2:])
    assert out.extra["background"]["colour"] == [10, 200, 30]
    assert out.extra["background"]["foreground_fraction"] == 0.5
    with pytest.raises(ValueError, match="background must be an RGB colour"):
        A.Arc2FaceGenerator(weights=release, background="grey", **KW)


def test_replace_background_on_a_real_portrait(sample_dir):
    from morphlab.face.segmentation import replace_background

    img = read_image(sample_dir / "neutral" / "002_03.jpg")
    out, notes = replace_background(img, (0, 0, 255))
    assert 0.1 < notes["foreground_fraction"] < 0.9
    for corner in (out[0, 0], out[0, -1]):  # the top corners are background
        assert tuple(corner) == (0, 0, 255)
    again, _ = replace_background(img, (0, 0, 255))
    assert np.array_equal(out, again)
