"""Self-morph training: synthetic attacks made from bona fide images alone.

In the spirit of self-blended images (Shiohara & Yamasaki, CVPR 2022) and SelfMAD, every
synthetic attack is one bona fide image blended with a perturbed copy of *itself*:

1. **geometry** — the copy's landmarks are jittered (independent Gaussian noise per point),
   shifted coherently around a few random centres (local warps) and scaled slightly about
   the face centre; every displacement is clipped to ``max_shift`` of the face size, and
   the copy is warped piecewise-affinely (:func:`morphlab.geometry.warp_image`) with a fixed
   anchor ring around the face (:func:`morphlab.geometry.anchor_ring`), so nothing outside
   it moves;
2. **texture** — colour mismatch (per-channel gain and offset, brightness, contrast),
   Gaussian blur or sharpening, and sometimes a down/up-resampling, as a morphing pipeline
   leaves them;
3. **seam** — a face mask (the landmarks' hull, its vertices moved radially at random but
   never more than ``margin`` beyond the hull), feathered
   (:func:`morphlab.geometry.feather_mask`) or Poisson-cloned
   (:func:`morphlab.geometry.poisson_composite`), blended at a random ratio: below 1 the
   two geometries cross-dissolve into a morph's ghosting.

Pixels outside the landmarks' hull dilated by ``margin`` are exactly the input's
(:func:`face_region`). :func:`self_morph` is pure and deterministic given its ``rng``;
:func:`synthesise` derives one generator per synthetic attack from ``(seed, index)``, so
a training set is reproduced exactly from the seed and the parameters that
``morphlab detect train --self-morph`` records in ``detector.json``
(``metadata["train"]["self_morph"]``).

The attacks are made once per training run (in memory, before ``fit``), not per epoch:
every detector, the scikit-learn ones included, sees the same fixed set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np

PathLike = Union[str, Path]

#: Attack species of the synthetic training attacks (``n_by_species`` of a training summary).
SELF_MORPH_SPECIES = "self-morph/synthetic"
#: Version of the recipe below; recorded with the parameters (bump when outputs change).
RECIPE_VERSION = 1

#: Default strengths (lengths are fractions of the face size: the square root of the area
#: of the landmarks' hull, about 0.55 of a MAD crop's side).
DEFAULT_STRENGTH: dict[str, Any] = {
    "jitter": 0.012,        # std of the per-landmark noise
    "local_shift": 0.035,   # std of the coherent shift around each local-warp centre
    "local_centres": 3,     # how many local-warp centres
    "scale": 0.02,          # std of the copy's scale change about the face centre
    "max_shift": 0.06,      # no landmark of the copy moves further than this
    "colour": 1.0,          # colour mismatch strength (0: none)
    "blur": 1.2,            # largest Gaussian blur sigma, in pixels per 112 px of crop
    "resample": 0.5,        # probability of a down/up-resampling of the copy
    "mask_deform": 0.08,    # std of the radial factor of the mask's vertices
    "margin": 0.05,         # the mask stays within the hull dilated by this
    "feather": 0.08,        # feathering half-width
    "poisson": 0.5,         # probability of Poisson (rather than feathered) blending
    "min_ratio": 0.35,      # blend ratio of the copy, drawn in [min_ratio, 1]
}

_RANGES = {  # (low, high) of each strength parameter
    "jitter": (0.0, 0.1), "local_shift": (0.0, 0.2), "local_centres": (0, 10), "scale": (0.0, 0.2),
    "max_shift": (0.0, 0.3), "colour": (0.0, 3.0), "blur": (0.0, 10.0), "resample": (0.0, 1.0),
    "mask_deform": (0.0, 0.5), "margin": (0.0, 0.3), "feather": (0.0, 0.5), "poisson": (0.0, 1.0),
    "min_ratio": (0.05, 1.0),
}


def strength_params(**strength: Any) -> dict[str, Any]:
    """The full, checked strength parameters: :data:`DEFAULT_STRENGTH` updated by ``strength``.

    Raises:
        ValueError: an unknown name (the valid ones are listed) or a value out of range.
    """
    unknown = sorted(set(strength) - set(DEFAULT_STRENGTH))
    if unknown:
        raise ValueError(f"unknown self-morph parameter(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(DEFAULT_STRENGTH)}")
    out = dict(DEFAULT_STRENGTH)
    for k, v in strength.items():
        lo, hi = _RANGES[k]
        integer = isinstance(DEFAULT_STRENGTH[k], int)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and int(v) != v) \
                or not lo <= float(v) <= hi:
            raise ValueError(f"self-morph parameter {k} must be a{'n integer' if integer else ' number'} "
                             f"in [{lo}, {hi}], got {v!r}")
        out[k] = int(v) if integer else float(v)
    return out


def _check(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        raise ValueError(f"self_morph needs an RGB uint8 (H, W, 3) image, got "
                         f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
        raise ValueError(f"landmarks must be a finite (N, 2) (x, y) array with N >= 3, got {pts.shape}")
    return pts


def face_scale(landmarks: np.ndarray) -> float:
    """Size of a face in pixels: the square root of the area of its landmarks' hull."""
    hull = cv2.convexHull(np.asarray(landmarks, np.float32))
    return float(np.sqrt(max(cv2.contourArea(hull), 1.0)))


def face_region(landmarks: np.ndarray, size: Sequence[int], margin: float = DEFAULT_STRENGTH["margin"]
                ) -> np.ndarray:
    """Where :func:`self_morph` may change pixels: the landmarks' hull dilated by
    ``margin`` x :func:`face_scale` (+1 px of rasterisation), ``(H, W)`` bool."""
    from morphlab.geometry import hull_mask

    pts = np.asarray(landmarks, dtype=np.float64)
    r = int(np.ceil(float(margin) * face_scale(pts))) + 1
    hull = hull_mask(pts, size)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(hull, k) > 0


def _displaced(pts: np.ndarray, s: float, rng: np.random.Generator, p: dict) -> np.ndarray:
    """The copy's landmarks: jitter + local coherent shifts + scale, clipped to max_shift."""
    n = len(pts)
    d = rng.normal(0.0, p["jitter"] * s, (n, 2))
    for _ in range(p["local_centres"]):
        c = pts[rng.integers(n)]
        w = np.exp(-np.sum((pts - c) ** 2, axis=1) / (2.0 * (0.2 * s) ** 2))
        d += w[:, None] * rng.normal(0.0, p["local_shift"] * s, 2)[None, :]
    centre = pts.mean(axis=0)
    d += (pts - centre) * rng.normal(0.0, p["scale"])
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    limit = p["max_shift"] * s
    d *= np.minimum(1.0, limit / np.maximum(norm, 1e-12))
    return pts + d


def _texture(img: np.ndarray, rng: np.random.Generator, p: dict) -> np.ndarray:
    """Colour mismatch, blur or sharpening, resampling of the copy (whole frame)."""
    out = img.astype(np.float32)
    c = p["colour"]
    if c > 0:
        gain = 1.0 + rng.normal(0.0, 0.04 * c, 3)
        offset = rng.normal(0.0, 6.0 * c, 3) + rng.normal(0.0, 5.0 * c)  # per channel + brightness
        contrast = 1.0 + rng.normal(0.0, 0.06 * c)
        mean = out.mean(axis=(0, 1), keepdims=True)
        out = (out - mean) * contrast + mean
        out = out * gain[None, None, :] + offset[None, None, :]
    h, w = img.shape[:2]
    sigma_max = p["blur"] * min(h, w) / 112.0
    u = rng.random()
    if sigma_max > 0 and u < 0.5:
        sigma = float(rng.uniform(0.25, 1.0) * sigma_max)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    elif sigma_max > 0 and u < 0.75:
        blurred = cv2.GaussianBlur(out, (0, 0), max(0.5, 0.5 * sigma_max))
        out = out + float(rng.uniform(0.3, 1.0)) * (out - blurred)
    if rng.random() < p["resample"]:
        f = float(rng.uniform(0.5, 0.9))
        small = cv2.resize(out, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _mask(pts: np.ndarray, size: tuple[int, int], s: float, rng: np.random.Generator,
          p: dict) -> np.ndarray:
    """The blend mask: hull vertices moved radially, never beyond hull + margin."""
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    c = hull.mean(axis=0)
    # denser vertices so the radial deformation bends the outline, not only its corners
    dense = []
    for a, b in zip(hull, np.roll(hull, -1, axis=0)):
        k = max(1, int(np.ceil(np.linalg.norm(b - a) / (0.08 * s))))
        dense.extend(a + (b - a) * (i / k) for i in range(k))
    v = np.array(dense)
    radius = np.maximum(np.linalg.norm(v - c, axis=1), 1e-6)
    noise = rng.normal(0.0, p["mask_deform"], len(v))
    noise = np.convolve(np.r_[noise[-2:], noise, noise[:2]], np.ones(5) / 5.0, mode="valid")
    f = np.clip(1.0 + noise, 0.75, 1.0 + p["margin"] * s / radius)
    poly = c + f[:, None] * (v - c)
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
    return mask


def self_morph(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               **strength: Any) -> np.ndarray:
    """A synthetic morph of ``image`` with a perturbed copy of itself (module docstring).

    Args:
        image: RGB uint8 ``(H, W, 3)`` (a MAD crop, or a full photo).
        landmarks: ``(N, 2)`` float ``(x, y)`` pixel landmarks of the face in ``image``
            (any scheme; their hull is the face region), ``N >= 3``.
        rng: the only source of randomness: the same generator state gives the same
            bytes.
        **strength: overrides of :data:`DEFAULT_STRENGTH` (lengths as fractions of
            :func:`face_scale`).

    Returns:
        RGB uint8 ``(H, W, 3)``; pixels outside
        ``face_region(landmarks, size, strength["margin"])`` equal ``image``'s.

    Raises:
        ValueError: a bad image, landmarks or strength parameter.
    """
    from morphlab.geometry import anchor_ring, composite, feather_mask, poisson_composite, warp_image

    p = strength_params(**strength)
    pts = _check(image, landmarks)
    h, w = image.shape[:2]
    s = face_scale(pts)
    moved = _displaced(pts, s, rng, p)
    ring = anchor_ring(pts, (w, h), scale=1.35, max_gap=0.15 * s)
    copy = warp_image(image, np.vstack([pts, ring]), np.vstack([moved, ring]), threads=1)
    copy = _texture(copy, rng, p)
    mask = _mask(pts, (w, h), s, rng, p)
    ratio = float(rng.uniform(p["min_ratio"], 1.0))
    if rng.random() < p["poisson"]:
        copy = poisson_composite(copy, image, mask)
    alpha = feather_mask(mask, round(p["feather"] * s * float(rng.uniform(0.5, 1.0)))) * ratio
    return composite(copy, image, alpha.astype(np.float32))


# -- training glue -----------------------------------------------------------------------------
def self_morph_config(*, ratio: float = 1.0, seed: int = 0, **strength: Any) -> dict[str, Any]:
    """The record of a self-morph training run: ``{"ratio", "seed", "params", "recipe_version"}``.

    ``ratio``: synthetic attacks per bona fide training image (``round(ratio * n)`` in all).

    Raises:
        ValueError: a ratio that is not a positive number, a bad seed or strength.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < float(ratio) <= 20:
        raise ValueError(f"--self-morph-ratio must be a number in (0, 20] (synthetic attacks per "
                         f"bona fide image), got {ratio!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"the self-morph seed must be an integer >= 0, got {seed!r}")
    return {"ratio": float(ratio), "seed": int(seed), "params": strength_params(**strength),
            "recipe_version": RECIPE_VERSION}


def crop_landmarks(paths: Sequence[PathLike], size: int, *, backend: Any = "dlib",
                   cache_dir: Optional[PathLike] = None, use_cache: bool = True) -> list[np.ndarray]:
    """Landmarks of each image's face in its MAD crop coordinates (``(N_i, 2)`` ``(x, y)``).

    The face comes from the landmark cache (:func:`morphlab.face.cache.get_face`), which
    :func:`morphlab.detectors.preprocess.align_faces` filled for the same images; the crop
    transform is the one :func:`~morphlab.detectors.preprocess.align_image` uses.
    """
    from morphlab.detectors.preprocess import MAD_TEMPLATE_112
    from morphlab.face.align import estimate_similarity, transform_points
    from morphlab.face.cache import get_face
    from morphlab.face.schemes import five_points

    out = []
    for p in paths:
        face = get_face(backend, Path(p), cache_dir=cache_dir, use_cache=use_cache)
        M = estimate_similarity(five_points(face), np.asarray(MAD_TEMPLATE_112) * (float(size) / 112.0))
        out.append(transform_points(face.landmarks, M))
    return out


def synthesise(crops: np.ndarray, landmarks: Sequence[np.ndarray], config: dict[str, Any]
               ) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic attacks of a training set.

    Attack ``j`` (``j < round(ratio * N)``) is :func:`self_morph` of crop ``j mod N`` with
    ``numpy.random.default_rng([seed, j])``: the same crops, order and config give the
    same attacks.

    Args:
        crops: ``(N, S, S, 3)`` uint8 bona fide crops.
        landmarks: per crop, ``(L, 2)`` ``(x, y)`` landmarks in crop coordinates.
        config: :func:`self_morph_config`.

    Returns:
        ``(attacks, source)``: ``(M, S, S, 3)`` uint8 and ``(M,)`` int64 crop indices.
    """
    n = len(crops)
    if n == 0:
        raise ValueError("self-morph training needs at least one bona fide image with a face")
    if len(landmarks) != n:
        raise ValueError(f"{n} crops but {len(landmarks)} landmark sets")
    m = max(1, round(config["ratio"] * n))
    src = np.arange(m, dtype=np.int64) % n
    out = np.empty((m, *crops.shape[1:]), np.uint8)
    for j, i in enumerate(src):
        out[j] = self_morph(crops[i], landmarks[i], np.random.default_rng([config["seed"], j]),
                            **config["params"])
    return out, src
