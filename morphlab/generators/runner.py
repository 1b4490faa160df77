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
import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from morphlab import __version__
from morphlab.datasets.pairs import Pair, read_pairs
from morphlab.generators.base import GENERATORS, Generator
from morphlab.generators.batches import (
    _WORKER, _finish_batch, _init_worker, _run_batch, _start_batch, _submit_batch,
)
from morphlab.generators.manifest import (
    MANIFEST_NAME, PathLike, _append, _dumps, _jsonable, _read_lines,
)
from morphlab.generators.setfolder import (
    _contributor, _prepare_out_dir, _remove_verified, _resolve_png_compression,
    _same_contributor, _verified, check_out_path, write_set_contact_page,
)
from morphlab.io import DEFAULT_PNG_COMPRESSION, atomic_write_text, check_png_compression, sha256_file
from morphlab.outdir import check_disjoint, locked_folder
from morphlab.workers import resolve_start_method, run_tasks

# what other modules import from here (the code lives in the modules it comes from)
from morphlab.generators.batches import (  # noqa: F401
    ENCODE_THREADS, LOSSLESS_SUFFIXES, _check_outputs, generate_tasks,
)
from morphlab.generators.manifest import (  # noqa: F401
    FATAL_ERRNOS, _parse_loose, append_records, dumps_record, fatal_write_error,
    load_manifest, manifest_records,
)
from morphlab.generators.setfolder import (  # noqa: F401
    CONFIG_KEYS, PNG_COMPRESSION, RUN_FORMATS, RUN_NAME, RunConflictError, prepare_out_dir,
    remove_verified, verified_record,
)

log = logging.getLogger(__name__)

#: ``image_format`` → file suffix.
IMAGE_FORMATS = {"png": ".png", "jpg": ".jpg"}
#: Parameter / extra keys naming the face (landmark) backend, searched in this order.
_BACKEND_KEYS = ("landmark_backend", "landmarks", "face_backend", "backend")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


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
