"""Pure geometry for landmark morphing: triangulation, piecewise-affine warps, blending.

Conventions: images are RGB ``uint8`` ``(H, W, 3)``; points are ``float64`` ``(N, 2)``
``(x, y)`` pixel coordinates with the centre of the top-left pixel at ``(0, 0)`` (the
convention of dlib, ``cv2.remap`` and ``cv2.warpAffine``); sizes are ``(width, height)``.

How the warp is fast. A piecewise-affine warp maps each destination pixel ``p`` lying in
triangle ``t`` to the source position ``p + J_t p + c_t``: the displacement is the
linear interpolation, over the destination triangulation, of the per-point
displacements ``src - dst``. So instead of warping every triangle separately (the
LearnOpenCV recipe: crop, ``warpAffine``, mask, blend, per triangle), we

1. scan-convert the destination triangulation row by row: each pixel gets the triangle
   its centre lies in, exactly (shared edges are crossed at bit-identical positions),
2. evaluate that triangle's affine displacement at the pixel, in the same pass, and
   write the ``cv2.remap`` maps,
3. sample the source with one ``cv2.remap`` (bilinear) per image.

Steps 1-2 are one small loop compiled with numba (:func:`_band_kernel`; compiled on the
first call on a machine, about 1 s, then loaded from numba's on-disk cache).

For a morph the two displacement fields are tied: with ``dst = (1 - s) a + s b`` the
field of ``a`` is ``-s F`` and that of ``b`` is ``(1 - s) F`` where ``F`` interpolates
``b - a`` (:func:`morph`), so one field serves both images. Frames are processed in
horizontal bands of ~100k pixels, in ``cv2.getNumThreads()`` threads (numba, NumPy and
OpenCV release the GIL), which keeps the intermediate arrays in cache. The bands depend
on the frame width only, so results do not depend on the number of threads.

Cost of :func:`morph` at 1350x1350 with ~380 triangles, one core: about 4 ms of
rasterisation, 8 ms for the two maps, 2 x 14 ms of ``cv2.remap`` (the floor) and 1.5 ms
of blending; see ``benchmarks/landmark_morph.py`` for the comparison with the
per-triangle recipe.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np
from scipy.spatial import Delaunay

# compositing lives in morphlab.compositing; its public names stay importable from here
from morphlab.compositing import (  # noqa: F401
    POISSON_SOLVERS,
    composite,
    erode_mask,
    feather_mask,
    match_colour,
    poisson_composite,
)

log = logging.getLogger(__name__)

Size = tuple[int, int]  # (width, height)

#: Sub-pixel bits used when rasterising triangles (cv2 drawing ``shift``).
_SHIFT = 4
#: Pixels per band when a frame is processed in bands of rows (cache-sized arrays).
_BAND_PIXELS = 96 * 1024


# ----------------------------------------------------------------------------------------
# points and triangulation
# ----------------------------------------------------------------------------------------
def _as_points(points: np.ndarray, what: str = "points") -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{what} must have shape (N, 2), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"{what} must be finite")
    return pts


def as_size(size: Union[int, Sequence[int]]) -> Size:
    """``(width, height)`` from a pair or an integer (a square), validated (>= 2x2)."""
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) or an integer, got {size!r}") from None
    if w < 2 or h < 2:
        raise ValueError(f"size must be at least 2x2 pixels, got {w}x{h}")
    return w, h


def image_size(image: np.ndarray) -> Size:
    """``(width, height)`` of an image array."""
    return int(image.shape[1]), int(image.shape[0])


def boundary_points(size: Sequence[int]) -> np.ndarray:
    """The frame's four corners and four edge midpoints.

    Added to the landmarks before triangulating so that the triangles cover the whole
    frame; they map to themselves, which pins the frame's border in place.

    Args:
        size: ``(width, height)`` of the frame.

    Returns:
        ``(8, 2)`` float64 ``(x, y)``, clockwise from the top-left corner ``(0, 0)``; the
        far corner is ``(width - 1, height - 1)`` (pixel centres).
    """
    w, h = as_size(size)
    x1, y1 = w - 1.0, h - 1.0
    xm, ym = x1 / 2.0, y1 / 2.0
    return np.array(
        [[0, 0], [xm, 0], [x1, 0], [x1, ym], [x1, y1], [xm, y1], [0, y1], [0, ym]],
        dtype=np.float64,
    )


def scale_points(points: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Points of an image resized by factors ``(sx, sy)`` (``cv2.resize``'s pixel-centre rule).

    Returns:
        ``(N, 2)`` float64 ``((x + 0.5) sx - 0.5, (y + 0.5) sy - 0.5)``.
    """
    return (_as_points(points) + 0.5) * np.array([sx, sy]) - 0.5


def resize_with_points(
    image: np.ndarray, points: np.ndarray, size: Union[int, Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (``INTER_AREA`` when shrinking, else ``INTER_LINEAR``) and its points.

    Args:
        image: ``(H, W, C)`` array.
        points: ``(N, 2)`` ``(x, y)`` in ``image``.
        size: ``(width, height)`` wanted (or an integer for a square).

    Returns:
        ``(resized image, (N, 2) float64 points)``; the inputs themselves if the size is
        already right.
    """
    w, h = as_size(size)
    ih, iw = image.shape[:2]
    if (iw, ih) == (w, h):
        return image, _as_points(points)
    sx, sy = w / iw, h / ih
    interp = cv2.INTER_AREA if sx * sy < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp), scale_points(points, sx, sy)


def average_points(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """The morph shape ``(1 - alpha) * a + alpha * b``.

    Args:
        a, b: ``(N, 2)`` corresponding ``(x, y)`` points of subjects A and B.
        alpha: weight of B (0 gives A's shape, 1 gives B's).

    Returns:
        ``(N, 2)`` float64.
    """
    a, b = _as_points(a, "a"), _as_points(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"point sets differ in shape: {a.shape} vs {b.shape}")
    alpha = float(alpha)
    if alpha == 0.0:
        return a.copy()
    if alpha == 1.0:
        return b.copy()
    return (1.0 - alpha) * a + alpha * b


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangulation of points (``scipy.spatial.Delaunay``, deterministic).

    Duplicate points are used once (the triangles reference the first of them).

    Args:
        points: ``(N, 2)`` ``(x, y)``, at least 3 not all on one line.

    Returns:
        ``(T, 3)`` int32 vertex indices into ``points``, each triangle counter-clockwise
        in image coordinates (y down), rows sorted for a stable order.
    """
    pts = _as_points(points)
    if len(pts) < 3:
        raise ValueError(f"need at least 3 points to triangulate, got {len(pts)}")
    try:
        tri = Delaunay(pts).simplices.astype(np.int32)
    except Exception as exc:  # scipy raises QhullError for degenerate input
        raise ValueError(f"cannot triangulate the points ({type(exc).__name__}: {exc})") from None
    # orient consistently and sort, so equal inputs give equal arrays whatever Qhull does
    p = pts[tri]
    cross = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (
        p[:, 1, 1] - p[:, 0, 1]
    ) * (p[:, 2, 0] - p[:, 0, 0])
    flip = cross < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    rot = np.argmin(tri, axis=1)  # start each triangle at its smallest index
    tri = np.stack([tri[np.arange(len(tri)), (rot + k) % 3] for k in range(3)], axis=1)
    order = np.lexsort(tri.T[::-1])
    return np.ascontiguousarray(tri[order])


def triangle_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unsigned areas of the triangles, ``(T,)`` float64 square pixels."""
    p = _as_points(points)[np.asarray(triangles)]
    return 0.5 * np.abs(
        (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
        - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    )


# ----------------------------------------------------------------------------------------
# rasterisation and the displacement field
# ----------------------------------------------------------------------------------------
def _band_kernel(y0, edges, ylim, cent, lab, coef, wp, ka, kb, map_a, map_b, mode):
    """Rasterise rows ``y0:y0 + len(lab)`` and, for a morph, write both warps' maps.

    Plain Python, compiled once per machine by :func:`_kernel` (numba, cached on disk).

    Rasterisation is exact: on row ``y``, the pixel centres inside triangle ``k`` are the
    integers in the closed interval between the crossings of ``y`` with its edges. Each
    edge is stored with its endpoints in a canonical order (``edges``), so two triangles
    sharing an edge compute bit-identical crossings and no pixel centre falls between
    them; a centre on a shared edge goes to the later triangle (the affine maps agree
    there). Pixels outside every triangle get ``-1`` (``mode`` 0) or the triangle with
    the nearest centroid (the other modes).

    In ``mode`` 1 each pixel ``p = (x, y)`` of triangle ``k`` gets the value
    ``F = (a_x x + b_x y + c_x, a_y x + b_y y + c_y)`` of its triangle's linear function,
    and ``map_a = wp p + ka F`` (and ``map_b = wp p + kb F`` unless ``map_b`` is empty)
    is written (float64 arithmetic, rounded once to float32).

    Args:
        y0: first row.
        edges: ``(T, 3, 4)`` float64 ``(px, py, qx, qy)`` per edge, ``(py, px) <= (qy, qx)``.
        ylim: ``(T, 2)`` float64 lowest and highest ``y`` of each triangle.
        cent: ``(T, 2)`` float64 centroids.
        lab: ``(n, W)`` intp, written: the triangle of each pixel.
        coef: ``(T, 6)`` float64 ``[a_x, b_x, c_x, a_y, b_y, c_y]`` per triangle.
        wp: 1.0 to add the pixel position to the maps (a ``cv2.remap`` map), or 0.0.
        ka, kb: scales of ``F`` in ``map_a`` and ``map_b``.
        map_a, map_b: ``(n, W, 2)`` float32 ``(x, y)``, written in ``mode`` 1;
            ``map_b`` may be ``(0, 0, 2)``.
        mode: 0 labels only, 1 labels (without holes) and maps.
    """
    n, w = lab.shape
    for r in range(n):
        y = float(y0 + r)
        row = lab[r]
        row[:] = -1
        for k in range(edges.shape[0]):
            if y < ylim[k, 0] or y > ylim[k, 1]:
                continue
            xl, xr = np.inf, -np.inf
            for e in range(3):
                px, py, qx, qy = edges[k, e, 0], edges[k, e, 1], edges[k, e, 2], edges[k, e, 3]
                if py <= y <= qy:
                    if py == qy:
                        xl, xr = min(xl, px), max(xr, qx)
                    else:
                        xc = px + (y - py) * (qx - px) / (qy - py)
                        xl, xr = min(xl, xc), max(xr, xc)
            if xl > xr:  # no edge crossed (cannot happen within ylim, but never cast inf)
                continue
            lo = int(np.ceil(max(xl, -1.0)))
            hi = int(np.floor(min(xr, float(w))))
            for x in range(max(lo, 0), min(hi, w - 1) + 1):
                row[x] = k
        if mode == 0:
            continue
        for x in range(w):
            if row[x] < 0:
                best, arg = np.inf, 0
                for k in range(cent.shape[0]):
                    d = (x - cent[k, 0]) ** 2 + (y - cent[k, 1]) ** 2
                    if d < best:
                        best, arg = d, k
                row[x] = arg
        for x in range(w):
            k = row[x]
            fx = coef[k, 0] * x + coef[k, 1] * y + coef[k, 2]
            fy = coef[k, 3] * x + coef[k, 4] * y + coef[k, 5]
            map_a[r, x, 0] = wp * x + ka * fx
            map_a[r, x, 1] = wp * y + ka * fy
            if len(map_b):
                map_b[r, x, 0] = wp * x + kb * fx
                map_b[r, x, 1] = wp * y + kb * fy


@lru_cache(maxsize=1)
def _kernel() -> Callable:
    """:func:`_band_kernel` compiled with numba (imported here: the import takes ~0.3 s).

    ``cache=True`` stores the machine code beside this module (or in numba's user cache
    directory), so only the first call on a machine compiles (about 1 s); ``nogil`` lets
    the bands run in parallel threads.
    """
    import numba

    return numba.njit(cache=True, nogil=True)(_band_kernel)


def warm_up() -> None:
    """Compile (or load from numba's disk cache) every kernel of this module now, e.g. in
    a parent process before it forks workers, so that they share the machine code.

    numba compiles or loads a kernel on its first call (~0.1-0.3 s each from the disk
    cache, ~1 s compiling), so this runs each once on a tiny input of the real dtypes.
    """
    img = np.zeros((24, 24, 3), np.uint8)
    img[6:18, 6:18] = 200
    pts = np.array([[8.0, 8.0], [15.0, 8.0], [12.0, 15.0]])
    morph(img, img, pts, pts + 1.0, threads=1)
    mask = np.zeros((24, 24), np.uint8)
    mask[5:19, 5:19] = 255
    poisson_composite(img, img[::-1].copy(), mask, solver="dst")


_NO_MAP = np.zeros((0, 0, 2), np.float32)
_NO_COEF = np.zeros((0, 6), np.float64)


class _Triangles:
    """A triangulation prepared for rasterising by bands (see :func:`_band_kernel`)."""

    def __init__(self, points: np.ndarray, triangles: np.ndarray, size: Sequence[int]) -> None:
        self.w, self.h = as_size(size)
        self.points = _as_points(points)
        self.triangles = np.asarray(triangles)
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or not len(self.triangles):
            raise ValueError(f"triangles must have shape (T, 3), got {self.triangles.shape}")
        corners = self.points[self.triangles]  # (T, 3, 2)
        p, q = corners, np.roll(corners, -1, axis=1)  # edge i joins corner i and i + 1
        swap = (p[..., 1] > q[..., 1]) | ((p[..., 1] == q[..., 1]) & (p[..., 0] > q[..., 0]))
        lo, hi = np.where(swap[..., None], q, p), np.where(swap[..., None], p, q)
        self.edges = np.ascontiguousarray(np.concatenate([lo, hi], axis=2))
        self.ylim = np.ascontiguousarray(
            np.stack([corners[..., 1].min(axis=1), corners[..., 1].max(axis=1)], axis=1))
        self.cent = np.ascontiguousarray(corners.mean(axis=1))
        self._kernel = _kernel()  # here, in the calling thread, not in the band threads

    def run(self, y0: int, y1: int, mode: int, coef: np.ndarray = _NO_COEF, wp: float = 0.0,
            ka: float = 0.0, kb: float = 0.0, map_a: np.ndarray = _NO_MAP,
            map_b: np.ndarray = _NO_MAP) -> np.ndarray:
        """Call the kernel on rows ``y0:y1``; returns the ``(y1 - y0, W)`` intp labels."""
        lab = np.empty((y1 - y0, self.w), np.intp)
        self._kernel(y0, self.edges, self.ylim, self.cent, lab, coef, float(wp), float(ka), float(kb),
                  map_a, map_b, mode)
        return lab

    def coefficients(self, values: np.ndarray) -> np.ndarray:
        """``(T, 6)`` float64 linear functions interpolating ``(N, 2)`` ``values`` (kernel layout)."""
        coef = affine_coefficients(self.points, values, self.triangles)  # (T, 3, 2)
        return np.ascontiguousarray(coef.transpose(0, 2, 1).reshape(-1, 6))

    def field(self, values: np.ndarray, wp: float, threads: Optional[int]) -> np.ndarray:
        """``wp p + F(p)`` at every pixel ``p``, ``F`` interpolating ``values``: ``(H, W, 2)`` float32."""
        coef = self.coefficients(values)
        out = np.empty((self.h, self.w, 2), np.float32)
        _run_bands(lambda y0, y1: self.run(y0, y1, 1, coef, wp, 1.0, 0.0, out[y0:y1]),
                   self.w, self.h, threads)
        return out


def label_map(points: np.ndarray, triangles: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Which triangle each pixel centre of the frame lies in.

    Exact scan conversion (see :func:`_band_kernel`): a pixel centre on an edge shared by
    two triangles gets one of them (the affine maps agree there).

    Args:
        points: ``(N, 2)`` ``(x, y)`` vertices.
        triangles: ``(T, 3)`` vertex indices.
        size: ``(width, height)`` of the frame.

    Returns:
        ``(H, W)`` intp triangle indices; ``-1`` where no triangle covers the pixel.
    """
    tris = _Triangles(points, triangles, size)
    return tris.run(0, tris.h, 0)


def affine_coefficients(
    points: np.ndarray, values: np.ndarray, triangles: np.ndarray
) -> np.ndarray:
    """Per-triangle linear functions interpolating per-point values.

    Args:
        points: ``(N, 2)`` ``(x, y)`` vertices.
        values: ``(N, 2)`` values at the vertices (e.g. displacements ``src - dst``).
        triangles: ``(T, 3)`` vertex indices.

    Returns:
        ``(T, 3, 2)`` float64 ``[a, b, c]`` with ``value(x, y) = a x + b y + c`` inside
        each triangle. Degenerate (zero-area) triangles get a least-squares fit.
    """
    pts, vals = _as_points(points), np.asarray(values, dtype=np.float64)
    if vals.shape != pts.shape:
        raise ValueError(f"values must have the points' shape {pts.shape}, got {vals.shape}")
    tri = np.asarray(triangles)
    p, v = pts[tri], vals[tri]  # (T, 3, 2)
    # [a; b] solves [[x1-x0, y1-y0], [x2-x0, y2-y0]] [a; b] = [v1-v0; v2-v0]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    f1, f2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    scale = np.maximum(np.abs(e1).max(axis=1), np.abs(e2).max(axis=1)) ** 2
    ok = np.abs(det) > 1e-9 * np.maximum(scale, 1e-300)
    inv = 1.0 / np.where(ok, det, 1.0)
    coef = np.empty((len(tri), 3, vals.shape[1]), dtype=np.float64)
    coef[:, 0] = (e2[:, 1, None] * f1 - e1[:, 1, None] * f2) * inv[:, None]
    coef[:, 1] = (e1[:, 0, None] * f2 - e2[:, 0, None] * f1) * inv[:, None]
    coef[:, 2] = v[:, 0] - coef[:, 0] * p[:, 0, :1] - coef[:, 1] * p[:, 0, 1:]
    for i in np.nonzero(~ok)[0]:  # degenerate: least squares
        m = np.concatenate([p[i], np.ones((3, 1))], axis=1)
        coef[i] = np.linalg.lstsq(m, v[i], rcond=None)[0]
    return coef


@lru_cache(maxsize=4)
def _identity(w: int, h: int) -> np.ndarray:
    xy = np.empty((h, w, 2), np.float32)
    xy[..., 0] = np.arange(w, dtype=np.float32)[None, :]
    xy[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    xy.setflags(write=False)
    return xy


def identity_map(size: Sequence[int]) -> np.ndarray:
    """``(H, W, 2)`` float32 map of every pixel to itself (read-only, cached)."""
    return _identity(*as_size(size))


def _band_rows(w: int) -> int:
    """Rows per band: about ``_BAND_PIXELS`` pixels, so a band's arrays stay in cache."""
    return max(16, _BAND_PIXELS // max(1, w))


def _bands(w: int, h: int) -> list[tuple[int, int]]:
    rows = _band_rows(w)
    return [(y, min(h, y + rows)) for y in range(0, h, rows)]


_pool: Optional[ThreadPoolExecutor] = None
_pool_key: tuple[int, int] = (0, 0)
_pool_lock = threading.Lock()


def _executor(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` threads (re-created after a fork or for another n)."""
    global _pool, _pool_key
    with _pool_lock:
        if _pool is None or _pool_key != (os.getpid(), n):
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="morphlab-geometry")
            _pool_key = (os.getpid(), n)
        return _pool


def _run_bands(fn: Callable[[int, int], None], w: int, h: int, threads: Optional[int],
               rows: Optional[tuple[int, int]] = None) -> None:
    """Call ``fn(y0, y1)`` for bands of rows covering the frame (or its rows
    ``rows[0]:rows[1]`` only), in ``threads`` threads."""
    n = max(1, int(threads if threads is not None else cv2.getNumThreads()))
    bands = _bands(w, h)
    if rows is not None:
        lo, hi = _check_rows(rows, h)
        bands = [(max(y0, lo), min(y1, hi)) for y0, y1 in bands if y1 > lo and y0 < hi]
    if n == 1 or len(bands) == 1:
        for y0, y1 in bands:
            fn(y0, y1)
        return
    for fut in [_executor(n).submit(fn, y0, y1) for y0, y1 in bands]:
        fut.result()


def _check_rows(rows: Sequence[int], h: int) -> tuple[int, int]:
    lo, hi = (int(v) for v in rows)
    if not 0 <= lo <= hi <= h:
        raise ValueError(f"rows must satisfy 0 <= start <= stop <= {h}, got {tuple(rows)}")
    return lo, hi


def interpolate_field(
    points: np.ndarray,
    values: np.ndarray,
    triangles: np.ndarray,
    size: Sequence[int],
    *,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Linearly interpolate per-point 2-vectors over a triangulation, at every pixel.

    Args:
        points: ``(N, 2)`` ``(x, y)`` vertices (in the frame being filled).
        values: ``(N, 2)`` values at the vertices.
        triangles: ``(T, 3)`` vertex indices, covering the frame (pixels outside every
            triangle take the nearest triangle's linear function).
        size: ``(width, height)`` of the frame.
        threads: threads for the banded evaluation; default ``cv2.getNumThreads()``.

    Returns:
        ``(H, W, 2)`` float32: the piecewise-linear interpolant at each pixel centre.
    """
    vals = np.asarray(values, dtype=np.float64)
    return _Triangles(points, triangles, size).field(vals, 0.0, threads)


def warp_map(
    src_points: np.ndarray,
    dst_points: np.ndarray,
    triangles: np.ndarray,
    size: Sequence[int],
    *,
    threads: Optional[int] = None,
) -> np.ndarray:
    """The ``cv2.remap`` map of the piecewise-affine warp taking ``src`` points to ``dst``.

    Args:
        src_points: ``(N, 2)`` ``(x, y)`` points in the source image.
        dst_points: ``(N, 2)`` the same points in the output frame.
        triangles: ``(T, 3)`` triangulation of ``dst_points`` covering the frame.
        size: ``(width, height)`` of the output frame.
        threads: threads for the banded evaluation; default ``cv2.getNumThreads()``.

    Returns:
        ``(H, W, 2)`` float32: for each output pixel, the source ``(x, y)`` to sample.
    """
    src, dst = _as_points(src_points, "src_points"), _as_points(dst_points, "dst_points")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst points differ in shape: {src.shape} vs {dst.shape}")
    return _Triangles(dst, triangles, size).field(src - dst, 1.0, threads)


def remap(image: np.ndarray, map_xy: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``map_xy`` (bilinear, border replicated).

    Args:
        image: ``(h, w, C)`` or ``(h, w)`` array.
        map_xy: ``(H, W, 2)`` float32 source ``(x, y)`` per output pixel.

    Returns:
        ``(H, W, C)`` array of ``image``'s dtype.
    """
    return cv2.remap(image, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def with_boundary(points: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``points`` followed by the frame's :func:`boundary_points`: ``(N + 8, 2)``."""
    return np.vstack([_as_points(points), boundary_points(size)])


def warp_image(
    image: np.ndarray,
    src_points: np.ndarray,
    dst_points: np.ndarray,
    size: Optional[Sequence[int]] = None,
    *,
    triangles: Optional[np.ndarray] = None,
    threads: Optional[int] = None,
    rows: Optional[tuple[int, int]] = None,
) -> np.ndarray:
    """Piecewise-affine warp of ``image`` moving ``src_points`` onto ``dst_points``.

    Args:
        image: RGB uint8 ``(H, W, 3)`` (any array ``cv2.remap`` accepts).
        src_points: ``(N, 2)`` ``(x, y)`` landmarks in ``image``.
        dst_points: ``(N, 2)`` where they go in the output.
        size: ``(width, height)`` of the output; default: the input's.
        triangles: a triangulation of ``dst_points`` that covers the output frame (the
            caller then includes whatever anchor points it needs). Default: the frame's
            :func:`boundary_points` are appended to both point sets (mapping to
            themselves) and the destination is Delaunay-triangulated.
        threads: threads for the banded evaluation; default ``cv2.getNumThreads()``.
        rows: ``(start, stop)``: only these output rows are warped, the others are
            copied from ``image`` (which must have the output's size). For a warp that is
            the identity outside them (:func:`moving_rows`) the result is the full warp's,
            pixel for pixel, at a fraction of the cost.

    Returns:
        The warped image, ``(height, width, C)``.
    """
    size = image_size(image) if size is None else as_size(size)
    src, dst = _as_points(src_points, "src_points"), _as_points(dst_points, "dst_points")
    if triangles is None:
        src, dst = with_boundary(src, size), with_boundary(dst, size)
        triangles = triangulate(dst)
    if rows is None:
        return remap(image, warp_map(src, dst, triangles, size, threads=threads))
    if image_size(image) != size:
        raise ValueError(f"rows= needs an output of the input's size {image_size(image)}, "
                         f"got {size}")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst points differ in shape: {src.shape} vs {dst.shape}")
    tris = _Triangles(dst, triangles, size)
    coef = tris.coefficients(src - dst)
    out = image.copy()

    def band(y0: int, y1: int) -> None:
        map_xy = np.empty((y1 - y0, size[0], 2), np.float32)
        tris.run(y0, y1, 1, coef, 1.0, 1.0, 0.0, map_xy)
        cv2.remap(image, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                  dst=out[y0:y1])

    _run_bands(band, size[0], size[1], threads, rows)
    return out


def moving_rows(src_points: np.ndarray, dst_points: np.ndarray, triangles: np.ndarray,
                height: int) -> tuple[int, int]:
    """The output rows a piecewise-affine warp can change: those spanned by the triangles
    with a vertex that moves (``src != dst``); every other triangle's affine map is exactly
    the identity (zero displacement at its three corners), so its pixels are copied.

    Returns:
        ``(start, stop)`` within ``[0, height]`` (``(0, 0)`` when nothing moves).
    """
    src, dst = _as_points(src_points, "src_points"), _as_points(dst_points, "dst_points")
    moving = (src != dst).any(axis=1)
    tri = np.asarray(triangles)
    hit = tri[moving[tri].any(axis=1)]
    if not len(hit):
        return 0, 0
    ys = dst[hit.reshape(-1), 1]
    return (max(0, int(np.floor(ys.min()))), min(int(height), int(np.ceil(ys.max())) + 1))


# ----------------------------------------------------------------------------------------
# morphing
# ----------------------------------------------------------------------------------------
def blend(a: np.ndarray, b: np.ndarray, alpha: float, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Cross-dissolve ``(1 - alpha) a + alpha b`` of two uint8 images, rounded.

    ``alpha`` 0 and 1 return exact copies of ``a`` and ``b``.

    Args:
        a, b: arrays of equal shape and dtype.
        alpha: weight of ``b``.
        out: optional output array of the same shape.
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    alpha = float(alpha)
    if alpha in (0.0, 1.0):
        src = a if alpha == 0.0 else b
        if out is None:
            return src.copy()
        out[...] = src
        return out
    if out is None:
        return cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0)
    cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0, dst=out)
    return out


def morph(
    image_a: np.ndarray,
    image_b: np.ndarray,
    points_a: np.ndarray,
    points_b: np.ndarray,
    *,
    shape_alpha: float = 0.5,
    texture_alpha: float = 0.5,
    triangles: Optional[np.ndarray] = None,
    threads: Optional[int] = None,
    return_warped: bool = False,
    rows: Optional[tuple[int, int]] = None,
) -> Union[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Landmark morph of two same-size images: warp both to the blended shape, blend.

    The frame's :func:`boundary_points` are appended to the landmarks, the morph shape
    :func:`average_points` is Delaunay-triangulated, both images are warped onto it
    piecewise-affinely (bilinear sampling) and cross-dissolved (:func:`blend`).

    Both warps come from one field: with ``dst = (1 - s) a + s b``, the displacement
    ``src - dst`` is ``-s (b - a)`` for A and ``(1 - s) (b - a)`` for B at every vertex,
    hence everywhere, so ``b - a`` is interpolated once.

    Args:
        image_a, image_b: RGB uint8 ``(H, W, 3)`` of the same size.
        points_a, points_b: ``(N, 2)`` ``(x, y)`` corresponding landmarks.
        shape_alpha: weight of B in the shape (0: A's geometry, 1: B's).
        texture_alpha: weight of B in the pixel blend.
        triangles: triangulation of ``with_boundary(average_points(...))`` (indices
            ``N..N+7`` are the boundary points); default: computed.
        threads: threads for the banded warp; default ``cv2.getNumThreads()``.
        return_warped: also return A and B warped to the morph shape.
        rows: ``(start, stop)``: compute only these rows (the others are 0), e.g. when
            only a region of the morph is used; they equal the full morph's rows.

    Returns:
        The morph, RGB uint8 ``(H, W, 3)``; with ``return_warped``,
        ``(morph, warped_a, warped_b)``.
    """
    if image_a.shape != image_b.shape:
        raise ValueError(f"images differ in size: {image_a.shape} vs {image_b.shape}")
    size = image_size(image_a)
    pa = with_boundary(points_a, size)
    pb = with_boundary(points_b, size)
    if pa.shape != pb.shape:
        raise ValueError(f"landmark sets differ in shape: {pa.shape} vs {pb.shape}")
    dst = average_points(pa, pb, shape_alpha)
    if triangles is None:
        triangles = triangulate(dst)
    s, t = float(shape_alpha), float(texture_alpha)
    tris = _Triangles(dst, triangles, size)
    coef = tris.coefficients(pb - pa)
    new = np.empty_like if rows is None else np.zeros_like
    out = new(image_a)
    wa = new(image_a) if return_warped else None
    wb = new(image_a) if return_warped else None

    def band(y0: int, y1: int) -> None:
        map_a = np.empty((y1 - y0, size[0], 2), np.float32)
        map_b = np.empty_like(map_a)
        tris.run(y0, y1, 1, coef, 1.0, -s, 1.0 - s, map_a, map_b)
        ra = cv2.remap(image_a, map_a, None, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE, dst=None if wa is None else wa[y0:y1])
        rb = cv2.remap(image_b, map_b, None, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE, dst=None if wb is None else wb[y0:y1])
        blend(ra, rb, t, out=out[y0:y1])

    _run_bands(band, size[0], size[1], threads, rows)
    return (out, wa, wb) if return_warped else out


# ----------------------------------------------------------------------------------------
# regions around points (hulls, anchor rings)
# ----------------------------------------------------------------------------------------
def hull_mask(points: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Filled convex hull of points.

    Args:
        points: ``(N, 2)`` ``(x, y)``, N >= 3.
        size: ``(width, height)`` of the mask.

    Returns:
        ``(H, W)`` uint8, 255 inside the hull (sub-pixel rasterised), 0 outside.
    """
    w, h = as_size(size)
    pts = _as_points(points)
    if len(pts) < 3:
        raise ValueError(f"need at least 3 points for a hull, got {len(pts)}")
    hull = cv2.convexHull(np.round(pts * (1 << _SHIFT)).astype(np.int32))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def anchor_ring(points: np.ndarray, size: Sequence[int], scale: float = 1.3,
                max_gap: Optional[float] = None) -> np.ndarray:
    """Fixed anchor points around a region: its hull scaled about the centroid.

    Used to confine a warp to a neighbourhood of the face: anchors map to themselves,
    so everything outside the ring is left untouched (provided no triangle of the warp
    reaches across the ring: ``max_gap`` makes the ring dense enough for that).

    Args:
        points: ``(N, 2)`` ``(x, y)`` points of the region.
        size: ``(width, height)`` of the frame; anchors are clipped into it and anchors
            that then fall inside the region's hull are dropped.
        scale: ring size relative to the hull (> 1).
        max_gap: if given, every ring edge longer than this (pixels) is subdivided
            evenly so that neighbouring anchors are at most ``max_gap`` apart.

    Returns:
        ``(K, 2)`` float64 ``(x, y)``.
    """
    w, h = as_size(size)
    pts = _as_points(points)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    c = hull.mean(axis=0)
    ring = c + float(scale) * (hull - c)
    if max_gap is not None:
        if not max_gap > 0:
            raise ValueError(f"max_gap must be > 0 pixels, got {max_gap}")
        dense = []
        for p, q in zip(ring, np.roll(ring, -1, axis=0)):
            k = max(1, int(np.ceil(np.linalg.norm(q - p) / float(max_gap))))
            dense.extend(p + (q - p) * (i / k) for i in range(k))
        ring = np.array(dense)
    ring[:, 0] = np.clip(ring[:, 0], 0.0, w - 1.0)
    ring[:, 1] = np.clip(ring[:, 1], 0.0, h - 1.0)
    contour = hull.astype(np.float32).reshape(-1, 1, 2)
    keep = [cv2.pointPolygonTest(contour, (float(x), float(y)), True) < -1.0 for x, y in ring]
    return ring[np.array(keep, dtype=bool)]


def points_in_hull(points: np.ndarray, hull_points: np.ndarray, tolerance: float = 0.5) -> np.ndarray:
    """Which points lie inside (or within ``tolerance`` px of) the convex hull of others.

    Returns:
        ``(N,)`` bool.
    """
    pts = _as_points(points)
    hull = cv2.convexHull(_as_points(hull_points, "hull_points").astype(np.float32))
    return np.array(
        [cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= -tolerance for x, y in pts],
        dtype=bool,
    )
