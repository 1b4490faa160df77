"""The arc2face generator on tiny random weights in the release's folder layout.

No Arc2Face weights exist here: ``write_random_release`` writes seeded random
components (UNet, VAE, CLIP text encoder, CLIP tokenizer holding ``id``, a tiny ONNX
"ArcFace") in the layout of the release, and the real loading and sampling code runs on
them (64×64 images, 2 steps).
"""

from __future__ import annotations

import argparse
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
import torch.nn.functional as F  # noqa: E402

from morphlab.face.align import ARCFACE_TEMPLATE_112  # noqa: E402
from morphlab.face.base import Face, FaceBackend, NoFaceError  # noqa: E402
from morphlab.generators import arc2face as A  # noqa: E402
from morphlab.generators.arc2face_testing import write_random_release  # noqa: E402
from morphlab.generators.base import GENERATORS, Contributor, create_generator  # noqa: E402
from morphlab.io import ImageError, read_image, sha256_file, write_image  # noqa: E402

SIZE, STEPS = 64, 2


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_random_release(tmp_path_factory.mktemp("a2f") / "weights", "tiny", seed=0)


@pytest.fixture(scope="module")
def pipe(release):
    return A.load_pipeline(release)


@pytest.fixture(scope="module")
def sample_pairs(sample_dir: Path) -> list[tuple[Contributor, Contributor, int]]:
    ids = ["002", "003", "004", "005"]
    c = [Contributor(i, sample_dir / "neutral" / f"{i}_03.jpg") for i in ids]
    return [(c[0], c[1], 11), (c[2], c[3], 12)]


def _arc(n: int, seed: int = 0, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


class FixedFace(FaceBackend):
    """Puts the ArcFace template's five points, scaled to the image, on every image."""

    name = "fixed-test"
    scheme = "tem189"

    def detect(self, image, *, source=None):
        h, w = image.shape[:2]
        pts = np.full((189, 2), (w / 2, h / 2))
        five = ARCFACE_TEMPLATE_112 * (np.array([w, h]) / 112.0)
        pts[[0, 1, 54, 87, 93]] = five
        pts[60] = five[2]
        return [Face(box=np.array([0, 0, w, h], float), landmarks=pts, scheme="tem189")]


# ----------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------
def test_pipeline_is_composed_from_the_release(pipe):
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    assert isinstance(pipe, StableDiffusionPipeline)
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.safety_checker is None and pipe.feature_extractor is None
    assert pipe.text_encoder.config.hidden_size == pipe.unet.config.cross_attention_dim == 32
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"


def test_encoder_weights_come_from_the_state_dict(release, pipe):
    state = torch.load(release / "encoder" / "pytorch_model.bin", weights_only=True)
    assert all(k.startswith("text_model.") for k in state)
    key = "text_model.embeddings.token_embedding.weight"
    torch.testing.assert_close(pipe.text_encoder.get_input_embeddings().weight, state[key])


def test_registered():
    assert GENERATORS.get("arc2face") is A.Arc2FaceGenerator


# ----------------------------------------------------------------------------------------
# the identity projection
# ----------------------------------------------------------------------------------------
def _capture_transformer_input(text_encoder):
    """Hook the CLIP encoder stack: record the hidden states entering the first layer."""
    seen = {}

    def hook(_mod, args, kwargs):
        seen["x"] = (kwargs.get("inputs_embeds") if "inputs_embeds" in kwargs else args[0]).detach().clone()

    return seen, text_encoder.encoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_projection_puts_the_padded_vector_at_id(pipe):
    te, tok = pipe.text_encoder, pipe.tokenizer
    arc = _arc(2)
    seen, handle = _capture_transformer_input(te)
    try:
        out = A.project_face_embs(te, tok, arc)
    finally:
        handle.remove()
    ids = tok(A.PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids[0]
    pos = int((ids == A.id_token_id(tok)).nonzero()[0])
    assert pos == 4  # <bos> photo of a id person
    token_part = seen["x"] - te.embeddings.position_embedding.weight[:77]
    padded = F.pad(F.normalize(torch.from_numpy(arc), dim=-1), (0, 32 - 16))
    torch.testing.assert_close(token_part[:, pos], padded, atol=1e-6, rtol=0)
    others = torch.arange(77) != pos
    expected = te.get_input_embeddings()(ids)[others]
    for row in token_part:
        torch.testing.assert_close(row[others], expected, atol=1e-6, rtol=0)
    assert out.shape == (2, 77, 32)
    # the causal mask: tokens before `id` do not see the identity
    torch.testing.assert_close(out[0, :pos], out[1, :pos])
    assert not torch.allclose(out[0, pos:], out[1, pos:])
    # final layer norm applied: each token has ~zero mean, ~unit variance before affine
    assert torch.isfinite(out).all()


def test_projection_is_batched_and_scale_free(pipe):
    te, tok = pipe.text_encoder, pipe.tokenizer
    arc = _arc(3, seed=1)
    batch = A.project_face_embs(te, tok, arc)
    for i in range(3):
        single = A.project_face_embs(te, tok, arc[i : i + 1] * 7.0)  # normalised inside
        torch.testing.assert_close(batch[i : i + 1], single, atol=1e-5, rtol=1e-5)


def test_projection_rejects_too_wide_embeddings(pipe):
    with pytest.raises(ValueError, match="D <= 32"):
        A.project_face_embs(pipe.text_encoder, pipe.tokenizer, _arc(1, dim=33))


# ----------------------------------------------------------------------------------------
# interpolation
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", A.MODES)
def test_interpolation_endpoints_reproduce_each_identity(pipe, mode):
    te, tok = pipe.text_encoder, pipe.tokenizer
    a, b = _arc(2, seed=2), _arc(2, seed=3)
    ea, eb = A.project_face_embs(te, tok, a), A.project_face_embs(te, tok, b)
    torch.testing.assert_close(A.morph_prompt_embeds(te, tok, a, b, 0.0, mode), ea, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(A.morph_prompt_embeds(te, tok, a, b, 1.0, mode), eb, atol=1e-5, rtol=1e-5)
    mid = A.morph_prompt_embeds(te, tok, a, b, 0.5, mode)
    assert not torch.allclose(mid, ea, atol=1e-3) and not torch.allclose(mid, eb, atol=1e-3)


def test_arcface_modes_mix_before_projection(pipe):
    te, tok = pipe.text_encoder, pipe.tokenizer
    a, b = _arc(1, seed=4), _arc(1, seed=5)
    na, nb = F.normalize(torch.from_numpy(a), dim=-1), F.normalize(torch.from_numpy(b), dim=-1)
    want = A.project_face_embs(te, tok, F.normalize(na + nb, dim=-1))  # reference: 0.5a + 0.5b
    torch.testing.assert_close(A.morph_prompt_embeds(te, tok, a, b, 0.5, "arcface-lerp"), want)


def test_slerp_keeps_norms_and_halves_the_angle():
    g = torch.Generator().manual_seed(0)
    v0 = torch.randn(5, 77, 32, generator=g)
    v1 = torch.randn(5, 77, 32, generator=g)
    v1 = v1 / v1.norm(dim=-1, keepdim=True) * v0.norm(dim=-1, keepdim=True)  # equal norms
    for t in (0.0, 0.25, 0.5, 0.9, 1.0):
        out = A.slerp(v0, v1, t)
        torch.testing.assert_close(out.norm(dim=-1), v0.norm(dim=-1), atol=1e-4, rtol=1e-5)
    mid = A.slerp(v0, v1, 0.5)
    cos = lambda x, y: F.cosine_similarity(x, y, dim=-1)  # noqa: E731
    torch.testing.assert_close(cos(mid, v0), cos(mid, v1), atol=1e-5, rtol=0)
    full = torch.arccos(cos(v0, v1).clamp(-1, 1))
    torch.testing.assert_close(torch.arccos(cos(mid, v0).clamp(-1, 1)), full / 2, atol=1e-3, rtol=0)
    # lerp shrinks the same vectors
    assert (A.lerp(v0, v1, 0.5).norm(dim=-1) < v0.norm(dim=-1) - 1e-4).any()


def test_slerp_falls_back_to_lerp_when_nearly_parallel():
    v0 = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    v1 = torch.tensor([[2.0, 4.0, 6.0 + 1e-4], [1.0, 1.0, 1.0], [-1.0, 1e-5, 0.0]])
    out = A.slerp(v0, v1, 0.3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, A.lerp(v0, v1, 0.3))  # parallel, zero, anti-parallel rows
    # just below the threshold: real slerp (differs from lerp)
    u0 = torch.tensor([[1.0, 0.0]])
    u1 = torch.tensor([[np.cos(0.1), np.sin(0.1)]], dtype=torch.float32)
    assert not torch.allclose(A.slerp(u0, u1, 0.5), A.lerp(u0, u1, 0.5), atol=1e-5)


def test_encoded_slerp_keeps_the_shared_prefix(pipe):
    te, tok = pipe.text_encoder, pipe.tokenizer
    a, b = _arc(1, seed=6), _arc(1, seed=7)
    ea = A.project_face_embs(te, tok, a)
    mid = A.morph_prompt_embeds(te, tok, a, b, 0.5, "encoded-slerp")
    torch.testing.assert_close(mid[:, :4], ea[:, :4])  # identical tokens → lerp fallback


# ----------------------------------------------------------------------------------------
# sampling, seeds, candidates
# ----------------------------------------------------------------------------------------
def test_render_is_deterministic_per_seed(pipe):
    pe = A.project_face_embs(pipe.text_encoder, pipe.tokenizer, _arc(2, seed=8))
    one = A.render(pipe, pe, [5, 6], steps=STEPS, size=SIZE)
    assert one.shape == (2, SIZE, SIZE, 3) and one.dtype == np.uint8
    again = A.render(pipe, pe, [5, 6], steps=STEPS, size=SIZE)
    np.testing.assert_array_equal(one, again)
    alone = A.render(pipe, pe[1:], [6], steps=STEPS, size=SIZE)  # batching does not matter
    assert np.abs(alone[0].astype(int) - one[1]).max() <= 1
    other = A.render(pipe, pe, [5, 7], steps=STEPS, size=SIZE)
    np.testing.assert_array_equal(other[0], one[0])
    assert np.abs(other[1].astype(int) - one[1]).mean() > 1


def test_optimizations_keep_the_output(release, pipe):
    pe = A.project_face_embs(pipe.text_encoder, pipe.tokenizer, _arc(1, seed=9))
    plain = A.render(pipe, pe, [3], steps=STEPS, size=SIZE)
    fast = A.optimize_pipeline(A.load_pipeline(release), channels_last=True, fuse_qkv=True)
    out = A.render(fast, pe, [3], steps=STEPS, size=SIZE)
    assert np.abs(out.astype(int) - plain).max() <= 2


def test_candidate_seeds():
    s = A.candidate_seeds(42, 4)
    assert s[0] == 42 and len(set(s)) == 4 and s == A.candidate_seeds(42, 4)
    assert A.candidate_seeds(42, 2) == s[:2] and A.candidate_seeds(43, 4)[1:] != s[1:]


def test_select_candidate_is_argmax_of_the_smaller_similarity():
    assert A.select_candidate([0.9, 0.5, 0.6], [0.1, 0.5, 0.7]) == 2
    assert A.select_candidate([0.3, 0.3], [0.3, 0.3]) == 0  # ties → first
    assert A.select_candidate([np.nan, 0.2], [np.nan, 0.1]) == 1
    assert A.select_candidate([np.nan, np.nan], [np.nan, np.nan]) == 0


def _contributor_embeddings(arcface, contributors) -> np.ndarray:
    from morphlab.face.cache import get_face

    crops = [arcface.align(read_image(c.path), get_face("file", c.path)) for c in contributors]
    return arcface.embed_aligned(np.stack(crops))


def test_candidates_pick_the_best_and_record_all_scores(release, sample_pairs):
    gen = A.Arc2FaceGenerator(weights=release, face_backend="file", score_backend=FixedFace(),
                              candidates=3, steps=STEPS, size=SIZE, batch_size=2)
    results = gen.generate_batch(sample_pairs)
    for (a, b, seed), res in zip(sample_pairs, results):
        assert not isinstance(res, Exception), res
        (out,) = res
        assert out.tag == "morph" and out.image.shape == (SIZE, SIZE, 3)
        sel = out.extra["selection"]
        cands = sel["candidates"]
        assert [c["seed"] for c in cands] == A.candidate_seeds(seed, 3)
        worst = [min(c["sim_a"], c["sim_b"]) for c in cands]
        assert len(set(worst)) == 3  # the candidates really differ
        assert sel["chosen"] == out.params["candidate"] == int(np.argmax(worst))
        chosen_seed = cands[sel["chosen"]]["seed"]
        assert out.params["candidate_seed"] == chosen_seed
        # the kept image is the chosen seed's render, and the recorded scores are its own
        ea, eb = _contributor_embeddings(gen.arcface, [a, b])
        embeds = A.morph_prompt_embeds(gen.pipe.text_encoder, gen.pipe.tokenizer,
                                       ea[None], eb[None], 0.5, "encoded-slerp")
        alone = A.render(gen.pipe, embeds, [chosen_seed], steps=STEPS, size=SIZE)[0]
        assert np.abs(alone.astype(int) - out.image).max() <= 1
        emb = gen.arcface.embed(out.image, FixedFace().landmarks(out.image))
        np.testing.assert_allclose(
            [float(emb @ ea), float(emb @ eb)],
            [cands[sel["chosen"]]["sim_a"], cands[sel["chosen"]]["sim_b"]], atol=1e-4)
        assert out.extra["arcface_sim_ab"] == pytest.approx(float(ea @ eb), abs=1e-5)


def test_single_candidate_matches_seed_and_is_deterministic(release, sample_pairs):
    kw = dict(weights=release, face_backend="file", steps=STEPS, size=SIZE)
    gen = A.Arc2FaceGenerator(**kw, batch_size=2)
    first = gen.generate_batch(sample_pairs)
    again = A.Arc2FaceGenerator(**kw).generate(*sample_pairs[1][:2], seed=sample_pairs[1][2])
    assert np.abs(again[0].image.astype(int) - first[1][0].image).max() <= 1
    assert first[0][0].params == {"candidate": 0, "candidate_seed": 11}
    assert "selection" not in first[0][0].extra
    other = gen.generate(*sample_pairs[1][:2], seed=99)
    assert np.abs(other[0].image.astype(int) - first[1][0].image).mean() > 1


def test_unusable_images_fail_their_pair_only(release, sample_pairs, tmp_path):
    small = tmp_path / "small.png"
    write_image(small, np.full((40, 40, 3), 128, np.uint8))
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((160, 160, 3), 200, np.uint8))
    good_a, good_b, _ = sample_pairs[0]
    gen = A.Arc2FaceGenerator(weights=release, face_backend="dlib", steps=STEPS, size=SIZE)
    jobs = [(good_a, Contributor("x", small), 1), (Contributor("y", blank), good_b, 2),
            (good_a, good_b, 3), (good_a, Contributor("z", tmp_path / "missing.png"), 4)]
    res = gen.generate_batch(jobs)
    assert isinstance(res[0], ImageError) and "too small" in str(res[0]) and str(small) in str(res[0])
    assert isinstance(res[1], NoFaceError) and str(blank) in str(res[1])
    assert isinstance(res[2], list) and res[2][0].image.shape == (SIZE, SIZE, 3)
    assert isinstance(res[3], FileNotFoundError) and "missing.png" in str(res[3])
    with pytest.raises(NoFaceError):
        gen.generate(Contributor("y", blank), good_b, seed=0)


def test_contributor_embeddings_are_computed_once(release, sample_pairs, monkeypatch):
    paths = [c.path for c in sample_pairs[0][:2]]
    gen = A.Arc2FaceGenerator(weights=release, face_backend="dlib")
    first = gen.embed_contributors(paths + paths[:1])
    assert len(first) == 2 and all(v.shape == (16,) for v in first.values())
    monkeypatch.setattr(type(gen.arcface), "embed_aligned",
                        lambda *a, **k: pytest.fail("embedded again"))
    again = gen.embed_contributors(paths)  # from memory
    fresh = A.Arc2FaceGenerator(weights=release, face_backend="dlib").embed_contributors(paths)
    for p in paths:  # from the on-disk embedding cache
        np.testing.assert_array_equal(again[p], first[p])
        np.testing.assert_allclose(fresh[p], first[p], atol=1e-6)


# ----------------------------------------------------------------------------------------
# parameters and provenance
# ----------------------------------------------------------------------------------------
def test_params_record_everything(release, monkeypatch):
    gen = create_generator("arc2face", weights=str(release), mode="arcface-slerp", t="0.3",
                           candidates="2", compile="false")
    p = gen.get_params()
    json.dumps(p)
    assert p["weights"] == str(release) == p["base"]
    assert (p["mode"], p["t"], p["candidates"], p["steps"], p["guidance"], p["size"]) == (
        "arcface-slerp", 0.3, 2, 25, 3.0, 512)
    assert (p["device"], p["dtype"], p["batch_size"], p["compile"]) == ("cpu", "float32", 1, False)
    assert p["scheduler"] == "dpm-solver++-multistep" and p["lcm_lora"] is None
    assert p["recognition"] == f"arcface-onnx={release / 'arcface.onnx'}"
    files = p["files"]
    assert set(files) == {f.names[0] for f in A.LAYOUT}
    unet = release / "arc2face" / "diffusion_pytorch_model.safetensors"
    assert files["arc2face/diffusion_pytorch_model.safetensors"] == {
        "bytes": unet.stat().st_size, "sha256": sha256_file(unet)}
    # digests are cached: a new generator does not hash again
    monkeypatch.setattr(A.layout, "sha256_file", lambda path: pytest.fail(f"hashed {path} again"))
    assert create_generator("arc2face", weights=release).get_params()["files"] == files
    sizes = A.Arc2FaceGenerator(weights=release, hash_weights=False).get_params()["files"]
    assert all(set(v) == {"bytes"} for v in sizes.values())


@pytest.mark.parametrize("kw, match", [
    ({"mode": "pixel-lerp"}, "unknown mode"),
    ({"t": 1.5}, r"t must lie in \[0, 1\]"),
    ({"candidates": 0}, "candidates and steps"),
    ({"size": 100}, "multiple of 8"),
    ({"dtype": "int8"}, "unknown dtype"),
    ({"device": "cuda:0"} if not torch.cuda.is_available() else {"device": "tpu"}, "device"),
])
def test_bad_parameters(release, kw, match):
    with pytest.raises(ValueError, match=match):
        A.Arc2FaceGenerator(weights=release, **kw)


def test_weights_are_required():
    with pytest.raises(ValueError, match="weights=DIR") as err:
        A.Arc2FaceGenerator()
    assert "arc2face/diffusion_pytorch_model.safetensors" in str(err.value)


# ----------------------------------------------------------------------------------------
# the one layout error
# ----------------------------------------------------------------------------------------
def _check_listing(msg: str) -> None:
    for f in A.LAYOUT:
        assert f.names[0] in msg and f.size in msg
    assert "FoivosPar/Arc2Face" in msg and "stable-diffusion-v1-5" in msg
    assert "never downloads" in msg


@pytest.mark.parametrize("key", [f.key for f in A.LAYOUT])
def test_each_missing_file_is_named_in_one_error(release, tmp_path, key):
    copy = shutil.copytree(release, tmp_path / "w")
    f = A.LAYOUT[[x.key for x in A.LAYOUT].index(key)]
    (copy / f.names[0]).unlink()
    with pytest.raises(A.Arc2FaceWeightsError) as err:
        A.Arc2FaceGenerator(weights=copy)
    msg = str(err.value)
    assert f"[MISSING] {copy / f.names[0]}" in msg
    assert msg.count("[MISSING]") == 1 and msg.count("[ok]") == len(A.LAYOUT) - 1
    _check_listing(msg)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


def test_separate_base_folder(tmp_path):
    root = write_random_release(tmp_path / "a2f", "tiny", base=tmp_path / "sd15")
    assert not (root / "vae").exists()
    with pytest.raises(A.Arc2FaceWeightsError, match=r"\[MISSING\] .*vae"):
        A.check_weights(root)
    paths = A.check_weights(root, tmp_path / "sd15")
    assert paths["vae"].parent == tmp_path / "sd15" / "vae"
    gen = A.Arc2FaceGenerator(weights=root, base=tmp_path / "sd15", steps=STEPS, size=SIZE)
    assert gen.get_params()["base"] == str((tmp_path / "sd15").resolve())
    assert gen.pipe.vae is not None


def test_malformed_files(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "w")
    (copy / "vae" / "config.json").write_text("{not json")
    st = copy / "arc2face" / "diffusion_pytorch_model.safetensors"
    st.write_bytes(st.read_bytes()[:4])
    with pytest.raises(A.Arc2FaceWeightsError) as err:
        A.check_weights(copy)
    msg = str(err.value)
    assert "[MALFORMED: not valid JSON" in msg and "[MALFORMED: not a safetensors file" in msg
    _check_listing(msg)


def test_mismatched_encoder_width(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "w")
    cfg = json.loads((copy / "encoder" / "config.json").read_text())
    cfg["hidden_size"] = 48
    (copy / "encoder" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(A.Arc2FaceWeightsError, match="hidden_size 48 differs"):
        A.check_weights(copy)


def test_encoder_is_loaded_without_running_pickled_code(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "w")
    torch.save({"text_model.x": argparse.Namespace(a=1)}, copy / "encoder" / "pytorch_model.bin")
    with pytest.raises(A.Arc2FaceWeightsError) as err:
        A.load_pipeline(copy)
    msg = str(err.value)
    assert "encoder/pytorch_model.bin" in msg and "[MALFORMED: UnpicklingError" in msg
    _check_listing(msg)


def test_encoder_with_wrong_keys(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "w")
    state = torch.load(copy / "encoder" / "pytorch_model.bin", weights_only=True)
    state.pop("text_model.final_layer_norm.weight")
    torch.save(state, copy / "encoder" / "pytorch_model.bin")
    with pytest.raises(A.Arc2FaceWeightsError, match="1 missing"):
        A.load_pipeline(copy)


# ----------------------------------------------------------------------------------------
# LCM-LoRA and the command line
# ----------------------------------------------------------------------------------------
def test_lcm_lora_from_a_local_file(release, tmp_path):
    pytest.importorskip("peft", reason="LoRA loading in diffusers needs peft")
    from diffusers import LCMScheduler, StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    unet = A.load_pipeline(release).unet
    torch.manual_seed(0)
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # peft starts lora_B at zero: make the LoRA change something
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.1)
    StableDiffusionPipeline.save_lora_weights(tmp_path / "lcm", unet_lora_layers=get_peft_model_state_dict(unet))
    lora_file = tmp_path / "lcm" / "pytorch_lora_weights.safetensors"
    assert lora_file.is_file()
    gen = A.Arc2FaceGenerator(weights=release, lcm_lora=lora_file, steps=STEPS, size=SIZE)
    assert isinstance(gen.pipe.scheduler, LCMScheduler)
    assert gen.get_params()["scheduler"] == "lcm" and "lcm_lora" in gen.get_params()["files"]
    plain = A.Arc2FaceGenerator(weights=release, steps=STEPS, size=SIZE).pipe
    w = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    assert not torch.allclose(gen.pipe.unet.state_dict()[w], plain.unet.state_dict()[w])  # fused
    pe = A.project_face_embs(gen.pipe.text_encoder, gen.pipe.tokenizer, _arc(1))
    assert A.render(gen.pipe, pe, [0], steps=STEPS, size=SIZE).shape == (1, SIZE, SIZE, 3)
    with pytest.raises(FileNotFoundError, match="lcm-lora-sdv1-5"):
        A.Arc2FaceGenerator(weights=release, lcm_lora=tmp_path / "nope")


def test_cli_end_to_end(release, sample_dir, tmp_path):
    from click.testing import CliRunner

    from morphlab.cli import main
    from morphlab.generators.runner import load_manifest

    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pair_id", "subject_a", "image_a", "subject_b", "image_b"])
        w.writerow(["0001", "002", "neutral/002_03.jpg", "003", "neutral/003_03.jpg"])
        w.writerow(["0002", "004", "neutral/004_03.jpg", "005", "neutral/005_03.jpg"])
        w.writerow(["0003", "006", "neutral/006_03.jpg", "007", "neutral/007_03.jpg"])
    out = tmp_path / "out"
    args = ["generate", str(pairs), "-g", "arc2face", "-o", str(out), "--dataset-dir", str(sample_dir),
            "--weights", str(release), "--param", "steps=2", "--param", "size=64",
            "--param", "face_backend=file", "--batch-size", "2", "--t", "0.4",
            "--no-progress"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    recs = load_manifest(out / "manifest.jsonl")
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(ok) == 3 and {r["tag"] for r in ok} == {"morph"}
    for r in ok:
        assert r["generator"] == "arc2face" and r["params"]["t"] == 0.4
        assert r["params"]["candidate_seed"] == r["seed"] and r["landmark_backend"] == "file"
        assert "arc2face/diffusion_pytorch_model.safetensors" in r["params"]["files"]
        assert read_image(out / r["file"]).shape == (SIZE, SIZE, 3)
    # resumable: a second run does nothing
    # resumable: a second run does nothing, also with another batch size (a runtime param)
    args[args.index("--batch-size") + 1] = "3"
    res = CliRunner().invoke(main, args + ["--resume"])
    assert res.exit_code == 0 and "3 already done" in res.output, res.output
    # a parameter that changes the images is refused
    res = CliRunner().invoke(main, [a if a != "0.4" else "0.6" for a in args])
    assert res.exit_code != 0 and "params.t" in res.output
