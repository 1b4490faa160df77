"""Post-processed sets: folders of processed images with a manifest chaining to the sources.

See :mod:`morphlab.postprocess` for the layout and the manifest lines.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from morphlab import __version__
from morphlab.generators.batches import _error_text
from morphlab.generators.runner import (
    MANIFEST_NAME,
    RUN_NAME,
    append_records,
    check_out_path,
    dumps_record,
    fatal_write_error,
    load_manifest,
    manifest_records,
    prepare_out_dir,
    remove_verified,
    verified_record,
)
from morphlab.io import (
    IMAGE_SUFFIXES,
    atomic_write_bytes,
    atomic_write_text,
    encode_image,
    read_image,
    sha256_bytes,
    sha256_file,
)
from morphlab.outdir import check_disjoint, locked_folder
from morphlab.postprocess.ops import (
    Operator,
    apply_ops,
    image_seed,
    output_suffix,
    parse_ops,
    same_ops,
)
from morphlab.workers import run_tasks

if TYPE_CHECKING:
    from morphlab.ray_executor import RayExecutor

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Value of ``run.json``'s ``format`` for a post-processed set.
SET_FORMAT = "morphlab-postprocessed"
#: run.json keys that must agree for a post-processing run to be continued.
CONFIG_KEYS = ("format", "format_version", "ops", "seed", "input_kind")
#: ``input_kind`` values.
ATTACK_SET, IMAGES = "attack-set", "images"
#: ``kind`` of the manifest lines.
MORPH, BONA_FIDE = "morph", "bona-fide"


# ----------------------------------------------------------------------------------------
# sets
# ----------------------------------------------------------------------------------------
@dataclass
class PostprocessSummary:
    """What :func:`postprocess_set` did (counts of items = images of the source)."""

    out_dir: Path
    manifest: Path
    items: int
    skipped: int = 0
    processed: int = 0
    failed: int = 0
    failures: list[dict] = field(default_factory=list)


@dataclass
class _Item:
    src: Path
    name: str
    record: dict  # the output line without file/sha256/postprocess
    history: list  # earlier postprocess steps
    source_ref: dict  # {"file"|"relpath", "path", "sha256"?, "manifest"?}


def _error(exc: Exception, name: str) -> dict:
    return {"name": name, "error": _error_text(exc)}


def compute(task: tuple) -> dict:
    """Read and process one image, writing nothing: the result with its encoded ``data``.

    Returns ``{"name", "data", "source_sha256", "image_seed", "op_notes"}`` or ``{"name",
    "error"}`` — what a local worker (:func:`_process`) and a Ray worker
    (:class:`morphlab.postprocess.ray_actor.PostprocessActor`) compute alike.
    """
    src, dst, ops, seed, expected = task
    name = Path(dst).name
    try:
        data = Path(src).read_bytes()
        sha = sha256_bytes(data)
        if expected and sha != expected:
            raise ValueError(f"{src}: does not match the sha256 its manifest records (modified?)")
        iseed = image_seed(seed, sha)
        image = read_image(src)
        notes: list = []
        image, encoded = apply_ops(image, ops, seed=iseed, source=src, notes=notes)
        if encoded is None:
            encoded = encode_image(image, Path(dst).suffix)
        return {"name": name, "data": encoded, "source_sha256": sha, "image_seed": iseed,
                "op_notes": notes}
    except Exception as exc:  # recorded as a failed line, the run goes on
        return _error(exc, name)


def write_result(res: dict, dst: PathLike) -> dict:
    """Write a :func:`compute` result's image to ``dst`` (atomically) and hash it.

    Returns the result with ``data`` replaced by ``sha256`` (or an error result if the
    file could not be written); a full or read-only disk stops the run
    (:func:`~morphlab.generators.runner.fatal_write_error`).
    """
    if "error" in res:
        return res
    res = dict(res)
    data = res.pop("data")
    try:
        atomic_write_bytes(dst, data)
    except OSError as exc:
        fatal = fatal_write_error(exc, Path(dst).parent)
        if fatal is not None:
            raise fatal from None
        return _error(exc, res["name"])
    res["sha256"] = sha256_bytes(data)
    return res


def _process(task: tuple) -> dict:
    """Local worker: :func:`compute` one image and write it (:func:`write_result`)."""
    return write_result(compute(task), task[1])


def _read_run(folder: Path) -> dict:
    run = folder / RUN_NAME
    if not run.is_file():
        return {}
    try:
        data = json.loads(run.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _unique_names(rels: Sequence[str], suffix: str) -> list[str]:
    """Output names: the source stems if unique, else the relative paths with ``/`` → ``_``."""
    stems = [Path(r).stem for r in rels]
    if len(set(stems)) == len(stems):
        return [s + suffix for s in stems]
    flat = [Path(r).with_suffix("").as_posix().replace("/", "_") for r in rels]
    if len(set(flat)) != len(flat):
        dup = sorted({f for f in flat if flat.count(f) > 1})
        raise ValueError(f"several source images would be written as {', '.join(dup[:5])}")
    return [f + suffix for f in flat]


def image_items(
    paths: Sequence[PathLike],
    root: PathLike,
    *,
    extra: Optional[Sequence[Mapping[str, Any]]] = None,
) -> list[dict]:
    """Bona fide inputs for :func:`postprocess_set`: ``{"path", "relpath", **extra}`` dicts.

    Args:
        paths: image files under ``root``.
        root: their dataset folder (``relpath`` is relative to it).
        extra: per image, keys copied into its manifest line (``subject``, ``capture``,
            ``role``…).
    """
    root_p = Path(root).resolve()
    out = []
    for i, p in enumerate(paths):
        full = Path(p).resolve()
        rec = {"path": str(full), "relpath": Path(os.path.relpath(full, root_p)).as_posix()}
        if extra is not None:
            rec.update(extra[i])
        out.append(rec)
    return out


def _bona_fide_items(recs: Sequence[Mapping[str, Any]], suffix: str) -> list[_Item]:
    recs = [dict(r) for r in recs]
    names = _unique_names([r["relpath"] for r in recs], suffix)
    items = []
    for r, name in zip(recs, names):
        path = Path(r.pop("path"))
        ref = {"relpath": r["relpath"], "path": str(path)}
        items.append(_Item(path, name, {"kind": BONA_FIDE, **r}, [], ref))
    return items


def _items_from_source(
    source: Union[PathLike, Sequence[Mapping[str, Any]]], suffix: str
) -> tuple[str, list[_Item], list[dict], str, list[Path]]:
    """``(input_kind, items, failed lines carried over, description, source folders)``."""
    if not isinstance(source, (str, os.PathLike)):
        items = _bona_fide_items(source, suffix)
        folders = sorted({it.src.parent for it in items})
        return IMAGES, items, [], f"{len(items)} images", folders
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such attack set, processed set or image folder")
    manifest = src / MANIFEST_NAME if src.is_dir() else src
    if src.is_dir() and not manifest.is_file():  # a plain folder of images
        root = src.resolve()
        files = sorted(
            f for f in root.rglob("*")
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in f.relative_to(root).parts)
        )
        if not files:
            raise ValueError(
                f"{root}: no manifest.jsonl and no image files ({', '.join(IMAGE_SUFFIXES)})"
            )
        return IMAGES, _bona_fide_items(image_items(files, root), suffix), [], str(root), [root]
    run = _read_run(manifest.parent)
    kind = run.get("input_kind", IMAGES) if run.get("format") == SET_FORMAT else ATTACK_SET
    recs = load_set(manifest, include_failed=True)
    ok = [r for r in recs if r.get("status") == "ok"]
    names = _unique_names([r["file"] for r in ok], suffix)
    items = []
    for r, name in zip(ok, names):
        path = Path(r.pop("path"))
        ref = {"file": r["file"], "path": str(path), "sha256": r["sha256"],
               "manifest": str(manifest.resolve())}
        history = list(r.pop("postprocess", None) or [])
        rec = {k: v for k, v in r.items() if k not in ("file", "sha256")}
        rec.setdefault("kind", MORPH if kind == ATTACK_SET else BONA_FIDE)
        items.append(_Item(path, name, rec, history, ref))
    carried = [r for r in recs if r.get("status") != "ok"]
    return kind, items, carried, str(manifest.resolve()), [manifest.parent.resolve()]


def _last_source(rec: Mapping[str, Any]) -> Optional[str]:
    steps = rec.get("postprocess")
    if isinstance(steps, list) and steps and isinstance(steps[-1], dict):
        return steps[-1].get("source", {}).get("path")
    return None


def postprocess_set(
    source: Union[PathLike, Sequence[Mapping[str, Any]]],
    out_dir: PathLike,
    ops: Sequence[Union[str, Operator]],
    *,
    seed: int = 0,
    jobs: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    executor: Optional["RayExecutor"] = None,
) -> PostprocessSummary:
    """Apply ``ops`` to every image of ``source`` and write a new set in ``out_dir``.

    Args:
        source: an attack set (folder or ``manifest.jsonl``), a set written by this
            function (processing again chains the history), a folder of images (all
            image files below it), or :func:`image_items` records.
        out_dir: the output folder (module docstring: layout, manifest).
        ops: operator specs, applied in order (at least one).
        seed: the set's seed (per-image draws: :func:`image_seed`).
        jobs: worker processes (ignored with ``executor``: its workers).
        resume: require a previous run with the same configuration in ``out_dir``.
        overwrite: delete the previous run in ``out_dir`` (the files its manifest lists).
        progress: show a tqdm progress bar.
        executor: a :class:`~morphlab.ray_executor.RayExecutor`: the images are processed
            by its Ray workers (:mod:`morphlab.postprocess.ray_actor`), this process
            writes them; the folder is byte for byte what a local run writes, and either
            continues the other. None: local worker processes.

    Returns:
        A :class:`PostprocessSummary`; images that failed (no face for ``icao``,
        unreadable…) are ``"status": "failed"`` lines, not exceptions.

    Raises:
        ValueError: bad operators, an output folder holding another run
            (:class:`~morphlab.generators.runner.RunConflictError`), a bad manifest.
        KeyError: unknown operator.
        FileNotFoundError: the source (or an image its manifest lists) is missing.
        OSError: the disk is full or read-only: the run stops; re-running continues.
        morphlab.outdir.FolderLockedError: another process is writing ``out_dir``.
        morphlab.workers.Interrupted: Ctrl-C or SIGTERM; the workers are stopped.
    """
    ops = parse_ops(ops)
    if not ops:
        raise ValueError("no post-processing operator given (e.g. --op jpeg:quality=75)")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: choose one")
    out = Path(out_dir)
    suffix = output_suffix(ops)
    kind, items, carried, described, folders = _items_from_source(source, suffix)
    if not items:
        raise ValueError(f"{described}: no image to process"
                         f"{f' (only {len(carried)} failed line(s))' if carried else ''}")
    # refused before anything is written: --overwrite there would delete the sources
    for folder in folders:
        check_disjoint(out, {"source folder": folder})
    check_out_path(out)
    specs = [op.spec() for op in ops]
    config = {
        "format": SET_FORMAT, "format_version": 1, "ops": specs, "seed": int(seed),
        "input_kind": kind, "source": described, "morphlab_version": __version__,
    }
    with locked_folder(out):
        return _postprocess_locked(items, carried, out, ops, config, seed=int(seed), jobs=jobs,
                                   resume=resume, overwrite=overwrite, progress=progress,
                                   executor=executor)


def _file_sha256(path: Path) -> Optional[str]:
    """sha256 of a source file now; None if missing or unreadable (_process says why)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def _postprocess_locked(items: list[_Item], carried: list[dict], out: Path, ops: list[Operator],
                        config: dict, *, seed: int, jobs: int, resume: bool, overwrite: bool,
                        progress: bool, executor: Optional["RayExecutor"] = None
                        ) -> PostprocessSummary:
    """:func:`postprocess_set` once ``out`` is locked and the arguments are checked."""
    from tqdm import tqdm

    from morphlab.outdir import check_outputs
    from morphlab.reports.contact import CONTACT_PAGE

    check_outputs(out, [CONTACT_PAGE], overwrite=True)  # a contact.html of the user's: refused
    if not overwrite:  # a run recorded in a deprecated spelling (jpeg:q=75) is the same run
        recorded = _read_run(out).get("ops")
        if recorded != config["ops"] and same_ops(recorded, config["ops"]):
            config = {**config, "ops": list(recorded)}
    previous = prepare_out_dir(out, config, resume=resume, overwrite=overwrite, keys=CONFIG_KEYS,
                               outputs=[*(it.name for it in items), CONTACT_PAGE])
    manifest = out / MANIFEST_NAME

    # an output is kept only if its source still has the content it was made from
    done: dict[str, dict] = {}
    for rec in previous:
        steps = rec.get("postprocess")
        if rec.get("status") == "ok" and isinstance(steps, list) and steps:
            done[str(rec.get("file"))] = rec
    kept, todo = [], []
    for it in items:
        # the file as it is now: a source edited in place (its manifest, if any, still
        # naming the old sha256) is redone, never kept with an output of its old content
        sha = _file_sha256(it.src)
        recorded = it.source_ref.setdefault("sha256", sha)
        prev = done.get(it.name)
        last = prev["postprocess"][-1] if prev is not None else None
        same_source = sha is not None and sha == recorded and isinstance(last, dict) and (
            isinstance(last.get("source"), dict) and last["source"].get("sha256") == sha)
        if same_source and verified_record(out, prev):
            kept.append(prev)
        else:
            todo.append(it)
    atomic_write_text(manifest, "".join(dumps_record(r) + "\n" for r in kept))
    summary = PostprocessSummary(out, manifest, len(items), skipped=len(kept))

    step = {"ops": config["ops"], "seed": seed}
    by_name = {it.name: it for it in todo}
    tasks = [(str(it.src), str(out / it.name), ops, seed, it.source_ref.get("sha256"))
             for it in todo]
    bar = tqdm(total=summary.items, initial=len(kept), disable=not progress, unit="img",
               desc=f"postprocess → {out.name}")
    with open(manifest, "ab") as fh:

        def record(res: dict) -> None:
            it = by_name[res["name"]]
            ref = dict(it.source_ref)
            if "error" in res:
                line = {**it.record, "status": "failed", "error": res["error"],
                        "postprocess": it.history + [{**step, "source": ref}]}
                summary.failed += 1
                summary.failures.append(line)
                if it.name in done:  # its output of an older source content is stale
                    remove_verified(out, [done[it.name]])
                log.warning("%s failed: %s", it.src, res["error"])
            else:
                ref["sha256"] = res["source_sha256"]
                done_step = {**step, "image_seed": res["image_seed"], "source": ref}
                if res.get("op_notes"):  # per-image decisions (icao fill, background colour)
                    done_step["op_notes"] = res["op_notes"]
                line = {**it.record, "status": "ok", "file": it.name, "sha256": res["sha256"],
                        "postprocess": it.history + [done_step], "morphlab_version": __version__}
                summary.processed += 1
            append_records(fh, [line], manifest)
            bar.update(1)

        crash = (f"a worker {'on Ray ' if executor is not None else 'process '}died; "
                 f"{manifest} keeps what finished and a re-run continues from there")
        try:
            if executor is None:
                run_tasks(_process, tasks, record, jobs=jobs, crash_message=crash)
            else:
                from morphlab.postprocess.ray_actor import process_on_ray

                process_on_ray(executor, tasks, record, crash_message=crash)
        finally:
            bar.close()

    # complete: everything in source order, then the source's failed lines carried over
    order = {str(it.src): i for i, it in enumerate(items)}
    recs = [rec for _, rec in manifest_records(manifest)]
    recs.sort(key=lambda r: order.get(str(_last_source(r)), len(order)))
    recs += carried
    atomic_write_text(manifest, "".join(dumps_record(r) + "\n" for r in recs))
    if any(r.get("kind") == "morph" for r in recs):  # a processed attack set: its contact sheet
        from morphlab.generators.runner import write_set_contact_page

        write_set_contact_page(out)
    log.info("%s: %d images: %d done before, %d processed, %d failed", out, summary.items,
             summary.skipped, summary.processed, summary.failed)
    return summary


def load_set(path: PathLike, *, include_failed: bool = False) -> list[dict]:
    """Read a post-processed set's manifest (or an attack set's: the runner's reader).

    Args:
        path: the set's folder or its ``manifest.jsonl``.
        include_failed: also return ``"status": "failed"`` lines.

    Returns:
        The lines as dicts in file order; each ``ok`` line gains ``"path"`` (absolute).

    Raises:
        FileNotFoundError: no manifest, or an image it lists is missing.
        ValueError: a malformed line (the message names the manifest and line).
    """
    p = Path(path)
    manifest = p / MANIFEST_NAME if p.is_dir() else p
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    folder = manifest.parent.resolve()
    run = _read_run(folder)
    if not (run.get("format") == SET_FORMAT and run.get("input_kind") == IMAGES):
        return load_manifest(manifest, include_failed=include_failed)
    out = []
    for where, rec in manifest_records(manifest):
        if rec["status"] == "failed":
            if include_failed:
                out.append(rec)
            continue
        missing = [k for k in ("file", "sha256", "postprocess") if k not in rec]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        name = rec["file"]
        if not isinstance(name, str) or name != Path(name).name or name in ("", ".", ".."):
            raise ValueError(f"{where}: file {name!r} is not a file name inside {folder}")
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{where}: image {folder / name} not found")
        rec["path"] = str(folder / name)
        out.append(rec)
    return out


def source_chain(record: Mapping[str, Any]) -> list[dict]:
    """A processed line's sources, newest first: each step's ``source`` (with its ops)."""
    return [
        {**step.get("source", {}), "ops": step.get("ops", [])}
        for step in reversed(record.get("postprocess") or [])
    ]


def check_chain(record: Mapping[str, Any]) -> None:
    """Verify that every source of a processed line still has its recorded sha256.

    Raises:
        FileNotFoundError: a source file is gone.
        ValueError: a source file was modified.
    """
    for src in source_chain(record):
        path, sha = src.get("path"), src.get("sha256")
        if path and sha and sha256_file(path) != sha:
            raise ValueError(f"{path}: modified since it was post-processed (sha256 differs)")
