"""What a report was made from, named by paths relative to the report's folder.

Every report of morphlab names its inputs — the attack set, its post-processing protocol
(read from the set's ``manifest.jsonl`` / ``run.json`` chain), the face recognition
systems or the detector, the probe and calibration folders — so that a report folder
read on its own says what it measured. Paths are written relative to the report's folder
(:func:`rel`), never as absolute machine paths: a report folder can be moved with its
inputs, archived or published without leaking ``/home/someone/…``.

:func:`relative_paths` is the safety net that :class:`~morphlab.reports.document.Document`
applies to every text it renders: an absolute path inside a message (a warning quoting
a file, an error example) becomes relative to the report folder too.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Union

PathLike = Union[str, os.PathLike]

#: An absolute POSIX path of at least two components, not part of a URL or a relative
#: path (``https://x/y``, ``../a/b``, ``1/30`` are left alone); stops at whitespace and
#: at the punctuation that ends a path inside a sentence or a table.
_ABS_PATH = re.compile(r"(?<![\w/.:~\\-])(/[^\s/|,;()\[\]<>\"'`]+(?:/[^\s/|,;()\[\]<>\"'`]+)+/?)")
_TRAILING = ".:!?"


def rel(path: PathLike, base: PathLike) -> str:
    """``path`` relative to the folder ``base``, POSIX separators (``"../morphs"``).

    Both are made absolute (symbolic links resolved) first, so a relative ``path`` is
    taken relative to the current directory, as the command line gave it.
    """
    p = os.path.realpath(os.fspath(path))
    b = os.path.realpath(os.fspath(base))
    return Path(os.path.relpath(p, b)).as_posix()


def relative_paths(text: Any, base: Optional[PathLike]) -> str:
    """``text`` with every absolute path in it rewritten relative to ``base``.

    ``base=None`` returns ``str(text)`` unchanged. A path's trailing sentence punctuation
    (``.``, ``:``) stays outside it.
    """
    s = str(text)
    if base is None or "/" not in s:
        return s

    def sub(m: re.Match) -> str:
        token = m.group(1)
        tail = ""
        while token and token[-1] in _TRAILING:
            token, tail = token[:-1], token[-1] + tail
        if token.count("/") < 2 and not os.path.exists(token):
            return m.group(0)
        return rel(token, base) + tail

    return _ABS_PATH.sub(sub, s)


def _manifest_of(src: PathLike) -> Path:
    p = Path(src)
    return p / "manifest.jsonl" if p.is_dir() else p


def manifest_lines(manifest: Path) -> list[dict]:
    """Every JSON-object line of ``manifest`` (unreadable lines and files: skipped)."""
    out = []
    try:
        text = manifest.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _run_json(folder: Path) -> dict:
    try:
        doc = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def protocol_of(records: list[dict]) -> tuple[str, Optional[str]]:
    """``(protocol, original manifest path)`` of a set's records.

    The protocol is every post-processing step applied since generation, oldest first
    (``"icao → print-scan:… → jpeg:q=75"``), or ``"none (as generated)"``; the path is
    the manifest of the set the first step read (``None`` for an unprocessed set).
    """
    for r in records:
        steps = r.get("postprocess")
        if r.get("status", "ok") == "ok" and isinstance(steps, list) and steps:
            ops = [str(op) for st in steps if isinstance(st, dict) for op in st.get("ops", [])]
            first = steps[0].get("source", {}) if isinstance(steps[0], dict) else {}
            return " → ".join(ops) or "none (as generated)", first.get("manifest")
    return "none (as generated)", None


def attack_set_facts(src: PathLike, base: PathLike) -> dict:
    """The facts naming an attack set in a report written to the folder ``base``.

    Args:
        src: the set's folder or its ``manifest.jsonl``.
        base: the report folder (paths are made relative to it).

    Returns:
        ``{"path": folder relative to base, "manifest_sha256", "kind", "generators":
        "landmark/complete: 12, …", "protocol", "generated_from": the unprocessed set's
        folder (relative) or None, "morphs", "failed"}``.
    """
    from morphlab.io import sha256_file

    manifest = _manifest_of(src)
    folder = manifest.parent
    recs = manifest_lines(manifest)
    ok = [r for r in recs if r.get("status", "ok") == "ok" and r.get("kind", "morph") == "morph"]
    fmt = _run_json(folder).get("format", "")
    kind = {"morphlab-attack-set": "attack set (morphlab generate)",
            "morphlab-postprocessed": "post-processed set (morphlab postprocess)",
            "morphlab-imported-set": "imported set (morphlab import)"}.get(
        fmt, f"set ({fmt})" if fmt else "set (no run.json)")
    counts = Counter(f"{r.get('generator', '?')}/{r.get('tag') or '-'}" for r in ok)
    protocol, origin = protocol_of(recs)
    try:
        sha = sha256_file(manifest)
    except OSError:
        sha = None
    return {
        "path": rel(folder, base),
        "manifest_sha256": sha,
        "kind": kind,
        "generators": ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "–",
        "protocol": protocol,
        "generated_from": rel(Path(origin).parent, base) if origin else None,
        "morphs": len(ok),
        "failed": sum(1 for r in recs if r.get("status") == "failed"),
    }


def attack_set_rows(facts: dict, what: str = "attack set") -> list[list[str]]:
    """Table rows ``[input, value]`` for :func:`attack_set_facts`."""
    sha = (facts["manifest_sha256"] or "?")[:12]
    rows = [[what, f"{facts['path']} ({facts['kind']}; manifest sha256 {sha}…)"],
            ["post-processing protocol", facts["protocol"]]]
    if facts.get("generated_from"):
        rows.append(["generated set it was processed from", facts["generated_from"]])
    rows.append(["morphs (generator/tag)", facts["generators"]])
    return rows


def detection_inputs(items: Any, base: PathLike, *, listed: int = 6) -> dict[str, str]:
    """The inputs of a detector evaluation, by paths relative to the report folder ``base``.

    Args:
        items: presentations (objects with ``path``, ``label`` 1 = morph / 0 = bona fide,
            and ``live``: a D-MAD live probe or None).
        base: the report folder.
        listed: at most this many folders are named per kind.

    Returns:
        ``{"attack set" (or "attack set 1", …): "PATH (protocol: …; manifest sha256 …)",
        "bona fide images": "FOLDER, …", "live probes": …}`` — attack images outside a
        manifest folder are named by folder under "attack images".
    """
    items = list(items)
    attack = sorted({Path(it.path).parent for it in items if it.label == 1})
    sets = [f for f in attack if (f / "manifest.jsonl").is_file()]
    loose = [f for f in attack if f not in sets]
    bona = sorted({Path(it.path).parent for it in items if it.label == 0})
    live = sorted({Path(it.live).parent for it in items if getattr(it, "live", None) is not None})

    def names(folders: list) -> str:
        shown = [rel(f, base) for f in folders[:listed]]
        more = f" … ({len(folders)} folders)" if len(folders) > listed else ""
        return ", ".join(shown) + more

    out: dict[str, str] = {}
    for i, f in enumerate(sets):
        facts = attack_set_facts(f, base)
        out[f"attack set {i + 1}" if len(sets) > 1 else "attack set"] = (
            f"{facts['path']} (protocol: {facts['protocol']}; manifest sha256 "
            f"{(facts['manifest_sha256'] or '?')[:12]}…)")
    if loose:
        out["attack images"] = names(loose)
    out["bona fide images"] = names(bona) or "–"
    if live:
        out["live probes"] = names(live)
    return out
