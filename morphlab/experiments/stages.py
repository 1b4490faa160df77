"""The stage cache of ``morphlab run``: keys, records, and what a stage may delete.

Each stage has a **key** (the sha256 of its configuration and of the keys of the stages
it reads) and a record ``stages/<stage>.json``. The dataset stage keys the images by
**content**: :class:`ContentHashes` keeps each file's sha256 by (path, size, mtime_ns),
so ``touch``, ``cp -r`` or ``rsync`` without ``-t`` re-hash a file but change no key.

**The deletion rule** (:func:`clear_stage_folder`, the only place a stage deletes):

- a stage folder is cleared only when the stage must be redone from scratch (no record,
  or its key changed), and only of what the stage itself wrote: for an image set
  (``manifest.jsonl`` + ``run.json``, written by ``generate`` / ``postprocess``) the
  files its manifest lists, the manifest and ``run.json``; for the fixed-output stages
  (``pairs``, ``map``, ``detect``) the files recorded in ``.morphlab-owned.json``
  (:func:`morphlab.outdir.record_owned`, written when the stage completes) whose
  content is still what the stage wrote;
- a stage folder holding any other file (the user's own, an edited output, a link) is
  refused with :class:`StageFolderError` naming the folder and the files — nothing is
  deleted, and there is no ``rmtree``;
- a stage that was interrupted (same key, record incomplete): files written since the
  interrupted attempt began are its partial output, older files it did not write are
  refused as above. An image set is then continued (``generate`` / ``postprocess``
  resume by their manifest); a fixed-output stage's partial output is deleted and the
  stage starts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from morphlab import __version__
from morphlab.io import atomic_write_text
from morphlab.outdir import BOOKKEEPING, foreign_entries, record_owned, remove_owned

log = logging.getLogger(__name__)

#: The files of an image set (generate / postprocess) besides the images its manifest lists.
_SET_FILES = ("manifest.jsonl", "run.json")
#: At most this many file names in an error message.
_SHOWN = 5


class StageFolderError(ValueError):
    """A stage folder holds files the stage did not write; nothing was deleted."""


def _key(material: Any) -> str:
    return hashlib.sha256(
        json.dumps(material, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()


# ----------------------------------------------------------------------------------------
# the dataset, keyed by content
# ----------------------------------------------------------------------------------------
class ContentHashes:
    """sha256 of files, remembered by (resolved path, size, mtime_ns) in a JSON file.

    A file whose size or mtime changed is hashed again; its *key* changes only if its
    content did. The cache is a convenience: a missing or unreadable cache file means
    every file is hashed again.
    """

    def __init__(self, cache_file: Path) -> None:
        self.path = Path(cache_file)
        self._old: dict[str, list] = {}
        self._new: dict[str, list] = {}
        self.hashed = 0  # files hashed (not found in the cache) in this run
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            files = data.get("files", {}) if isinstance(data, dict) else {}
            if isinstance(files, dict):
                self._old = {k: v for k, v in files.items()
                             if isinstance(v, list) and len(v) == 3}
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            self._old = {}

    def sha256(self, path: Path) -> str:
        from morphlab.io import sha256_file

        p = Path(path).resolve()
        st = p.stat()
        key = str(p)
        old = self._old.get(key)
        if old is not None and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            digest = str(old[2])
        else:
            digest = sha256_file(p)
            self.hashed += 1
        self._new[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def fingerprint(self, paths: Sequence[Path], root: Path) -> list[list[str]]:
        """``[[path relative to root, sha256], ...]`` — the dataset's content key."""
        return [[Path(os.path.relpath(p, root)).as_posix(), self.sha256(p)] for p in paths]

    def save(self) -> None:
        """Write the entries of the files hashed or looked up in this run."""
        if self._new != self._old:
            atomic_write_text(self.path, json.dumps({"version": 1, "files": self._new},
                                                    sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------
# the deletion rule
# ----------------------------------------------------------------------------------------
def _set_listed(folder: Path) -> Optional[set[str]]:
    """What an image set in ``folder`` lists (manifest, run.json, images); None if no set."""
    from morphlab.generators.runner import _parse_loose

    manifest = folder / _SET_FILES[0]
    if not (manifest.is_file() or (folder / _SET_FILES[1]).is_file()):
        return None
    listed = set(_SET_FILES)
    if manifest.is_file():
        for rec in _parse_loose(manifest):
            name = rec.get("file")
            if isinstance(name, str) and name and name == Path(name).name and name not in (".", ".."):
                listed.add(name)
    return listed


def _not_written(folder: Path, listed: Iterable[str]) -> list[str]:
    """Files in ``folder`` that morphlab did not write (bookkeeping files aside)."""
    return [rel for rel in foreign_entries(folder, allowed=listed)
            if Path(rel).name not in BOOKKEEPING]


def _refuse(stage: str, folder: Path, files: Sequence[str], why: str) -> StageFolderError:
    shown = ", ".join(files[:_SHOWN]) + (f" … ({len(files)} files)" if len(files) > _SHOWN else "")
    return StageFolderError(
        f"{folder}: stage {stage} {why}, but the folder holds files morphlab did not write "
        f"(or that were edited since): {shown}; nothing was deleted. Move them out of the "
        "folder (or choose another output folder) and run again")


def clear_stage_folder(stage: str, folder: Path) -> int:
    """Delete what ``stage`` wrote in ``folder``, refusing a folder with anything else.

    Returns:
        The number of files deleted.

    Raises:
        StageFolderError: the folder (or a path where it should be) holds files morphlab
            did not write; nothing is deleted.
    """
    if not (folder.exists() or folder.is_symlink()):
        return 0
    if folder.is_symlink() or not folder.is_dir():
        raise StageFolderError(
            f"{folder}: stage {stage} writes a folder here, but this is a "
            f"{'link' if folder.is_symlink() else 'file'} morphlab did not create; nothing "
            "was deleted. Move it away (or choose another output folder) and run again")
    listed = _set_listed(folder) or set()
    foreign = _not_written(folder, listed)
    if foreign:
        raise _refuse(stage, folder, foreign, "must be redone (its configuration or input changed)")
    n = 0
    for rel in sorted(listed):
        f = folder / rel
        if f.is_file() and not f.is_symlink():
            f.unlink()
            n += 1
    n += len(remove_owned(folder))
    # folders left empty (or holding only morphlab's bookkeeping), deepest first
    for d in sorted((p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()),
                    key=lambda p: len(p.parts), reverse=True) + [folder]:
        entries = list(d.iterdir())
        if all(e.name in BOOKKEEPING and e.is_file() and not e.is_symlink() for e in entries):
            for e in entries:
                e.unlink()
            d.rmdir()
    log.info("stage %s: removed %d file(s) it wrote in %s", stage, n, folder)
    return n


def _check_resumable(stage: str, folder: Path, since_ns: int) -> None:
    """An interrupted stage: unrecorded files older than its start are not its own."""
    if not folder.is_dir():
        return
    listed = _set_listed(folder) or set()
    old = [rel for rel in _not_written(folder, listed)
           if (folder / rel).is_symlink() or (folder / rel).stat().st_mtime_ns < since_ns]
    if old:
        raise _refuse(stage, folder, old, "was interrupted and must be continued")


def _record_written(folder: Path, since_ns: int) -> None:
    """Record the files a fixed-output stage wrote (modified since ``since_ns``)."""
    if not folder.is_dir() or _set_listed(folder) is not None:
        return  # an image set: its manifest is the record
    rels = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name not in BOOKKEEPING
            and p.stat().st_mtime_ns >= since_ns]
    record_owned(folder, rels)


@dataclass
class StageRun:
    """One stage of a run: whether it ran or came from the cache, and its result."""

    name: str
    key: str
    status: str  # "ran" | "cached"
    seconds: float
    result: dict


class _Stages:
    """Runs stages, skipping those whose key matches a completed record."""

    def __init__(self, out: Path,
                 on_start: Optional[Callable[[str, bool], None]] = None) -> None:
        """``on_start(stage, cached)`` is called as each stage starts (or is found cached)."""
        self.out = out
        self.dir = out / "stages"
        self.runs: list[StageRun] = []
        self.on_start = on_start

    def run(self, name: str, material: Mapping[str, Any], outputs: Sequence[Path],
            fn: Callable[[], dict]) -> StageRun:
        """Run ``fn`` (which writes the folders ``outputs``) unless its record is current."""
        key = _key({"stage": name, **material})
        rec_file = self.dir / (name.replace("/", "__") + ".json")
        old: dict = {}
        if rec_file.is_file():
            try:
                old = json.loads(rec_file.read_text(encoding="utf-8"))
            except ValueError:
                old = {}
            if not isinstance(old, dict):
                old = {}
        cached = bool(old.get("key") == key and old.get("complete")
                      and all(p.exists() for p in outputs))
        if self.on_start is not None:
            self.on_start(name, cached)
        if cached:
            run = StageRun(name, key, "cached", 0.0, old.get("result", {}))
            log.info("stage %s: cached", name)
        else:
            since: Optional[int] = None
            if old.get("key") == key and not old.get("complete"):  # interrupted: continue
                since = rec_file.stat().st_mtime_ns  # when the interrupted attempt began
                for p in outputs:
                    _check_resumable(name, p, since)
                    if p.is_dir() and _set_listed(p) is None:  # fixed outputs: start again
                        _record_written(p, since)
                        clear_stage_folder(name, p)
            else:  # no record, or another configuration: start the stage afresh
                for p in outputs:
                    clear_stage_folder(name, p)
            log.info("stage %s: running", name)
            t0 = time.perf_counter()
            if since is None:
                atomic_write_text(rec_file, json.dumps({"key": key, "complete": False}) + "\n")
                since = rec_file.stat().st_mtime_ns
            result = fn()
            seconds = time.perf_counter() - t0
            for p in outputs:  # this attempt's files and an interrupted one's
                _record_written(p, since)
            atomic_write_text(rec_file, json.dumps(
                {"key": key, "complete": True, "seconds": round(seconds, 3), "stage": name,
                 "material": material, "result": result, "morphlab_version": __version__},
                indent=2, sort_keys=True, default=str) + "\n")
            run = StageRun(name, key, "ran", seconds, result)
        self.runs.append(run)
        return run
