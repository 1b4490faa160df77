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

:func:`embed_many` is the one entry point most code needs: embeddings of a list of image
files by several systems, through their caches, with the face found by a landmark backend
(itself cached by :mod:`morphlab.face.cache`); each image is read and its face found once
for all the systems, and each system embeds in batches. :func:`embed_files` is the same
for one system. Work runs here, in local worker processes or on Ray actors
(:class:`Embedder`); this process alone writes the embedding cache.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from morphlab.face.base import FaceBackend, FaceError, MultiplePolicy, create_backend
from morphlab.io import ImageError, PathLike, read_image, sha256_file
from morphlab.recognition.base import RecognitionSystem

log = logging.getLogger(__name__)

#: Bump when the table layout changes (old databases are then simply not found).
CACHE_FORMAT = 1
_SQL_CHUNK = 500
#: Images per worker task, faces per model call and per cache transaction.
DEFAULT_BATCH = 16


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
    """Embeddings of a list of files by one system.

    Attributes:
        embeddings: ``{path: (D,) float32}`` for every file that could be embedded.
        failures: ``{path: reason}`` for the others (no face, unreadable image, …).
        sha256: ``{path: hex sha256}`` of every file read.
        hits: embeddings taken from the cache.
        computed: embeddings computed (and stored) in this call.
        seconds: time this system spent computing them (alignment + network, summed over
            workers; image reading and landmarks are not in it, see
            :attr:`EmbedRun.prepare_seconds`).
    """

    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    computed: int = 0
    seconds: float = 0.0

    @property
    def faces_per_second(self) -> Optional[float]:
        """``computed / seconds`` (faces per second of one worker), None when none computed."""
        return self.computed / self.seconds if self.computed and self.seconds > 0 else None

    def merge(self, other: "EmbedResult") -> None:
        self.embeddings.update(other.embeddings)
        self.failures.update(other.failures)
        self.sha256.update(other.sha256)
        self.hits += other.hits
        self.computed += other.computed
        self.seconds += other.seconds


@dataclass
class EmbedRun:
    """What :func:`embed_many` did: one :class:`EmbedResult` per system, and its time.

    Attributes:
        results: per system, in the order given.
        prepare_seconds: reading images and finding their faces (shared by the systems,
            summed over workers).
        wall_seconds: the whole call, hashing and cache queries included.
    """

    results: list[EmbedResult]
    prepare_seconds: float = 0.0
    wall_seconds: float = 0.0


def _resolve_backend(backend: Union[FaceBackend, str]) -> FaceBackend:
    return create_backend(backend) if isinstance(backend, str) else backend


def embed_files(system: RecognitionSystem, paths: Sequence[PathLike], **options: Any) -> EmbedResult:
    """Embeddings of image files by one system through its cache: :func:`embed_many` with
    ``[system]`` (same keyword ``options``: backend, cache_dir, use_cache, multiple,
    batch_size, workers, progress, sha256s, executor)."""
    return embed_many([system], paths, **options).results[0]


def embed_many(
    systems: Sequence[RecognitionSystem],
    paths: Sequence[PathLike],
    *,
    backend: Union[FaceBackend, str] = "dlib",
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
    multiple: MultiplePolicy = "largest",
    batch_size: int = DEFAULT_BATCH,
    workers: int = 1,
    progress: bool = False,
    sha256s: Optional[dict[str, str]] = None,
    executor: Any = None,
) -> EmbedRun:
    """Embeddings of image files by several systems, through their caches.

    Files whose ``(sha256, landmark backend)`` every system has cached are not even read.
    The others are read **once** for all the systems that miss them, their face found by
    ``backend`` (through the landmark cache), and embedded by each of those systems in
    batches of ``batch_size`` (:meth:`RecognitionSystem.embed_batch`: one model call per
    batch where the model takes batches). This process stores each batch's embeddings
    in one transaction as it arrives, so an interrupted run keeps what it finished;
    workers (local processes or Ray actors) only compute.

    Args:
        systems: the recognition systems.
        paths: image files (duplicates are embedded once).
        backend: landmark backend instance or registered name.
        cache_dir: cache root (default ``$MORPHLAB_CACHE`` or ``~/.cache/morphlab``).
        use_cache: False to compute everything and store nothing.
        multiple: several faces in an image → ``"largest"`` or ``"error"``.
        batch_size: images per worker task, faces per model call and per cache transaction.
        workers: local processes for the misses (1 = in this process; ignored with
            ``executor``).
        progress: show a tqdm bar.
        sha256s: ``{str(path): sha256}`` already known (e.g. from a manifest) to skip hashing.
        executor: a :class:`morphlab.ray_executor.RayExecutor` to embed on Ray actors
            (each loads the systems once); None = local. The actors read the image files
            by their paths and keep landmarks in their machine's landmark cache
            (``cache_dir`` or their default): on a cluster of several machines the files
            must be at the same paths on each (a shared file system).

    Returns:
        :class:`EmbedRun`; a file that fails (no face, unreadable) is in each system's
        ``failures`` with the reason, never silently dropped. The embeddings are the
        same whether computed here, in worker processes or on Ray.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    if not systems:
        raise ValueError("embed_many: no recognition system given")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    be = _resolve_backend(backend)
    face_key = be.cache_key()
    if use_cache and not getattr(be, "cacheable", True):
        # e.g. the `file` backend: landmarks come from a sidecar that may change while the
        # pixels (the cache key) do not, so its embeddings are never cached
        log.info("landmark backend %r is not cacheable: embeddings are not cached", be.name)
        use_cache = False
    caches = [EmbeddingCache(s, cache_dir) if use_cache else None for s in systems]
    results = [EmbedResult() for _ in systems]
    run = EmbedRun(results)
    shas: dict[str, str] = {}
    failed: dict[str, str] = {}
    todo: list[str] = []
    for p in dict.fromkeys(str(p) for p in paths):
        try:
            shas[p] = (sha256s or {}).get(p) or sha256_file(p)
        except (FileNotFoundError, OSError) as exc:
            failed[p] = str(exc)
            continue
        todo.append(p)
    need: dict[str, list[int]] = {p: [] for p in todo}
    for c, (system, res, cache) in enumerate(zip(systems, results, caches)):
        res.sha256.update(shas)
        res.failures.update(failed)
        found = (cache.get_many((shas[p] for p in todo), face_key)
                 if cache is not None and todo else {})
        for p in todo:
            vec = found.get(shas[p])
            if vec is None:
                need[p].append(c)
            else:
                res.embeddings[p] = vec
                res.hits += 1
        log.info("%s: %d embeddings cached, %d to compute", system.name, res.hits,
                 sum(1 for p in todo if c in need[p]))
    missing = [(p, tuple(need[p])) for p in todo if need[p]]
    if missing:
        chunks = [missing[i : i + batch_size] for i in range(0, len(missing), batch_size)]
        names = ", ".join(s.name for s in systems)
        bar = tqdm(total=len(missing), desc=f"embed {names}", unit="image",
                   disable=not progress)

        def done(_index: int, out: dict) -> None:
            run.prepare_seconds += out["prepare_seconds"]
            for c, (res, cache) in enumerate(zip(results, caches)):
                vecs = out["embeddings"][c]
                res.embeddings.update(vecs)
                res.failures.update(out["failures"][c])
                res.computed += len(vecs)
                res.seconds += out["seconds"][c]
                if cache is not None and vecs:
                    cache.put_many(((shas[p], v) for p, v in vecs.items()), face_key)
            bar.update(out["images"])

        root = None if cache_dir is None else str(cache_dir)
        args = (list(systems), be, multiple, root, use_cache)
        try:
            if executor is not None:
                executor.map(Embedder, args, "embed", chunks, done,
                             crash_message="a Ray worker died while embedding faces")
            elif workers > 1 and len(chunks) > 1:
                from morphlab.workers import run_tasks

                run_tasks(_embed_task, list(enumerate(chunks)), lambda r: done(*r),
                          jobs=workers, initializer=_init_embedder, initargs=args,
                          crash_message="a worker process died while embedding faces")
            else:
                local = Embedder(*args)
                for k, chunk in enumerate(chunks):
                    done(k, local.embed(chunk))
        finally:
            bar.close()
    run.wall_seconds = time.perf_counter() - t_start
    return run


class Embedder:
    """Embeds chunks of image files with several systems (models loaded once per worker).

    The one worker of :func:`embed_many`: used in this process, in each local worker
    process, and as the Ray actor class (``RayExecutor.map(Embedder, …, "embed", …)``).
    It reads, finds faces (through the landmark cache) and embeds; it never writes the
    embedding cache (the driver does).

    Args:
        systems: the recognition systems (pickled to workers; models load lazily there).
        backend: the landmark backend.
        multiple: several faces in an image → ``"largest"`` or ``"error"``.
        cache_root: the cache root of the landmark cache (None = this machine's default).
        use_cache: False to neither read nor write the landmark cache.
    """

    def __init__(self, systems: Sequence[RecognitionSystem], backend: Union[FaceBackend, str],
                 multiple: MultiplePolicy = "largest", cache_root: Optional[str] = None,
                 use_cache: bool = True) -> None:
        self.systems = list(systems)
        self.backend = _resolve_backend(backend)
        self.multiple = multiple
        self.cache_root = cache_root
        self.use_cache = use_cache

    def embed(self, chunk: Sequence[tuple[str, Sequence[int]]]) -> dict:
        """Embed ``[(path, indices of the systems that need it), …]``.

        Returns:
            ``{"images": n, "prepare_seconds": s, "embeddings": [{path: (D,) float32}] per
            system, "failures": [{path: reason}] per system, "seconds": [s] per system}``.
        """
        from morphlab.face.cache import get_face

        C = len(self.systems)
        out: dict[str, Any] = {"images": len(chunk), "embeddings": [{} for _ in range(C)],
                               "failures": [{} for _ in range(C)], "seconds": [0.0] * C}
        t = time.perf_counter()
        ready = []
        for p, which in chunk:
            try:
                img = read_image(p)
                face = get_face(self.backend, p, img, cache_dir=self.cache_root,
                                multiple=self.multiple, use_cache=self.use_cache)
            except (FaceError, ImageError, FileNotFoundError, OSError) as exc:
                for c in which:
                    out["failures"][c][p] = str(exc)
                continue
            ready.append((p, img, face, set(which)))
        out["prepare_seconds"] = time.perf_counter() - t
        for c, system in enumerate(self.systems):
            mine = [(p, img, face) for p, img, face, which in ready if c in which]
            if not mine:
                continue
            t = time.perf_counter()
            vecs = np.asarray(system.embed_batch([m[1] for m in mine], [m[2] for m in mine]),
                              dtype=np.float32)
            out["seconds"][c] = time.perf_counter() - t
            out["embeddings"][c] = {p: v for (p, _, _), v in zip(mine, vecs)}
        return out


#: The embedder of a local worker process (:func:`_init_embedder`).
_EMBEDDER: Optional[Embedder] = None


def _init_embedder(*args: Any) -> None:
    """A local worker process: one OpenCV and one BLAS thread (the workers share the
    cores; a Ray actor of one CPU gets ``OMP_NUM_THREADS=1`` from Ray), then the embedder."""
    global _EMBEDDER
    import cv2

    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    _EMBEDDER = Embedder(*args)


def _embed_task(task: tuple[int, list]) -> tuple[int, dict]:
    index, chunk = task
    if _EMBEDDER is None:
        raise RuntimeError("embedding worker used before _init_embedder")
    return index, _EMBEDDER.embed(chunk)
