"""The landmark morph generator (``landmark``): triangulate, warp both faces, blend.

The reference attack of the morphing literature. For a pair (subject A, subject B):

1. Landmarks of both images come from a face backend (``dlib`` by default) through the
   landmark cache (:func:`morphlab.face.get_face`).
2. Both images are brought into one frame (see *Frames* below).
3. The morph shape is ``(1 - shape_alpha) * A + shape_alpha * B``; it is
   Delaunay-triangulated together with 8 frame points (corners and edge midpoints),
   both images are warped onto it piecewise-affinely and cross-dissolved with
   ``texture_alpha`` (:func:`morphlab.geometry.morph`).

Variants (``variants``, one output each, tagged by name):

- ``complete``: the whole warped-and-blended frame. Hair, ears, neck and background are
  blends too, so they show the typical double contours ("ghosting").
- ``spliced``: only the face is morphed; everything else is one contributor's
  (``splice_into``, default A). The face region is the convex hull of the face
  landmarks of the morph shape (jaw line and eyebrows: for ``tem189`` the cheek/jaw
  contour and brows, not the hair line, ears or neck). Because that region has the
  morph's shape while the target has its own, the *target is warped too*: its face
  landmarks are moved onto the morph shape while a ring of fixed anchor points
  (the hull scaled by 1.3 about its centre) and the frame stay put. So the target's
  hair, ears and shoulders are not blended (no ghosting), only gently displaced next
  to the face, and pixels outside the ring are exactly the target's. The morphed face
  (colour-matched to the target's face in L*a*b* by default) is then put in with
  Poisson cloning (``blend="poisson"``, ``cv2.seamlessClone``) or a feathered mask
  (``blend="feather"``) whose transition lies inside the hull.

Frames: without ``crop`` the morph is made in A's frame. If B's image has another size,
B is first mapped into A's frame by the least-squares similarity transform of its
landmarks onto A's (rather than a plain resize, which would distort it). ``size=(w, h)``
resizes both images (and landmarks) to that size first (a change of aspect ratio
stretches them; use ``crop="icao"`` for a fixed aspect). ``crop="icao"`` first crops each
image ICAO-style (eyes level at 45 % of the height, inter-eye distance a quarter of the
width; :func:`morphlab.face.align.icao_crop`) to ``size`` (default 350x450), so the
morph is made directly in the passport frame. Downscaling always goes through
``INTER_AREA`` so that it does not alias.

Deterministic: the same images and parameters give the same bytes; ``seed`` is accepted
and unused.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np

from morphlab import geometry as geo
from morphlab.face import eye_centres, get_face, icao_crop, transform_points
from morphlab.face.align import ICAO_OUT_SIZE, estimate_similarity
from morphlab.face.base import FACE_BACKENDS, Face, LandmarkError, validate_landmarks
from morphlab.generators.base import GENERATORS, Contributor, Generator, MorphOutput
from morphlab.io import read_image

log = logging.getLogger(__name__)

VARIANTS = ("complete", "spliced")
BLENDS = ("poisson", "feather")
CROPS = ("icao",)

#: Landmarks whose convex hull is "the face" for splicing, per scheme (default: all).
#: dlib68/fan68: jaw line 0-16 and brows 17-26 bound the hull. tem189: cheek/jaw contour
#: 109-114 and 125-133 and brows 71-82 (its hair-line, ear and neck points are left out).
FACE_REGION: dict[str, tuple[int, ...]] = {
    "tem189": tuple(range(71, 83)) + tuple(range(109, 115)) + tuple(range(125, 134)),
}

#: Scale of the anchor ring (relative to the face hull) that confines the target's warp.
RING_SCALE = 1.3


def _fraction(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


def _parse_size(size: Union[None, int, Sequence[int]]) -> Optional[tuple[int, int]]:
    if size is None:
        return None
    w, h = geo.as_size(size)
    if w < 16 or h < 16:
        raise ValueError(f"size must be at least 16x16 pixels, got {w}x{h}")
    return w, h


def _shrink_for(image: np.ndarray, points: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Pre-shrink ``image`` (INTER_AREA) when the affine ``M`` would downscale it a lot."""
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    if scale >= 0.8:
        return image, points, 1.0
    h, w = image.shape[:2]
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    small, pts = geo.resize_with_points(image, points, size)
    return small, pts, size[0] / w


def _icao(image: np.ndarray, face: Face, out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """ICAO crop of an image and its landmarks; strong downscales go through INTER_AREA."""
    eyes = eye_centres(face)
    pts = np.asarray(face.landmarks, dtype=np.float64)
    crop, M = icao_crop(image, eyes, out_size)
    small, pts_s, s = _shrink_for(image, pts, M)
    if s != 1.0:
        crop, M = icao_crop(small, geo.scale_points(eyes, s, s), out_size)
    return crop, transform_points(pts_s, M)


@GENERATORS.register("landmark")
class LandmarkMorph(Generator):
    """Landmark-based morphs (complete and/or spliced).

    Args:
        alpha: sets both ``shape_alpha`` and ``texture_alpha`` (those given explicitly win).
        shape_alpha: weight of subject B in the geometry, in [0, 1] (default 0.5).
        texture_alpha: weight of subject B in the pixel blend, in [0, 1] (default 0.5).
        landmarks: face backend name (``"dlib"``, ``"mediapipe"``, ``"face-alignment"``,
            ``"file"``); both images must get the same landmark scheme.
        variants: which outputs to make, from ``("complete", "spliced")``.
        splice_into: ``"a"`` or ``"b"``: whose image the spliced face goes into.
        blend: ``"poisson"`` (seamless cloning) or ``"feather"`` for the spliced variant.
        color_match: match the morphed face's colours to the target's (L*a*b* mean/std
            over the face region) before splicing.
        feather: width of the splice transition (feathered edge, or Poisson mask
            erosion) as a fraction of the face size (square root of the hull area).
        size: output size: ``None`` (A's size, or 350x450 with ``crop="icao"``), an
            integer (square) or ``(width, height)``.
        crop: ``None`` or ``"icao"`` (passport-style crop, see the module docstring).
    """

    name = "landmark"
    version = "1"

    def __init__(
        self,
        *,
        alpha: Optional[float] = None,
        shape_alpha: Optional[float] = None,
        texture_alpha: Optional[float] = None,
        landmarks: str = "dlib",
        variants: Union[str, Sequence[str]] = VARIANTS,
        splice_into: str = "a",
        blend: str = "poisson",
        color_match: bool = True,
        feather: float = 0.05,
        size: Union[None, int, Sequence[int]] = None,
        crop: Optional[str] = None,
    ) -> None:
        base = 0.5 if alpha is None else _fraction("alpha", alpha)
        self.shape_alpha = base if shape_alpha is None else _fraction("shape_alpha", shape_alpha)
        self.texture_alpha = base if texture_alpha is None else _fraction("texture_alpha", texture_alpha)
        if not isinstance(landmarks, str) or not landmarks:
            raise ValueError(f"landmarks must be a face backend name, got {landmarks!r}")
        if landmarks not in FACE_BACKENDS:  # before any pair, not once per pair
            raise ValueError(
                f"landmarks: unknown face backend {landmarks!r}; valid names: "
                f"{', '.join(FACE_BACKENDS.names())}"
            )
        self.landmarks = landmarks
        if isinstance(variants, str):
            variants = [v for v in variants.split(",") if v.strip()]
        variants = [str(v).strip() for v in variants]
        bad = [v for v in variants if v not in VARIANTS]
        if bad or not variants or len(set(variants)) != len(variants):
            raise ValueError(
                f"variants must be distinct names from {', '.join(VARIANTS)}, got {variants!r}"
            )
        self.variants = variants
        if splice_into not in ("a", "b"):
            raise ValueError(f"splice_into must be 'a' or 'b', got {splice_into!r}")
        self.splice_into = splice_into
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        self.blend = blend
        self.color_match = bool(color_match)
        try:
            self.feather = float(feather)
        except (TypeError, ValueError):
            raise ValueError(f"feather must be a number, got {feather!r}") from None
        if not 0.0 <= self.feather <= 0.3:
            raise ValueError(f"feather must be in [0, 0.3] (a fraction of the face size), got {feather}")
        self.size = _parse_size(size)
        if crop is not None and crop not in CROPS:
            raise ValueError(f"crop must be None or one of {', '.join(CROPS)}, got {crop!r}")
        self.crop = crop

    # -- the Generator interface ------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "shape_alpha": self.shape_alpha,
            "texture_alpha": self.texture_alpha,
            "landmarks": self.landmarks,
            "variants": list(self.variants),
            "splice_into": self.splice_into,
            "blend": self.blend,
            "color_match": self.color_match,
            "feather": self.feather,
            "size": None if self.size is None else list(self.size),
            "crop": self.crop,
        }

    def output_tags(self) -> list[str]:
        return list(self.variants)

    def generate(self, a: Contributor, b: Contributor, *, seed: int = 0) -> list[MorphOutput]:
        img_a, img_b = read_image(a.path), read_image(b.path)
        face_a = get_face(self.landmarks, a.path, img_a)
        face_b = get_face(self.landmarks, b.path, img_b)
        return self.morph_images(img_a, img_b, face_a, face_b, names=(str(a.path), str(b.path)))

    # -- the work -----------------------------------------------------------------------
    def morph_images(
        self,
        img_a: np.ndarray,
        img_b: np.ndarray,
        face_a: Face,
        face_b: Face,
        *,
        names: tuple[str, str] = ("subject A", "subject B"),
    ) -> list[MorphOutput]:
        """Morph two decoded images given their faces (what :meth:`generate` does after I/O).

        Args:
            img_a, img_b: RGB uint8 ``(H, W, 3)`` (sizes may differ).
            face_a, face_b: their faces, with landmarks of the same scheme.
            names: how the two images are named in error messages.

        Returns:
            One :class:`MorphOutput` per requested variant, in :meth:`output_tags` order.
        """
        src_a, src_b = (f.source or n for f, n in zip((face_a, face_b), names))
        la = validate_landmarks(face_a.landmarks, img_a.shape, f"subject A ({src_a})")
        lb = validate_landmarks(face_b.landmarks, img_b.shape, f"subject B ({src_b})")
        if face_a.scheme != face_b.scheme or la.shape != lb.shape:
            raise LandmarkError(
                f"{names[0]} and {names[1]} have different landmark schemes "
                f"({face_a.scheme}, {len(la)} points from {src_a} vs {face_b.scheme}, "
                f"{len(lb)} points from {src_b})"
            )
        img_a, img_b, la, lb, aligned = self._frame(img_a, img_b, face_a, face_b, la, lb)
        size = geo.image_size(img_a)
        pa, pb = geo.with_boundary(la, size), geo.with_boundary(lb, size)
        dst = geo.average_points(pa, pb, self.shape_alpha)
        triangles = geo.triangulate(dst)
        res = geo.morph(img_a, img_b, la, lb, shape_alpha=self.shape_alpha,
                        texture_alpha=self.texture_alpha, triangles=triangles)
        extra = {
            "landmarks": self.landmarks,
            "scheme": face_a.scheme,
            "n_points": int(len(la)),
            "n_triangles": int(len(triangles)),
            "frame": [int(size[0]), int(size[1])],
            "b_aligned_to_a": aligned,
        }
        outputs = {"complete": res}
        if "spliced" in self.variants:
            outputs["spliced"] = self._splice(res, img_a, img_b, la, lb, face_a.scheme,
                                              dst[: len(la)], size)
        return [
            MorphOutput(
                image=outputs[v], tag=v, params={"variant": v},
                extra=dict(extra, **({"splice_into": self.splice_into, "blend": self.blend}
                                     if v == "spliced" else {})),
            )
            for v in self.variants
        ]

    def _frame(self, img_a, img_b, face_a, face_b, la, lb):
        """Bring both images and landmarks into the common output frame."""
        if self.crop == "icao":
            out = self.size or tuple(ICAO_OUT_SIZE)
            img_a, la = _icao(img_a, face_a, out)
            img_b, lb = _icao(img_b, face_b, out)
            return img_a, img_b, la, lb, False
        aligned = False
        if img_a.shape != img_b.shape:
            # map B into A's frame by the similarity that best fits its landmarks onto A's
            M = estimate_similarity(lb, la)
            img_b, lb, s = _shrink_for(img_b, lb, M)
            if s != 1.0:
                M = estimate_similarity(lb, la)
            h, w = img_a.shape[:2]
            img_b = cv2.warpAffine(img_b, M, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
            lb = transform_points(lb, M)
            aligned = True
        if self.size is not None:
            img_a, la = geo.resize_with_points(img_a, la, self.size)
            img_b, lb = geo.resize_with_points(img_b, lb, self.size)
        return img_a, img_b, la, lb, aligned

    def _splice(self, morph_img, img_a, img_b, la, lb, scheme, shape, size):
        """The morphed face put into the target's image (warped near the face only)."""
        target, tpts = (img_a, la) if self.splice_into == "a" else (img_b, lb)
        region = FACE_REGION.get(scheme)
        region_pts = shape if region is None else shape[list(region)]
        inside = geo.points_in_hull(shape, region_pts)
        # the target's face landmarks go onto the morph shape; a ring and the frame stay
        ring = geo.anchor_ring(region_pts, size, RING_SCALE)
        bd = geo.boundary_points(size)
        dst = np.vstack([shape[inside], ring, bd])
        src = np.vstack([tpts[inside], ring, bd])
        background = geo.warp_image(target, src, dst, triangles=geo.triangulate(dst))
        mask = geo.hull_mask(region_pts, size)
        face_size = float(np.sqrt(max(1.0, float((mask > 0).sum()))))
        radius = max(1, int(round(self.feather * face_size)))
        face = morph_img
        if self.color_match:
            face = geo.match_colour(morph_img, background, geo.erode_mask(mask, radius),
                                    apply_to=mask)
        if self.blend == "poisson":
            return geo.poisson_composite(face, background, geo.erode_mask(mask, radius))
        return geo.composite(face, background, geo.feather_mask(mask, radius))
