"""Post-processing applied identically to morphs and bona fide images.

A detector must not learn the processing instead of the morph, so whatever a morph goes
through on its way to a document (cropping to passport geometry, printing and scanning,
JPEG compression) is applied, with the same parameters, to the bona fide images it is
compared with. Operators are written as ``name[:key=value,...]`` specs:

``jpeg:q=75``
    JPEG re-compression at quality ``q`` (1–100; libjpeg's standard tables scaled by
    ``q``, 4:2:0 chroma subsampling). When it is the **last** operator, the file written
    *is* that JPEG (``.jpg``, no second encoding), so its quantisation tables say ``q``.
``resize:width=413,height=531`` / ``resize:scale=0.5``
    plain resampling (``interpolation=area|linear|cubic``, default area); one of
    ``width``/``height`` alone keeps the aspect ratio.
``icao[:width=350,height=450,backend=dlib,eye_distance=0.25,eye_line=0.45]``
    passport-photo geometry with :func:`morphlab.face.align.icao_crop`: eyes level, face
    centred, eye distance and eye line at the ICAO-style fractions of the frame. The eye
    centres come from a face backend (cached by image content when the operator sees
    the unmodified source file).
``print-scan[:dpi=300,width_mm=35,halftone=4,blur=0.7,noise=2,colour=0.04,...]``
    a documented print-and-scan simulation, in this order:

    1. **resolution loss** — the image is resampled to the pixel grid of a print
       ``width_mm`` wide scanned at ``dpi`` (default a 35 mm passport photo at 300 dpi:
       413 px wide);
    2. **print gamut** — saturation scaled by ``saturation`` (0.85) and the tonal range
       compressed to ``[black, white]`` (0.06–0.97: ink is never black, paper never
       pure white);
    3. **halftone** — at ``halftone``× the scan resolution (default 4, i.e. a 1200 dpi
       printer) each C/M/Y ink layer is binarised with an ordered 8x8 Bayer dither
       (screens shifted per ink), then integrated back to the scan grid by area
       averaging (0 or 1 turns this step off);
    4. **blur** — Gaussian, ``blur`` scan pixels (ink spread + scanner optics);
    5. **colour shift** — per channel gain ``1 ± colour``, offset ``± colour/2`` and a
       common gamma ``1 ± colour``, drawn at random;
    6. **noise** — Gaussian sensor noise of standard deviation ``noise`` (8-bit units);
    7. back to 8 bits, and (``keep_size=true``, the default) resampled to the input
       size, so that geometry-dependent steps downstream are unchanged.

    The random draws come from a generator seeded by the set's ``seed`` and the source
    image's sha256 (:func:`image_seed`): the same image and seed give the same bytes, in
    any order and any number of worker processes; another seed gives other noise.

Sets: :func:`postprocess_set` reads an attack set (its ``manifest.jsonl``, see
:mod:`morphlab.generators.runner`), a set written by this module, or a plain folder of
(bona fide) images, and writes ``OUT_DIR`` with the processed images, ``run.json`` and a
``manifest.jsonl`` following the runner's conventions (one JSON object per line, keys
sorted, ``file`` relative to the folder, ``sha256``; crash-safe and resumable the same
way — :func:`morphlab.generators.runner.prepare_out_dir`). Each line points back to its
source through ``postprocess``, a list with one entry per processing step::

    "postprocess": [{"ops": ["icao:…", "print-scan:…", "jpeg:q=75"], "seed": 0,
                     "image_seed": 123456,
                     "source": {"file": "0001_002_003_complete.png",
                                "path": "/abs/…/0001_002_003_complete.png",
                                "sha256": "…", "manifest": "/abs/…/manifest.jsonl"}}]

A morph keeps every key of its attack-set line (generator, pair, contributors…) with
``file``/``sha256`` replaced and ``"kind": "morph"``, so the processed set is itself an
attack set for :func:`~morphlab.generators.runner.load_manifest` and ``map-score``. A bona
fide image gets ``"kind": "bona-fide"``, its source's ``relpath`` and whatever the caller
knows (``subject``, ``capture``, ``role``); read either kind with :func:`load_set`.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence, Union

import numpy as np

from morphlab import __version__
from morphlab.generators.runner import (
    MANIFEST_NAME,
    RUN_NAME,
    dumps_record,
    load_manifest,
    manifest_records,
    prepare_out_dir,
    verified_record,
)
from morphlab.io import (
    IMAGE_SUFFIXES,
    atomic_write_bytes,
    atomic_write_text,
    encode_image,
    image_from_bytes,
    read_image,
    sha256_bytes,
    sha256_file,
)

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Value of ``run.json``'s ``format`` for a post-processed set.
SET_FORMAT = "morphlab-postprocessed"
#: run.json keys that must agree for a post-processing run to be continued.
CONFIG_KEYS = ("format", "format_version", "ops", "seed", "input_kind")
#: ``input_kind`` values.
ATTACK_SET, IMAGES = "attack-set", "images"
#: ``kind`` of the manifest lines.
MORPH, BONA_FIDE = "morph", "bona-fide"


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
    """

    source: Optional[Path]
    rng: np.random.Generator
    pristine: bool = True


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
    """JPEG re-compression at quality ``q`` (the last one is the file written)."""

    q: int = 75

    def __post_init__(self) -> None:
        _number("jpeg", "q", self.q, lo=1, hi=100, integer=True)

    def encode(self, image: np.ndarray) -> bytes:
        return encode_image(image, ".jpg", quality=self.q)

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


_BACKENDS: dict[tuple[int, str], Any] = {}


@register_op("icao")
@dataclass(frozen=True)
class Icao(Operator):
    """Passport-photo geometry (:func:`morphlab.face.align.icao_crop`) from the eye centres."""

    width: int = 350
    height: int = 450
    backend: str = "dlib"
    eye_distance: float = 0.25
    eye_line: float = 0.45

    def __post_init__(self) -> None:
        _number("icao", "width", self.width, lo=2, hi=100_000, integer=True)
        _number("icao", "height", self.height, lo=2, hi=100_000, integer=True)
        _number("icao", "eye_distance", self.eye_distance, lo=0.01, hi=0.99)
        _number("icao", "eye_line", self.eye_line, lo=0.01, hi=0.99)
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"icao: backend must be a face backend name, got {self.backend!r}")

    def __call__(self, image: np.ndarray, ctx: OpContext) -> np.ndarray:
        from morphlab.face.align import icao_crop
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
        crop, _ = icao_crop(
            image, eye_centres(face), (self.width, self.height),
            eye_distance=self.eye_distance, eye_line=self.eye_line,
        )
        return crop


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


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_op(spec: Union[str, Operator]) -> Operator:
    """``"jpeg:q=75"`` → :class:`Jpeg` ``(q=75)``; an :class:`Operator` is returned as is.

    Raises:
        KeyError: unknown operator name (the message lists the valid ones).
        ValueError: malformed spec, unknown parameter (valid ones listed), bad value.
    """
    if isinstance(spec, Operator):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a post-processing operator is a spec like 'jpeg:q=75', got {spec!r}")
    name, _, body = spec.strip().partition(":")
    name = name.strip()
    if name not in OPS:
        raise KeyError(
            f"unknown post-processing operator {name!r} in {spec!r}; valid names: "
            f"{', '.join(sorted(OPS))}"
        )
    cls = OPS[name]
    valid = [f.name for f in fields(cls)]
    params: dict[str, Any] = {}
    for item in filter(None, (x.strip() for x in body.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{spec!r}: expected name:key=value,key=value; got {item!r}")
        if key not in valid:
            raise ValueError(
                f"{spec!r}: {name} has no parameter {key!r}; valid parameters: "
                f"{', '.join(valid) or '(none)'}"
            )
        if key in params:
            raise ValueError(f"{spec!r}: parameter {key!r} given twice")
        params[key] = _parse_value(raw.strip())
    return cls(**params)


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
) -> tuple[np.ndarray, Optional[bytes]]:
    """Apply operators in order.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        ops: specs or :class:`Operator` instances.
        seed: seeds every operator's random generator (operator ``i`` gets
            ``default_rng([seed, i])``); pass :func:`image_seed` for per-image draws.
        source: the file ``image`` was read from (the ``icao`` operator uses its cached
            landmarks while the pixels are unmodified).

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
    return image, encoded


def output_suffix(ops: Sequence[Operator]) -> str:
    """``.jpg`` when the last operator is ``jpeg``, else ``.png`` (lossless)."""
    return ".jpg" if ops and isinstance(ops[-1], Jpeg) else ".png"


# ----------------------------------------------------------------------------------------
# sets
# ----------------------------------------------------------------------------------------
@dataclass
class PostprocessSummary:
    """What :func:`postprocess_set` did (counts of items = images of the source)."""

    out_dir: Path
    manifest: Path
    items: int
    skipped: int = 0
    processed: int = 0
    failed: int = 0
    failures: list[dict] = field(default_factory=list)


@dataclass
class _Item:
    src: Path
    name: str
    record: dict  # the output line without file/sha256/postprocess
    history: list  # earlier postprocess steps
    source_ref: dict  # {"file"|"relpath", "path", "sha256"?, "manifest"?}


def _process(task: tuple) -> dict:
    """Worker: read, process, write one image; ``{"name", "sha256", "image_seed"}`` or error."""
    src, dst, ops, seed, expected = task
    try:
        data = Path(src).read_bytes()
        sha = sha256_bytes(data)
        if expected and sha != expected:
            raise ValueError(f"{src}: does not match the sha256 its manifest records (modified?)")
        iseed = image_seed(seed, sha)
        image = read_image(src)
        image, encoded = apply_ops(image, ops, seed=iseed, source=src)
        if encoded is None:
            encoded = encode_image(image, Path(dst).suffix)
        atomic_write_bytes(dst, encoded)
        return {"name": Path(dst).name, "sha256": sha256_bytes(encoded),
                "source_sha256": sha, "image_seed": iseed}
    except Exception as exc:  # recorded as a failed line, the run goes on
        msg = str(exc).strip().replace("\n", " ")
        return {"name": Path(dst).name, "error": f"{type(exc).__name__}: {msg}"}


def _read_run(folder: Path) -> dict:
    run = folder / RUN_NAME
    if not run.is_file():
        return {}
    try:
        data = json.loads(run.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _unique_names(rels: Sequence[str], suffix: str) -> list[str]:
    """Output names: the source stems if unique, else the relative paths with ``/`` → ``_``."""
    stems = [Path(r).stem for r in rels]
    if len(set(stems)) == len(stems):
        return [s + suffix for s in stems]
    flat = [Path(r).with_suffix("").as_posix().replace("/", "_") for r in rels]
    if len(set(flat)) != len(flat):
        dup = sorted({f for f in flat if flat.count(f) > 1})
        raise ValueError(f"several source images would be written as {', '.join(dup[:5])}")
    return [f + suffix for f in flat]


def image_items(
    paths: Sequence[PathLike],
    root: PathLike,
    *,
    extra: Optional[Sequence[Mapping[str, Any]]] = None,
) -> list[dict]:
    """Bona fide inputs for :func:`postprocess_set`: ``{"path", "relpath", **extra}`` dicts.

    Args:
        paths: image files under ``root``.
        root: their dataset folder (``relpath`` is relative to it).
        extra: per image, keys copied into its manifest line (``subject``, ``capture``,
            ``role``…).
    """
    root_p = Path(root).resolve()
    out = []
    for i, p in enumerate(paths):
        full = Path(p).resolve()
        rec = {"path": str(full), "relpath": Path(os.path.relpath(full, root_p)).as_posix()}
        if extra is not None:
            rec.update(extra[i])
        out.append(rec)
    return out


def _bona_fide_items(recs: Sequence[Mapping[str, Any]], suffix: str) -> list[_Item]:
    recs = [dict(r) for r in recs]
    names = _unique_names([r["relpath"] for r in recs], suffix)
    items = []
    for r, name in zip(recs, names):
        path = Path(r.pop("path"))
        ref = {"relpath": r["relpath"], "path": str(path)}
        items.append(_Item(path, name, {"kind": BONA_FIDE, **r}, [], ref))
    return items


def _items_from_source(
    source: Union[PathLike, Sequence[Mapping[str, Any]]], suffix: str, out_dir: Path
) -> tuple[str, list[_Item], list[dict], str]:
    """``(input_kind, items, failed lines carried over, description)`` of a source."""
    if not isinstance(source, (str, os.PathLike)):
        items = _bona_fide_items(source, suffix)
        return IMAGES, items, [], f"{len(items)} images"
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such attack set, processed set or image folder")
    manifest = src / MANIFEST_NAME if src.is_dir() else src
    if src.is_dir() and not manifest.is_file():  # a plain folder of images
        root = src.resolve()
        files = sorted(
            f for f in root.rglob("*")
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in f.relative_to(root).parts)
            and out_dir.resolve() not in f.parents
        )
        if not files:
            raise ValueError(
                f"{root}: no manifest.jsonl and no image files ({', '.join(IMAGE_SUFFIXES)})"
            )
        return IMAGES, _bona_fide_items(image_items(files, root), suffix), [], str(root)
    run = _read_run(manifest.parent)
    kind = run.get("input_kind", IMAGES) if run.get("format") == SET_FORMAT else ATTACK_SET
    recs = load_set(manifest, include_failed=True)
    ok = [r for r in recs if r.get("status") == "ok"]
    names = _unique_names([r["file"] for r in ok], suffix)
    items = []
    for r, name in zip(ok, names):
        path = Path(r.pop("path"))
        ref = {"file": r["file"], "path": str(path), "sha256": r["sha256"],
               "manifest": str(manifest.resolve())}
        history = list(r.pop("postprocess", None) or [])
        rec = {k: v for k, v in r.items() if k not in ("file", "sha256")}
        rec.setdefault("kind", MORPH if kind == ATTACK_SET else BONA_FIDE)
        items.append(_Item(path, name, rec, history, ref))
    carried = [r for r in recs if r.get("status") != "ok"]
    return kind, items, carried, str(manifest.resolve())


def _last_source(rec: Mapping[str, Any]) -> Optional[str]:
    steps = rec.get("postprocess")
    if isinstance(steps, list) and steps and isinstance(steps[-1], dict):
        return steps[-1].get("source", {}).get("path")
    return None


def postprocess_set(
    source: Union[PathLike, Sequence[Mapping[str, Any]]],
    out_dir: PathLike,
    ops: Sequence[Union[str, Operator]],
    *,
    seed: int = 0,
    jobs: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> PostprocessSummary:
    """Apply ``ops`` to every image of ``source`` and write a new set in ``out_dir``.

    Args:
        source: an attack set (folder or ``manifest.jsonl``), a set written by this
            function (processing again chains the history), a folder of images (all
            image files below it), or :func:`image_items` records.
        out_dir: the output folder (module docstring: layout, manifest).
        ops: operator specs, applied in order (at least one).
        seed: the set's seed (per-image draws: :func:`image_seed`).
        jobs: worker processes.
        resume: require a previous run with the same configuration in ``out_dir``.
        overwrite: delete the previous run in ``out_dir`` (the files its manifest lists).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`PostprocessSummary`; images that failed (no face for ``icao``,
        unreadable…) are ``"status": "failed"`` lines, not exceptions.

    Raises:
        ValueError: bad operators, an output folder holding another run
            (:class:`~morphlab.generators.runner.RunConflictError`), a bad manifest.
        KeyError: unknown operator.
        FileNotFoundError: the source (or an image its manifest lists) is missing.
    """
    from tqdm import tqdm

    ops = parse_ops(ops)
    if not ops:
        raise ValueError("no post-processing operator given (e.g. --op jpeg:q=75)")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: choose one")
    out = Path(out_dir)
    suffix = output_suffix(ops)
    kind, items, carried, described = _items_from_source(source, suffix, out)
    specs = [op.spec() for op in ops]
    config = {
        "format": SET_FORMAT, "format_version": 1, "ops": specs, "seed": int(seed),
        "input_kind": kind, "source": described, "morphlab_version": __version__,
    }
    previous = prepare_out_dir(out, config, resume=resume, overwrite=overwrite, keys=CONFIG_KEYS)
    manifest = out / MANIFEST_NAME

    done: dict[str, dict] = {}
    for rec in previous:
        steps = rec.get("postprocess")
        if rec.get("status") == "ok" and isinstance(steps, list) and steps:
            done[str(rec.get("file"))] = rec
    kept, todo = [], []
    for it in items:
        prev = done.get(it.name)
        expected = it.source_ref.get("sha256")
        same_source = prev is not None and (
            expected is None or prev["postprocess"][-1].get("source", {}).get("sha256") == expected
        )
        if same_source and verified_record(out, prev):
            kept.append(prev)
        else:
            todo.append(it)
    atomic_write_text(manifest, "".join(dumps_record(r) + "\n" for r in kept))
    summary = PostprocessSummary(out, manifest, len(items), skipped=len(kept))

    step = {"ops": specs, "seed": int(seed)}
    by_name = {it.name: it for it in todo}
    tasks = [
        (str(it.src), str(out / it.name), ops, int(seed), it.source_ref.get("sha256"))
        for it in todo
    ]
    bar = tqdm(total=summary.items, initial=len(kept), disable=not progress, unit="img",
               desc=f"postprocess → {out.name}")
    with open(manifest, "ab") as fh:

        def record(res: dict) -> None:
            it = by_name[res["name"]]
            ref = dict(it.source_ref)
            if "error" in res:
                line = {**it.record, "status": "failed", "error": res["error"],
                        "postprocess": it.history + [{**step, "source": ref}]}
                summary.failed += 1
                summary.failures.append(line)
                log.warning("%s failed: %s", it.src, res["error"])
            else:
                ref["sha256"] = res["source_sha256"]
                line = {**it.record, "status": "ok", "file": it.name, "sha256": res["sha256"],
                        "postprocess": it.history + [
                            {**step, "image_seed": res["image_seed"], "source": ref}
                        ], "morphlab_version": __version__}
                summary.processed += 1
            fh.write((dumps_record(line) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(1)

        try:
            if jobs == 1 or len(tasks) <= 1:
                for task in tasks:
                    record(_process(task))
            else:
                ctx = multiprocessing.get_context("spawn")
                with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                    for res in pool.map(_process, tasks, chunksize=4):
                        record(res)
        finally:
            bar.close()

    # complete: everything in source order, then the source's failed lines carried over
    order = {str(it.src): i for i, it in enumerate(items)}
    recs = [rec for _, rec in manifest_records(manifest)]
    recs.sort(key=lambda r: order.get(str(_last_source(r)), len(order)))
    recs += carried
    atomic_write_text(manifest, "".join(dumps_record(r) + "\n" for r in recs))
    log.info("%s: %d images: %d done before, %d processed, %d failed", out, summary.items,
             summary.skipped, summary.processed, summary.failed)
    return summary


def load_set(path: PathLike, *, include_failed: bool = False) -> list[dict]:
    """Read a post-processed set's manifest (or an attack set's: the runner's reader).

    Args:
        path: the set's folder or its ``manifest.jsonl``.
        include_failed: also return ``"status": "failed"`` lines.

    Returns:
        The lines as dicts in file order; each ``ok`` line gains ``"path"`` (absolute).

    Raises:
        FileNotFoundError: no manifest, or an image it lists is missing.
        ValueError: a malformed line (the message names the manifest and line).
    """
    p = Path(path)
    manifest = p / MANIFEST_NAME if p.is_dir() else p
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    folder = manifest.parent.resolve()
    run = _read_run(folder)
    if not (run.get("format") == SET_FORMAT and run.get("input_kind") == IMAGES):
        return load_manifest(manifest, include_failed=include_failed)
    out = []
    for where, rec in manifest_records(manifest):
        if rec["status"] == "failed":
            if include_failed:
                out.append(rec)
            continue
        missing = [k for k in ("file", "sha256", "postprocess") if k not in rec]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        name = rec["file"]
        if not isinstance(name, str) or name != Path(name).name or name in ("", ".", ".."):
            raise ValueError(f"{where}: file {name!r} is not a file name inside {folder}")
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{where}: image {folder / name} not found")
        rec["path"] = str(folder / name)
        out.append(rec)
    return out


def source_chain(record: Mapping[str, Any]) -> list[dict]:
    """A processed line's sources, newest first: each step's ``source`` (with its ops)."""
    return [
        {**step.get("source", {}), "ops": step.get("ops", [])}
        for step in reversed(record.get("postprocess") or [])
    ]


def check_chain(record: Mapping[str, Any]) -> None:
    """Verify that every source of a processed line still has its recorded sha256.

    Raises:
        FileNotFoundError: a source file is gone.
        ValueError: a source file was modified.
    """
    for src in source_chain(record):
        path, sha = src.get("path"), src.get("sha256")
        if path and sha and sha256_file(path) != sha:
            raise ValueError(f"{path}: modified since it was post-processed (sha256 differs)")
