"""The ``file`` face backend: landmarks read from a sidecar file next to the image.

For an image ``DIR/NAME.jpg`` the sidecar is ``DIR/NAME.tem``, ``DIR/NAME.npy`` or
``DIR/NAME.json`` (the first that exists, in that order, unless ``suffix`` is given):

- ``.tem`` (WebMorph/Psychomorph): the first line is the point count N, then N lines
  ``x<TAB>y``; whatever follows (the template's contour lines) is ignored.
- ``.npy``: a numeric ``(N, 2)`` array of ``(x, y)``.
- ``.json``: ``{"landmarks": [[x, y], ...]}`` (optionally with ``"scheme"``) or a plain
  list of ``[x, y]`` pairs.

Coordinates are pixels of the image. The scheme is ``tem189`` for 189 points in a ``.tem``
file, else ``file<N>`` — unless the ``scheme`` option (or the JSON's ``"scheme"``) names
one, e.g. ``"dlib68"`` for points exported from dlib, so that eye centres and the 5
ArcFace points can be found (:mod:`morphlab.face.schemes`). The box is the points'
extent. A sidecar holds one face. Results are never cached by image content (the
sidecar may change while the pixels do not), so ``cacheable`` is False.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from morphlab.face.base import FACE_BACKENDS, Face, FaceBackend, FaceError, validate_landmarks
from morphlab.face.schemes import SCHEME_SIZES

SIDECAR_SUFFIXES = (".tem", ".npy", ".json")


class SidecarError(FaceError):
    """A landmark sidecar file is missing or malformed (the message names it); a
    :class:`~morphlab.face.base.FaceError`, so one pair's failure in ``generate``."""


def read_tem(path: Path) -> np.ndarray:
    """Points of a WebMorph/Psychomorph ``.tem`` file as ``(N, 2)`` float64 ``(x, y)``."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError:
        raise SidecarError(f"{path}: not a text .tem file") from None
    if not lines or not lines[0].strip():
        raise SidecarError(f"{path}: empty .tem file (first line must be the point count)")
    try:
        n = int(lines[0].strip())
    except ValueError:
        raise SidecarError(f"{path}: first line must be the point count, got {lines[0].strip()[:40]!r}") from None
    if n < 1:
        raise SidecarError(f"{path}: point count must be positive, got {n}")
    if len(lines) < n + 1:
        raise SidecarError(f"{path}: says {n} points but has only {len(lines) - 1} lines after the count")
    pts = np.empty((n, 2), dtype=np.float64)
    for i, line in enumerate(lines[1 : n + 1]):
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            pts[i] = [float(fields[0]), float(fields[1])]
        except ValueError:
            raise SidecarError(
                f"{path}: line {i + 2} should be 'x<TAB>y' (point {i}), got {line.strip()[:40]!r}"
            ) from None
    return pts


#: Most points a landmark sidecar may hold (the largest scheme has 478).
MAX_POINTS = 100_000


def _read_npy(path: Path) -> np.ndarray:
    fmt = np.lib.format
    try:  # the header first: a few bytes may claim an array of any size
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            read_header = {(1, 0): fmt.read_array_header_1_0,
                           (2, 0): fmt.read_array_header_2_0}.get(version)
            shape = read_header(fh)[0] if read_header else ()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise SidecarError(f"{path}: not a readable .npy array ({exc})") from None
    if float(np.prod(shape, dtype=np.float64)) > 2 * MAX_POINTS:
        raise SidecarError(
            f"{path}: holds an array of shape {shape}, not (N, 2) landmarks with N <= {MAX_POINTS:,}"
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SidecarError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise SidecarError(f"{path}: expected a numeric (N, 2) array, got dtype {getattr(arr, 'dtype', type(arr))}")
    return arr.astype(np.float64)


def _read_json(path: Path) -> tuple[np.ndarray, Optional[str]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise SidecarError(f"{path}: not a landmark file (JSON nested too deeply)") from None
    scheme = None
    if isinstance(data, dict):
        if "landmarks" not in data:
            raise SidecarError(f"{path}: JSON object has no 'landmarks' key (keys: {', '.join(data)})")
        scheme = data.get("scheme")
        if scheme is not None and not isinstance(scheme, str):
            raise SidecarError(f"{path}: 'scheme' must be a string, got {scheme!r}")
        data = data["landmarks"]
    try:
        arr = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise SidecarError(f"{path}: landmarks must be a list of [x, y] number pairs") from None
    return arr, scheme


def read_sidecar(path: Path) -> tuple[np.ndarray, Optional[str]]:
    """Read a sidecar file by its suffix.

    Returns:
        ``(points, scheme)``: ``(N, 2)`` float64 ``(x, y)`` and the scheme the file names
        (only JSON can), else None.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SidecarError(f"{path}: landmark file not found")
    if suffix == ".tem":
        pts, scheme = read_tem(path), None
    elif suffix == ".npy":
        pts, scheme = _read_npy(path), None
    elif suffix == ".json":
        pts, scheme = _read_json(path)
    else:
        raise SidecarError(f"{path}: unknown landmark file type; use one of {', '.join(SIDECAR_SUFFIXES)}")
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise SidecarError(f"{path}: expected landmarks of shape (N, 2) with N >= 1, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise SidecarError(f"{path}: landmarks contain NaN or infinite values")
    return pts, scheme


@FACE_BACKENDS.register("file")
class FileBackend(FaceBackend):
    """Landmarks from a sidecar file next to the image.

    Args:
        suffix: sidecar suffix to use (``".tem"``, ``".npy"`` or ``".json"``); default:
            the first of those that exists.
        scheme: landmark scheme of the files (e.g. ``"dlib68"``); default ``tem189`` for
            189-point ``.tem`` files, the JSON's ``"scheme"``, else ``file<N>``.
    """

    name = "file"
    version = "1"
    scheme = "file"
    cacheable = False

    def __init__(self, *, suffix: Optional[str] = None, scheme: Optional[str] = None) -> None:
        if suffix is not None:
            suffix = suffix if suffix.startswith(".") else f".{suffix}"
            if suffix.lower() not in SIDECAR_SUFFIXES:
                raise ValueError(f"suffix must be one of {', '.join(SIDECAR_SUFFIXES)}, got {suffix!r}")
        self.suffix = suffix
        self.scheme_override = scheme

    def cache_key(self) -> str:
        return f"{self.name}-{self.version}-{self.suffix or 'auto'}-{self.scheme_override or 'auto'}"

    def sidecar(self, source: Path) -> Path:
        """The sidecar file of the image ``source``."""
        source = Path(source)
        candidates = [self.suffix] if self.suffix else list(SIDECAR_SUFFIXES)
        for suffix in candidates:
            path = source.with_suffix(suffix)
            if path.is_file():
                return path
        raise SidecarError(
            f"{source}: no landmark file next to the image (looked for "
            f"{', '.join(str(source.with_suffix(s).name) for s in candidates)})"
        )

    def detect(self, image: np.ndarray, *, source: Optional[Path] = None) -> list[Face]:
        if source is None:
            raise ValueError("the 'file' face backend needs the image's path (source=) to find its sidecar")
        path = self.sidecar(source)
        pts, file_scheme = read_sidecar(path)
        scheme = self.scheme_override or file_scheme
        if scheme is None:
            scheme = "tem189" if path.suffix.lower() == ".tem" and len(pts) == 189 else f"file{len(pts)}"
        if scheme in SCHEME_SIZES and SCHEME_SIZES[scheme] != len(pts):
            raise SidecarError(f"{path}: scheme {scheme!r} has {SCHEME_SIZES[scheme]} points, the file has {len(pts)}")
        pts = validate_landmarks(pts, np.asarray(image).shape, str(path), SidecarError)
        box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
        return [Face(box=box, landmarks=pts, scheme=scheme, score=1.0, source=str(path))]
