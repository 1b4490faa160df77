"""Pure geometry for landmark morphing: triangulation, piecewise-affine warps, blending.

Conventions: images are RGB ``uint8`` ``(H, W, 3)``; points are ``float64`` ``(N, 2)``
``(x, y)`` pixel coordinates with the centre of the top-left pixel at ``(0, 0)`` (the
convention of dlib, ``cv2.remap`` and ``cv2.warpAffine``); sizes are ``(width, height)``.

How the warp is fast. A piecewise-affine warp maps each destination pixel ``p`` lying in
triangle ``t`` to the source position ``p + J_t p + c_t``: the displacement is the
linear interpolation, over the destination triangulation, of the per-point
displacements ``src - dst``. So instead of warping every triangle separately (the
LearnOpenCV recipe: crop, ``warpAffine``, mask, blend, per triangle), we

1. rasterise a *label map* of the destination frame (``cv2.fillConvexPoly`` writes each
   triangle's index; a second pass with the triangles shrunk by OpenCV's half-pixel
   rasterisation margin gives each pixel the triangle its centre lies in, see
   ``_Raster``),
2. look up each pixel's affine coefficients with three vectorised gathers and evaluate
   the displacement field with four array operations (:func:`interpolate_field`),
3. sample the source with one ``cv2.remap`` (bilinear) per image.

For a morph the two displacement fields are tied: with ``dst = (1 - s) a + s b`` the
field of ``a`` is ``-s F`` and that of ``b`` is ``(1 - s) F`` where ``F`` interpolates
``b - a`` (:func:`morph`), so one field serves both images. Frames are processed in
horizontal bands of ~100k pixels, in ``cv2.getNumThreads()`` threads (NumPy and OpenCV
release the GIL), which keeps the intermediate arrays in cache. The bands depend on the
frame width only, so results do not depend on the number of threads.

Cost at 1350x1350 with ~380 triangles, one core: about 6 ms of rasterisation, 9 ms of
field evaluation and 2 x 13 ms of ``cv2.remap`` (the floor); see
``benchmarks/landmark_morph.py`` for the comparison with the per-triangle recipe.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np
from scipy.spatial import Delaunay

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
def _inset_triangles(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles shrunk by OpenCV's rasterisation margin, and which ones survive.

    ``cv2.fillConvexPoly`` fills every pixel whose centre lies within half a pixel of the
    polygon along the axis closest to the edge normal. Moving each edge inwards by that
    margin (``0.5 * max(|n_x|, |n_y|)`` for a unit normal ``n``) gives a triangle whose
    drawing covers the pixel centres inside the original one and none outside it (up to
    the corners). Triangles too thin for that (inradius below the margin) are marked
    False.

    Args:
        corners: ``(T, 3, 2)`` triangle vertices.

    Returns:
        ``(inset (T, 3, 2), ok (T,) bool)``.
    """
    p = corners
    centroid = p.mean(axis=1)
    lines = []
    for i in range(3):
        a, b = p[:, i], p[:, (i + 1) % 3]
        d = b - a
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        n = np.stack([-d[:, 1], d[:, 0]], axis=1)
        n *= np.where(((centroid - a) * n).sum(axis=1) < 0, -1.0, 1.0)[:, None]  # inwards
        margin = 0.5 * np.abs(n).max(axis=1)
        lines.append((a + n * margin[:, None], d))
    out = np.empty_like(p)
    ok = np.ones(len(p), dtype=bool)
    for i in range(3):  # vertex i joins edge i-1 and edge i
        (p1, d1), (p2, d2) = lines[i - 1], lines[i]
        den = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
        ok &= np.abs(den) > 1e-12
        t = ((p2[:, 0] - p1[:, 0]) * d2[:, 1] - (p2[:, 1] - p1[:, 1]) * d2[:, 0]) / np.where(ok, den, 1.0)
        out[:, i] = p1 + d1 * t[:, None]
    # an inset that inverted (thin triangle) has vertices outside the original
    for i in range(3):
        a, b = p[:, i], p[:, (i + 1) % 3]
        side = (b[:, None, 0] - a[:, None, 0]) * (out[:, :, 1] - a[:, None, 1]) - (
            b[:, None, 1] - a[:, None, 1]
        ) * (out[:, :, 0] - a[:, None, 0])
        ref = (b[:, 0] - a[:, 0]) * (centroid[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (centroid[:, 0] - a[:, 0])
        ok &= ((side * ref[:, None]) >= 0).all(axis=1)
    return out, ok


class _Raster:
    """Rasterises a triangulation band by band: which triangle each pixel centre is in.

    Two passes of ``cv2.fillConvexPoly`` (sub-pixel precision): the triangles as they are,
    which covers every pixel but, since OpenCV also fills pixels whose centre lies up to
    half a pixel outside, gives some pixels along edges the neighbouring triangle; then
    the triangles shrunk by that margin (:func:`_inset_triangles`), which relabels the
    pixels whose centre lies inside. Left inexact are only pixels in the sharpest corners
    and in triangles thinner than a pixel; there the affine map of a neighbour is used,
    which is continuous with the right one across the shared edge (sub-pixel error).
    """

    def __init__(self, points: np.ndarray, triangles: np.ndarray, size: Sequence[int]) -> None:
        self.w, self.h = as_size(size)
        self.points = _as_points(points)
        self.triangles = np.asarray(triangles)
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or not len(self.triangles):
            raise ValueError(f"triangles must have shape (T, 3), got {self.triangles.shape}")
        corners = self.points[self.triangles]  # (T, 3, 2)
        inset, ok = _inset_triangles(corners)
        one = 1 << _SHIFT
        self._fixed = np.round(corners * one).astype(np.int32)
        self._inset = np.round(inset * one).astype(np.int32)
        self._inset_ok = ok
        self._ylo = np.floor(corners[:, :, 1].min(axis=1)) - 1
        self._yhi = np.ceil(corners[:, :, 1].max(axis=1)) + 1

    def labels(self, y0: int, y1: int, *, fill_holes: bool = True) -> np.ndarray:
        """Triangle index of each pixel of rows ``y0:y1``: ``(y1 - y0, W)`` intp.

        Pixels outside every triangle get the nearest triangle when ``fill_holes``
        (a triangulation including :func:`boundary_points` leaves none), else ``-1``.
        """
        n = y1 - y0
        sel = np.nonzero((self._yhi >= y0) & (self._ylo < y1))[0]
        off = np.array([0, y0 << _SHIFT], dtype=np.int32)
        outer, inner = self._fixed[sel] - off, self._inset[sel] - off
        second = [(i, poly) for i, poly, ok in zip(sel.tolist(), inner, self._inset_ok[sel]) if ok]
        if _INT64_PAIRS:
            # (index, 0) in two int32 channels has the bytes of one int64 per pixel
            lab2 = np.full((n, self.w, 2), -1, dtype=np.int32)
            for i, poly in zip(sel.tolist(), outer):
                cv2.fillConvexPoly(lab2, poly, (i, 0), lineType=cv2.LINE_8, shift=_SHIFT)
            for i, poly in second:
                cv2.fillConvexPoly(lab2, poly, (i, 0), lineType=cv2.LINE_8, shift=_SHIFT)
            lab = lab2.view(np.int64)[:, :, 0]
        else:  # pragma: no cover - 32-bit or big-endian platforms
            lab32 = np.full((n, self.w), -1, dtype=np.int32)
            for i, poly in list(zip(sel.tolist(), outer)) + second:
                cv2.fillConvexPoly(lab32, poly, i, lineType=cv2.LINE_8, shift=_SHIFT)
            lab = lab32.astype(np.intp)
        if fill_holes and lab.min() < 0:
            self._fill_holes(lab, y0)
        return lab

    def _fill_holes(self, lab: np.ndarray, y0: int) -> None:
        ys, xs = np.nonzero(lab < 0)
        log.debug("%d pixels outside the triangulation; using the nearest triangle", len(ys))
        cent = self.points[self.triangles].mean(axis=1)
        q = np.stack([xs, ys + y0], axis=1).astype(np.float64)
        best = np.empty(len(q), dtype=np.intp)
        for k in range(0, len(q), 4096):  # bounded memory
            dist = ((q[k:k + 4096, None, :] - cent[None, :, :]) ** 2).sum(-1)
            best[k:k + 4096] = np.argmin(dist, axis=1)
        lab[ys, xs] = best


_INT64_PAIRS = sys.byteorder == "little" and np.dtype(np.intp).itemsize == 8


def label_map(points: np.ndarray, triangles: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Which triangle each pixel centre of the frame lies in.

    Triangles are rasterised with ``cv2.fillConvexPoly`` (sub-pixel precision), then
    pixels along edges are checked against their triangle (see ``_Raster``); a pixel
    centre exactly on a shared edge may get either triangle (the affine maps agree there).

    Args:
        points: ``(N, 2)`` ``(x, y)`` vertices.
        triangles: ``(T, 3)`` vertex indices.
        size: ``(width, height)`` of the frame.

    Returns:
        ``(H, W)`` intp triangle indices; ``-1`` where no triangle covers the pixel.
    """
    r = _Raster(points, triangles, size)
    return np.concatenate([r.labels(y0, y1, fill_holes=False) for y0, y1 in _bands(r.w, r.h)])


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
def _grid_rows(w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read-only ``(1, W, 2)`` ``(x, x)``, ``(H, 1, 1)`` ``y`` and ``(H, W, 2)`` ``(x, y)``."""
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    xrow = np.repeat(xs, 2).reshape(1, w, 2)
    ycol = ys.reshape(h, 1, 1)
    xy = np.empty((h, w, 2), np.float32)
    xy[..., 0] = xs[None, :]
    xy[..., 1] = ys[:, None]
    for arr in (xrow, ycol, xy):
        arr.setflags(write=False)
    return xrow, ycol, xy


def identity_map(size: Sequence[int]) -> np.ndarray:
    """``(H, W, 2)`` float32 map of every pixel to itself (read-only, cached)."""
    w, h = as_size(size)
    return _grid_rows(w, h)[2]


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


def _run_bands(fn: Callable[[int, int], None], w: int, h: int, threads: Optional[int]) -> None:
    """Call ``fn(y0, y1)`` for bands of rows covering the frame, in ``threads`` threads."""
    n = max(1, int(threads if threads is not None else cv2.getNumThreads()))
    bands = _bands(w, h)
    if n == 1 or len(bands) == 1:
        for y0, y1 in bands:
            fn(y0, y1)
        return
    for fut in [_executor(n).submit(fn, y0, y1) for y0, y1 in bands]:
        fut.result()


class _Field:
    """A piecewise-linear 2-vector field over a triangulated frame, evaluated by bands."""

    def __init__(self, points: np.ndarray, values: np.ndarray, triangles: np.ndarray,
                 size: Sequence[int]) -> None:
        self.raster = _Raster(points, triangles, size)
        self.w, self.h = self.raster.w, self.raster.h
        coef = affine_coefficients(self.raster.points, values, self.raster.triangles)
        # one complex64 per triangle and coefficient, (v_x + i v_y): a gather then yields
        # interleaved (x, y) float32 pairs, the layout cv2.remap wants
        self._tables = [
            np.ascontiguousarray(coef[:, k, :].astype(np.float32)).view(np.complex64).ravel()
            for k in range(3)
        ]
        self._xrow, self._ycol, _ = _grid_rows(self.w, self.h)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """The field on rows ``y0:y1``: ``(y1 - y0, W, 2)`` float32."""
        lab = self.raster.labels(y0, y1)
        shape = (y1 - y0, self.w, 2)
        ta, tb, tc = self._tables
        f = np.take(ta, lab).view(np.float32).reshape(shape)
        f *= self._xrow
        g = np.take(tb, lab).view(np.float32).reshape(shape)
        g *= self._ycol[y0:y1]
        f += g
        f += np.take(tc, lab).view(np.float32).reshape(shape)
        return f


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
    field = _Field(points, values, triangles, size)
    out = np.empty((field.h, field.w, 2), np.float32)

    def band(y0: int, y1: int) -> None:
        out[y0:y1] = field.rows(y0, y1)

    _run_bands(band, field.w, field.h, threads)
    return out


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
    m = interpolate_field(dst, src - dst, triangles, size, threads=threads)
    m += identity_map(size)
    return m


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

    Returns:
        The warped image, ``(height, width, C)``.
    """
    size = image_size(image) if size is None else as_size(size)
    src, dst = _as_points(src_points, "src_points"), _as_points(dst_points, "dst_points")
    if triangles is None:
        src, dst = with_boundary(src, size), with_boundary(dst, size)
        triangles = triangulate(dst)
    return remap(image, warp_map(src, dst, triangles, size, threads=threads))


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
    field = _Field(dst, pb - pa, triangles, size)
    s, t = float(shape_alpha), float(texture_alpha)
    xy = identity_map(size)
    out = np.empty_like(image_a)
    wa = np.empty_like(image_a) if return_warped else None
    wb = np.empty_like(image_a) if return_warped else None

    def band(y0: int, y1: int) -> None:
        f = field.rows(y0, y1)
        m = np.empty_like(f)
        cv2.scaleAdd(f, -s, xy[y0:y1], dst=m)
        ra = cv2.remap(image_a, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                       dst=None if wa is None else wa[y0:y1])
        cv2.scaleAdd(f, 1.0 - s, xy[y0:y1], dst=m)
        rb = cv2.remap(image_b, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                       dst=None if wb is None else wb[y0:y1])
        blend(ra, rb, t, out=out[y0:y1])

    _run_bands(band, size[0], size[1], threads)
    return (out, wa, wb) if return_warped else out


# ----------------------------------------------------------------------------------------
# masks, colour matching and compositing (for spliced morphs)
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


def erode_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion of a uint8 mask by a disc of ``radius`` pixels (0: a copy)."""
    r = int(radius)
    if r <= 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def feather_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """A soft mask that is 0 outside ``mask`` and 1 deep inside it.

    The mask is eroded by ``radius`` and blurred with a Gaussian of the same support, then
    multiplied by the original mask: the transition, about ``2 * radius`` wide, lies
    entirely inside ``mask``, so nothing outside it is touched.

    Args:
        mask: ``(H, W)`` uint8, non-zero inside.
        radius: half-width of the transition in pixels (0: the hard mask).

    Returns:
        ``(H, W)`` float32 in ``[0, 1]``.
    """
    hard = (mask > 0).astype(np.float32)
    r = int(radius)
    if r <= 0:
        return hard
    core = erode_mask(mask, r)
    soft = cv2.GaussianBlur((core > 0).astype(np.float32), (2 * r + 1, 2 * r + 1), r / 2.5,
                            borderType=cv2.BORDER_CONSTANT)
    return soft * hard


def _roi(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    if w == 0 or h == 0:
        raise ValueError("the mask is empty")
    H, W = mask.shape[:2]
    return (slice(max(0, y - margin), min(H, y + h + margin)),
            slice(max(0, x - margin), min(W, x + w + margin)))


def match_colour(
    image: np.ndarray,
    reference: np.ndarray,
    mask: np.ndarray,
    *,
    apply_to: Optional[np.ndarray] = None,
    max_gain: float = 2.0,
) -> np.ndarray:
    """Match ``image``'s colour statistics to ``reference``'s inside ``mask`` (Reinhard).

    In CIE L*a*b*, each channel of ``image`` is shifted and scaled so that its mean and
    standard deviation over the mask equal those of ``reference`` over the same mask.

    Args:
        image: RGB uint8 ``(H, W, 3)`` to adjust.
        reference: RGB uint8 ``(H, W, 3)`` whose colours to match.
        mask: ``(H, W)`` uint8, non-zero where the statistics are taken.
        apply_to: ``(H, W)`` mask of where the correction is needed; only its bounding box
            is converted and changed (default: the whole image).
        max_gain: the standard-deviation ratio is clipped to ``[1/max_gain, max_gain]``.

    Returns:
        RGB uint8 ``(H, W, 3)``.
    """
    if image.shape != reference.shape or image.shape[:2] != mask.shape[:2]:
        raise ValueError(
            f"image {image.shape}, reference {reference.shape} and mask {mask.shape} differ in size"
        )

    def lab(img: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)

    ys, xs = _roi(mask)
    sel = mask[ys, xs] > 0
    lab_i, lab_r = lab(image[ys, xs])[sel], lab(reference[ys, xs])[sel]
    mi, si = lab_i.mean(axis=0), lab_i.std(axis=0)
    mr, sr = lab_r.mean(axis=0), lab_r.std(axis=0)
    gain = np.clip(sr / np.maximum(si, 1e-6), 1.0 / max_gain, max_gain)
    ys, xs = _roi(apply_to) if apply_to is not None else (slice(None), slice(None))
    corrected = (lab(image[ys, xs]) - mi.astype(np.float32)) * gain.astype(np.float32) \
        + mr.astype(np.float32)
    out = image.copy()
    rgb = cv2.cvtColor(corrected, cv2.COLOR_Lab2RGB)
    out[ys, xs] = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return out


def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``bg + alpha (fg - bg)``, rounded: exactly ``bg`` where alpha is 0, ``fg`` where 1.

    Args:
        fg, bg: RGB uint8 ``(H, W, 3)``.
        alpha: ``(H, W)`` float32 in ``[0, 1]``.

    Returns:
        RGB uint8 ``(H, W, 3)``.
    """
    if fg.shape != bg.shape or fg.shape[:2] != alpha.shape[:2]:
        raise ValueError(f"fg {fg.shape}, bg {bg.shape} and alpha {alpha.shape} differ in size")
    out = bg.copy()
    if not (alpha > 0).any():
        return out
    ys, xs = _roi(alpha > 0)
    a = alpha[ys, xs, None].astype(np.float32)
    b = bg[ys, xs].astype(np.float32)
    out[ys, xs] = np.clip(np.rint(b + a * (fg[ys, xs].astype(np.float32) - b)), 0, 255).astype(np.uint8)
    return out


def poisson_composite(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson (gradient-domain) cloning of ``fg`` into ``bg`` inside ``mask``.

    ``cv2.seamlessClone`` with ``NORMAL_CLONE``, placed so that the region lands on the
    same pixels it occupies in ``fg`` (OpenCV centres the mask's bounding box on the
    given point; we pass the centre that reproduces the box's own position). Pixels
    outside the mask are exactly ``bg``'s.

    Args:
        fg, bg: RGB uint8 ``(H, W, 3)`` of the same size.
        mask: ``(H, W)`` uint8, non-zero inside; pixels within 2 of the frame's edge are
            dropped from it (seamlessClone needs a border).

    Returns:
        RGB uint8 ``(H, W, 3)``.
    """
    if fg.shape != bg.shape or fg.shape[:2] != mask.shape[:2]:
        raise ValueError(f"fg {fg.shape}, bg {bg.shape} and mask {mask.shape} differ in size")
    m = np.where(mask > 0, 255, 0).astype(np.uint8)
    m[:2], m[-2:], m[:, :2], m[:, -2:] = 0, 0, 0, 0
    out = bg.copy()
    if cv2.countNonZero(m) < 9:
        return out
    # work on the mask's bounding box (plus a margin) only: same result, much faster
    ys, xs = _roi(m, margin=4)
    mc = np.ascontiguousarray(m[ys, xs])
    x, y, w, h = cv2.boundingRect(mc)
    centre = (x + w // 2, y + h // 2)
    # seamlessClone writes into its mask argument (OpenCV 4.11): give it a copy
    clone = cv2.seamlessClone(np.ascontiguousarray(fg[ys, xs]), np.ascontiguousarray(bg[ys, xs]),
                              mc.copy(), centre, cv2.NORMAL_CLONE)
    inside = mc > 0
    out[ys, xs][inside] = clone[inside]
    return out


def anchor_ring(points: np.ndarray, size: Sequence[int], scale: float = 1.3) -> np.ndarray:
    """Fixed anchor points around a region: its hull scaled about the centroid.

    Used to confine a warp to a neighbourhood of the face: anchors map to themselves,
    so everything outside the ring is left untouched.

    Args:
        points: ``(N, 2)`` ``(x, y)`` points of the region.
        size: ``(width, height)`` of the frame; anchors are clipped into it and anchors
            that then fall inside the region's hull are dropped.
        scale: ring size relative to the hull (> 1).

    Returns:
        ``(K, 2)`` float64 ``(x, y)``.
    """
    w, h = as_size(size)
    pts = _as_points(points)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    c = hull.mean(axis=0)
    ring = c + float(scale) * (hull - c)
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
