"""The attack-set runner: pairs file + generator → morph images + manifest.

:func:`generate_attack_set` morphs every pair of a pairs file (see
:mod:`morphlab.datasets.pairs`) with one generator and writes, in ``OUT_DIR``:

``<pair_id>_<subject_a>_<subject_b>_<tag>.png``
    one image per pair and generator output tag (``.jpg`` with ``image_format="jpg"``;
    subject ids are made file-name safe).

``manifest.jsonl``
    one JSON object per line (keys sorted), UTF-8. A morph::

        {"status": "ok", "file": "0001_002_003_complete.png", "sha256": "…",
         "pair_id": "0001", "tag": "complete",
         "generator": "landmark", "generator_version": "1",
         "params": {…every generator parameter, defaults included, plus the
                    output's own parameters (e.g. "variant")…},
         "seed": 1234567,            # this pair's seed, derived from run_seed + pair_id
         "run_seed": 0,
         "subject_a": {"id": "002", "path": "/abs/…/002_03.jpg",
                       "relpath": "neutral/002_03.jpg", "sha256": "…"},
         "subject_b": {…},
         "landmark_backend": "dlib",  # from the parameters or the output's extra; or null
         "png_compression": "fpng",   # PNG only: zlib level 0-9, "fast" or "fpng" (lossless)
         "morphlab_version": "0.1.0", "extra": {…whatever the generator reports…}}

    A pair that failed (no face, unreadable image…) gets one line instead of its morphs::

        {"status": "failed", "pair_id": "0007", "error": "NoFaceError: …",
         "generator": …, "generator_version": …, "params": {…}, "seed": …,
         "run_seed": …, "subject_a": {…}, "subject_b": {…}, "morphlab_version": …}

    ``file`` is relative to the manifest's folder. When a run completes, the manifest is
    rewritten in pairs-file order (then tag order), so a resumed or parallel run ends
    with the same bytes as a plain one. Read it with :func:`load_manifest`.

``contact.html``
    the contact sheet: one row per pair (subject A | its morph(s) | subject B, a failed
    pair says why), 256-pixel thumbnails embedded in the page, each morph's linking to
    its full-size file; written when the run ends, recorded in ``.morphlab-owned.json``
    (:mod:`morphlab.outdir`), and the same bytes for the same set wherever it lies (so
    the contributors' thumbnails name their dataset-relative path instead of linking).

``run.json``
    the run's configuration: generator name, version and full parameters, ``run_seed``,
    image format (and JPEG quality or PNG compression), output tags and the sha256 of the pairs file (plus, for information,
    the pairs file and dataset folder paths and the morphlab version).

Re-running and the output folder:

- ``OUT_DIR`` is locked for the whole run (:func:`morphlab.outdir.locked_folder`): a
  second command writing it fails at once, naming the process that holds it;
- ``OUT_DIR`` may not be, contain or lie inside the dataset folder (when given or
  recorded in the pairs file's sidecar) or a folder of the pairs' images, nor contain the
  pairs file (refused before anything is written);
- an empty or new ``OUT_DIR`` starts a run;
- an ``OUT_DIR`` holding a run with the **same configuration** is continued: pairs whose
  every morph is in the manifest and whose image file exists with the recorded sha256
  (and whose contributors' images still have the recorded hashes) are skipped; everything
  else — including pairs that **failed** before — is (re)done;
- a **different configuration** is refused with the differences listed, unless
  ``overwrite=True``, which deletes the files the previous manifest lists (and nothing
  else; it refuses, deleting nothing, when one of them was changed since it was written)
  and starts afresh; ``overwrite=True`` also restarts a same-configuration run;
- ``resume=True`` demands a previous run with the same configuration (refused
  otherwise) — use it to make sure you continue rather than start;
- a non-empty folder that holds no ``run.json`` is refused unless ``overwrite=True``,
  which writes the run next to the folder's files but never replaces one of them (a file
  named like one of the run's outputs is refused).

Speed: in one process (``jobs=1``) a pair's images are encoded, hashed and written by a
small thread pool (:data:`ENCODE_THREADS`; OpenCV's encoder, hashlib and file writes
release the GIL) while the next pair is morphed, at most one batch behind; its manifest
lines follow in pairs-file order as before. Each worker process of ``jobs > 1`` encodes
its pair's images in the same pool. Workers are forked from this process (Linux) when the
generator is ``fork_safe``, after its ``preload()`` (the landmark generator: dlib's
models and the numba kernels, loaded once instead of once per spawned worker); other
generators' workers are spawned. PNGs use the fpng encoder (``"fpng"``) unless
``png_compression`` says otherwise (lossless either way; recorded in run.json and every
manifest line, and a continued run keeps the level it started with).

Crash safety: each image is written atomically (temp file + rename) before its manifest
lines are appended (by the parent process only, one write + fsync per pair). On start,
temp files ``.<name>.*.tmp`` of the run's files are removed, a partial last manifest line is dropped, and lines
whose image is missing or does not match its hash are dropped, so a killed run leaves
neither a half-written image nor a manifest line without its image. A full disk (or a
read-only one) stops the run with an error instead of failing every remaining pair; a
re-run continues. Worker processes end with the run, however it ends
(:mod:`morphlab.workers`).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import errno
import functools
import hashlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from morphlab import __version__
from morphlab.datasets.pairs import Pair, read_pairs
from morphlab.generators.base import GENERATORS, Contributor, Generator, MorphOutput
from morphlab.io import (
    DEFAULT_PNG_COMPRESSION, PNG_FPNG, atomic_write_text, check_image, check_png_compression,
    sha256_file, write_image,
)
from morphlab.outdir import check_disjoint, locked_folder
from morphlab.workers import resolve_start_method, run_tasks

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

MANIFEST_NAME = "manifest.jsonl"
RUN_NAME = "run.json"
#: ``image_format`` → file suffix.
IMAGE_FORMATS = {"png": ".png", "jpg": ".jpg"}
#: Formats whose decoded file is the image written (thumbnails may come from memory).
LOSSLESS_SUFFIXES = (".png",)
#: run.json keys that must agree for a run to be continued.
CONFIG_KEYS = (
    "generator", "generator_version", "params", "run_seed", "image_format", "jpeg_quality",
    "png_compression", "output_tags", "pairs_sha256",
)
#: PNG compression of new attack sets (lossless; see :data:`morphlab.io.PNG_FPNG`).
PNG_COMPRESSION = PNG_FPNG
#: the PNG level of runs whose run.json records none (morphlab before it was recorded).
_LEGACY_PNG_COMPRESSION = 3
#: Parameter / extra keys naming the face (landmark) backend, searched in this order.
_BACKEND_KEYS = ("landmark_backend", "landmarks", "face_backend", "backend")
_OK_KEYS = (
    "file", "sha256", "pair_id", "tag", "generator", "generator_version", "params", "seed",
    "subject_a", "subject_b", "morphlab_version",
)
_FAILED_KEYS = ("pair_id", "error")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
#: run.json ``format`` values of the folders morphlab writes with a manifest.
RUN_FORMATS = ("morphlab-attack-set", "morphlab-postprocessed")
#: OSError numbers that stop a run (every further write would fail the same way).
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class RunConflictError(ValueError):
    """The output folder holds something this run may not continue or replace."""


@dataclass
class RunSummary:
    """What :func:`generate_attack_set` did.

    Attributes:
        out_dir: the output folder.
        manifest: its ``manifest.jsonl``.
        pairs: pairs in the pairs file.
        skipped: pairs already complete from a previous run.
        generated: pairs morphed now.
        failed: pairs that failed now (see ``failures``).
        morphs: morph images listed in the manifest.
        failures: the manifest lines of the failed pairs.
    """

    out_dir: Path
    manifest: Path
    pairs: int
    skipped: int = 0
    generated: int = 0
    failed: int = 0
    morphs: int = 0
    failures: list[dict] = field(default_factory=list)


def pair_seed(run_seed: int, pair_id: str) -> int:
    """A pair's seed in ``[0, 2**32)``: sha256 of ``"<run_seed>:<pair_id>"``, first 4 bytes."""
    digest = hashlib.sha256(f"{int(run_seed)}:{pair_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-]+", "-", text).strip("-") or "x"


def morph_filename(pair: Pair, tag: str, image_format: str = "png") -> str:
    """``<pair_id>_<subject_a>_<subject_b>_<tag><suffix>`` with file-name-safe ids."""
    suffix = IMAGE_FORMATS[image_format]
    return f"{pair.pair_id}_{_safe(pair.subject_a)}_{_safe(pair.subject_b)}_{tag}{suffix}"


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


# ----------------------------------------------------------------------------------------
# worker side (also used in-process with jobs=1)
# ----------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(cls: type, params: dict, out_dir: str, quality: int,
                 png_compression: Any = DEFAULT_PNG_COMPRESSION) -> None:
    if "cv2" in sys.modules:  # one OpenCV thread per worker process: no oversubscription
        sys.modules["cv2"].setNumThreads(1)
    _WORKER.update(
        generator=cls(**params), out_dir=Path(out_dir), quality=quality,
        png_compression=png_compression,
    )


#: Threads that encode, hash and atomically write a process's images (OpenCV's encoder,
#: hashlib and file writes release the GIL, so they overlap the next pair's morph).
ENCODE_THREADS = 2
_ENCODER: dict[int, cf.ThreadPoolExecutor] = {}


def _encoder() -> cf.ThreadPoolExecutor:
    """This process's encode pool (made on first use; a spawned worker gets its own)."""
    pid = os.getpid()
    if pid not in _ENCODER:
        _ENCODER.clear()
        _ENCODER[pid] = cf.ThreadPoolExecutor(ENCODE_THREADS, thread_name_prefix="morphlab-encode")
    return _ENCODER[pid]


def _write_output(path: Path, image: np.ndarray, quality: int,
                  png_compression: Any) -> tuple[str, Optional[str]]:
    """Encode, hash and atomically write one morph; its sha256 and, for a lossless format,
    its contact-page thumbnail made from the image in memory (the same bytes as one made
    by decoding the file, so the page does not re-read the set's full-size PNGs)."""
    sha = write_image(path, image, quality=quality, png_compression=png_compression)
    thumb = None
    if path.suffix.lower() in LOSSLESS_SUFFIXES:
        import cv2

        from morphlab.reports.contact import thumbnail_uri

        try:
            thumb = thumbnail_uri(image)
        except (ValueError, cv2.error):  # the page decodes the file instead
            thumb = None
    return sha, thumb


def _check_outputs(outputs: Any, tags: Sequence[str]) -> list[MorphOutput]:
    if not isinstance(outputs, (list, tuple)) or not all(
        isinstance(o, MorphOutput) for o in outputs
    ):
        raise ValueError(f"the generator returned {type(outputs).__name__}, not a list of MorphOutput")
    got = [o.tag for o in outputs]
    if sorted(got) != sorted(tags):
        raise ValueError(f"the generator returned outputs tagged {got}; expected {list(tags)}")
    for o in outputs:
        check_image(o.image, f"generator output {o.tag!r}")
    return list(outputs)


def _run_batch(tasks: list[dict]) -> list[dict]:
    """Morph a batch of pairs and write their images; returns one result per task.

    A result is ``{"pair_id", "outputs": [{"tag", "file", "sha256", "params", "extra"}]}``
    or ``{"pair_id", "error": "Type: message"}``.
    """
    return _finish_batch(_submit_batch(_start_batch(tasks)))


def generate_tasks(gen: Generator, tasks: Sequence[dict]) -> list:
    """``gen.generate_batch`` over worker tasks (``{"a": (id, path), "b": …, "seed"}``).

    Returns one entry per task: its outputs, or the exception when the whole batch
    failed (recorded for each pair). Shared by the local pool and the Ray workers.
    """
    jobs = [
        (Contributor(t["a"][0], Path(t["a"][1])), Contributor(t["b"][0], Path(t["b"][1])), t["seed"])
        for t in tasks
    ]
    try:
        results = gen.generate_batch(jobs)
        if len(results) != len(tasks):
            raise ValueError(
                f"generate_batch returned {len(results)} results for {len(tasks)} pairs"
            )
    except Exception as exc:  # the whole batch failed: record it for each pair
        results = [exc] * len(tasks)
    return list(results)


def _start_batch(tasks: list[dict]) -> list[dict]:
    """Morph a batch of pairs (nothing written yet).

    Returns per task ``{"pair_id", "outputs": [{"tag", "file", "params", "extra",
    "image"}]}`` or ``{"pair_id", "error"}``, for :func:`_submit_batch`.
    """
    gen: Generator = _WORKER["generator"]
    results = generate_tasks(gen, tasks)
    out = []
    for task, res in zip(tasks, results):
        try:
            if isinstance(res, BaseException):
                raise res
            outputs = _check_outputs(res, list(task["files"]))
            recs = [
                {
                    "tag": o.tag,
                    "file": task["files"][o.tag],
                    "params": _jsonable(o.params, f"output {o.tag!r} params"),
                    "extra": _jsonable(o.extra, f"output {o.tag!r} extra"),
                }
                for o in outputs
            ]
        except Exception as exc:
            out.append({"pair_id": task["pair_id"], "error": _error_text(exc)})
            continue
        for o, rec in zip(outputs, recs):
            rec["image"] = o.image
        out.append({"pair_id": task["pair_id"], "outputs": recs})
    return out


def _submit_batch(morphed: list[dict]) -> list[dict]:
    """Hand a :func:`_start_batch` batch's images to the encode pool (:func:`_encoder`):
    each output's ``"image"`` becomes a ``"future"`` whose result is the written file's
    sha256 (encode + hash + atomic write, in a thread)."""
    out_dir: Path = _WORKER["out_dir"]
    png = _WORKER.get("png_compression", DEFAULT_PNG_COMPRESSION)
    for res in morphed:
        for rec in res.get("outputs", ()):
            rec["future"] = _encoder().submit(
                _write_output, out_dir / rec["file"], rec.pop("image"), _WORKER["quality"], png,
            )
    return morphed


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {msg}"


def _finish_batch(started: list[dict]) -> list[dict]:
    """Wait for a :func:`_start_batch` batch's files; its results, sha256 per output.

    A write that fails fails its pair; a full or read-only disk stops the run
    (:func:`fatal_write_error`), after every file of the batch has been waited for.
    """
    out_dir: Path = _WORKER["out_dir"]
    fatal: Optional[OSError] = None
    results = []
    for res in started:
        if "error" in res:
            results.append(res)
            continue
        error = None
        for rec in res["outputs"]:
            try:
                rec["sha256"], thumb = rec.pop("future").result()
                if thumb is not None:
                    rec["thumb"] = thumb
            except OSError as exc:
                fatal = fatal or fatal_write_error(exc, out_dir)
                error = error or f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                error = error or _error_text(exc)
        results.append({"pair_id": res["pair_id"], "error": error} if error else res)
    if fatal is not None:
        raise fatal from None
    return results


# ----------------------------------------------------------------------------------------
# the output folder
# ----------------------------------------------------------------------------------------
_TEMP_RE = re.compile(r"^\.(.+)\.[A-Za-z0-9_]+\.tmp$")


def _remove_temp_files(out: Path, names: Sequence[str]) -> None:
    """Remove what a killed run left: ``atomic_open`` temp files of the files in ``names``."""
    names = {*names, RUN_NAME, MANIFEST_NAME}
    for f in out.glob(".*.tmp"):
        m = _TEMP_RE.match(f.name)
        if m and m.group(1) in names and f.is_file() and not f.is_symlink():
            log.info("removing stray temporary file %s", f)
            f.unlink()


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


def _wipe(out: Path) -> int:
    """Delete the files the manifest in ``out`` lists, the manifest and run.json.

    Only files still holding what morphlab wrote (the sha256 the manifest records) are
    deleted; if a listed file was changed or replaced since, nothing is deleted.
    """
    manifest = out / MANIFEST_NAME
    ours, changed = [], []
    if manifest.is_file():
        for rec in _parse_loose(manifest):
            f = _inside(out, rec.get("file"))
            if f is None or not (f.exists() or f.is_symlink()):
                continue
            (ours if not f.is_symlink() and _verified(out, rec) else changed).append(f)
    if changed:
        names = ", ".join(f.name for f in changed[:5]) + (" …" if len(changed) > 5 else "")
        raise RunConflictError(
            f"{out}: --overwrite would delete {names}, changed since morphlab wrote "
            f"{'it' if len(changed) == 1 else 'them'} (sha256 differs from {manifest}); "
            "move them away first, or choose another output folder"
        )
    n = 0
    for f in dict.fromkeys(ours):
        if f.is_file():
            f.unlink()
            n += 1
    manifest.unlink(missing_ok=True)
    (out / RUN_NAME).unlink(missing_ok=True)
    log.info("%s: removed the previous run (%d files its manifest lists)", out, n)
    return n


def _config_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str] = CONFIG_KEYS
) -> list[str]:
    diffs = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if key == "png_compression" and a is None and "png_compression" not in old:
            a = _legacy_png_compression(old)
        if a == b:
            continue
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k, "<unset>") != b.get(k, "<unset>"):
                    diffs.append(f"params.{k}: {a.get(k, '<unset>')!r} → {b.get(k, '<unset>')!r}")
        elif key == "pairs_sha256":
            diffs.append("the pairs file's content differs")
        else:
            diffs.append(f"{key}: {a!r} → {b!r}")
    return diffs


def _legacy_png_compression(run: Mapping[str, Any]) -> Optional[int]:
    """The PNG level of a run.json written before the level was recorded."""
    return _LEGACY_PNG_COMPRESSION if run.get("image_format", "png") == "png" else None


def _resolve_png_compression(out: Path, config: dict, overwrite: bool) -> None:
    """Fill ``config["png_compression"]`` when not given: the level of the run continued
    in ``out`` (so its files and the new ones are encoded alike), else the default."""
    if config["image_format"] != "png" or config["png_compression"] is not None:
        return
    level = PNG_COMPRESSION
    run_file = out / RUN_NAME
    if not overwrite and run_file.is_file():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            previous = None  # _prepare_out_dir reports it
        if isinstance(previous, dict) and previous.get("image_format", "png") == "png":
            old = previous.get("png_compression", _legacy_png_compression(previous))
            try:
                check_png_compression(old)
                level = old
            except ValueError:
                pass  # not a level: the configurations differ, _prepare_out_dir says so
    config["png_compression"] = level


def check_out_path(out: Path) -> None:
    """Refuse an output path that exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise RunConflictError(f"{out}: exists and is not a folder")


def _prepare_out_dir(
    out: Path,
    config: dict,
    *,
    resume: bool,
    overwrite: bool,
    keys: Sequence[str] = CONFIG_KEYS,
    outputs: Sequence[str] = (),
) -> list[dict]:
    """Create/check ``out``; write run.json; return the previous run's records to continue.

    Call it holding the folder's lock (:func:`morphlab.outdir.locked_folder`).

    Args:
        keys: the run.json keys that must agree for a run to be continued.
        outputs: the file names the run will write; in a folder holding no run, an
            existing file of one of these names is refused (morphlab would replace it).
    """
    check_out_path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_file, manifest = out / RUN_NAME, out / MANIFEST_NAME
    previous: Optional[dict] = None
    if run_file.is_file() or run_file.is_symlink():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
            if not isinstance(previous, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
            if not overwrite:
                raise RunConflictError(
                    f"{run_file}: unreadable ({exc}); pass --overwrite to replace the run "
                    "in this folder, or choose another output folder"
                ) from None
            previous = {}
        if previous and previous.get("format") not in RUN_FORMATS:
            raise RunConflictError(
                f"{run_file}: not a morphlab run (format {previous.get('format')!r}); "
                "morphlab never replaces files it did not write: choose another output folder"
            )
    else:
        visible = [f.name for f in out.iterdir() if not f.name.startswith(".")]
        if visible and not overwrite:
            raise RunConflictError(
                f"{out}: the folder is not empty and holds no morphlab run ({RUN_NAME}); "
                "choose an empty or new output folder (or pass --overwrite to write into it "
                "anyway: its files are kept)"
            )
        clash = sorted(set(visible) & {MANIFEST_NAME, *outputs})
        if clash:
            raise RunConflictError(
                f"{out}: holds no morphlab run ({RUN_NAME}) but files named like this run's "
                f"outputs ({', '.join(clash[:5])}{' …' if len(clash) > 5 else ''}); morphlab "
                "never replaces files it did not write: move them away or choose another "
                "output folder"
            )

    if previous is None:
        if resume:
            raise RunConflictError(f"{out}: nothing to resume (no {RUN_NAME}); drop --resume")
        records: list[dict] = []
    else:
        diffs = _config_diff(previous, config, keys)
        if overwrite:
            _wipe(out)
            records = []
        elif diffs:
            listed = "\n  ".join(diffs)
            action = "cannot resume it" if resume else "refusing to mix runs"
            raise RunConflictError(
                f"{out} holds a run with a different configuration ({action}):\n  {listed}\n"
                "Pass --overwrite to replace it (deletes the morphs its manifest lists), or "
                "choose another output folder."
            )
        else:
            records = _parse_loose(manifest) if manifest.is_file() else []
    _remove_temp_files(out, outputs)
    atomic_write_text(run_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
    if not manifest.exists():
        atomic_write_text(manifest, "")
    return records


def _contributor(path: Path, subject: str, root: Path, hashes: dict[Path, str]) -> dict:
    if path not in hashes:
        try:
            hashes[path] = sha256_file(path)
        except OSError:  # unreadable: its pairs fail on their own (ImageError), the run goes on
            hashes[path] = None
    return {
        "id": subject,
        "path": str(path),
        "relpath": Path(os.path.relpath(path, root)).as_posix(),
        "sha256": hashes[path],
    }


def _same_contributor(old: Any, new: Mapping[str, Any]) -> bool:
    return isinstance(old, dict) and all(old.get(k) == new[k] for k in ("id", "relpath", "sha256"))


def _remove_verified(out: Path, recs: Any) -> None:
    """Delete the files of previous manifest lines that a failed redo leaves stale.

    Only files still holding what morphlab wrote (their recorded sha256) go.
    """
    for rec in recs:
        f = _inside(out, rec.get("file"))
        if f is not None and not f.is_symlink() and _verified(out, rec):
            log.info("%s: removing the previous output of a pair that failed now", f)
            f.unlink()


def _verified(out: Path, rec: Mapping[str, Any]) -> bool:
    f = _inside(out, rec.get("file"))
    if f is None or not f.is_file():
        return False
    return sha256_file(f) == rec.get("sha256")


# ----------------------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------------------
def _resolve_generator(generator: str | type) -> tuple[str, type]:
    if isinstance(generator, str):
        return generator, GENERATORS.get(generator)
    name = getattr(generator, "registry_name", None) or getattr(generator, "name", "") or generator.__name__
    return name, generator


def _build(cls: type, name: str, params: Mapping[str, Any]) -> Generator:
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"generator {name!r}: bad parameters {dict(params)}: {exc}") from None


def generate_attack_set(
    pairs_csv: PathLike,
    generator: str | type,
    params: Optional[Mapping[str, Any]] = None,
    out_dir: PathLike = "attack_set",
    *,
    jobs: int = 1,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    dataset_dir: Optional[PathLike] = None,
    image_format: str = "png",
    quality: int = 95,
    progress: bool = True,
    allow_same_identity: bool = False,
    executor: Any = None,
    png_compression: Union[None, int, str] = None,
) -> RunSummary:
    """Morph every pair of a pairs file into ``out_dir`` (see the module docstring).

    Args:
        pairs_csv: a pairs file (:func:`morphlab.datasets.pairs.read_pairs` validates it).
        generator: a registered generator name, or a generator class.
        params: keyword parameters for the generator (only those to change; the manifest
            records all of them, defaults included).
        out_dir: the output folder.
        jobs: worker processes (spawned; each builds its own generator once).
        seed: the run seed; each pair's seed is :func:`pair_seed` ``(seed, pair_id)``.
        resume: require an existing run with the same configuration.
        overwrite: delete a previous run in ``out_dir`` and start afresh.
        dataset_dir: the folder the pairs file's image paths are relative to (default: the
            one its protocol sidecar records, else the pairs file's folder).
        image_format: ``"png"`` or ``"jpg"``.
        quality: JPEG quality (``image_format="jpg"``).
        png_compression: PNG zlib level 0-9, ``"fast"`` (:data:`morphlab.io.PNG_FAST`) or
            ``"fpng"`` (:data:`morphlab.io.PNG_FPNG`);
            lossless either way, recorded in run.json and each manifest line. ``None``:
            the level of the run being continued (3 for a run.json that records none,
            the level every earlier morphlab used), else :data:`PNG_COMPRESSION`.
        progress: show a tqdm progress bar.
        allow_same_identity: accept pairs of two images of one subject (special studies).
        executor: None (the local process pool, ``jobs`` workers) or a
            :class:`morphlab.ray_executor.RayExecutor`: Ray actors compute, this process
            still writes every file; the same bytes either way, and either resumes the other.

    Returns:
        A :class:`RunSummary`. Failed pairs are in the manifest; they do not raise.

    Raises:
        ValueError: bad arguments or generator parameters, a bad pairs file
            (:class:`~morphlab.datasets.pairs.PairsError`), or an output folder that may not
            be used (:class:`RunConflictError`).
        KeyError: unknown generator name.
        FileNotFoundError: the pairs file or dataset folder is missing.
        ChildProcessError: a worker process died (``jobs > 1``); re-running continues.
        OSError: the disk is full or read-only (:data:`FATAL_ERRNOS`): the run stops;
            re-running continues.
        morphlab.outdir.FolderLockedError: another process is writing ``out_dir``.
        morphlab.workers.Interrupted: Ctrl-C or SIGTERM (a ``KeyboardInterrupt``); the
            workers are stopped and a re-run continues.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: choose one")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(
            f"unknown image format {image_format!r}; choose one of {', '.join(IMAGE_FORMATS)}"
        )
    if png_compression is not None:
        check_png_compression(png_compression)
    pairs_path = Path(pairs_csv)
    pairset = read_pairs(pairs_path, dataset_dir=dataset_dir,
                         allow_same_identity=allow_same_identity)
    name, cls = _resolve_generator(generator)
    params = dict(params or {})
    gen = _build(cls, name, params)
    full_params = _jsonable(gen.get_params(), f"generator {name!r} parameters")
    tags = list(gen.output_tags())
    bad = [t for t in tags if not isinstance(t, str) or not _TAG_RE.match(t)]
    if not tags or bad or len(set(tags)) != len(tags):
        raise ValueError(f"generator {name!r}: output tags {tags!r} must be unique file-name-safe names")
    runtime = frozenset(getattr(cls, "runtime_params", frozenset()))
    config = {
        "format": "morphlab-attack-set",
        "format_version": 1,
        "generator": name,
        "generator_version": str(gen.version),
        "params": {k: v for k, v in full_params.items() if k not in runtime},
        "runtime_params": {k: v for k, v in full_params.items() if k in runtime},
        "run_seed": int(seed),
        "image_format": image_format,
        "jpeg_quality": int(quality) if image_format == "jpg" else None,
        # resolved under the folder's lock (a continued run keeps its level)
        "png_compression": png_compression if image_format == "png" else None,
        "output_tags": tags,
        "pairs_sha256": sha256_file(pairs_path),
        "pairs_file": str(pairs_path.resolve()),
        "dataset_dir": str(pairset.dataset_dir),
        "morphlab_version": __version__,
    }
    out = Path(out_dir)
    # refused before anything is written: an output folder that is, contains or lies
    # inside a folder the pairs read from (an --overwrite there would delete sources).
    # The dataset folder counts when it was named (argument or sidecar); the default, the
    # pairs file's own folder, is often a work folder holding the outputs too.
    named = dataset_dir is not None or bool(pairset.protocol.get("dataset_dir"))
    check_disjoint(out, {"dataset folder": pairset.dataset_dir if named else None,
                         "pairs file": pairs_path})
    for folder in sorted({i.parent for p in pairset.pairs for i in (p.image_a, p.image_b)}):
        check_disjoint(out, {"folder of pair images": folder})
    check_out_path(out)
    with locked_folder(out):
        return _generate_locked(
            pairset, out, config, gen, cls, name, params, full_params, tags,
            jobs=jobs, seed=seed, resume=resume, overwrite=overwrite,
            image_format=image_format, quality=quality, progress=progress, executor=executor,
        )


def _generate_locked(
    pairset: Any, out: Path, config: dict, gen: Generator, cls: type, name: str,
    params: dict, full_params: dict, tags: list[str], *, jobs: int, seed: int, resume: bool,
    overwrite: bool, image_format: str, quality: int, progress: bool, executor: Any = None,
) -> RunSummary:
    """:func:`generate_attack_set` once ``out`` is locked and the arguments are checked."""
    from tqdm import tqdm

    from morphlab.outdir import check_outputs
    from morphlab.reports.contact import CONTACT_PAGE

    batch_size = max(1, int(getattr(gen, "batch_size", 1) or 1))
    files = {p.pair_id: {t: morph_filename(p, t, image_format) for t in tags} for p in pairset.pairs}
    check_outputs(out, [CONTACT_PAGE], overwrite=True)  # a contact.html of the user's: refused
    _resolve_png_compression(out, config, overwrite)
    previous = _prepare_out_dir(
        out, config, resume=resume, overwrite=overwrite,
        outputs=[*(f for fs in files.values() for f in fs.values()), CONTACT_PAGE],
    )
    manifest = out / MANIFEST_NAME

    # what every pair's lines share, and which pairs the previous run completed
    encoding = ({"png_compression": config["png_compression"]} if image_format == "png"
                else {})
    hashes: dict[Path, str] = {}
    base: dict[str, dict] = {}
    for p in pairset.pairs:
        base[p.pair_id] = {
            "generator": name,
            "generator_version": config["generator_version"],
            "params": full_params,
            "seed": pair_seed(seed, p.pair_id),
            "run_seed": int(seed),
            "pair_id": p.pair_id,
            "subject_a": _contributor(p.image_a, p.subject_a, pairset.dataset_dir, hashes),
            "subject_b": _contributor(p.image_b, p.subject_b, pairset.dataset_dir, hashes),
            "morphlab_version": __version__,
        }
    by_pair: dict[str, dict[str, dict]] = {}
    for rec in previous:
        if rec.get("status") == "ok" and rec.get("pair_id") in base:
            by_pair.setdefault(rec["pair_id"], {})[rec.get("tag")] = rec
    kept: list[dict] = []
    for pid, recs in by_pair.items():
        b = base[pid]
        if sorted(recs) == sorted(tags) and all(
            _same_contributor(r.get("subject_a"), b["subject_a"])
            and _same_contributor(r.get("subject_b"), b["subject_b"])
            and _verified(out, r)
            for r in recs.values()
        ):
            for r in recs.values():
                r["subject_a"], r["subject_b"] = b["subject_a"], b["subject_b"]
                r.update(encoding)  # the same level (the configurations agree)
                kept.append(r)
    done = {r["pair_id"] for r in kept}
    dropped = len(previous) - len(kept)
    if previous:
        log.info(
            "%s: continuing a run: %d of %d pairs complete; %d manifest line(s) dropped "
            "(failed, incomplete or not matching their files) and redone",
            out, len(done), len(pairset), dropped,
        )
    atomic_write_text(manifest, "".join(_dumps(r) + "\n" for r in kept))

    todo = [p for p in pairset.pairs if p.pair_id not in done]
    tasks = [
        {
            "pair_id": p.pair_id,
            "a": (p.subject_a, str(p.image_a)),
            "b": (p.subject_b, str(p.image_b)),
            "seed": base[p.pair_id]["seed"],
            "files": files[p.pair_id],
        }
        for p in todo
    ]
    batches = [tasks[i : i + batch_size] for i in range(0, len(tasks), batch_size)]
    summary = RunSummary(out, manifest, len(pairset), skipped=len(done))
    bar = tqdm(
        total=len(pairset), initial=len(done), disable=not progress, unit="pair",
        desc=f"{name} → {out.name}", leave=True,
    )
    thumbs: dict[str, str] = {}  # sha256 -> contact-page thumbnail of this run's morphs
    with open(manifest, "ab") as fh:

        def record(results: list[dict]) -> None:
            for res in results:
                b = base[res["pair_id"]]
                if "error" in res:
                    lines = [{**b, "status": "failed", "error": res["error"]}]
                    summary.failed += 1
                    summary.failures.append(lines[0])
                    _remove_verified(out, by_pair.get(res["pair_id"], {}).values())
                    log.warning("pair %s failed: %s", res["pair_id"], res["error"])
                else:
                    lines = []
                    for o in res["outputs"]:
                        if "thumb" in o:  # for the contact page, not the manifest
                            thumbs[o["sha256"]] = o.pop("thumb")
                        merged = {**b["params"], **o["params"]}
                        backend = next(
                            (merged[k] for k in _BACKEND_KEYS if isinstance(merged.get(k), str)),
                            o["extra"].get("landmark_backend"),
                        )
                        lines.append({
                            **b, "status": "ok", "file": o["file"], "sha256": o["sha256"],
                            "tag": o["tag"], "params": merged, "landmark_backend": backend,
                            "extra": o["extra"], **encoding,
                        })
                    summary.generated += 1
                _append(fh, lines, manifest)
                bar.update(1)

        in_process = executor is None and (jobs == 1 or len(batches) <= 1)
        # the Ray executor takes run_tasks' arguments; its actors compute, this process writes
        dispatch = (run_tasks if executor is None
                    else executor.bind(out, IMAGE_FORMATS[image_format]))
        if executor is None and not in_process and getattr(gen, "fork_safe", False) \
                and resolve_start_method("fork") == "fork":
            # workers forked from this process share its loaded models (milliseconds to
            # start instead of seconds each); load them here, once, before the fork
            preload = getattr(gen, "preload", None)
            if callable(preload):
                preload()
            dispatch = functools.partial(run_tasks, start_method="fork")
        png = config.get("png_compression")
        png = DEFAULT_PNG_COMPRESSION if png is None else png
        fn, on_result = _run_batch, record
        started: collections.deque = collections.deque()
        if in_process:
            _WORKER.update(generator=gen, out_dir=out, quality=int(quality), png_compression=png)

            # one batch's images encode (in the pool) while the next batch is morphed;
            # results are recorded in task order; a batch is handed to the pool only once
            # the one before it is written (a full disk stops the run at its first error)
            def on_result(batch: list[dict]) -> None:
                if started:
                    record(_finish_batch(started.popleft()))
                started.append(_submit_batch(batch))

            fn = _start_batch
        else:
            del gen  # workers build their own
        try:
            dispatch(
                fn, batches, on_result, jobs=1 if in_process else jobs,
                initializer=_init_worker,
                initargs=(cls, params, str(out), int(quality), png),
                crash_message=(
                    f"a worker process died (a crash inside generator {name!r}?); "
                    f"{manifest} keeps what finished and a re-run continues from there; "
                    "run with jobs=1 (-j 1) to see the error"
                ),
            )
            while started:
                record(_finish_batch(started.popleft()))
        finally:
            # no image may be written after the run (and the folder's lock) ends
            cf.wait([o["future"] for batch in started for res in batch
                     for o in res.get("outputs", ()) if "future" in o])
            _WORKER.clear()
            bar.close()

    # the run is complete: put the manifest in pairs-file order
    order = {p.pair_id: i for i, p in enumerate(pairset.pairs)}
    tag_order = {t: i for i, t in enumerate(tags)}
    recs = [json.loads(t) for _, t in _read_lines(manifest)]
    recs.sort(key=lambda r: (order.get(r["pair_id"], len(order)), tag_order.get(r.get("tag"), -1)))
    atomic_write_text(manifest, "".join(_dumps(r) + "\n" for r in recs))
    summary.morphs = sum(r.get("status") == "ok" for r in recs)
    write_set_contact_page(out, thumbs=thumbs)
    log.info(
        "%s: %d pairs: %d done before, %d generated, %d failed; %d morphs in %s",
        out, summary.pairs, summary.skipped, summary.generated, summary.failed,
        summary.morphs, manifest,
    )
    return summary


def write_set_contact_page(out: Path, *, thumbs: Optional[Mapping[str, str]] = None
                           ) -> Optional[Path]:
    """Write ``contact.html`` (subject A | morph(s) | subject B per pair, 256 px thumbnails
    linking to the full-size morphs) into a manifest folder, and record it as morphlab's
    (:func:`morphlab.outdir.record_owned`). Skipped when the page already shows the
    manifest as it is; the bytes depend on the set only, not on where it lies.
    ``thumbs``: thumbnails already made, by the sha256 of their image file."""
    from morphlab.outdir import record_owned
    from morphlab.reports.contact import CONTACT_PAGE, contact_page_current, write_contact_page

    manifest, page = out / MANIFEST_NAME, out / CONTACT_PAGE
    if contact_page_current(manifest, page):
        return page
    gens = sorted({str(r.get("generator")) for r in _parse_loose(manifest)})
    write_contact_page(manifest, page, title=f"Contact sheet: {', '.join(gens)} morphs",
                       link_contributors=False, thumbs=thumbs)
    record_owned(out, [CONTACT_PAGE])
    return page


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
prepare_out_dir = _prepare_out_dir
verified_record = _verified
remove_verified = _remove_verified
dumps_record = _dumps
append_records = _append
