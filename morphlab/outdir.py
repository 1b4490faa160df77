"""Output-folder safety: one writer per folder, never touch what morphlab did not write.

Every command that writes a folder follows three rules (STYLE.md, "Everyday habits"):

1. **Lock.** :func:`locked_folder` takes an exclusive ``fcntl.flock`` on
   ``FOLDER/.morphlab.lock`` for as long as the command writes; a second writer gets
   :class:`FolderLockedError` naming the process that holds it. The lock is re-entrant
   within one process (``morphlab run`` locks its folder and then its stages' folders).
2. **Disjoint from the inputs.** :func:`check_disjoint` refuses an output folder that is,
   contains or lies inside one of the command's source folders.
3. **Delete or replace only what morphlab wrote.** Commands with fixed output files
   (``map-score``'s report, ``detect train``'s model, …) record each file they write in
   ``FOLDER/.morphlab-owned.json`` (relative path → sha256) with :func:`record_owned`.
   :func:`check_outputs` refuses to replace a file that is not recorded there (the user's
   own ``report.html``), or one that was edited since morphlab wrote it, and refuses to
   replace a previous result without ``--overwrite``; :func:`remove_owned` deletes only
   recorded files whose content is still what morphlab wrote.

Commands with a manifest (``generate``, ``postprocess``) keep using their manifest as the
record of what they wrote; this module gives them the lock and the disjointness check.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Union

PathLike = Union[str, os.PathLike]

LOCK_NAME = ".morphlab.lock"
OWNED_NAME = ".morphlab-owned.json"
#: Bookkeeping files of this module; never "foreign".
BOOKKEEPING = frozenset({LOCK_NAME, OWNED_NAME})


class FolderLockedError(RuntimeError):
    """Another process is writing the folder."""


class ForeignFileError(RuntimeError):
    """An output would replace or delete a file morphlab did not write."""


class OutputExistsError(RuntimeError):
    """The folder holds a previous result; ``--overwrite`` is needed to replace it."""


# ----------------------------------------------------------------------------------------
# locking
# ----------------------------------------------------------------------------------------
_held: dict[str, list] = {}  # resolved folder -> [fd, depth]
_held_guard = threading.Lock()


def _holder_text(lock_path: Path) -> str:
    try:
        text = lock_path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "an unknown process"
    return text.splitlines()[0] if text else "an unknown process"


@contextlib.contextmanager
def locked_folder(folder: PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if missing) while the block runs.

    Raises:
        FolderLockedError: another process holds the lock; the message names its pid
            and command line.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield folder
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return

    lock_path = folder / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLockedError(
                f"{folder}: another morphlab process is writing this folder "
                f"({_holder_text(lock_path)}); wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        argv = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        os.write(fd, f"pid {os.getpid()}: {argv}\n".encode("utf-8", "replace"))
        with _held_guard:
            _held[key] = [fd, 1]
        try:
            yield folder
        finally:
            with _held_guard:
                del _held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------
# inputs vs outputs
# ----------------------------------------------------------------------------------------
def _within(a: Path, b: Path) -> bool:
    """True if ``a`` is ``b`` or lies inside it (both resolved)."""
    return a == b or b in a.parents


def check_disjoint(out: PathLike, sources: Mapping[str, Optional[PathLike]]) -> None:
    """Refuse an output folder that is, contains or lies inside a source folder.

    Args:
        out: the folder the command will write.
        sources: ``{"description": path}`` of the folders (or files) it reads; ``None``
            values are ignored. A file source is checked through its folder only when
            the output would contain it.

    Raises:
        ValueError: naming both paths and the relation.
    """
    o = Path(out).expanduser().resolve()
    for what, src in sources.items():
        if src is None:
            continue
        s = Path(src).expanduser().resolve()
        if s.is_file() or (not s.exists() and s.suffix):
            if _within(s, o):
                raise ValueError(f"output folder {out} contains the {what} {src}; "
                                 "choose an output folder outside it")
            continue
        if o == s:
            raise ValueError(f"output folder {out} is the {what} {src}; choose another "
                             "output folder (morphlab never writes into its own input)")
        if _within(o, s):
            raise ValueError(f"output folder {out} lies inside the {what} {src}; choose "
                             "an output folder outside it")
        if _within(s, o):
            raise ValueError(f"output folder {out} contains the {what} {src}; choose an "
                             "output folder outside it")


# ----------------------------------------------------------------------------------------
# what morphlab wrote
# ----------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    from morphlab.io import sha256_file

    return sha256_file(path)


def owned_files(folder: PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of the files morphlab recorded writing in ``folder``."""
    path = Path(folder) / OWNED_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: unreadable record of morphlab's files ({exc}); "
                         "delete it only if you know no morphlab output is in the folder")
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{path}: not a record of morphlab's files")
    return data


def _write_owned(folder: Path, owned: dict[str, str]) -> None:
    from morphlab.io import atomic_write_text

    atomic_write_text(folder / OWNED_NAME, json.dumps(owned, indent=1, sort_keys=True) + "\n")


def record_owned(folder: PathLike, relpaths: Iterable[PathLike]) -> None:
    """Record that morphlab wrote ``relpaths`` (relative to ``folder``) as they are now."""
    folder = Path(folder)
    owned = owned_files(folder)
    for rel in relpaths:
        rel = Path(rel).as_posix()
        p = folder / rel
        if p.is_file():
            owned[rel] = _sha256(p)
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.is_symlink():
                    owned[f.relative_to(folder).as_posix()] = _sha256(f)
    _write_owned(folder, owned)


def is_owned(folder: PathLike, relpath: PathLike, owned: Optional[dict] = None) -> bool:
    """True if morphlab wrote ``folder/relpath`` and it still holds what morphlab wrote."""
    folder = Path(folder)
    owned = owned_files(folder) if owned is None else owned
    rel = Path(relpath).as_posix()
    p = folder / rel
    return rel in owned and p.is_file() and not p.is_symlink() and _sha256(p) == owned[rel]


def foreign_entries(folder: PathLike, allowed: Iterable[str] = ()) -> list[str]:
    """Entries of ``folder`` (recursively) that morphlab did not write.

    ``allowed``: extra relative paths (or folder prefixes ending in ``/``) to treat as
    morphlab's (e.g. a manifest-listed set).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    owned = owned_files(folder)
    allowed = set(allowed)
    prefixes = tuple(a for a in allowed if a.endswith("/"))
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if rel in BOOKKEEPING or p.is_dir() and not p.is_symlink():
            continue
        if rel in allowed or (prefixes and rel.startswith(prefixes)):
            continue
        if not is_owned(folder, rel, owned):
            out.append(rel)
    return out


def check_outputs(folder: PathLike, relpaths: Iterable[PathLike], *, overwrite: bool) -> None:
    """Check that writing ``relpaths`` into ``folder`` replaces nothing it must not.

    Raises:
        ForeignFileError: one of the files exists and morphlab did not write it (or it
            was edited since) — never replaced, even with ``overwrite``.
        OutputExistsError: a previous result morphlab wrote is there and ``overwrite``
            is false.
    """
    folder = Path(folder)
    owned = owned_files(folder)
    foreign, ours = [], []
    for rel in relpaths:
        rel = Path(rel).as_posix()
        p = folder / rel
        if not (p.exists() or p.is_symlink()):
            continue
        (ours if is_owned(folder, rel, owned) else foreign).append(rel)
    if foreign:
        raise ForeignFileError(
            f"{folder}: refusing to replace {', '.join(foreign[:5])}"
            f"{' …' if len(foreign) > 5 else ''}: morphlab did not write "
            f"{'it' if len(foreign) == 1 else 'them'} (or {'it was' if len(foreign) == 1 else 'they were'} "
            "edited since); move them away or choose another output folder")
    if ours and not overwrite:
        raise OutputExistsError(
            f"{folder}: holds a previous result ({', '.join(ours[:5])}"
            f"{' …' if len(ours) > 5 else ''}); pass --overwrite to replace it, or choose "
            "another output folder")


def remove_owned(folder: PathLike, relpaths: Optional[Iterable[PathLike]] = None) -> list[str]:
    """Delete files morphlab wrote in ``folder`` (all recorded ones, or ``relpaths``).

    A recorded file whose content changed since is kept (it is the user's now). Returns
    the relative paths removed; empty folders left behind are removed too.
    """
    folder = Path(folder)
    owned = owned_files(folder)
    wanted = owned.keys() if relpaths is None else [Path(r).as_posix() for r in relpaths]
    removed = []
    for rel in list(wanted):
        if is_owned(folder, rel, owned):
            (folder / rel).unlink()
            removed.append(rel)
            owned.pop(rel, None)
            parent = (folder / rel).parent
            while parent != folder and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
    if removed:
        _write_owned(folder, owned)
    return removed
