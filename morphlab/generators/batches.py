"""The attack-set runner's worker side (also used in-process with ``jobs=1``).

A batch of pairs is morphed (:func:`_start_batch`), its images handed to this process's
encode pool (:func:`_submit_batch`) and waited for (:func:`_finish_batch`).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from morphlab.generators.base import Contributor, Generator, MorphOutput
from morphlab.generators.manifest import _jsonable, fatal_write_error
from morphlab.io import DEFAULT_PNG_COMPRESSION, check_image, write_image

#: Formats whose decoded file is the image written (thumbnails may come from memory).
LOSSLESS_SUFFIXES = (".png",)


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
