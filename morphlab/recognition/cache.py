"""An on-disk embedding cache, so that re-scoring a large attack set recomputes nothing.

One SQLite database per recognition system and version:
``<cache root>/embeddings/<system.cache_key()>.sqlite`` (cache root: ``$MORPHLAB_CACHE`` or
``~/.cache/morphlab``). A row is keyed by the image file's **sha256** and the **face key**
(the landmark backend's ``cache_key()``, which names the backend, its version and
options), so renamed or copied images hit, while another system version, another model
file (its hash is in the ONNX systems' version) or another landmark backend never share
an entry.

Safety: the database runs in WAL mode with a generous busy timeout, so several worker
processes can read and write at once; every batch is written in one transaction, so an
interrupted run leaves only complete rows (and re-running fills in the rest). A database
that cannot be opened (corrupt) is moved aside with a warning and started afresh; a row
whose size does not match its dimension is ignored and recomputed.

:func:`embed_files` is the one entry point most code needs: embeddings for a list of
image files, through the cache, with the face found by a landmark backend (itself cached
by :mod:`morphlab.face.cache`).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from morphlab.face.base import FaceBackend, FaceError, MultiplePolicy, create_backend
from morphlab.io import ImageError, PathLike, read_image, sha256_file
from morphlab.recognition.base import RecognitionSystem

log = logging.getLogger(__name__)

#: Bump when the table layout changes (old databases are then simply not found).
CACHE_FORMAT = 1
_SQL_CHUNK = 500


def default_cache_root() -> Path:
    """``$MORPHLAB_CACHE`` if set and non-empty, else ``~/.cache/morphlab``."""
    from morphlab.face.cache import default_cache_root as _root

    return _root()


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


class EmbeddingCache:
    """Embeddings of one recognition system, keyed by image sha256 and face key.

    Args:
        system: the recognition system (its ``cache_key()`` names the database), or the
            cache key itself.
        cache_dir: cache root; the database lives in ``cache_dir/embeddings/``.
        timeout: seconds to wait for another process's write lock.

    Not shared across processes: each process opens its own (cheap) instance.
    """

    def __init__(self, system: Union[RecognitionSystem, str], cache_dir: Optional[PathLike] = None,
                 *, timeout: float = 60.0) -> None:
        self.key = system if isinstance(system, str) else system.cache_key()
        root = Path(cache_dir) if cache_dir is not None else default_cache_root()
        self.path = root / "embeddings" / f"{_safe_name(self.key)}.v{CACHE_FORMAT}.sqlite"
        self.timeout = float(timeout)
        self._conn: Optional[sqlite3.Connection] = None
        self._pid = None

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("embedding cache %s is unusable (%s); moved to %s, starting afresh",
                        self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.replace(Path(str(aside) + suffix))
            conn = self._open()
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " image_sha256 TEXT NOT NULL, face_key TEXT NOT NULL,"
                " dim INTEGER NOT NULL, data BLOB NOT NULL, created REAL NOT NULL,"
                " PRIMARY KEY (image_sha256, face_key))"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('system', ?)", (self.key,))
            (stored,) = conn.execute("SELECT v FROM meta WHERE k = 'system'").fetchone()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        if stored != self.key:
            conn.close()
            raise sqlite3.DatabaseError(f"database belongs to system {stored!r}, not {self.key!r}")
        return conn

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_pid"] = None
        return state

    # -- access -----------------------------------------------------------------------
    def get_many(self, image_sha256s: Iterable[str], face_key: str) -> dict[str, np.ndarray]:
        """Cached embeddings ``{sha256: (D,) float32}`` for the hashes present."""
        shas = list(dict.fromkeys(image_sha256s))
        conn = self._connect()
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(shas), _SQL_CHUNK):
            chunk = shas[i : i + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT image_sha256, dim, data FROM embeddings "
                f"WHERE face_key = ? AND image_sha256 IN ({marks})",
                [face_key, *chunk],
            ).fetchall()
            for sha, dim, data in rows:
                vec = np.frombuffer(data, dtype="<f4")
                if vec.size != dim:
                    log.warning("ignoring damaged embedding cache row for %s in %s", sha, self.path)
                    continue
                out[sha] = vec.astype(np.float32)
        return out

    def put_many(self, items: Iterable[tuple[str, np.ndarray]], face_key: str) -> None:
        """Store ``(sha256, embedding)`` pairs in one transaction (replacing existing rows)."""
        now = time.time()
        rows = []
        for sha, vec in items:
            v = np.asarray(vec, dtype="<f4").ravel()
            rows.append((sha, face_key, int(v.size), v.tobytes(), now))
        if not rows:
            return
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])


@dataclass
class EmbedResult:
    """Embeddings of a list of files.

    Attributes:
        embeddings: ``{path: (D,) float32}`` for every file that could be embedded.
        failures: ``{path: reason}`` for the others (no face, unreadable image, …).
        sha256: ``{path: hex sha256}`` of every file read.
        hits: embeddings taken from the cache.
        computed: embeddings computed (and stored) in this call.
    """

    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    computed: int = 0

    def merge(self, other: "EmbedResult") -> None:
        self.embeddings.update(other.embeddings)
        self.failures.update(other.failures)
        self.sha256.update(other.sha256)
        self.hits += other.hits
        self.computed += other.computed


def _resolve_backend(backend: Union[FaceBackend, str]) -> FaceBackend:
    return create_backend(backend) if isinstance(backend, str) else backend


def embed_files(
    system: RecognitionSystem,
    paths: Sequence[PathLike],
    *,
    backend: Union[FaceBackend, str] = "dlib",
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
    multiple: MultiplePolicy = "largest",
    batch_size: int = 16,
    workers: int = 1,
    progress: bool = False,
    sha256s: Optional[dict[str, str]] = None,
) -> EmbedResult:
    """Embeddings of image files through the cache.

    Files whose ``(sha256, landmark backend)`` is cached are not even read. The others are
    read, their face found by ``backend`` (through the landmark cache), embedded in
    batches of ``batch_size`` and stored after each batch, so an interrupted run keeps
    what it finished.

    Args:
        system: the recognition system.
        paths: image files (duplicates are embedded once).
        backend: landmark backend instance or registered name.
        cache_dir: cache root (default ``$MORPHLAB_CACHE`` or ``~/.cache/morphlab``).
        use_cache: False to compute everything and store nothing.
        multiple: several faces in an image → ``"largest"`` or ``"error"``.
        batch_size: faces per model call and per cache transaction.
        workers: processes for the misses (1 = in this process).
        progress: show a tqdm bar.
        sha256s: ``{str(path): sha256}`` already known (e.g. from a manifest) to skip hashing.

    Returns:
        :class:`EmbedResult`; a file that fails (no face, unreadable) is in ``failures``
        with the reason, never silently dropped.
    """
    from tqdm.auto import tqdm

    be = _resolve_backend(backend)
    face_key = be.cache_key()
    if use_cache and not getattr(be, "cacheable", True):
        # e.g. the `file` backend: landmarks come from a sidecar that may change while the
        # pixels (the cache key) do not, so its embeddings are never cached
        log.info("landmark backend %r is not cacheable: embeddings are not cached", be.name)
        use_cache = False
    cache = EmbeddingCache(system, cache_dir) if use_cache else None
    res = EmbedResult()
    todo: list[str] = []
    for p in dict.fromkeys(str(p) for p in paths):
        try:
            res.sha256[p] = (sha256s or {}).get(p) or sha256_file(p)
        except (FileNotFoundError, OSError) as exc:
            res.failures[p] = str(exc)
            continue
        todo.append(p)
    if cache is not None and todo:
        found = cache.get_many((res.sha256[p] for p in todo), face_key)
        missing = []
        for p in todo:
            vec = found.get(res.sha256[p])
            if vec is None:
                missing.append(p)
            else:
                res.embeddings[p] = vec
                res.hits += 1
        todo = missing
    log.info("%s: %d embeddings cached, %d to compute", system.name, res.hits, len(todo))
    if not todo:
        return res
    bar = tqdm(total=len(todo), desc=f"embed {system.name}", unit="face", disable=not progress)
    try:
        if workers > 1 and len(todo) > batch_size:
            chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = [pool.submit(_embed_chunk, system, be, c, res.sha256, cache, multiple)
                        for c in chunks]
                for fut, c in zip(futs, chunks):
                    res.merge(fut.result())
                    bar.update(len(c))
        else:
            for i in range(0, len(todo), batch_size):
                chunk = todo[i : i + batch_size]
                res.merge(_embed_chunk(system, be, chunk, res.sha256, cache, multiple))
                bar.update(len(chunk))
    finally:
        bar.close()
    return res


def _embed_chunk(system: RecognitionSystem, be: FaceBackend, paths: Sequence[str],
                 shas: dict[str, str], cache: Optional[EmbeddingCache],
                 multiple: MultiplePolicy) -> EmbedResult:
    """Embed one batch of files and store it (runs in a worker or in-process)."""
    from morphlab.face.cache import get_face

    out = EmbedResult()
    images, faces, ok = [], [], []
    for p in paths:
        try:
            img = read_image(p)
            face = get_face(be, p, img, cache_dir=cache.path.parent.parent if cache else None,
                            multiple=multiple, use_cache=cache is not None)
        except (FaceError, ImageError, FileNotFoundError, OSError) as exc:
            out.failures[p] = str(exc)
            continue
        images.append(img)
        faces.append(face)
        ok.append(p)
    if ok:
        vecs = np.asarray(system.embed_batch(images, faces), dtype=np.float32)
        for p, v in zip(ok, vecs):
            out.embeddings[p] = v
        out.computed = len(ok)
        if cache is not None:
            cache.put_many(((shas[p], v) for p, v in zip(ok, vecs)), be.cache_key())
    return out
