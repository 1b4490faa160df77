"""The arc2face generator against independent derivations of the reference maths.

``test_arc2face.py`` checks the generator's behaviour; these tests check that the numbers
are the reference's (Arc2Face's ``project_face_embs`` and ``CLIPTextModelWrapper``,
Arc2Morph's ``morph_multiple.py``), each against a derivation that shares no code with
``morphlab.generators.arc2face`` (tiny random release, 64×64):

- the identity projection against an explicit CLIP text transformer written out here
  (token embeddings + positions, causal mask only — no padding mask —, every layer, the
  final layer norm, the last hidden state), with the prompt's token ids spelled from the
  vocabulary, the ArcFace vector normalised and zero-padded to the encoder width at the
  ``id`` position;
- the classifier-free-guidance negative: the explicit transformer's output for the empty
  prompt ``""`` (``<bos> <eos> <eos>…``), not zeros, not a zero-identity projection;
- what the UNet receives and how its two predictions are combined (spied with hooks on
  the generator's own pipeline): ``[negative, identity]`` rows, ``uncond + g (cond -
  uncond)`` with the guidance ``g`` asked for (3.0 by default), 25 steps by default;
- the whole scheduler config: DPM-Solver++ multistep built from the release's SD1.5
  config, no Karras/exponential/beta sigmas, no SDE variant, the reference's timesteps.

The NumPy 2 check (``@pytest.mark.numpy2``) is at the end: it runs the tiny ONNX
"ArcFace" and the generator's NumPy maths in a second venv holding NumPy >= 2 (see
:func:`numpy2_python` for when it runs and the command).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SIZE, STEPS = 64, 2
#: Arc2Face's prompt, spelled as the CLIP BPE tokens the reference tokenises it into.
PROMPT_TOKENS = ("photo</w>", "of</w>", "a</w>", "id</w>", "person</w>")
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _need_stack():
    for mod, why in (
        ("torch", "the arc2face generator needs torch"),
        ("diffusers", "the arc2face generator needs diffusers (morphlab[diffusion])"),
        ("transformers", "the arc2face generator needs transformers (morphlab[diffusion])"),
        ("onnx", "the tiny ArcFace stand-in is written with onnx (morphlab[onnx])"),
        ("onnxruntime", "ArcFace runs on onnxruntime (morphlab[onnx])"),
    ):
        pytest.importorskip(mod, reason=why)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    _need_stack()
    from morphlab.generators.arc2face_testing import write_random_release

    return write_random_release(tmp_path_factory.mktemp("a2f-ref") / "weights", "tiny", seed=3)


@pytest.fixture(scope="module")
def gen(release):
    from morphlab.generators.arc2face import Arc2FaceGenerator

    return Arc2FaceGenerator(weights=release, face_backend="file", steps=STEPS, size=SIZE,
                             hash_weights=False)


def _arc(n: int, seed: int, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


# ----------------------------------------------------------------------------------------
# the independent derivation
# ----------------------------------------------------------------------------------------
def prompt_ids(tokenizer, tokens, length: int = 77):
    """``<bos> tokens… <eos>`` padded with ``<eos>`` to ``length`` (SD1.5's padding),
    looked up in the vocabulary by hand (no tokenizer call)."""
    import torch

    vocab = tokenizer.get_vocab()
    ids = [vocab[BOS], *(vocab[t] for t in tokens), vocab[EOS]]
    return torch.tensor(ids + [vocab[EOS]] * (length - len(ids)))


def explicit_text_transformer(text_encoder, token_embs):
    """CLIP's text transformer written out: ``(N, L, H)`` token embeddings → last hidden
    state after the final layer norm, with the causal mask and no padding mask (as
    Arc2Face's ``CLIPTextModelWrapper``, which passes no attention mask)."""
    import torch

    tm = getattr(text_encoder, "text_model", text_encoder)  # transformers 4 wraps it
    cfg = text_encoder.config
    n, length, hidden = token_embs.shape
    heads = int(cfg.num_attention_heads)
    hd = hidden // heads
    eps = float(cfg.layer_norm_eps)
    acts = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
            "gelu": lambda x: 0.5 * x * (1.0 + torch.erf(x / 2.0 ** 0.5))}
    act = acts[cfg.hidden_act]
    causal = torch.full((length, length), float("-inf")).triu(1)

    def ln(x, mod):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * mod.weight + mod.bias

    def lin(x, mod):
        return x @ mod.weight.T + mod.bias

    with torch.no_grad():
        x = token_embs.float() + tm.embeddings.position_embedding.weight[:length]
        for layer in tm.encoder.layers:
            a = layer.self_attn
            h = ln(x, layer.layer_norm1)
            q, k, v = (lin(h, p).view(n, length, heads, hd).transpose(1, 2)
                       for p in (a.q_proj, a.k_proj, a.v_proj))
            w = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + causal, dim=-1)
            x = x + lin((w @ v).transpose(1, 2).reshape(n, length, hidden), a.out_proj)
            h = ln(x, layer.layer_norm2)
            x = x + lin(act(lin(h, layer.mlp.fc1)), layer.mlp.fc2)
        return ln(x, tm.final_layer_norm)


def reference_projection(text_encoder, tokenizer, arc):
    """Arc2Face's ``project_face_embs``: normalised ArcFace vector, zero-padded to the
    encoder width, in place of the ``id`` token embedding; the explicit transformer."""
    import torch

    ids = prompt_ids(tokenizer, PROMPT_TOKENS)
    pos = PROMPT_TOKENS.index("id</w>") + 1  # after <bos>
    arc = torch.as_tensor(np.asarray(arc, np.float64))
    unit = (arc / arc.norm(dim=-1, keepdim=True).clamp_min(1e-12)).float()  # 0 stays 0
    hidden = int(text_encoder.config.hidden_size)
    padded = torch.cat([unit, torch.zeros(len(unit), hidden - unit.shape[1])], dim=1)
    table = getattr(text_encoder, "text_model", text_encoder).embeddings.token_embedding.weight
    token_embs = table[ids].detach().clone().repeat(len(unit), 1, 1)
    token_embs[:, pos] = padded
    return explicit_text_transformer(text_encoder, token_embs)


def reference_negative(text_encoder, tokenizer):
    """The embedding of ``""`` (``<bos> <eos>`` + ``<eos>`` padding), ``(1, 77, H)``."""
    table = getattr(text_encoder, "text_model", text_encoder).embeddings.token_embedding.weight
    return explicit_text_transformer(text_encoder, table[prompt_ids(tokenizer, ())][None])


def test_the_explicit_transformer_is_clip(gen):
    """Self-check of the derivation: on plain token ids (no identity swapped in, no
    attention mask) it gives what transformers' CLIPTextModel gives."""
    import torch

    te, tok = gen.pipe.text_encoder, gen.pipe.tokenizer
    ids = prompt_ids(tok, PROMPT_TOKENS)
    table = getattr(te, "text_model", te).embeddings.token_embedding.weight
    with torch.no_grad():
        want = te(input_ids=ids[None]).last_hidden_state
    torch.testing.assert_close(explicit_text_transformer(te, table[ids][None]), want,
                               atol=2e-5, rtol=1e-5)
    # and the hand-spelled ids are what the tokenizer makes of the prompt
    from morphlab.generators.arc2face import PROMPT

    assert tok(PROMPT, padding="max_length", max_length=77).input_ids == ids.tolist()


# ----------------------------------------------------------------------------------------
# the identity projection
# ----------------------------------------------------------------------------------------
def test_projection_equals_the_explicit_derivation(gen):
    """All 77 tokens of every row: catches the second-to-last hidden state, a missing
    final layer norm, a padding mask, the wrong token position, no normalisation."""
    import torch

    from morphlab.generators import arc2face as A

    te, tok = gen.pipe.text_encoder, gen.pipe.tokenizer
    arc = _arc(3, seed=1) * np.array([[0.1], [1.0], [9.0]], np.float32)  # any scale
    got = A.project_face_embs(te, tok, arc)
    want = reference_projection(te, tok, arc)
    assert got.shape == want.shape == (3, 77, 32)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    # the padding tokens after <eos> carry information the padding mask would remove
    assert not torch.allclose(got[:, 7:], got[:, 6:7].expand(-1, 70, -1), atol=1e-3)


@pytest.mark.parametrize("mode", ["arcface-lerp", "arcface-slerp", "encoded-lerp", "encoded-slerp"])
def test_morph_embeddings_equal_the_explicit_derivation(gen, mode):
    """The interpolation modes on top of the independent projection (t = 0.3)."""
    import torch

    from morphlab.generators import arc2face as A

    te, tok = gen.pipe.text_encoder, gen.pipe.tokenizer
    a, b, t = _arc(2, seed=2), _arc(2, seed=3), 0.3
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    if mode == "arcface-lerp":
        want = reference_projection(te, tok, (1 - t) * ua + t * ub)
    elif mode == "arcface-slerp":
        theta = np.arccos(np.sum(ua * ub, axis=1, keepdims=True))
        mixed = (np.sin((1 - t) * theta) * ua + np.sin(t * theta) * ub) / np.sin(theta)
        want = reference_projection(te, tok, mixed)
    else:
        ea = reference_projection(te, tok, a).double()
        eb = reference_projection(te, tok, b).double()
        if mode == "encoded-lerp":
            want = (1 - t) * ea + t * eb
        else:  # token by token; the reference lerps where |cos| > 0.9995
            na, nb = ea.norm(dim=-1, keepdim=True), eb.norm(dim=-1, keepdim=True)
            dot = ((ea / na) * (eb / nb)).sum(-1, keepdim=True)
            theta = dot.clamp(-1, 1).arccos()
            slerped = ((torch.sin((1 - t) * theta) * ea + torch.sin(t * theta) * eb)
                       / torch.sin(theta).clamp_min(1e-12))
            want = torch.where(dot.abs() > 0.9995, (1 - t) * ea + t * eb, slerped)
        want = want.float()
    got = A.morph_prompt_embeds(te, tok, a, b, t, mode)
    torch.testing.assert_close(got, want, atol=5e-5, rtol=1e-4)


# ----------------------------------------------------------------------------------------
# the guidance negative
# ----------------------------------------------------------------------------------------
def test_negative_is_the_encoding_of_the_empty_prompt(gen):
    import torch

    from morphlab.generators import arc2face as A

    te, tok = gen.pipe.text_encoder, gen.pipe.tokenizer
    want = reference_negative(te, tok)
    got = A.negative_prompt_embeds(gen.pipe)
    assert got.shape == (1, 77, 32)
    assert float(got.abs().mean()) > 0.1, "the negative is (nearly) zero"
    zero_id = reference_projection(te, tok, np.zeros((1, 16), np.float32))
    assert not torch.allclose(got, zero_id, atol=1e-3), "the negative is a zero-identity projection"
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------
# what reaches the UNet and the sampler
# ----------------------------------------------------------------------------------------
class Spy:
    """Records every UNet call (timestep, conditioning rows, prediction) and every
    scheduler step's model output on one pipeline, while the context is open."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.unet_calls: list[dict] = []
        self.step_outputs: list = []

    def __enter__(self):
        def hook(_mod, args, kwargs, out):
            ehs = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
            t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
            sample = out[0] if isinstance(out, tuple) else out.sample
            self.unet_calls.append({"t": float(t.flatten()[0]) if hasattr(t, "flatten") else float(t),
                                    "ehs": ehs.detach().float().clone(),
                                    "pred": sample.detach().float().clone()})

        self._handle = self.pipe.unet.register_forward_hook(hook, with_kwargs=True)
        sched = self.pipe.scheduler
        original = sched.step

        @functools.wraps(original)
        def step(model_output, *args, **kwargs):
            self.step_outputs.append(model_output.detach().float().clone())
            return original(model_output, *args, **kwargs)

        sched.step = step
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        del self.pipe.scheduler.step  # back to the class's method
        return False


def _check_cfg(spy: Spy, negative, positive, guidance: float, steps: int) -> None:
    """Every UNet call saw ``[negative × N, positive]`` and every step got
    ``uncond + guidance (cond - uncond)``."""
    import torch

    n = len(positive)
    assert len(spy.unet_calls) == steps, f"{len(spy.unet_calls)} UNet calls for {steps} steps"
    assert len(spy.step_outputs) == steps
    for call, model_output in zip(spy.unet_calls, spy.step_outputs):
        ehs = call["ehs"]
        assert ehs.shape[0] == 2 * n, (
            f"UNet batch {ehs.shape[0]} for {n} images: no classifier-free guidance")
        torch.testing.assert_close(ehs[:n], negative.expand(n, -1, -1), atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(ehs[n:], positive, atol=5e-5, rtol=1e-4)
        uncond, cond = call["pred"].chunk(2)
        want = uncond + guidance * (cond - uncond)
        torch.testing.assert_close(model_output, want, atol=1e-5, rtol=1e-5)
        assert (cond - uncond).abs().max() > 1e-3  # the check could tell guidances apart


def test_generator_conditions_the_unet_as_the_reference(gen):
    """Through ``render_morphs`` (the generator's own path, its cached negative): the
    negative half is the empty prompt's encoding, the positive half the morph's
    projection, and the predictions are combined with guidance 3.0 (the default)."""
    te, tok = gen.pipe.text_encoder, gen.pipe.tokenizer
    assert gen.guidance == 3.0
    a, b = _arc(2, seed=4), _arc(2, seed=5)
    want = 0.5 * (reference_projection(te, tok, a) + reference_projection(te, tok, b))
    from morphlab.generators.arc2face import Arc2FaceGenerator

    lerp = Arc2FaceGenerator(weights=gen.weights, face_backend="file", steps=STEPS, size=SIZE,
                             mode="encoded-lerp", hash_weights=False)
    with Spy(lerp.pipe) as spy:
        images = lerp.render_morphs(a, b, [1, 2])
    assert images.shape == (2, 1, SIZE, SIZE, 3)
    _check_cfg(spy, reference_negative(te, tok), want, 3.0, STEPS)


@pytest.mark.parametrize("guidance", [1.5, 5.0])
def test_the_guidance_asked_for_reaches_the_sampler(gen, guidance):
    from morphlab.generators import arc2face as A
    from morphlab.generators.arc2face import Arc2FaceGenerator

    te, tok = gen.pipe.text_encoder, gen.pipe.tokenizer
    arc = _arc(1, seed=6)
    pe = reference_projection(te, tok, arc)
    with Spy(gen.pipe) as spy:  # the pipeline function
        A.render(gen.pipe, A.project_face_embs(te, tok, arc), [0], steps=STEPS, size=SIZE,
                 guidance=guidance)
    _check_cfg(spy, reference_negative(te, tok), pe, guidance, STEPS)
    g2 = Arc2FaceGenerator(weights=gen.weights, face_backend="file", steps=STEPS, size=SIZE,
                           guidance=guidance, mode="arcface-lerp", hash_weights=False)
    assert g2.get_params()["guidance"] == guidance
    with Spy(g2.pipe) as spy:  # the generator parameter
        g2.render_morphs(arc, arc, [0])
    _check_cfg(spy, reference_negative(te, tok), pe, guidance, STEPS)


def test_guidance_changes_the_image(gen):
    """End to end: the same seed at guidance 3 and 6 gives different images (so a
    pipeline that ignored guidance could not pass)."""
    from morphlab.generators import arc2face as A

    pe = A.project_face_embs(gen.pipe.text_encoder, gen.pipe.tokenizer, _arc(1, seed=7))
    three = A.render(gen.pipe, pe, [4], steps=STEPS, size=SIZE, guidance=3.0)
    six = A.render(gen.pipe, pe, [4], steps=STEPS, size=SIZE, guidance=6.0)
    assert np.abs(three.astype(int) - six).mean() > 0.5


# ----------------------------------------------------------------------------------------
# the scheduler
# ----------------------------------------------------------------------------------------
def _reference_scheduler(release: Path):
    """What the reference builds: ``DPMSolverMultistepScheduler.from_config`` of SD1.5's
    scheduler config, nothing overridden."""
    from diffusers import DPMSolverMultistepScheduler

    cfg = json.loads((release / "scheduler" / "scheduler_config.json").read_text())
    return DPMSolverMultistepScheduler.from_config(cfg)


def test_scheduler_config_is_the_references(gen, release):
    from diffusers import DPMSolverMultistepScheduler

    sched = gen.pipe.scheduler
    assert type(sched) is DPMSolverMultistepScheduler
    cfg = dict(sched.config)
    assert cfg["algorithm_type"] == "dpmsolver++", "not DPM-Solver++ (an SDE variant?)"
    assert not cfg["use_karras_sigmas"], "Karras sigmas"
    for key in ("use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas"):
        assert not cfg.get(key, False), key
    assert (cfg["solver_order"], cfg["solver_type"], cfg["prediction_type"]) == (2, "midpoint", "epsilon")
    assert (cfg["beta_schedule"], cfg["beta_start"], cfg["beta_end"]) == ("scaled_linear", 0.00085, 0.012)
    assert cfg["num_train_timesteps"] == 1000 and cfg["steps_offset"] == 1
    ref = dict(_reference_scheduler(release).config)
    diff = {k: (cfg.get(k), ref.get(k)) for k in set(cfg) | set(ref)
            if k not in ("_class_name", "_diffusers_version") and cfg.get(k) != ref.get(k)}
    assert not diff, f"scheduler config differs from the reference's: {diff}"


def test_default_steps_and_timesteps_reach_the_pipeline(release):
    """25 steps by default, sampled at the reference scheduler's timesteps, with its
    sigmas (a Karras or exponential schedule moves them)."""
    import torch

    from morphlab.generators.arc2face import Arc2FaceGenerator

    g = Arc2FaceGenerator(weights=release, face_backend="file", size=SIZE, hash_weights=False)
    assert g.steps == 25 and g.get_params()["steps"] == 25
    with Spy(g.pipe) as spy:
        g.render_morphs(_arc(1, seed=8), _arc(1, seed=9), [0])
    ref = _reference_scheduler(release)
    ref.set_timesteps(25)
    assert [c["t"] for c in spy.unet_calls] == [float(t) for t in ref.timesteps]
    torch.testing.assert_close(g.pipe.scheduler.sigmas.float(), ref.sigmas.float())


# ----------------------------------------------------------------------------------------
# NumPy 2
# ----------------------------------------------------------------------------------------
NUMPY2_ENV = "MORPHLAB_NUMPY2_VENV"
NUMPY2_SETUP = ("python3 -m venv /tmp/np2 && /tmp/np2/bin/pip install 'numpy>=2' onnx onnxruntime "
                f"&& {NUMPY2_ENV}=/tmp/np2 .venv/bin/python -m pytest -m numpy2 "
                "tests/generators/test_arc2face_reference.py")
#: Run in the NumPy 2 venv (PYTHONPATH = the repository): the tiny ONNX "ArcFace"
#: (export, onnxruntime, embeddings) and the generator's NumPy maths; prints JSON.
NUMPY2_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
import onnx
from onnx import numpy_helper
from morphlab.recognition.testing import make_tiny_fr_onnx
from morphlab.recognition.arcface_onnx import ArcFaceONNX
from morphlab.generators.arc2face.generator import candidate_seeds, select_candidate

out = Path(sys.argv[1])
path = make_tiny_fr_onnx(out / "fr.onnx", embedding_dim=16, seed=0)
dtypes = sorted({str(numpy_helper.to_array(t).dtype) for t in onnx.load(str(path)).graph.initializer})
fr = ArcFaceONNX(model_path=path)
crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
emb = fr.embed_aligned(crops)
sim = fr.similarity(emb[:1], emb)
print(json.dumps({
    "numpy": np.__version__, "initialiser_dtypes": dtypes, "emb_dtype": str(emb.dtype),
    "emb": emb.tolist(), "sim": sim.tolist(), "seeds": candidate_seeds(12345, 4),
    "chosen": select_candidate([0.2, float("nan"), 0.5], [0.9, 0.9, 0.4]),
    "sim_ab": float(np.dot(emb[0], emb[1])),
}))
"""


def numpy2_python() -> Path:
    """The Python of the NumPy 2 venv.

    ``MORPHLAB_NUMPY2_VENV=DIR`` names a venv holding ``numpy>=2``, ``onnx`` and
    ``onnxruntime`` (no torch needed; ~100 MB, ~30 s to build)::

        python3 -m venv /tmp/np2 && /tmp/np2/bin/pip install 'numpy>=2' onnx onnxruntime
        MORPHLAB_NUMPY2_VENV=/tmp/np2 .venv/bin/python -m pytest -m numpy2 \
            tests/generators/test_arc2face_reference.py

    If that venv also holds torch, diffusers, transformers and pytest (see
    :func:`test_arc2face_suite_under_numpy2`), the arc2face test files run in it too. A
    cheap way to get one: NumPy 2, a NumPy-2 OpenCV and pytest of its own, the rest of
    the stack borrowed from the project's venv (a ``.pth`` adds it *after* its own
    site-packages, so its NumPy 2 and cv2 win)::

        python3 -m venv /tmp/np2full && /tmp/np2full/bin/pip install 'numpy>=2' onnx \
            onnxruntime pytest pytest-timeout opencv-python-headless
        echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \
            > /tmp/np2full/lib/python3.11/site-packages/zz_morphlab_venv.pth
        MORPHLAB_NUMPY2_VENV=/tmp/np2full .venv/bin/python -m pytest -m numpy2 \
            tests/generators/test_arc2face_reference.py
    Under CI (``CI=true``) without the variable, the small venv is built in the test's
    temporary folder (cheap: three wheels); elsewhere the tests skip, naming the command.
    """
    value = os.environ.get(NUMPY2_ENV, "").strip()
    if value:
        py = Path(value).expanduser() / "bin" / "python"
        if not py.exists():
            pytest.fail(f"{NUMPY2_ENV}={value}: no bin/python there; create it with: {NUMPY2_SETUP}")
        return py
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"NumPy 2 check: set {NUMPY2_ENV} to a venv with numpy>=2 (e.g. {NUMPY2_SETUP})")
    return _built_numpy2_venv()


@functools.lru_cache(maxsize=1)
def _built_numpy2_venv() -> Path:
    import tempfile

    venv = Path(tempfile.mkdtemp(prefix="morphlab-numpy2-")) / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy>=2", "onnx", "onnxruntime"],
                         capture_output=True, text=True)
    if res.returncode:
        pytest.fail(f"could not build the NumPy 2 venv at {venv}: {res.stderr.strip()[-2000:]}")
    return py


def _run_numpy2_script(python: Path, tmp: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONNOUSERSITE": "1"}
    res = subprocess.run([str(python), "-c", NUMPY2_SCRIPT, str(tmp)], capture_output=True,
                         text=True, env=env, cwd=str(tmp))
    assert res.returncode == 0, f"under {python}:\n{res.stderr[-3000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.numpy2
def test_tiny_arcface_and_identity_maths_under_numpy2(tmp_path):
    """The tiny ONNX model exports float32 weights and gives the same embeddings,
    similarities and candidate seeds under NumPy 2 as under this venv's NumPy."""
    pytest.importorskip("onnx", reason="the tiny ArcFace stand-in is written with onnx")
    pytest.importorskip("onnxruntime", reason="ArcFace runs on onnxruntime")
    py2 = numpy2_python()
    (tmp_path / "np2").mkdir()
    (tmp_path / "here").mkdir()
    two = _run_numpy2_script(py2, tmp_path / "np2")
    here = _run_numpy2_script(Path(sys.executable), tmp_path / "here")
    assert int(two["numpy"].split(".")[0]) >= 2, f"{py2} has NumPy {two['numpy']}, not 2"
    assert two["initialiser_dtypes"] == ["float32"] and two["emb_dtype"] == "float32"
    np.testing.assert_allclose(two["emb"], here["emb"], atol=1e-6)
    np.testing.assert_allclose(two["sim"], here["sim"], atol=1e-6)
    assert two["seeds"] == here["seeds"] and two["chosen"] == here["chosen"] == 2
    assert two["sim_ab"] == pytest.approx(here["sim_ab"], abs=1e-6)


@pytest.mark.numpy2
def test_arc2face_suite_under_numpy2():
    """The arc2face test files themselves, run by the NumPy 2 venv's pytest when that
    venv holds the diffusion stack (torch, diffusers, transformers, pytest)."""
    py2 = numpy2_python()
    probe = subprocess.run(
        [str(py2), "-c", "import numpy, torch, diffusers, transformers, pytest, onnxruntime; "
                         "print(numpy.__version__)"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"{py2} lacks the diffusion stack (torch, diffusers, transformers, pytest): "
                    "only the tiny NumPy 2 check ran")
    assert int(probe.stdout.strip().split(".")[0]) >= 2
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(NUMPY2_ENV, None)  # no recursion
    env.pop("CI", None)
    res = subprocess.run(
        [str(py2), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not numpy2",
         "tests/generators/test_arc2face.py", "tests/generators/test_arc2face_reference.py"],
        capture_output=True, text=True, env=env, cwd=str(REPO))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    passed = re.search(r"(\d+) passed", res.stdout)
    assert passed and int(passed.group(1)) >= 40, res.stdout[-2000:]  # they ran, not skipped
