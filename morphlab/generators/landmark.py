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
  (``splice_into``, default A). The face region (``splice_region="extended"``, default)
  is the convex hull of the face landmarks of the morph shape (jaw line and eyebrows:
  for ``tem189`` the cheek/jaw contour and brows, not the hair line, ears or neck) grown
  by a forehead band above the brows and a jaw-neck ring (:func:`splice_region_points`;
  the mediapipe mesh, whose oval already reaches the hair line, gets the ring only).
  ``splice_region="hull"`` is the landmarks' hull alone, the region before the balance
  fix: it left A's forehead, jaw and neck (a pale band above the brows, A's jaw shadow
  below the morph's chin) and measurably leaned towards A (FRLL, 20 same-gender pairs:
  median dlib distance 0.45 to A vs 0.58 to B; extended: 0.51 vs 0.49;
  ``benchmarks/spliced_balance.py``). Because that region has the
  morph's shape while the target has its own, the *target is warped too*: its face
  landmarks are moved onto the morph shape while a ring of fixed anchor points
  (the hull scaled by 1.3 about its centre) and the frame stay put. So the target's
  hair, ears and shoulders are not blended (no ghosting), only gently displaced next
  to the face, and pixels outside the ring are exactly the target's. The morphed face
  (colour-matched to the target's face in L*a*b* by default) is then put in with
  Poisson cloning (``blend="poisson"``: ``cv2.seamlessClone``'s system, solved by
  :func:`morphlab.geometry.poisson_composite` with ``solver="dst"``) or a feathered mask
  (``blend="feather"``) whose transition lies inside the hull. Poisson cloning takes
  the low-frequency colour from the target's surroundings (it is what hides the seam),
  so the spliced face keeps about A's skin tone whatever ``color_match`` says.

FR-guided factor (``alpha="auto"``): per pair and variant, ``alpha_candidates`` factors
evenly spaced over ``alpha_range`` are tried (each for shape and texture), each morph is
embedded by the ``selection_systems`` at its known landmarks and compared with A and B
(embedded once per pair), and the factor with the best mean-over-systems minimum
similarity wins (:meth:`LandmarkMorph._search`). The manifest line of each morph records
the chosen factor (``params.shape_alpha``/``texture_alpha``), the selection systems
(``params.selection_systems``) and every candidate's similarities
(``extra.alpha_search``). Evaluate with other systems: ``map-score`` warns when a
selection system is among its evaluation systems. Cost: ``alpha_candidates`` times the
morphing plus one embedding per candidate, variant and selection system.

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
from morphlab.face.align import estimate_background
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

SPLICE_REGIONS = ("extended", "hull")

#: ``splice_region="extended"``: how far the region's hull points are pushed out, as
#: fractions of the eye-to-mouth vector (upwards, points above the eye line only: the
#: forehead) and of their distance from the hull's centre (all points: the jaw-neck
#: transition and temples). Schemes whose face region already reaches the hair line
#: (the mediapipe mesh's oval) get no forehead lift.
FOREHEAD_LIFT: dict[str, float] = {"dlib68": 0.3, "fan68": 0.3, "tem189": 0.3,
                                   "mediapipe468": 0.0, "mediapipe478": 0.0}
#: Outward push of every hull point (fraction of its distance from the region's
#: centroid), per scheme; the mediapipe oval already reaches the face's edge.
NECK_PUSH: dict[str, float] = {"mediapipe468": 0.06, "mediapipe478": 0.06}
#: ... and for every other scheme.
DEFAULT_NECK_PUSH = 0.2


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
    # outside the photo: its own background colour, never replicated edge pixels (a
    # cue detectors would learn; see the icao post-processing operator)
    fill = dict(border="constant", border_value=estimate_background(image))
    crop, M = icao_crop(image, eyes, out_size, **fill)
    small, pts_s, s = _shrink_for(image, pts, M)
    if s != 1.0:
        crop, M = icao_crop(small, geo.scale_points(eyes, s, s), out_size, **fill)
    return crop, transform_points(pts_s, M)


@GENERATORS.register("landmark")
class LandmarkMorph(Generator):
    """Landmark-based morphs (complete and/or spliced).

    Args:
        alpha: sets both ``shape_alpha`` and ``texture_alpha`` (those given explicitly win),
            or ``"auto"``: per pair and variant, the factor (one for shape and texture) is
            chosen among ``alpha_candidates`` evenly spaced values of ``alpha_range`` to
            maximise the morph's minimum similarity to both contributors under the
            ``selection_systems`` (see :meth:`LandmarkMorph._search`); every candidate's
            scores are recorded in the manifest (``extra["alpha_search"]``).
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
        splice_region: ``"extended"`` (default): the face hull plus a forehead band and
            the jaw-neck transition (see :func:`_extend`); ``"hull"``: the landmarks'
            convex hull only (before the balance fix; leans towards the target).
        alpha_range: ``(low, high)`` in [0, 1], the factors ``alpha="auto"`` searches.
        alpha_candidates: how many factors it tries (2 to 11).
        selection_systems: recognition system names (or instances) that score the
            candidates; evaluate with *other* systems (map-score warns otherwise).
    """

    name = "landmark"
    #: 2: extended splice region, ICAO padding with the photo's background, dlib's quick
    #: detection pass (a folder made by version 1 is not continued with version 2 morphs).
    #: 3: Poisson cloning solved with SciPy's DST (``poisson_composite(solver="dst")``,
    #: within 1 grey level of ``cv2.seamlessClone``) and colour statistics in double
    #: precision (``cv2.meanStdDev``): spliced pixels differ slightly from version 2
    version = "3"

    def __init__(
        self,
        *,
        alpha: Union[None, float, str] = None,
        shape_alpha: Optional[float] = None,
        texture_alpha: Optional[float] = None,
        landmarks: str = "dlib",
        variants: Union[str, Sequence[str]] = VARIANTS,
        splice_into: str = "a",
        blend: str = "poisson",
        color_match: bool = True,
        feather: float = 0.05,
        splice_region: str = "extended",
        size: Union[None, int, Sequence[int]] = None,
        crop: Optional[str] = None,
        alpha_range: Sequence[float] = (0.3, 0.7),
        alpha_candidates: int = 5,
        selection_systems: Union[str, Sequence[Any]] = ("mobilefacenet",),
    ) -> None:
        self.auto = isinstance(alpha, str) and alpha.strip().lower() == "auto"
        if self.auto and (shape_alpha is not None or texture_alpha is not None):
            raise ValueError("alpha='auto' searches shape and texture factor together: "
                             "do not give shape_alpha or texture_alpha with it")
        base = 0.5 if alpha is None or self.auto else _fraction("alpha", alpha)
        self._set_search(alpha_range, alpha_candidates, selection_systems)
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
        if splice_region not in SPLICE_REGIONS:
            raise ValueError(
                f"splice_region must be one of {', '.join(SPLICE_REGIONS)}, got {splice_region!r}")
        self.splice_region = splice_region
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

    def _set_search(self, alpha_range, alpha_candidates, selection_systems) -> None:
        try:
            lo, hi = (_fraction("alpha_range", v) for v in alpha_range)
        except TypeError:
            raise ValueError(f"alpha_range must be (low, high), got {alpha_range!r}") from None
        if not lo < hi:
            raise ValueError(f"alpha_range must be (low, high) with low < high, got {alpha_range!r}")
        self.alpha_range = (lo, hi)
        if isinstance(alpha_candidates, bool) or not isinstance(alpha_candidates, (int, np.integer)) \
                or not 2 <= alpha_candidates <= 11:
            raise ValueError(f"alpha_candidates must be an integer in [2, 11], got {alpha_candidates!r}")
        self.alpha_candidates = int(alpha_candidates)
        from morphlab.recognition.base import RECOGNITION, RecognitionSystem

        if isinstance(selection_systems, (str, RecognitionSystem)):
            selection_systems = [s.strip() for s in selection_systems.split(",")] \
                if isinstance(selection_systems, str) else [selection_systems]
        systems = list(selection_systems)
        if not systems:
            raise ValueError("selection_systems must name at least one recognition system")
        for sys_ in systems:
            if not isinstance(sys_, RecognitionSystem):
                RECOGNITION.get(sys_)  # KeyError listing the valid names
        self.selection_systems = systems
        self._selectors: Optional[list] = None

    def candidates(self) -> list[float]:
        """The factors ``alpha="auto"`` tries, ascending (rounded to 4 decimals)."""
        lo, hi = self.alpha_range
        return [round(float(v), 4) for v in np.linspace(lo, hi, self.alpha_candidates)]

    def _selection_names(self) -> list[str]:
        return [s if isinstance(s, str) else s.name for s in self.selection_systems]

    # -- the Generator interface ------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        if self.auto:
            search = {"shape_alpha": "auto", "texture_alpha": "auto",
                      "alpha_range": list(self.alpha_range),
                      "alpha_candidates": self.alpha_candidates,
                      "selection_systems": self._selection_names()}
        else:
            search = {"shape_alpha": self.shape_alpha, "texture_alpha": self.texture_alpha}
        return {
            **search,
            "landmarks": self.landmarks,
            "variants": list(self.variants),
            "splice_into": self.splice_into,
            "blend": self.blend,
            "color_match": self.color_match,
            "feather": self.feather,
            "splice_region": self.splice_region,
            "size": None if self.size is None else list(self.size),
            "crop": self.crop,
        }

    def output_tags(self) -> list[str]:
        return list(self.variants)

    @property
    def fork_safe(self) -> bool:
        """Whether the runner may fork its workers from the parent (:mod:`morphlab.workers`):
        yes, unless ``alpha="auto"`` (its recognition systems may use OpenMP or GPU
        runtimes, which do not survive a fork)."""
        return not self.auto

    def preload(self) -> None:
        """Load what every pair needs (the face backend's models, the numba kernels of
        :mod:`morphlab.geometry`) now, e.g. once in a parent before workers are forked."""
        from morphlab.face.base import create_backend

        load = getattr(create_backend(self.landmarks), "preload", None)
        if callable(load):
            load()
        geo.warm_up()

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
        extra = {
            "landmarks": self.landmarks,
            "scheme": face_a.scheme,
            "n_points": int(len(la)),
            "frame": [int(size[0]), int(size[1])],
            "b_aligned_to_a": aligned,
        }
        spliced = {"splice_into": self.splice_into, "blend": self.blend,
                   "splice_region": self.splice_region}
        if not self.auto:
            images, n_tri = self._variants(img_a, img_b, la, lb, face_a.scheme, size,
                                           self.shape_alpha, self.texture_alpha)
            return [
                MorphOutput(image=images[v], tag=v, params={"variant": v},
                            extra=dict(extra, n_triangles=n_tri,
                                       **(spliced if v == "spliced" else {})))
                for v in self.variants
            ]
        chosen = self._search(img_a, img_b, la, lb, face_a.scheme, size)
        return [
            MorphOutput(image=image, tag=v,
                        params={"variant": v, "shape_alpha": alpha, "texture_alpha": alpha},
                        extra=dict(extra, n_triangles=n_tri, alpha_search=search,
                                   **(spliced if v == "spliced" else {})))
            for v, (image, alpha, n_tri, search) in ((v, chosen[v]) for v in self.variants)
        ]

    def _variants(self, img_a, img_b, la, lb, scheme, size, shape_alpha, texture_alpha):
        """Every requested variant at one pair of factors: ``({tag: image}, n_triangles)``."""
        pa, pb = geo.with_boundary(la, size), geo.with_boundary(lb, size)
        dst = geo.average_points(pa, pb, shape_alpha)
        triangles = geo.triangulate(dst)
        res = geo.morph(img_a, img_b, la, lb, shape_alpha=shape_alpha,
                        texture_alpha=texture_alpha, triangles=triangles)
        outputs = {"complete": res}
        if "spliced" in self.variants:
            outputs["spliced"] = self._splice(res, img_a, img_b, la, lb, scheme,
                                              dst[: len(la)], size, shape_alpha, texture_alpha)
        return outputs, int(len(triangles))

    def _selectors_(self) -> list:
        """The selection systems, built on first use (so that the generator pickles cheaply)."""
        if self._selectors is None:
            from morphlab.recognition.base import create_system

            self._selectors = [s if not isinstance(s, str) else create_system(s)
                               for s in self.selection_systems]
        return self._selectors

    def _search(self, img_a, img_b, la, lb, scheme, size) -> dict[str, tuple]:
        """``alpha="auto"``: the best candidate factor per variant.

        Every candidate factor ``c`` (used for shape and texture) makes each variant; the
        morph is embedded by each selection system at its known landmarks (the morph
        shape ``(1 - c) A + c B``, no detection) and compared with A and B (embedded once
        per pair, in the morph frame). A candidate's score is the mean over the selection
        systems of ``min(similarity to A, similarity to B)``; the highest score wins, ties
        going to the candidate nearest 0.5, then to the smaller factor.

        Returns:
            ``{tag: (image, alpha, n_triangles, record)}``; ``record`` has the chosen
            factor, the selection systems and every candidate's similarities and score.
        """
        systems = self._selectors_()
        names = [s.name for s in systems]
        refs = []
        for s in systems:
            refs.append([s.embed(img, _face_at(pts, scheme)) for img, pts in ((img_a, la), (img_b, lb))])
        tried: dict[str, list[dict]] = {v: [] for v in self.variants}
        made: dict[str, dict[float, tuple]] = {v: {} for v in self.variants}
        for c in self.candidates():
            images, n_tri = self._variants(img_a, img_b, la, lb, scheme, size, c, c)
            face = _face_at(geo.average_points(la, lb, c), scheme)
            for v in self.variants:
                sims = {}
                for s, name, (ea, eb) in zip(systems, names, refs):
                    e = s.embed(images[v], face)
                    sims[name] = [round(s.compare(e, ea), 6), round(s.compare(e, eb), 6)]
                score = float(np.mean([min(x) for x in sims.values()]))
                tried[v].append({"alpha": c, "similarity_ab": sims, "score": round(score, 6)})
                made[v][c] = (images[v], n_tri)
        out = {}
        for v in self.variants:
            best = max(tried[v], key=lambda r: (r["score"], -abs(r["alpha"] - 0.5), -r["alpha"]))
            record = {"alpha": best["alpha"], "selection_systems": names,
                      "criterion": "mean over systems of min(similarity to A, to B)",
                      "candidates": tried[v]}
            image, n_tri = made[v][best["alpha"]]
            out[v] = (image, best["alpha"], n_tri, record)
        return out

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

    def _splice(self, morph_img, img_a, img_b, la, lb, scheme, shape, size, shape_alpha,
                texture_alpha):
        """The morphed face put into the target's image (warped near the face only)."""
        target, tpts = (img_a, la) if self.splice_into == "a" else (img_b, lb)
        region = list(FACE_REGION.get(scheme, range(len(shape))))
        region_pts = shape[region]
        inside = geo.points_in_hull(shape, region_pts)
        extra = {"shape": np.empty((0, 2)), "target": np.empty((0, 2))}
        if self.splice_region == "extended":
            idx, weights = _extension_weights(shape, region, scheme)
            lift = FOREHEAD_LIFT.get(scheme, 0.0)
            push = NECK_PUSH.get(scheme, DEFAULT_NECK_PUSH)
            ext = {k: _extend(p, idx, weights, region, scheme, lift, push, size)
                   for k, p in (("a", la), ("b", lb), ("shape", shape))}
            extra = {"shape": ext["shape"], "target": ext[self.splice_into]}
            region_pts = np.vstack([region_pts, ext["shape"]])
            # the face is morphed again with the extension points, so that the forehead
            # and the jaw-neck band of A and B are aligned in it, not only the landmarks;
            # only the rows of the region are used (pixels outside it never are)
            lo, hi = region_pts[:, 1].min(), region_pts[:, 1].max()
            rows = (max(0, int(np.floor(lo)) - 1), min(size[1], int(np.ceil(hi)) + 2))
            morph_img = geo.morph(img_a, img_b, np.vstack([la, ext["a"]]),
                                  np.vstack([lb, ext["b"]]), shape_alpha=shape_alpha,
                                  texture_alpha=texture_alpha, rows=rows)
        # the target's face landmarks go onto the morph shape; a ring and the frame stay
        ring = geo.anchor_ring(region_pts, size, RING_SCALE, max_gap=(
            _ring_gap(region_pts) if self.splice_region == "extended" else None))
        bd = geo.boundary_points(size)
        dst = np.vstack([shape[inside], extra["shape"], ring, bd])
        src = np.vstack([tpts[inside], extra["target"], ring, bd])
        triangles = geo.triangulate(dst)
        # rows no moving triangle reaches are the target's own: copied, not resampled
        background = geo.warp_image(target, src, dst, triangles=triangles,
                                    rows=geo.moving_rows(src, dst, triangles, size[1]))
        mask = geo.hull_mask(region_pts, size)
        face_size = float(np.sqrt(max(1.0, float((mask > 0).sum()))))
        radius = max(1, int(round(self.feather * face_size)))
        face = morph_img
        core = (geo.erode_mask(mask, radius)
                if self.color_match or self.blend == "poisson" else None)  # once per morph
        if self.color_match:
            face = geo.match_colour(morph_img, background, core, apply_to=mask)
        if self.blend == "poisson":
            return geo.poisson_composite(face, background, core, solver="dst")
        return geo.composite(face, background, geo.feather_mask(mask, radius))


def splice_region_points(shape: np.ndarray, scheme: str, size: Sequence[int],
                         splice_region: str = "extended") -> np.ndarray:
    """The points whose convex hull is the spliced face region of a morph shape.

    Args:
        shape: ``(N, 2)`` ``(x, y)`` landmarks of the morph (``scheme`` order).
        scheme: landmark scheme name (selects :data:`FACE_REGION`).
        size: ``(width, height)`` of the frame.
        splice_region: ``"extended"`` (the face landmarks plus the forehead and jaw-neck
            extension, :func:`_extend`) or ``"hull"`` (the face landmarks only).

    Returns:
        ``(K, 2)`` float64 ``(x, y)``.
    """
    shape = np.asarray(shape, dtype=np.float64)
    region = list(FACE_REGION.get(scheme, range(len(shape))))
    if splice_region == "hull":
        return shape[region]
    idx, weights = _extension_weights(shape, region, scheme)
    ext = _extend(shape, idx, weights, region, scheme, FOREHEAD_LIFT.get(scheme, 0.0),
                  NECK_PUSH.get(scheme, DEFAULT_NECK_PUSH), geo.as_size(size))
    return np.vstack([shape[region], ext])


def _ring_gap(region_pts: np.ndarray) -> float:
    """Anchor spacing of the splice's ring: a tenth of the region's size, so that no warp
    triangle reaches from the face across the ring to the frame."""
    lo, hi = region_pts.min(axis=0), region_pts.max(axis=0)
    return max(2.0, 0.1 * float(np.sqrt(np.prod(np.maximum(hi - lo, 1.0)))))


def _face_at(points: np.ndarray, scheme: str) -> Face:
    """A :class:`Face` at known landmarks (box: their bounding box)."""
    pts = np.asarray(points, dtype=np.float64)
    box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
    return Face(box=box, landmarks=pts, scheme=scheme)


def _eye_mouth(points: np.ndarray, scheme: str) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Mid-eye and mid-mouth points of a landmark set (``None`` for unknown schemes)."""
    from morphlab.face.schemes import SCHEME_POINTS, named_points

    if scheme not in SCHEME_POINTS:
        return None
    face = Face(box=np.zeros(4), landmarks=points, scheme=scheme)
    p = named_points(face, ("left_eye", "right_eye", "mouth_left", "mouth_right"))
    return (p[0] + p[1]) / 2.0, (p[2] + p[3]) / 2.0


def _extension_weights(shape: np.ndarray, region: list[int], scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Which region points are extended (the hull vertices of the morph shape's region,
    as indices into ``region``) and their forehead weights (1 well above the eye line,
    0 at or below it), both fixed per pair so that :func:`_extend` is linear in the points."""
    pts = shape[region]
    idx = cv2.convexHull(pts.astype(np.float32), returnPoints=False).reshape(-1)
    idx = np.sort(idx)
    em = _eye_mouth(shape, scheme)
    if em is None:
        return idx, np.zeros(len(idx))
    eye, mouth = em
    up = eye - mouth
    n = float(np.linalg.norm(up))
    if n < 1e-6:
        return idx, np.zeros(len(idx))
    height = (pts[idx] - eye) @ (up / n) / n  # in eye-to-mouth units above the eye line
    return idx, np.clip(height / 0.25, 0.0, 1.0)


def _extend(points: np.ndarray, idx: np.ndarray, weights: np.ndarray, region: list[int],
            scheme: str, lift: float, push: float, size: tuple[int, int]) -> np.ndarray:
    """Extension points of one landmark set: the region's hull vertices ``idx`` pushed
    out from the region's centroid by ``push`` and, above the eyes, lifted by ``lift``
    eye-to-mouth distances (the forehead). Linear in ``points`` (up to clipping into the
    frame), so the morph shape's extension is the blend of A's and B's.

    Returns:
        ``(len(idx), 2)`` float64 ``(x, y)``, clipped one pixel inside the frame.
    """
    pts = points[region]
    centre = pts.mean(axis=0)
    hull = pts[idx]
    out = hull + push * (hull - centre)
    em = _eye_mouth(points, scheme)
    if em is not None and lift:
        out = out + lift * weights[:, None] * (em[0] - em[1])[None, :]
    w, h = size
    out[:, 0] = np.clip(out[:, 0], 1.0, w - 2.0)
    out[:, 1] = np.clip(out[:, 1], 1.0, h - 2.0)
    return out
