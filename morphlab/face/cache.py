"""A landmark cache keyed by image content: detect once per image and backend.

Entries live under ``<cache root>/landmarks/<2 hex>/<key>.npz`` where the cache root is
``$MORPHLAB_CACHE`` or ``~/.cache/morphlab`` and ``key`` is the sha256 of the image
file's sha256 and the backend's :meth:`~morphlab.face.base.FaceBackend.cache_key`
(name, version and options). So a renamed or copied image hits the cache, and two
backends (or one backend with other options) never share an entry.

What is cached is the backend's whole detection result — every face found, possibly
none — and the several-faces policy is applied on reading. Negative results ("no face")
are therefore cached too, explicitly: a second call on a face-less image raises
:class:`~morphlab.face.base.NoFaceError` again without re-running the detector.

Writes are atomic (temporary file + rename), so concurrent processes computing the same
entry simply race to write identical content; they are not fsync'ed (a cache entry lost to
a power loss is detected on reading and recomputed). An entry that cannot be read back (truncated,
corrupt, written for another key) is logged as a warning, ignored and recomputed.
Backends with ``cacheable = False`` (the ``file`` backend, whose output depends on a
sidecar file rather than the pixels) bypass the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Optional, Union

import numpy as np

from morphlab.face.base import Face, FaceBackend, MultiplePolicy, choose_face, create_backend
from morphlab.io import PathLike, atomic_open, read_image, sha256_file

log = logging.getLogger(__name__)

#: Bump when the on-disk entry layout changes (old entries are then simply not found).
CACHE_FORMAT = 1

_backends: dict[tuple[int, str], FaceBackend] = {}
_backends_lock = threading.Lock()


def _new_lock_after_fork() -> None:  # a lock held by another thread at a fork stays held
    global _backends_lock
    _backends_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def default_cache_root() -> Path:
    """The cache root: ``$MORPHLAB_CACHE`` if set and non-empty, else ``~/.cache/morphlab``."""
    env = os.environ.get("MORPHLAB_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "morphlab"


def _backend(backend: Union[FaceBackend, str]) -> FaceBackend:
    """A backend instance; names get one default-configured instance per process."""
    if isinstance(backend, FaceBackend):
        return backend
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a FaceBackend or a registered name, got {backend!r}")
    key = (os.getpid(), backend)
    with _backends_lock:
        inst = _backends.get(key)
        if inst is None:
            inst = _backends[key] = create_backend(backend)
    return inst


def entry_path(cache_root: Path, image_sha256: str, backend_key: str) -> Path:
    """Where the entry for an image (by content hash) and a backend key lives."""
    key = hashlib.sha256(f"{CACHE_FORMAT}\n{image_sha256}\n{backend_key}".encode()).hexdigest()
    return cache_root / "landmarks" / key[:2] / f"{key}.npz"


def _save(path: Path, faces: list[Face], image_sha256: str, backend_key: str) -> None:
    if faces:
        boxes = np.stack([np.asarray(f.box, dtype=np.float64) for f in faces])
        landmarks = np.stack([np.asarray(f.landmarks, dtype=np.float64) for f in faces])
        schemes = np.array([f.scheme for f in faces])
    else:
        boxes = np.zeros((0, 4))
        landmarks = np.zeros((0, 0, 2))
        schemes = np.array([], dtype="<U1")
    # no fsync (durable=False): a power loss can cost an entry, which reading detects (the
    # npz's CRC-checked zip members, the key check) and recomputes; other processes still
    # never see a half-written file
    with atomic_open(path, "wb", durable=False) as fh:
        np.savez(
            fh,
            image_sha256=np.array(image_sha256),
            backend_key=np.array(backend_key),
            boxes=boxes,
            landmarks=landmarks,
            scores=np.array([f.score for f in faces], dtype=np.float64),
            schemes=schemes,
        )


def _load(path: Path, image_sha256: str, backend_key: str) -> Optional[list[Face]]:
    """The cached faces, or None when absent or unusable (a warning says why)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["image_sha256"]) != image_sha256 or str(z["backend_key"]) != backend_key:
                raise ValueError("entry was written for another image or backend")
            boxes, landmarks = z["boxes"], z["landmarks"]
            scores, schemes = z["scores"], z["schemes"]
        n = len(boxes)
        if boxes.shape != (n, 4) or landmarks.ndim != 3 or len(landmarks) != n \
                or landmarks.shape[-1] != 2 or scores.shape != (n,) or schemes.shape != (n,):
            raise ValueError("arrays have inconsistent shapes")
        return [
            Face(box=boxes[i].copy(), landmarks=landmarks[i].copy(), scheme=str(schemes[i]),
                 score=float(scores[i]))
            for i in range(n)
        ]
    except Exception as exc:  # any unreadable entry is recomputed, never fatal
        log.warning("ignoring unusable landmark cache entry %s (%s: %s); recomputing",
                    path, type(exc).__name__, exc)
        return None


def detect_cached(
    backend: Union[FaceBackend, str],
    path: PathLike,
    image: Optional[np.ndarray] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
) -> list[Face]:
    """All faces in the image file ``path`` (largest first), through the cache.

    Args: as :func:`get_face`.

    Returns:
        The backend's detection result (possibly empty).
    """
    be = _backend(backend)
    path = Path(path)
    if not use_cache or not be.cacheable:
        img = read_image(path) if image is None else image
        return be.detect(img, source=path)
    image_sha = sha256_file(path)
    key = be.cache_key()
    entry = entry_path(Path(cache_dir) if cache_dir is not None else default_cache_root(), image_sha, key)
    faces = _load(entry, image_sha, key)
    if faces is not None:
        log.debug("landmark cache hit for %s (%s)", path, key)
        return faces
    img = read_image(path) if image is None else image
    faces = be.detect(img, source=path)
    try:
        _save(entry, faces, image_sha, key)
    except OSError as exc:  # a read-only or full cache must not stop the work
        log.warning("could not write landmark cache entry %s: %s", entry, exc)
    return faces


def get_face(
    backend: Union[FaceBackend, str],
    path: PathLike,
    image: Optional[np.ndarray] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    multiple: MultiplePolicy = "largest",
    use_cache: bool = True,
) -> Face:
    """The one face in the image file ``path``, cached by content hash and backend.

    Args:
        backend: a backend instance, or a registered name (one default instance per
            process is kept for names).
        path: the image file; its bytes are hashed for the cache key, and it is read
            (:func:`morphlab.io.read_image`) on a cache miss unless ``image`` is given.
        image: the decoded image (RGB uint8 ``(H, W, 3)``) if the caller already has it;
            it must be the content of ``path``.
        cache_dir: cache root (entries go to ``cache_dir/landmarks/``); default
            :func:`default_cache_root`.
        multiple: several faces → ``"largest"`` (with a warning) or ``"error"``.
        use_cache: False to always run the backend (nothing read or written).

    Returns:
        The chosen :class:`~morphlab.face.base.Face`, landmarks in ``(x, y)`` pixels.

    Raises:
        NoFaceError: no face in the image (message names the file).
        MultipleFacesError: several faces and ``multiple="error"``.
        FileNotFoundError, morphlab.io.ImageError: the image is missing or unreadable.
    """
    be = _backend(backend)
    faces = detect_cached(be, path, image, cache_dir=cache_dir, use_cache=use_cache)
    return choose_face(faces, source=Path(path), backend=be.name, multiple=multiple)
