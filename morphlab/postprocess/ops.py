"""Post-processing operators: ``name[:key=value,...]`` specs, parsing, application.

See :mod:`morphlab.postprocess` for what each operator does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, Sequence, Union

import numpy as np

from morphlab.face.segmentation import (BACKGROUND_MODELS, parse_colour, person_mask,
                                        replace_background)
from morphlab.io import encode_image, image_from_bytes

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------------------
# operators
# ----------------------------------------------------------------------------------------
@dataclass
class OpContext:
    """What an operator may need beyond the pixels.

    Attributes:
        source: the source image file.
        rng: this operator's random generator (seeded per image and operator).
        pristine: the image is still the unmodified content of ``source``.
        notes: filled by the operator with per-image decisions (``icao``: how the frame
            was filled; ``background``: the colour and the foreground fraction).
    """

    source: Optional[Path]
    rng: np.random.Generator
    pristine: bool = True
    #: what the operator decided for this image (recorded in the manifest line's step)
    notes: dict = field(default_factory=dict)


#: Operators by name.
OPS: dict[str, type["Operator"]] = {}


def register_op(name: str) -> Callable[[type], type]:
    """Class decorator registering an :class:`Operator` under ``name`` (a duplicate raises)."""

    def deco(cls: type) -> type:
        if name in OPS:
            raise ValueError(f"post-processing operator {name!r} is already registered")
        cls.name = name
        OPS[name] = cls
        return cls

    return deco


def _number(op: str, key: str, value: Any, *, lo: float, hi: float, integer: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{op}: {key} must be {kind}, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{op}: {key} must be in [{lo:g}, {hi:g}], got {value!r}")


@dataclass(frozen=True)
class Operator:
    """One post-processing step: a frozen set of parameters and ``__call__``.

    Subclasses are dataclasses whose fields are the parameters (JSON scalars with
    defaults); they validate them in ``__post_init__`` and implement
    ``__call__(image, ctx) -> image`` on RGB uint8 ``(H, W, 3)`` arrays.
    """

    name: ClassVar[str] = ""
    #: Old parameter spellings → their current names (deprecated aliases: parsed with a
    #: warning, recorded under the current name; :func:`cache_spec` keys them as before).
    renamed: ClassVar[dict[str, str]] = {}

    def params(self) -> dict[str, Any]:
        """Every parameter, defaults included."""
        return asdict(self)

    def spec(self) -> str:
        """The canonical spec ``name:key=value,...`` (all set parameters, sorted)."""
        items = sorted((k, v) for k, v in self.params().items() if v is not None)
        body = ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in items)
        return f"{self.name}:{body}" if body else self.name

    def __call__(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


@register_op("jpeg")
@dataclass(frozen=True)
class Jpeg(Operator):
    """JPEG re-compression at ``quality`` (the last one is the file written).

    ``q`` is the deprecated spelling of ``quality`` (``jpeg:q=75``): it parses to the same
    operator, with the same recorded spec ``jpeg:quality=75``.
    """

    renamed: ClassVar[dict[str, str]] = {"q": "quality"}

    quality: int = 75

    def __post_init__(self) -> None:
        _number("jpeg", "quality", self.quality, lo=1, hi=100, integer=True)

    def encode(self, image: np.ndarray) -> bytes:
        return encode_image(image, ".jpg", quality=self.quality)

    def __call__(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:
        return image_from_bytes(self.encode(image), "jpeg")


_INTERPOLATIONS = ("area", "linear", "cubic")


@register_op("resize")
@dataclass(frozen=True)
class Resize(Operator):
    """Resample to ``width`` x ``height`` (one alone keeps the aspect) or by ``scale``."""

    width: Optional[int] = None
    height: Optional[int] = None
    scale: Optional[float] = None
    interpolation: str = "area"

    def __post_init__(self) -> None:
        if self.scale is None and self.width is None and self.height is None:
            raise ValueError("resize: give width and/or height, or scale")
        if self.scale is not None and (self.width is not None or self.height is not None):
            raise ValueError("resize: give either scale or width/height, not both")
        for key in ("width", "height"):
            if getattr(self, key) is not None:
                _number("resize", key, getattr(self, key), lo=1, hi=100_000, integer=True)
        if self.scale is not None:
            _number("resize", "scale", self.scale, lo=1e-3, hi=100)
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"resize: interpolation must be one of {', '.join(_INTERPOLATIONS)}, "
                f"got {self.interpolation!r}"
            )

    def size(self, w: int, h: int) -> tuple[int, int]:
        """Output ``(width, height)`` for an input of ``w`` x ``h``."""
        if self.scale is not None:
            return max(1, round(w * self.scale)), max(1, round(h * self.scale))
        if self.width is not None and self.height is not None:
            return self.width, self.height
        if self.width is not None:
            return self.width, max(1, round(h * self.width / w))
        return max(1, round(w * self.height / h)), self.height

    def __call__(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        flag = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
        out = cv2.resize(image, self.size(w, h), interpolation=flag[self.interpolation])
        return np.clip(out, 0, 255).astype(np.uint8)


def _colour(op: str, key: str, value: Any) -> tuple[int, int, int]:
    """``"240,240,240"`` / ``[240, 240, 240]`` → ``(240, 240, 240)``."""
    return parse_colour(value, f"{op}: {key}")


_BACKENDS: dict[tuple[int, str], Any] = {}
#: ``icao`` fill modes besides an explicit ``R,G,B`` colour.
ICAO_FILLS = ("background", "crop")


@register_op("icao")
@dataclass(frozen=True)
class Icao(Operator):
    """Passport-photo geometry (:func:`morphlab.face.align.icao_crop`) from the eye centres.

    Where the ICAO frame reaches beyond the source image it is never filled by
    replicating the edge pixels (streaks a detector could learn). ``fill`` chooses:

    - ``background`` (default): pad with one uniform colour, the image's estimated
      background (:func:`morphlab.face.align.estimate_background`; exact after the
      ``background`` operator);
    - ``R,G,B``: pad with that colour;
    - ``crop``: zoom in about the eye midpoint to the largest frame of the same aspect
      that lies inside the image (no padding; the face is then larger than
      ``eye_distance`` asks, and the line says by how much).

    Each manifest line records the choice (``op_notes``): ``fill``, the pad ``colour``
    and ``padded_fraction`` of the frame, or the ``zoom`` and effective ``eye_distance``;
    and the image → frame ``matrix`` (``(2, 3)``, as ``cv2.warpAffine``).
    """

    width: int = 350
    height: int = 450
    backend: str = "dlib"
    eye_distance: float = 0.25
    eye_line: float = 0.45
    fill: str = "background"

    def __post_init__(self) -> None:
        _number("icao", "width", self.width, lo=2, hi=100_000, integer=True)
        _number("icao", "height", self.height, lo=2, hi=100_000, integer=True)
        _number("icao", "eye_distance", self.eye_distance, lo=0.01, hi=0.99)
        _number("icao", "eye_line", self.eye_line, lo=0.01, hi=0.99)
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"icao: backend must be a face backend name, got {self.backend!r}")
        if isinstance(self.fill, (list, tuple)):  # [r, g, b] from Python: canonical string
            object.__setattr__(self, "fill", ",".join(str(v) for v in _colour("icao", "fill", self.fill)))
        if not isinstance(self.fill, str) or (self.fill not in ICAO_FILLS and "," not in self.fill):
            raise ValueError(f"icao: fill must be {', '.join(ICAO_FILLS)} or an R,G,B colour, "
                             f"got {self.fill!r}")
        if self.fill not in ICAO_FILLS:
            rgb = _colour("icao", "fill", self.fill)
            object.__setattr__(self, "fill", ",".join(str(v) for v in rgb))

    def eyes(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:
        """``(2, 2)`` eye centres of the face in ``image`` (cached while pristine)."""
        from morphlab.face.base import create_backend
        from morphlab.face.cache import get_face
        from morphlab.face.schemes import eye_centres

        if ctx.pristine and ctx.source is not None:
            face = get_face(self.backend, ctx.source, image)
        else:  # the pixels differ from the file: detect on them, uncached
            key = (os.getpid(), self.backend)
            if key not in _BACKENDS:
                _BACKENDS[key] = create_backend(self.backend)
            face = _BACKENDS[key].landmarks(image, source=ctx.source)
        return eye_centres(face)

    def frame(self, image: np.ndarray, eyes: np.ndarray) -> tuple[np.ndarray, dict]:
        """The image → frame matrix and the notes (fill decision) for this image."""
        from morphlab.face.align import fit_inside, icao_transform, outside_mask

        size = (self.width, self.height)
        M = icao_transform(eyes, size, eye_distance=self.eye_distance, eye_line=self.eye_line)
        src = (image.shape[1], image.shape[0])
        if self.fill == "crop":
            M, zoom = fit_inside(M, src, size, (self.width / 2.0, self.eye_line * self.height))
            return M, {"fill": "crop", "zoom": round(zoom, 6),
                       "eye_distance": round(self.eye_distance * zoom, 6)}
        padded = float(outside_mask(M, src, size).mean())
        return M, {"fill": self.fill, "padded_fraction": round(padded, 6)}

    def __call__(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:
        import cv2

        from morphlab.face.align import estimate_background

        M, notes = self.frame(image, self.eyes(image, ctx))
        notes["matrix"] = [[float(v) for v in row] for row in M]
        if self.fill == "crop":
            colour = (0, 0, 0)  # never sampled: the frame lies inside the image
        elif self.fill == "background":
            colour = estimate_background(image)
        else:
            colour = _colour("icao", "fill", self.fill)
        if self.fill != "crop":
            notes["colour"] = list(colour)
        ctx.notes.update(notes)
        return cv2.warpAffine(image, M, (self.width, self.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(colour))


@register_op("background")
@dataclass(frozen=True)
class Background(Operator):
    """Replace the background with a uniform colour (mediapipe selfie segmentation).

    The person mask of mediapipe 0.10.21's selfie segmentation (``model=general``, the
    256x256 model; ``landscape``, 144x256; both shipped inside the package) is smoothed
    with a Gaussian of ``feather`` x the shorter image side (a soft edge, no halo of
    hard steps), values below 1/255 set to 0 and above 254/255 to 1, and the image
    composited over ``colour``: ``out = mask * image + (1 - mask) * colour``, rounded.
    Everything outside the person is exactly ``colour``. Deterministic (same pixels, same
    output); the manifest line records the colour and the foreground fraction.
    """

    colour: str = "240,240,240"
    feather: float = 0.004
    model: str = "general"

    def __post_init__(self) -> None:
        rgb = _colour("background", "colour", self.colour)
        object.__setattr__(self, "colour", ",".join(str(v) for v in rgb))
        _number("background", "feather", self.feather, lo=0, hi=0.1)
        if self.model not in BACKGROUND_MODELS:
            raise ValueError(f"background: model must be one of {', '.join(BACKGROUND_MODELS)}, "
                             f"got {self.model!r}")

    def mask(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` float32 person mask in [0, 1] (1 = person), feathered and clamped."""
        return person_mask(image, model=self.model, feather=self.feather)

    def __call__(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:
        out, notes = replace_background(image, _colour("background", "colour", self.colour),
                                        model=self.model, feather=self.feather)
        ctx.notes.update(notes)
        return out


def _bayer(n: int) -> np.ndarray:
    """The ``n`` x ``n`` Bayer dither matrix (``n`` a power of 2), thresholds in (0, 1)."""
    m = np.zeros((1, 1), dtype=np.float64)
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return ((m + 0.5) / m.size).astype(np.float32)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@register_op("print-scan")
@dataclass(frozen=True)
class PrintScan(Operator):
    """Print-and-scan simulation (see the module docstring for the steps)."""

    dpi: int = 300
    width_mm: float = 35.0
    saturation: float = 0.85
    black: float = 0.06
    white: float = 0.97
    halftone: int = 4
    blur: float = 0.7
    colour: float = 0.04
    noise: float = 2.0
    keep_size: bool = True

    def __post_init__(self) -> None:
        op = "print-scan"
        _number(op, "dpi", self.dpi, lo=30, hi=4800, integer=True)
        _number(op, "width_mm", self.width_mm, lo=5, hi=1000)
        _number(op, "saturation", self.saturation, lo=0, hi=2)
        _number(op, "black", self.black, lo=0, hi=0.5)
        _number(op, "white", self.white, lo=0.5, hi=1)
        _number(op, "halftone", self.halftone, lo=0, hi=16, integer=True)
        _number(op, "blur", self.blur, lo=0, hi=20)
        _number(op, "colour", self.colour, lo=0, hi=0.5)
        _number(op, "noise", self.noise, lo=0, hi=64)
        if not isinstance(self.keep_size, bool):
            raise ValueError(f"{op}: keep_size must be true or false, got {self.keep_size!r}")

    def __call__(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        rng = ctx.rng
        # 1. resolution loss: the print's grid at the scan resolution
        sw = max(8, round(self.width_mm / 25.4 * self.dpi))
        sh = max(8, round(sw * h / w))
        x = image.astype(np.float32) / 255.0
        x = cv2.resize(x, (sw, sh), interpolation=cv2.INTER_AREA if sw < w else cv2.INTER_CUBIC)
        # 2. print gamut: less saturation, compressed tonal range
        lum = (x @ _LUMA)[..., None]
        x = np.clip(lum + self.saturation * (x - lum), 0.0, 1.0)
        x = self.black + (self.white - self.black) * x
        # 3. halftone: binary C/M/Y dots at the printer resolution, integrated by the scanner
        f = self.halftone
        if f > 1:
            big = cv2.resize(x, (sw * f, sh * f), interpolation=cv2.INTER_LINEAR)
            tile = _bayer(8)
            reps = (sh * f // 8 + 2, sw * f // 8 + 2)
            dots = np.empty_like(big)
            for c, (dy, dx) in enumerate(((0, 0), (3, 5), (6, 2))):  # one screen per ink
                thr = np.tile(tile, reps)[dy:dy + sh * f, dx:dx + sw * f]
                dots[..., c] = (1.0 - big[..., c]) > thr
            x = cv2.resize(1.0 - dots, (sw, sh), interpolation=cv2.INTER_AREA)
        # 4. blur: ink spread and scanner optics
        if self.blur > 0:
            x = cv2.GaussianBlur(x, (0, 0), self.blur)
        # 5. colour shift: per-channel gain/offset and a gamma, drawn per image
        c = self.colour
        gain = 1.0 + rng.uniform(-c, c, 3)
        offset = rng.uniform(-c, c, 3) / 2.0
        gamma = 1.0 + rng.uniform(-c, c)
        x = np.clip(x * gain.astype(np.float32) + offset.astype(np.float32), 0.0, 1.0) ** gamma
        # 6. sensor noise
        if self.noise > 0:
            x = x + rng.normal(0.0, self.noise / 255.0, x.shape).astype(np.float32)
        out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
        # 7. back to the input size
        if self.keep_size and (sw, sh) != (w, h):
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
        return out


_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]*)?$")
#: Deprecated parameter spellings already warned about in this process (each once).
_WARNED: set[str] = set()


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _split(spec: str) -> tuple[type["Operator"], list[str]]:
    """``"name:k=v,..."`` → (operator class, its ``k=v`` items); colours ``R,G,B`` stay one."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a post-processing operator is a spec like 'jpeg:quality=75', got {spec!r}")
    name, _, body = spec.strip().partition(":")
    name = name.strip()
    if name not in OPS:
        raise KeyError(
            f"unknown post-processing operator {name!r} in {spec!r}; valid names: "
            f"{', '.join(sorted(OPS))}"
        )
    items: list[str] = []
    for item in filter(None, (x.strip() for x in body.split(","))):
        if "=" not in item and items and _NUMBER.match(item):
            items[-1] += "," + item  # a colour R,G,B continues the previous value
        else:
            items.append(item)
    return OPS[name], items


def _key(item: str) -> str:
    return item.partition("=")[0].strip().replace("-", "_")


def _warn_renamed(op: str, old: str, new: str) -> None:
    """One warning per process: ``jpeg:q= is deprecated …: use jpeg:quality=``."""
    if f"{op}:{old}" in _WARNED:
        return
    _WARNED.add(f"{op}:{old}")
    warnings.warn(f"{op}:{old}= is deprecated and will be removed in the next release: use "
                  f"{op}:{new}=", FutureWarning, stacklevel=4)


def parse_op(spec: Union[str, Operator], *, warn: bool = True) -> Operator:
    """``"jpeg:quality=75"`` → :class:`Jpeg` ``(quality=75)``; an :class:`Operator` is
    returned as is.

    A deprecated parameter spelling (``jpeg:q=75``, see :attr:`Operator.renamed`) gives
    the same operator, with a :class:`FutureWarning` (once per process; none with
    ``warn=False``, for specs read back from a run's records).

    Raises:
        KeyError: unknown operator name (the message lists the valid ones).
        ValueError: malformed spec, unknown parameter (valid ones listed), bad value.
    """
    if isinstance(spec, Operator):
        return spec
    cls, items = _split(spec)
    valid = [f.name for f in fields(cls)]
    params: dict[str, Any] = {}
    given: dict[str, str] = {}  # current name → the deprecated spelling used
    for item in items:
        _, sep, raw = item.partition("=")
        key = _key(item)
        if not sep or not key:
            raise ValueError(f"{spec!r}: expected name:key=value,key=value; got {item!r}")
        if key in cls.renamed:
            if warn:
                _warn_renamed(cls.name, key, cls.renamed[key])
            given[cls.renamed[key]] = key
            key = cls.renamed[key]
        if key not in valid:
            raise ValueError(
                f"{spec!r}: {cls.name} has no parameter {key!r}; valid parameters: "
                f"{', '.join(valid) or '(none)'}"
            )
        if key in params:
            raise ValueError(f"{spec!r}: parameter {key!r} given twice")
        params[key] = _parse_value(raw.strip())
    try:
        return cls(**params)
    except ValueError as exc:  # a bad value is named as the user spelled its parameter
        msg = str(exc)
        for new, old in given.items():
            msg = msg.replace(f"{cls.name}: {new} ", f"{cls.name}: {old} ", 1)
        raise ValueError(msg) from None


def same_ops(recorded: Sequence[Any], specs: Sequence[str]) -> bool:
    """Do the specs a run recorded (``run.json``'s ``ops``) mean the canonical ``specs``?

    True also when they were recorded in a deprecated spelling (``jpeg:q=75`` for
    ``jpeg:quality=75``); False for anything unparsable.
    """
    if not isinstance(recorded, (list, tuple)) or len(recorded) != len(specs):
        return False
    try:
        return [parse_op(str(r), warn=False).spec() for r in recorded] == list(specs)
    except (KeyError, ValueError, TypeError):
        return False


def cache_spec(spec: str) -> str:
    """The text a cache keys ``spec`` under: ``spec`` itself, with each renamed parameter
    written under its original name (``jpeg:quality=75`` → ``jpeg:q=75``).

    So a cache keyed before a parameter was renamed stays valid whichever spelling a
    configuration now uses; anything else in the text is kept as it is (a changed
    spelling of another parameter is another key, as before).
    """
    if not isinstance(spec, str) or ":" not in spec:
        return spec
    try:
        cls, _ = _split(spec)
    except (KeyError, ValueError):
        return spec
    old_of = {new: old for old, new in cls.renamed.items()}
    if not old_of:
        return spec
    head, _, body = spec.partition(":")
    pieces = []
    for piece in body.split(","):
        key_text, sep, rest = piece.partition("=")
        key = _key(piece)
        if sep and key in old_of:
            piece = key_text.replace(key_text.strip(), old_of[key], 1) + sep + rest
        pieces.append(piece)
    return f"{head}:{','.join(pieces)}"


def parse_ops(specs: Sequence[Union[str, Operator]]) -> list[Operator]:
    """Parse several specs (see :func:`parse_op`)."""
    if isinstance(specs, (str, Operator)):
        specs = [specs]
    return [parse_op(s) for s in specs]


def image_seed(seed: int, sha256: str) -> int:
    """Per-image seed in ``[0, 2**32)``: sha256 of ``"<seed>:<image sha256>"``, 4 bytes."""
    digest = hashlib.sha256(f"{int(seed)}:{sha256}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big")


def apply_ops(
    image: np.ndarray,
    ops: Sequence[Union[str, Operator]],
    *,
    seed: int = 0,
    source: Optional[PathLike] = None,
    notes: Optional[list] = None,
) -> tuple[np.ndarray, Optional[bytes]]:
    """Apply operators in order.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        ops: specs or :class:`Operator` instances.
        seed: seeds every operator's random generator (operator ``i`` gets
            ``default_rng([seed, i])``); pass :func:`image_seed` for per-image draws.
        source: the file ``image`` was read from (the ``icao`` operator uses its cached
            landmarks while the pixels are unmodified).
        notes: a list that receives ``{"op": spec, **notes}`` for every operator that
            recorded a per-image decision (``icao``, ``background``).

    Returns:
        ``(image, encoded)``: the result, and the JPEG bytes when the last operator is
        ``jpeg`` (``image`` is then their decoding), else ``None``.
    """
    ops = parse_ops(ops)
    src = Path(source) if source is not None else None
    encoded: Optional[bytes] = None
    for i, op in enumerate(ops):
        ctx = OpContext(src, np.random.default_rng([int(seed), i]), pristine=i == 0)
        if isinstance(op, Jpeg) and i == len(ops) - 1:
            encoded = op.encode(image)
            image = image_from_bytes(encoded, "jpeg")
        else:
            image = op(image, ctx)
        if notes is not None and ctx.notes:
            notes.append({"op": op.spec(), **ctx.notes})
    return image, encoded


def output_suffix(ops: Sequence[Operator]) -> str:
    """``.jpg`` when the last operator is ``jpeg``, else ``.png`` (lossless)."""
    return ".jpg" if ops and isinstance(ops[-1], Jpeg) else ".png"
