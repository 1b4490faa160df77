"""Reading map-score's inputs: the attack set, the probe images, subject genders."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from morphlab.datasets.folder import DEFAULT_PATTERN, load_folder

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
#: How many offending names an error message quotes.
LISTED = 10


class MapScoreError(ValueError):
    """The inputs of map-score cannot be used; the message says which and what to do."""


# ----------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------
def read_attack_set(attack_set: PathLike) -> tuple[list[dict], list[dict], Path]:
    """The usable morph records of an attack set, and the skipped ones with reasons.

    Lines of failed pairs are skipped (reason ``"generation failed"``); a morph whose file
    is missing or whose sha256 differs from the manifest is skipped with that reason.

    Returns:
        ``(records, skipped, manifest_path)``; each record gains ``"path"`` (absolute) and
        ``"group"`` (``generator`` or ``generator/tag`` — see :func:`_group`).
    """
    from morphlab.generators.runner import load_manifest

    manifest = manifest_path(attack_set)
    folder = manifest.parent.resolve()
    records, skipped = [], []
    # load_manifest validates every line but stops at the first missing image; read the
    # lines one by one so that missing or modified images are skipped and counted instead
    for num, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest.name}:{num}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            skipped.append({"what": where, "reason": "not valid JSON (partial line?)"})
            continue
        if not isinstance(rec, dict):
            skipped.append({"what": where, "reason": "not a JSON object"})
            continue
        if rec.get("status") == "failed":
            skipped.append({"what": f"pair {rec.get('pair_id')}",
                            "reason": f"generation failed: {rec.get('error')}"})
            continue
        name = rec.get("file")
        path = folder / name if isinstance(name, str) and name == Path(name).name else None
        if path is None or not path.is_file():
            skipped.append({"what": str(name), "reason": "morph image missing"})
            continue
        lacking = [k for k in ("sha256", "subject_a", "subject_b") if k not in rec]
        if lacking:
            skipped.append({"what": where, "reason": f"manifest line lacks {', '.join(lacking)}"})
            continue
        rec["path"] = str(path)
        records.append(rec)
    if records:  # the manifest's own validation for everything but missing files
        ok = {r["file"] for r in records}
        try:
            validated = load_manifest(manifest)
        except FileNotFoundError:
            validated = None  # missing images: already skipped above
        if validated is not None:
            records = [r for r in validated if r["file"] in ok]
    for rec in records:
        rec["group"] = _group(rec)
    return records, skipped, manifest


def manifest_path(attack_set: PathLike) -> Path:
    """The attack set's ``manifest.jsonl`` (the folder or the file given).

    Raises:
        FileNotFoundError: no manifest there.
    """
    from morphlab.generators.runner import MANIFEST_NAME

    p = Path(attack_set)
    manifest = p / MANIFEST_NAME if p.is_dir() else p
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest}: attack-set manifest not found (give the output folder of "
            "`morphlab generate` or its manifest.jsonl)"
        )
    return manifest


def _group(rec: Mapping[str, Any]) -> str:
    gen = str(rec.get("generator", "?"))
    tag = rec.get("tag")
    return f"{gen}/{tag}" if tag else gen


def find_probes(
    probes: Union[PathLike, Mapping[str, Sequence[PathLike]]],
    *,
    pattern: str = DEFAULT_PATTERN,
) -> dict[str, list[Path]]:
    """Probe images by subject id.

    Args:
        probes: a folder (subject ids from the file names by ``pattern``, as
            :func:`morphlab.datasets.folder.load_folder`; e.g. FRLL ``smiling/`` gives
            ``002_08.jpg`` → subject ``002``), or a mapping subject id → image paths.
        pattern: file-name pattern with a ``subject`` group.
    """
    if isinstance(probes, Mapping):
        return {str(k): [Path(p) for p in v] for k, v in probes.items()}
    ds = load_folder(probes, pattern=pattern, check_images=False)
    return {k: [s.path for s in v] for k, v in ds.by_subject().items()}


def manifest_subjects(manifest: PathLike) -> set[str]:
    """Every subject id named by any line of the manifest (failed pairs included).

    The default calibration split leaves these subjects out, whether or not their morphs
    could be used.
    """
    out: set[str] = set()
    for line in Path(manifest).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            for key in ("subject_a", "subject_b"):
                sub = rec.get(key)
                if isinstance(sub, dict) and "id" in sub:
                    out.add(str(sub["id"]))
    return out


def read_genders(
    metadata: Optional[PathLike] = None,
    *,
    id_column: Optional[str] = None,
    gender_column: Optional[str] = None,
    records: Sequence[Mapping[str, Any]] = (),
) -> dict[str, str]:
    """Gender by subject id: from a metadata CSV (as ``morphlab pairs --metadata``) and
    from manifest records whose ``subject_a``/``subject_b`` carry a ``gender``."""
    from morphlab.datasets.folder import read_metadata

    out: dict[str, str] = {}
    for rec in records:
        for key in ("subject_a", "subject_b"):
            sub = rec.get(key) or {}
            if sub.get("gender"):
                out[str(sub["id"])] = str(sub["gender"])
    if metadata is not None:
        meta = read_metadata(metadata, id_column=id_column, gender_column=gender_column)
        for sid, row in meta.items():
            if row.get("gender"):
                out[sid] = row["gender"]
    return out
