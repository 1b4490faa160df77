"""Face alignment and cropping: 5-point similarity alignment and ICAO-style crops.

All transforms are ``(2, 3)`` float64 affine matrices ``M`` mapping input-image pixel
coordinates ``(x, y)`` to output-crop coordinates (the convention of
``cv2.warpAffine``); :func:`transform_points` applies one to landmarks and
``cv2.invertAffineTransform(M)`` maps crop coordinates back.
"""

from __future__ import annotations

import numpy as np

#: The insightface ``arcface_dst`` template: 5 points (image-left eye, image-right eye,
#: nose tip, mouth left, mouth right) in ``(x, y)`` pixels of a 112x112 crop.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_TEMPLATE_112.setflags(write=False)

#: ICAO-style defaults for :func:`icao_crop`: a 35:45 (passport photo) frame, the
#: inter-eye distance 1/4 of the width and the eye line 45 % of the height from the top.
#: This is the geometry of the ISO/IEC 19794-5 "token" frontal image (eye distance
#: W/4, eye line 0.6 W below the top edge, i.e. 0.45 H at 3:4), which leaves a head
#: (chin to crown, about 3.6 inter-eye distances) of ~70 % of the height with the eyes
#: inside the 30-50 %-from-top band ICAO 9303 asks for.
ICAO_OUT_SIZE = (350, 450)
ICAO_EYE_DISTANCE = 0.25
ICAO_EYE_LINE = 0.45

_BORDERS = {"constant": "BORDER_CONSTANT", "replicate": "BORDER_REPLICATE", "reflect": "BORDER_REFLECT_101"}


def transform_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to points.

    Args:
        points: ``(N, 2)`` ``(x, y)`` coordinates.
        M: ``(2, 3)`` affine matrix (as returned by :func:`similarity_align`).

    Returns:
        ``(N, 2)`` float64 transformed ``(x, y)`` coordinates.
    """
    pts = np.asarray(points, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    if M.shape != (2, 3):
        raise ValueError(f"M must have shape (2, 3), got {M.shape}")
    return pts @ M[:, :2].T + M[:, 2]


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) ``src → dst``.

    Umeyama's closed form (the estimator of ``skimage.transform.SimilarityTransform``
    that insightface uses), without reflection.

    Args:
        src: ``(N, 2)`` source ``(x, y)`` points, ``N >= 2``.
        dst: ``(N, 2)`` destination points.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` with ``dst ≈ transform_points(src, M)``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (N, 2) point arrays with N >= 2, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("points must be finite")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points coincide; cannot estimate a similarity transform")
    cov = d.T @ s / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[1, 1] = -1.0
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D)) / var_s
    M = np.empty((2, 3), dtype=np.float64)
    M[:, :2] = scale * R
    M[:, 2] = mu_d - scale * R @ mu_s
    return M


def _warp(image: np.ndarray, M: np.ndarray, size: tuple[int, int], border: str,
          border_value: tuple[int, int, int]) -> np.ndarray:
    import cv2

    if border not in _BORDERS:
        raise ValueError(f"border must be one of {', '.join(_BORDERS)}, got {border!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return cv2.warpAffine(
        image, M, size, flags=cv2.INTER_LINEAR,
        borderMode=getattr(cv2, _BORDERS[border]), borderValue=border_value,
    )


def similarity_align(
    image: np.ndarray,
    points5: np.ndarray,
    size: int = 112,
    template: np.ndarray = ARCFACE_TEMPLATE_112,
    *,
    border: str = "constant",
    border_value: tuple[int, int, int] = (0, 0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a face by the similarity transform taking its 5 points onto a template.

    This is insightface's ``norm_crop``: the template is given for a 112x112 crop and is
    scaled by ``size / 112`` for other sizes.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        points5: ``(5, 2)`` ``(x, y)`` points in the order of
            :func:`morphlab.face.schemes.five_points`.
        size: side of the square output crop in pixels.
        template: ``(5, 2)`` destination points for a 112x112 crop.
        border: how pixels outside the image are filled: ``"constant"`` (insightface's
            choice, black), ``"replicate"`` or ``"reflect"``.
        border_value: RGB fill for ``border="constant"``.

    Returns:
        ``(crop, M)``: RGB uint8 ``(size, size, 3)`` and the ``(2, 3)`` float64 matrix
        mapping image coordinates to crop coordinates.
    """
    points5 = np.asarray(points5, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    if points5.shape != template.shape:
        raise ValueError(f"points5 must have the template's shape {template.shape}, got {points5.shape}")
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    M = estimate_similarity(points5, template * (float(size) / 112.0))
    return _warp(image, M, (int(size), int(size)), border, border_value), M


def icao_crop(
    image: np.ndarray,
    eyes: np.ndarray,
    out_size: tuple[int, int] = ICAO_OUT_SIZE,
    *,
    eye_distance: float = ICAO_EYE_DISTANCE,
    eye_line: float = ICAO_EYE_LINE,
    border: str = "replicate",
    border_value: tuple[int, int, int] = (255, 255, 255),
) -> tuple[np.ndarray, np.ndarray]:
    """An ICAO-style portrait crop: eyes level, face centred, fixed proportions.

    The image is rotated so that the eye line is horizontal, scaled so the eyes are
    ``eye_distance * width`` apart, and shifted so that their midpoint lies on the
    vertical centre line at ``eye_line * height`` from the top (see the module
    constants for the choice of defaults).

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        eyes: ``(2, 2)`` ``(x, y)`` eye centres, image-left eye first
            (:func:`morphlab.face.schemes.eye_centres`).
        out_size: ``(width, height)`` of the crop in pixels (default 350x450, 35:45).
        eye_distance: inter-eye distance as a fraction of the output width.
        eye_line: height of the eye line as a fraction of the output height from the top.
        border: fill outside the source image: ``"replicate"`` (default, extends the
            background), ``"reflect"`` or ``"constant"``.
        border_value: RGB fill for ``border="constant"``.

    Returns:
        ``(crop, M)``: RGB uint8 ``(height, width, 3)`` and the ``(2, 3)`` float64
        matrix mapping image coordinates to crop coordinates; move landmarks into the
        crop with ``transform_points(landmarks, M)``.
    """
    eyes = np.asarray(eyes, dtype=np.float64)
    if eyes.shape != (2, 2):
        raise ValueError(f"eyes must have shape (2, 2), got {eyes.shape}")
    w, h = (int(v) for v in out_size)
    if w < 2 or h < 2:
        raise ValueError(f"out_size must be at least 2x2 pixels, got {out_size}")
    if not 0 < eye_distance < 1 or not 0 < eye_line < 1:
        raise ValueError("eye_distance and eye_line are fractions in (0, 1)")
    if eyes[0, 0] > eyes[1, 0]:
        raise ValueError(f"eyes must be ordered image-left then image-right, got {eyes.tolist()}")
    M = icao_transform(eyes, (w, h), eye_distance=eye_distance, eye_line=eye_line)
    return _warp(image, M, (w, h), border, border_value), M


def icao_transform(
    eyes: np.ndarray,
    out_size: tuple[int, int] = ICAO_OUT_SIZE,
    *,
    eye_distance: float = ICAO_EYE_DISTANCE,
    eye_line: float = ICAO_EYE_LINE,
) -> np.ndarray:
    """The ``(2, 3)`` matrix of :func:`icao_crop` (image → crop), without warping.

    Args:
        eyes: ``(2, 2)`` ``(x, y)`` eye centres, image-left eye first.
        out_size: ``(width, height)`` of the frame.
        eye_distance, eye_line: fractions of the frame width / height (see :func:`icao_crop`).
    """
    eyes = np.asarray(eyes, dtype=np.float64)
    if eyes.shape != (2, 2):
        raise ValueError(f"eyes must have shape (2, 2), got {eyes.shape}")
    w, h = (int(v) for v in out_size)
    half = eye_distance * w / 2.0
    target = np.array([[w / 2.0 - half, eye_line * h], [w / 2.0 + half, eye_line * h]])
    return estimate_similarity(eyes, target)


def _source_coords(M: np.ndarray, out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Source ``(x, y)`` sampled by every crop pixel centre (``(h, w)`` arrays each)."""
    import cv2

    w, h = (int(v) for v in out_size)
    inv = cv2.invertAffineTransform(np.asarray(M, dtype=np.float64))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2], inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]


def outside_mask(M: np.ndarray, image_size: tuple[int, int], out_size: tuple[int, int],
                 *, margin: float = 0.0) -> np.ndarray:
    """Crop pixels whose bilinear sample needs pixels outside the source image.

    These are the pixels a border mode fills (``replicate`` copies the edge rows and
    columns into them: streaks; ``constant`` a uniform colour).

    Args:
        M: ``(2, 3)`` image → crop matrix.
        image_size: the source's ``(width, height)``.
        out_size: the crop's ``(width, height)``.
        margin: count only samples more than ``margin`` pixels beyond the edge pixels'
            centres (``1``: pixels made of border fill alone, not the 1-pixel seam that
            blends the edge with it).

    Returns:
        ``(height, width)`` bool mask of the crop.
    """
    sx, sy = _source_coords(M, out_size)
    W, H = (int(v) for v in image_size)
    lim = float(margin) + 1e-6
    return (sx < -lim) | (sy < -lim) | (sx > W - 1 + lim) | (sy > H - 1 + lim)


def fit_inside(
    M: np.ndarray,
    image_size: tuple[int, int],
    out_size: tuple[int, int],
    anchor: tuple[float, float],
) -> tuple[np.ndarray, float]:
    """Zoom an image → crop matrix about a crop point until the frame lies inside the image.

    The largest frame of the same aspect, orientation and anchor (for ICAO: the eye
    midpoint, which stays on the centre line at the eye-line height) whose every pixel
    samples inside the source. A frame already inside is returned unchanged.

    Args:
        M: ``(2, 3)`` image → crop matrix.
        image_size: the source's ``(width, height)``.
        out_size: the crop's ``(width, height)``.
        anchor: ``(x, y)`` crop point kept fixed.

    Returns:
        ``(M', zoom)``: the matrix and the magnification ``zoom >= 1`` (the face is
        ``zoom`` times larger in the frame than ``M`` puts it).

    Raises:
        ValueError: the anchor itself lies outside the image (no frame fits).
    """
    import cv2

    M = np.asarray(M, dtype=np.float64)
    W, H = (float(v) - 1.0 for v in image_size)
    w, h = (int(v) for v in out_size)
    inv = cv2.invertAffineTransform(M)
    ax, ay = float(anchor[0]), float(anchor[1])
    p = inv[:, :2] @ np.array([ax, ay]) + inv[:, 2]  # the anchor in the source
    if not (0 <= p[0] <= W and 0 <= p[1] <= H):
        raise ValueError(f"the frame's anchor ({p[0]:.1f}, {p[1]:.1f}) lies outside the "
                         f"{W + 1:.0f}x{H + 1:.0f} image: no frame fits inside")
    u = 1.0  # 1 / zoom: a corner at p + u * v must stay inside [0, W] x [0, H]
    for cx, cy in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        v = inv[:, :2] @ np.array([cx - ax, cy - ay])
        for k, limit in ((0, W), (1, H)):
            if v[k] > 1e-12:
                u = min(u, (limit - p[k]) / v[k])
            elif v[k] < -1e-12:
                u = min(u, -p[k] / v[k])
    u *= 1.0 - 1e-9  # strictly inside after rounding
    if u >= 1.0 - 1e-9:
        return M, 1.0
    zoom = 1.0 / u
    S = np.array([[zoom, 0.0, ax * (1 - zoom)], [0.0, zoom, ay * (1 - zoom)], [0.0, 0.0, 1.0]])
    return (S @ np.vstack([M, [0.0, 0.0, 1.0]]))[:2], zoom


def estimate_background(image: np.ndarray, strip: float = 0.03) -> tuple[int, int, int]:
    """The background colour of a portrait: per-channel median of its top and side strips.

    The bottom edge is left out (shoulders, clothing); the side strips cover their upper
    two thirds. On an image whose background was made uniform (the ``background``
    post-processing operator) this is that colour exactly.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        strip: strip width as a fraction of the shorter side (at least 2 pixels).

    Returns:
        ``(r, g, b)`` ints in 0..255.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got {image.shape}")
    h, w = image.shape[:2]
    k = max(2, round(strip * min(h, w)))
    side = max(k, (2 * h) // 3)
    px = np.concatenate([image[:k].reshape(-1, 3), image[:side, :k].reshape(-1, 3),
                         image[:side, -k:].reshape(-1, 3)])
    return tuple(int(v) for v in np.median(px, axis=0).round())


def ffhq_transform(eyes: np.ndarray, mouth: np.ndarray, size: int = 512) -> np.ndarray:
    """The FFHQ alignment (Karras et al.'s ``recreate_aligned_images``) as a similarity.

    The frame Arc2Face is trained on and Arc2Morph renders in: the face small and centred,
    side ``4 x max(eye distance, 0.9 x eye-to-mouth distance)``, centred 0.1 eye-to-mouth
    below the eye midpoint, rotated so the face is upright. (FFHQ pads outside the
    photo by reflection and blur; warp with ``border="reflect"`` for a look-alike.)

    Args:
        eyes: ``(2, 2)`` ``(x, y)`` eye centres, image-left eye first.
        mouth: ``(2, 2)`` mouth corners, image-left first.
        size: side of the square frame in pixels.

    Returns:
        ``(2, 3)`` image → frame matrix.
    """
    eyes = np.asarray(eyes, dtype=np.float64)
    mouth = np.asarray(mouth, dtype=np.float64)
    if eyes.shape != (2, 2) or mouth.shape != (2, 2):
        raise ValueError(f"eyes and mouth must be (2, 2) arrays, got {eyes.shape} and {mouth.shape}")
    eye_avg = eyes.mean(axis=0)
    eye_to_eye = eyes[1] - eyes[0]
    eye_to_mouth = mouth.mean(axis=0) - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y])  # top-left, bottom-left, bottom-right
    s = float(size)
    return estimate_similarity(quad, np.array([[0.0, 0.0], [0.0, s], [s, s]]))
