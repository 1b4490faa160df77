"""Attack-set manifests: ``manifest.jsonl`` lines read, validated and appended.

The format is described in :mod:`morphlab.generators.runner`; :func:`load_manifest`
reads it, :func:`manifest_records` yields its lines, :func:`append_records` appends to it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from morphlab.io import sha256_file

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

MANIFEST_NAME = "manifest.jsonl"
_OK_KEYS = (
    "file", "sha256", "pair_id", "tag", "generator", "generator_version", "params", "seed",
    "subject_a", "subject_b", "morphlab_version",
)
_FAILED_KEYS = ("pair_id", "error")
#: OSError numbers that stop a run (every further write would fail the same way).
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def fatal_write_error(exc: OSError, folder: PathLike) -> Optional[OSError]:
    """The error that stops a run when ``exc`` is a full or read-only disk, else None."""
    if exc.errno not in FATAL_ERRNOS:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    err = OSError(
        f"{folder}: {exc.strerror or exc}{where}; the run stopped; its manifest keeps what "
        "finished: free space (or make the folder writable) and run the same command again "
        "to continue"
    )
    err.errno = exc.errno
    return err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _jsonable(obj: Any, what: str) -> Any:
    """``obj`` as plain JSON types (numpy scalars/arrays, paths and sets converted)."""
    try:
        return json.loads(json.dumps(obj, default=_json_default, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from None


def _dumps(rec: Mapping[str, Any]) -> str:
    return json.dumps(rec, sort_keys=True, ensure_ascii=False, default=_json_default)


def _inside(out: Path, name: Any) -> Optional[Path]:
    """``out / name`` if ``name`` is a plain file name inside ``out``, else None."""
    if not isinstance(name, str) or not name or name != Path(name).name or name in (".", ".."):
        return None
    return out / name


def _read_lines(manifest: Path) -> list[tuple[int, str]]:
    """The manifest's complete lines ``(line number, text)``; a partial last line is dropped."""
    data = manifest.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1]:
        log.warning(
            "%s: dropping a partial last line (a run was interrupted while writing it)", manifest
        )
    out = []
    for num, raw in enumerate(lines[:-1], start=1):
        text = raw.decode("utf-8", errors="replace").strip()
        if text:
            out.append((num, text))
    return out


def manifest_records(manifest: Path) -> list[tuple[str, dict]]:
    """The manifest's lines as ``(where, record)``, each a JSON object with a known status.

    ``where`` ("FILE, line N") is for error messages. Raises ``ValueError`` naming the
    manifest and line for invalid JSON, a non-object, or a status other than ok/failed.
    """
    out = []
    for num, text in _read_lines(manifest):
        where = f"{manifest}, line {num}"
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected a JSON object")
        if rec.get("status") not in ("ok", "failed"):
            raise ValueError(
                f"{where}: status must be 'ok' or 'failed', got {rec.get('status')!r}"
            )
        out.append((where, rec))
    return out


def _parse_loose(manifest: Path) -> list[dict]:
    recs = []
    for num, text in _read_lines(manifest):
        try:
            rec = json.loads(text)
        except json.JSONDecodeError:
            log.warning("%s, line %d: not valid JSON, dropped", manifest, num)
            continue
        if isinstance(rec, dict):
            recs.append(rec)
        else:
            log.warning("%s, line %d: not a JSON object, dropped", manifest, num)
    return recs


def _append(fh: Any, lines: Sequence[Mapping[str, Any]], manifest: Path) -> None:
    """Append manifest lines in one write and fsync them (a full disk stops the run)."""
    try:
        fh.write("".join(_dumps(r) + "\n" for r in lines).encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as exc:
        fatal = fatal_write_error(exc, manifest.parent)
        raise (fatal or exc) from None


# ----------------------------------------------------------------------------------------
# consumers
# ----------------------------------------------------------------------------------------
def load_manifest(
    path: PathLike, *, include_failed: bool = False, verify: bool = False
) -> list[dict]:
    """Read and validate an attack set's ``manifest.jsonl``.

    Args:
        path: the manifest file, or the attack-set folder holding it.
        include_failed: also return the ``"status": "failed"`` lines.
        verify: check each morph file's sha256 (reads every image).

    Returns:
        The lines as dicts, in file order. Each morph record gains ``"path"``: the morph
        file's absolute path (``file`` is relative to the manifest's folder).

    Raises:
        FileNotFoundError: no manifest, or (always checked) a morph file is missing.
        ValueError: a line is not a JSON object, lacks a required key, has an unknown
            status, names a file outside the folder, or (``verify``) a hash mismatch.
            The message names the manifest and the line number.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise FileNotFoundError(f"{p}: manifest not found")
    folder = p.parent.resolve()
    out = []
    for where, rec in manifest_records(p):
        status = rec["status"]
        required = _OK_KEYS if status == "ok" else _FAILED_KEYS
        missing = [k for k in required if k not in rec]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        if status == "failed":
            if include_failed:
                out.append(rec)
            continue
        f = _inside(folder, rec["file"])
        if f is None:
            raise ValueError(f"{where}: file {rec['file']!r} is not a file name inside {folder}")
        if not f.is_file():
            raise FileNotFoundError(f"{where}: morph file {f} not found")
        if verify and sha256_file(f) != rec["sha256"]:
            raise ValueError(f"{where}: {f} does not match its recorded sha256 (modified?)")
        rec["path"] = str(f)
        out.append(rec)
    return out


# ----------------------------------------------------------------------------------------
# the same folder rules for other writers of manifest folders (morphlab.postprocess)
# ----------------------------------------------------------------------------------------
dumps_record = _dumps
append_records = _append
