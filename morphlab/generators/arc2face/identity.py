"""Arc2Face's identity projection and the Arc2Morph interpolations.

:func:`project_face_embs` turns ArcFace vectors into the 77×hidden ``prompt_embeds``;
:func:`morph_prompt_embeds` mixes two identities in one of :data:`MODES`.
"""

from __future__ import annotations

import contextlib

import numpy as np

from morphlab.generators.arc2face._deps import _torch

#: Interpolation modes (see the module docstring).
MODES = ("arcface-lerp", "arcface-slerp", "encoded-lerp", "encoded-slerp")
DEFAULT_MODE = "encoded-slerp"
#: Arc2Face's prompt; the embedding of ``id`` is replaced by the identity vector.
PROMPT = "photo of a id person"
ID_WORD = "id"
#: |cos| above which slerp falls back to lerp (the reference's DOT_THRESHOLD).
DOT_THRESHOLD = 0.9995


def id_token_id(tokenizer) -> int:
    """Token id of the word ``id`` (a single token in CLIP's vocabulary)."""
    ids = tokenizer.encode(ID_WORD, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the tokenizer splits {ID_WORD!r} into {len(ids)} tokens; expected CLIP's")
    return int(ids[0])


@contextlib.contextmanager
def _token_embeddings(text_encoder, token_embs):
    """Make the encoder's token-embedding layer return ``token_embs`` for the next calls."""
    layer = text_encoder.get_input_embeddings()
    handle = layer.register_forward_hook(lambda _mod, _args, _out: token_embs)
    try:
        yield
    finally:
        handle.remove()


def project_face_embs(text_encoder, tokenizer, face_embs):
    """Arc2Face's identity projection, batched (``project_face_embs`` of the release).

    Tokenise ``"photo of a id person"`` padded to the tokenizer's 77 tokens, L2-normalise
    each ArcFace vector, zero-pad it to the encoder width, put it in place of the token
    embedding of ``id`` and run the text transformer (position embeddings, causal mask,
    final layer norm). The transformer is the encoder's own forward (the token-embedding
    layer's output is swapped by a hook), so this works on every transformers version.

    Args:
        text_encoder: ``transformers.CLIPTextModel`` (Arc2Face's encoder).
        tokenizer: the SD1.5 ``CLIPTokenizer``.
        face_embs: ``(N, D)`` ArcFace embeddings (torch tensor or array), ``D <= hidden``.

    Returns:
        ``(N, 77, hidden)`` tensor of the encoder's dtype and device: ``prompt_embeds``.
    """
    torch = _torch()
    import torch.nn.functional as F

    param = next(text_encoder.parameters())
    hidden = int(text_encoder.config.hidden_size)
    embs = torch.as_tensor(np.asarray(face_embs) if not torch.is_tensor(face_embs) else face_embs)
    if embs.ndim != 2 or embs.shape[1] > hidden:
        raise ValueError(f"face_embs must be (N, D) with D <= {hidden}, got {tuple(embs.shape)}")
    embs = F.normalize(embs.to(param.device, torch.float32), dim=-1)
    padded = F.pad(embs, (0, hidden - embs.shape[1])).to(param.dtype)
    length = min(int(tokenizer.model_max_length), int(text_encoder.config.max_position_embeddings))
    ids = tokenizer(PROMPT, truncation=True, padding="max_length", max_length=length,
                    return_tensors="pt").input_ids.to(param.device)
    where = (ids[0] == id_token_id(tokenizer)).nonzero().flatten()
    if len(where) != 1:
        raise ValueError(f"prompt {PROMPT!r} holds the {ID_WORD!r} token {len(where)} times")
    ids = ids.repeat(len(embs), 1)
    with torch.no_grad():
        token_embs = text_encoder.get_input_embeddings()(ids).clone()
        token_embs[:, int(where[0])] = padded
        with _token_embeddings(text_encoder, token_embs):
            return text_encoder(input_ids=ids)[0]


def lerp(v0, v1, t: float):
    """Linear interpolation ``v0 + t (v1 - v0)`` of tensors (computed in float32)."""
    out = v0.float() + float(t) * (v1.float() - v0.float())
    return out.to(v0.dtype)


def slerp(v0, v1, t: float, dot_threshold: float = DOT_THRESHOLD):
    """Spherical interpolation along the last axis, row by row (as the reference).

    Rows whose directions are nearly parallel (``|cos| > dot_threshold``) or zero fall
    back to :func:`lerp`. For rows of equal norm the result keeps that norm.

    Args:
        v0, v1: tensors of the same shape ``(..., D)``.
        t: 0 gives ``v0``, 1 gives ``v1``.

    Returns:
        Tensor of ``v0``'s shape and dtype.
    """
    torch = _torch()
    if v0.shape != v1.shape:
        raise ValueError(f"slerp: shapes differ, {tuple(v0.shape)} vs {tuple(v1.shape)}")
    a, b = v0.float(), v1.float()
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    dot = ((a / na) * (b / nb)).sum(-1, keepdim=True)
    use_lerp = dot.isnan() | (dot.abs() > dot_threshold)
    theta = torch.where(use_lerp, torch.zeros_like(dot), dot.clamp(-1.0, 1.0).arccos())
    sin = theta.sin()
    safe = torch.where(use_lerp, torch.ones_like(sin), sin)
    s0 = torch.sin((1.0 - float(t)) * theta) / safe
    s1 = torch.sin(float(t) * theta) / safe
    slerped = s0 * a + s1 * b
    lerped = a + float(t) * (b - a)
    return torch.where(use_lerp, lerped, slerped).to(v0.dtype)


def interpolate(v0, v1, t: float, method: str):
    """``lerp`` or ``slerp`` by name."""
    if method == "lerp":
        return lerp(v0, v1, t)
    if method == "slerp":
        return slerp(v0, v1, t)
    raise ValueError(f"unknown interpolation {method!r}; use lerp or slerp")


def morph_prompt_embeds(text_encoder, tokenizer, arc_a, arc_b, t: float, mode: str = DEFAULT_MODE):
    """The morph's ``prompt_embeds`` for a batch of pairs.

    Args:
        text_encoder, tokenizer: Arc2Face's encoder and the SD1.5 tokenizer.
        arc_a, arc_b: ``(N, D)`` ArcFace embeddings of subjects A and B (row i is pair i).
        t: morph factor; 0 → A, 1 → B.
        mode: one of :data:`MODES`.

    Returns:
        ``(N, 77, hidden)`` tensor.
    """
    torch = _torch()
    import torch.nn.functional as F

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    space, method = mode.split("-")
    a = torch.as_tensor(np.asarray(arc_a, dtype=np.float32)) if not torch.is_tensor(arc_a) else arc_a
    b = torch.as_tensor(np.asarray(arc_b, dtype=np.float32)) if not torch.is_tensor(arc_b) else arc_b
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    if space == "arcface":
        mixed = F.normalize(interpolate(a, b, t, method), dim=-1)
        return project_face_embs(text_encoder, tokenizer, mixed)
    both = project_face_embs(text_encoder, tokenizer, torch.cat([a, b]))
    return interpolate(both[: len(a)], both[len(a):], t, method)

