"""Is the evaluation independent of the attack? FR model files the generator itself used.

A generator may use a face recognition model to make its morphs: Arc2Face is conditioned
on the embeddings of its own ArcFace (``arcface.onnx``), and with ``candidates > 1`` a
recognition system picks the kept image. Scoring those morphs with the same model
measures how well the attack was optimised against it, not its potential against other
systems. :func:`model_file_overlap` finds every scoring system whose model file is one
the manifest records:

- **conditioned**: the file's sha256 is one the line records for the models that
  conditioned it (``extra.conditioning_models``, e.g. ``{"arcface": sha256}``) or for
  the generator's weight files (``params.files[name].sha256``, unless
  ``hash_weights=False``); where no sha256 was recorded, its path is
  ``params.weights``/``params.base`` + that name;
- **selected**: the file's sha256 is in ``extra.selection_models``, or the line's
  ``extra.selection`` names the system and its version (the version of
  ``arcface-onnx``/``sface-onnx`` starts with the model file's sha256), or the
  generator's ``params.recognition`` spec (``name=PATH``) names the same file.

``map-score`` warns, and records the matches in ``map.json``
(``settings.independence``) and at the top of the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from morphlab.io import sha256_file


def _resolve(path: Any) -> Optional[str]:
    try:
        return str(Path(str(path)).expanduser().resolve())
    except (OSError, RuntimeError, ValueError):
        return None


def _recorded(records: Sequence[Mapping[str, Any]]) -> tuple[dict, dict, list]:
    """``({sha256: {(group, where, role)}}, {path: {(group, where, role)}}, selections)``."""
    by_sha: dict[str, set] = {}
    by_path: dict[str, set] = {}
    selections: list[tuple[str, Mapping[str, Any], Optional[str]]] = []
    for rec in records:
        group = str(rec.get("group") or rec.get("generator") or "?")
        params = rec.get("params") if isinstance(rec.get("params"), Mapping) else {}
        extra = rec.get("extra") if isinstance(rec.get("extra"), Mapping) else {}
        for key, role in (("conditioning_models", "conditioned"), ("selection_models", "selected")):
            models = extra.get(key) if isinstance(extra.get(key), Mapping) else {}
            for name, sha in models.items():
                if isinstance(sha, str) and sha:
                    by_sha.setdefault(sha.lower(), set()).add((group, f"extra.{key}[{name!r}]", role))
        files = params.get("files") if isinstance(params.get("files"), Mapping) else {}
        roots = [params.get(k) for k in ("weights", "base") if isinstance(params.get(k), str)]
        for name, info in files.items():
            where = f"params.files[{name!r}]"
            sha = info.get("sha256") if isinstance(info, Mapping) else None
            if isinstance(sha, str) and sha:
                by_sha.setdefault(sha.lower(), set()).add((group, where, "conditioned"))
            else:  # sizes only (hash_weights=False): compare by path
                for root in roots:
                    p = _resolve(Path(root) / str(name))
                    if p:
                        by_path.setdefault(p, set()).add((group, where, "conditioned"))
        spec = params.get("recognition")
        spec_path = None
        if isinstance(spec, str) and "=" in spec:
            spec_path = _resolve(spec.split("=", 1)[1])
        sel = extra.get("selection")
        if isinstance(sel, Mapping):
            selections.append((group, sel, spec_path))
    return by_sha, by_path, selections


def model_file_overlap(records: Sequence[Mapping[str, Any]], systems: Sequence[Any],
                       labels: Sequence[str]) -> list[dict]:
    """The scoring systems whose model file conditioned or selected the morphs.

    Args:
        records: the attack set's lines (as :func:`~morphlab.mapscore.inputs.read_attack_set`
            returns them, with ``group``).
        systems: the recognition systems scored (``model_path`` where they have one).
        labels: their labels in the report.

    Returns:
        One dict per matching system: ``{"system", "model_path", "model_sha256", "roles":
        ["conditioned"|"selected", ...], "groups": [...], "recorded_as": [...],
        "message"}``; empty when the evaluation is independent of the generator's models.
    """
    by_sha, by_path, selections = _recorded(records)
    if not (by_sha or by_path or selections):
        return []
    out = []
    for system, label in zip(systems, labels):
        path = getattr(system, "model_path", None)
        real = _resolve(path) if path is not None else None
        if real is None or not Path(real).is_file():
            continue
        sha = sha256_file(real) if by_sha else None
        hits: set = set()
        if sha is not None and sha in by_sha:
            hits |= by_sha[sha]
        if real in by_path:
            hits |= by_path[real]
        for group, sel, spec_path in selections:
            same_version = (sel.get("recognition") == system.name
                            and str(sel.get("recognition_version")) == str(system.version))
            if same_version or (spec_path is not None and spec_path == real):
                hits.add((group, "extra.selection", "selected"))
        if not hits:
            continue
        roles = [r for r in ("conditioned", "selected") if any(h[2] == r for h in hits)]
        groups = sorted({g for g, _, _ in hits})
        where = sorted({w for _, w, _ in hits})
        verb = " and ".join({"conditioned": "conditioned the generator",
                             "selected": "selected the kept candidates"}[r] for r in roles)
        message = (
            f"evaluation not independent: {label} ({real}) is the model file that {verb} "
            f"of {', '.join(groups)} (recorded in the manifest as {', '.join(where)}); its MAP "
            "measures the attack against the model it was made with. Score with systems the "
            "generator did not use (the default dlib-resnet, facenet, mobilefacenet, or "
            "another --fr model)")
        out.append({"system": label, "model_path": real, "model_sha256": sha, "roles": roles,
                    "groups": groups, "recorded_as": where, "message": message})
    return out
