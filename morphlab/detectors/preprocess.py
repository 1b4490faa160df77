"""The one preprocessing step of every detector: image files → aligned face crops.

A crop is cut by the 5-point similarity transform (:func:`morphlab.face.align.similarity_align`)
onto :data:`MAD_TEMPLATE_112` — the insightface ArcFace template shrunk by
:data:`TEMPLATE_ZOOM` about the crop centre, so that forehead, cheeks, chin and some hair
stay in the frame (blending and splicing artefacts live there). Landmarks come from any
face backend through the landmark cache (:func:`morphlab.face.cache.get_face`); the crops
themselves are cached by image content and alignment settings
(:mod:`morphlab.detectors.crop_cache`), and cache misses can be aligned in worker
processes (``jobs``).

Images where the backend finds no face (or which cannot be read) are **not** silently
dropped: :func:`align_faces` returns them in :attr:`AlignedFaces.failures` with the
reason, and the callers report the count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from morphlab.face.base import Face, FaceBackend

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: Why an image gave no crop: the file is not a readable image, or no usable face in it.
UNREADABLE, NO_FACE = "unreadable", "no face"

#: How much smaller than in the ArcFace template the face is drawn in a MAD crop.
TEMPLATE_ZOOM = 0.8

#: Version of the crop recipe: bump it whenever :func:`align_image` (or the image reading
#: and 5-point extraction it relies on) changes its output, so that cached crops
#: (:mod:`morphlab.detectors.crop_cache`) are not reused.
ALIGN_VERSION = 1


def _mad_template() -> np.ndarray:
    from morphlab.face.align import ARCFACE_TEMPLATE_112

    t = (ARCFACE_TEMPLATE_112 - 56.0) * TEMPLATE_ZOOM + 56.0
    t.setflags(write=False)
    return t


#: Five-point template of a 112x112 MAD crop (image-left eye, image-right eye, nose tip,
#: mouth left, mouth right), ``(5, 2)`` ``(x, y)`` pixels; scaled by ``size / 112``.
MAD_TEMPLATE_112: np.ndarray = _mad_template()

#: Mean iBUG 68-point landmarks of a MAD crop, ``(68, 2)`` ``(x, y)`` pixels of a 112x112
#: crop. Computed with the ``dlib`` backend over the 164 photos of the FRLL set (82
#: people, neutral + smiling), each aligned by :func:`align_image`; ``tests/detectors``
#: re-derives it from the embedded sample. Lets a recognition system embed a crop whose
#: own landmarks were not kept (:func:`canonical_face`).
CANONICAL_DLIB68_112 = np.array([
    [23.00, 55.78], [23.71, 64.46], [24.96, 72.91], [26.41, 81.39], [28.92, 89.51],
    [33.48, 96.44], [39.91, 102.07], [47.45, 106.14], [56.14, 107.45], [64.90, 106.21],
    [72.56, 102.19], [79.05, 96.66], [83.65, 89.71], [86.17, 81.55], [87.59, 72.96],
    [88.81, 64.41], [89.41, 55.61], [28.25, 48.40], [32.12, 43.80], [38.19, 42.04],
    [44.41, 42.66], [50.42, 44.82], [61.16, 44.80], [67.21, 42.53], [73.58, 41.93],
    [79.72, 43.73], [83.76, 48.37], [55.85, 51.75], [55.91, 57.14], [55.94, 62.43],
    [55.96, 67.96], [49.73, 72.70], [52.76, 73.60], [56.02, 74.42], [59.24, 73.56],
    [62.31, 72.60], [35.54, 53.95], [39.04, 51.47], [43.46, 51.46], [47.37, 54.33],
    [43.22, 55.29], [38.83, 55.41], [64.57, 54.32], [68.41, 51.47], [72.83, 51.38],
    [76.38, 53.84], [73.04, 55.34], [68.60, 55.21], [43.30, 84.30], [48.10, 81.76],
    [52.71, 80.33], [56.12, 81.11], [59.45, 80.27], [64.07, 81.59], [68.96, 84.10],
    [64.26, 87.80], [59.72, 89.31], [56.14, 89.65], [52.52, 89.37], [48.00, 87.94],
    [45.49, 84.43], [52.66, 83.61], [56.13, 83.84], [59.50, 83.56], [66.78, 84.26],
    [59.53, 84.85], [56.12, 85.24], [52.65, 84.89],
], dtype=np.float64)
CANONICAL_DLIB68_112.setflags(write=False)


def canonical_face(size: int) -> Face:
    """A :class:`~morphlab.face.base.Face` (``dlib68`` scheme) placed at the mean landmark
    positions of a ``size`` x ``size`` MAD crop — for recognition systems, which align
    from landmarks, when only the crop is at hand."""
    s = float(size) / 112.0
    return Face(box=np.array([0.0, 0.0, float(size), float(size)]),
                landmarks=np.array(CANONICAL_DLIB68_112) * s, scheme="dlib68")


def align_image(image: np.ndarray, face: Face, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut the MAD crop of ``face`` from ``image``.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        face: the face in ``image`` (any scheme :func:`morphlab.face.schemes.five_points`
            knows).
        size: side of the square crop in pixels.

    Returns:
        ``(crop, M)``: RGB uint8 ``(size, size, 3)`` and the ``(2, 3)`` float64 matrix
        mapping image to crop coordinates.
    """
    from morphlab.face.align import similarity_align
    from morphlab.face.schemes import five_points

    return similarity_align(image, five_points(face), size=int(size),
                            template=MAD_TEMPLATE_112, border="replicate")


@dataclass
class AlignedFaces:
    """Result of :func:`align_faces`.

    Attributes:
        crops: ``(N, size, size, 3)`` uint8 crops of the images that worked, in input order.
        paths: the ``N`` source files of ``crops``.
        index: ``(N,)`` int64 positions of those files in the input list.
        failures: ``(path, reason)`` for every input that gave no crop.
    """

    crops: np.ndarray
    paths: list[Path]
    index: np.ndarray
    failures: list[tuple[Path, str]] = field(default_factory=list)
    #: ``{path: UNREADABLE or NO_FACE}`` for every path in ``failures``.
    kinds: dict[Path, str] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    def kind_of(self, path: PathLike) -> str:
        """:data:`UNREADABLE` (the file is not a readable image) or :data:`NO_FACE`."""
        return self.kinds.get(Path(path), NO_FACE)


def crop_settings_key(backend: FaceBackend, size: int) -> str:
    """Everything that changes a MAD crop, as one string (the crop cache's settings key).

    The landmark backend's :meth:`~morphlab.face.base.FaceBackend.cache_key` (name,
    version, options), the crop size, the template (:data:`MAD_TEMPLATE_112`, hashed), the
    border mode and several-faces policy, :data:`ALIGN_VERSION`, and the OpenCV and NumPy
    versions that estimate and apply the warp.
    """
    import hashlib

    import cv2

    template = hashlib.sha256(np.asarray(MAD_TEMPLATE_112, dtype="<f8").tobytes()).hexdigest()[:16]
    return (f"mad-align-{ALIGN_VERSION}|landmarks={backend.cache_key()}|size={int(size)}|"
            f"template={template}|border=replicate|faces=largest|"
            f"opencv={cv2.__version__}|numpy={np.__version__}")


#: The landmark backend of an :func:`align_faces` worker process (:func:`_init_align_worker`).
_WORKER_BACKEND: Union[FaceBackend, str, None] = None


def _init_align_worker(backend: Union[FaceBackend, str]) -> None:
    """A worker process of :func:`align_faces`: the backend arrives once, not with every
    task (an unpickled instance would load its model again for each image)."""
    global _WORKER_BACKEND
    _WORKER_BACKEND = backend


def _align_one(task: tuple) -> tuple:
    """One cache miss of :func:`align_faces` (run here or in a worker process).

    ``task``: ``(index, path, size, backend, cache_dir, use_cache)``, ``backend`` None in
    a worker process (it has the one :func:`_init_align_worker` gave). Returns
    ``(index, crop, None, None)`` or ``(index, None, kind, reason)``.
    """
    from morphlab.face.base import FaceError
    from morphlab.face.cache import get_face
    from morphlab.io import ImageError, read_image

    i, p, size, backend, cache_dir, use_cache = task
    if backend is None:
        if _WORKER_BACKEND is None:
            raise RuntimeError("align_faces worker used before _init_align_worker")
        backend = _WORKER_BACKEND
    p = Path(p)
    try:
        try:
            image = read_image(p)
        except OSError as exc:  # unreadable (permissions, I/O error, vanished)
            raise ImageError(f"{p}: cannot read the file ({exc.strerror or exc})") from None
        face = get_face(backend, p, image, cache_dir=cache_dir, use_cache=use_cache)
        crop, _ = align_image(image, face, size)
    except (FaceError, ImageError) as exc:
        return i, None, UNREADABLE if isinstance(exc, ImageError) else NO_FACE, str(exc)
    return i, crop, None, None


def align_faces(
    paths: Sequence[PathLike],
    *,
    size: int = 128,
    backend: Union[str, FaceBackend] = "dlib",
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    desc: str = "aligning faces",
    jobs: int = 1,
    use_cache: bool = True,
) -> AlignedFaces:
    """Detect, align and crop the face of every image file.

    Crops come from the aligned-crop cache (:mod:`morphlab.detectors.crop_cache`) when it
    holds them for the image's content and these settings (:func:`crop_settings_key`);
    the others — the *misses* — are read, landmarked (through the landmark cache) and
    cut, in ``jobs`` worker processes (:func:`morphlab.workers.run_tasks`), and stored.
    The crops are the same whatever ``jobs`` and whether they came from the cache.
    Processes rather than threads: decoding and warping release the GIL only in part
    (244 FRLL-size images, landmarks cached, 2 shared cores: 5.4-6.2 s in one thread,
    3.8-4.3 s in 2 threads, 2.8-3.6 s in 2 processes), and a process pool also runs the
    landmark detector of cache misses side by side whatever its GIL use.

    Args:
        paths: image files.
        size: crop side in pixels.
        backend: face backend name or instance (landmarks are cached per image content).
        cache_dir: cache root of the landmark and crop caches (default:
            ``$MORPHLAB_CACHE`` or ~/.cache/morphlab).
        progress: show a tqdm bar.
        desc: label of the bar.
        jobs: worker processes aligning the misses (1: in this process).
        use_cache: False to neither read nor write the landmark and crop caches.

    Returns:
        :class:`AlignedFaces`; files without a face or that cannot be read are listed in
        ``failures`` (and logged), never silently dropped; ``kinds`` says which
        (:data:`UNREADABLE` or :data:`NO_FACE`).

    Raises:
        FileNotFoundError: a file does not exist (a missing file is a usage error, not a
            detection failure).
    """
    from tqdm import tqdm

    from morphlab.detectors import crop_cache
    from morphlab.face.base import create_backend
    from morphlab.io import sha256_file
    from morphlab.workers import run_tasks

    t0 = time.perf_counter()
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: image not found")
    be = backend if isinstance(backend, FaceBackend) else create_backend(backend)
    cached = use_cache and be.cacheable
    key = crop_settings_key(be, size) if cached else ""
    root = crop_cache.cache_root(cache_dir)
    results: list = [None] * len(paths)
    entries: dict[int, tuple[Path, str]] = {}
    misses = []
    with tqdm(total=len(paths), desc=desc, disable=not progress, unit="img") as bar:
        for i, p in enumerate(paths):
            if cached:
                try:
                    sha = sha256_file(p)
                except OSError:  # the miss path says why the file cannot be read
                    sha = None
                if sha is not None:
                    entries[i] = (crop_cache.entry_path(root, sha, key), sha)
                    crop = crop_cache.load_crop(entries[i][0], sha, key, int(size))
                    if crop is not None:
                        results[i] = (i, crop, None, None)
                        bar.update(1)
                        continue
            misses.append(i)

        def done(result: tuple) -> None:
            i, crop = result[0], result[1]
            results[i] = result
            if crop is not None and i in entries:
                path, sha = entries[i]
                crop_cache.save_crop(path, crop, sha, key)
            bar.update(1)

        # run_tasks runs in this process when jobs <= 1 or for one task; workers get the
        # backend once, through their initializer
        here = jobs <= 1 or len(misses) <= 1
        tasks = [(i, str(paths[i]), int(size), backend if here else None, cache_dir, use_cache)
                 for i in misses]
        run_tasks(_align_one, tasks, done, jobs=jobs, initializer=_init_align_worker,
                  initargs=(backend,), crash_message="a worker process died while aligning faces")
    crops, ok, index, failures, kinds = [], [], [], [], {}
    for i, crop, kind, reason in results:
        p = paths[i]
        if crop is None:
            kinds[p] = kind
            log.warning("%s: skipped, %s (%s)", p, kind, reason)
            failures.append((p, reason))
            continue
        crops.append(crop)
        ok.append(p)
        index.append(i)
    if failures:
        log.warning("%d of %d images gave no aligned face", len(failures), len(paths))
    log.info("aligned %d images in %.2f s: %d crops from the crop cache, %d aligned (-j %d)%s",
             len(paths), time.perf_counter() - t0, len(paths) - len(misses), len(misses), jobs,
             "" if cached else " without the caches")
    arr = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
    return AlignedFaces(arr, ok, np.asarray(index, dtype=np.int64), failures, kinds)


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Resize a ``(N, H, W, 3)`` uint8 batch to ``(N, size, size, 3)`` (area/linear)."""
    import cv2

    if crops.shape[1:3] == (size, size):
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(c, (size, size), interpolation=interp) for c in crops])


def to_gray(crops: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB → ``(N, H, W)`` float32 luma in [0, 1] (ITU-R BT.601)."""
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (crops.astype(np.float32) @ w) / 255.0
