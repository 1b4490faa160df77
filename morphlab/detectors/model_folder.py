"""The model folder written by :meth:`~morphlab.detectors.base.Detector.save`: its layout
constants and the checked reading of ``detector.json`` / ``arrays.npz``.

``detector.json`` (format name and version, detector name, parameters, threshold, JSON
state, free-form metadata) and ``arrays.npz`` (NumPy arrays, read with
``allow_pickle=False``; its SHA-256 is recorded in the JSON). Nothing in the folder is
ever executed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from morphlab.detectors.registry import DETECTORS, detector_name

if TYPE_CHECKING:
    from morphlab.detectors.base import Detector

MODEL_FORMAT = "morphlab-detector"
#: Version of the model-folder layout written by :meth:`Detector.save`.
MODEL_FORMAT_VERSION = 1
MODEL_JSON, MODEL_ARRAYS = "detector.json", "arrays.npz"

#: Largest ``detector.json`` read (the arrays live in ``arrays.npz``).
MAX_MODEL_JSON_BYTES = 64 << 20


def _finite_float(text: str) -> float:
    v = float(text)
    if not np.isfinite(v):
        raise ValueError(f"number {text} is out of range (infinite)")
    return v


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_number(v: Any) -> Optional[float]:
    """``float(v)`` if ``v`` is a finite JSON number (not a bool), else ``None``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if np.isfinite(f) else None


def _shown(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def read_model_info(directory: str | Path) -> dict[str, Any]:
    """The parsed ``detector.json`` of a model folder, after format checks.

    Checks: valid UTF-8 JSON (no ``NaN``/``Infinity``/out-of-range numbers, bounded size
    and nesting), the format name and version, and the types of the fields every model
    has (``threshold`` a finite number, ``params``/``state`` objects, …).

    Raises:
        FileNotFoundError: no ``detector.json`` in ``directory``.
        ValueError: not a morphlab detector folder, a newer format version, or a damaged
            description; the message names the file and the problem.
    """
    path = Path(directory) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; {directory} is not a detector model folder "
            "(train one with `morphlab detect train`)"
        )
    size = path.stat().st_size
    if size > MAX_MODEL_JSON_BYTES:
        raise ValueError(f"{path}: {size:,} bytes, too large for a model description "
                         f"(limit {MAX_MODEL_JSON_BYTES:,}); not a morphlab detector model")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"), parse_float=_finite_float,
                         parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text: {exc.reason})") from None
    except RecursionError:
        raise ValueError(f"{path}: not a morphlab detector model (JSON nested too deeply)") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a morphlab detector model (format {_shown(doc.get('format'))})"
                         if isinstance(doc, dict) else f"{path}: not a morphlab detector model")
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {_shown(version)} is newer than this morphlab "
            f"understands ({MODEL_FORMAT_VERSION}); upgrade morphlab"
            if isinstance(version, int) and not isinstance(version, bool) else
            f"{path}: \"format_version\" must be an integer, got {_shown(version)}"
        )
    for key in ("detector", "params", "threshold", "state"):
        if key not in doc:
            raise ValueError(f"{path}: incomplete model description (no {key!r})")
    if not isinstance(doc["detector"], str) or not doc["detector"]:
        raise ValueError(f"{path}: \"detector\" must be a detector name, got {_shown(doc['detector'])}")
    if _finite_number(doc["threshold"]) is None:
        raise ValueError(f"{path}: \"threshold\" must be a finite number, got {_shown(doc['threshold'])}")
    for key in ("params", "state"):
        if not isinstance(doc[key], dict):
            raise ValueError(f"{path}: {key!r} must be a JSON object, got {_shown(doc[key])}")
    sv = doc.get("state_version", 1)
    if isinstance(sv, bool) or not isinstance(sv, int):
        raise ValueError(f"{path}: \"state_version\" must be an integer, got {_shown(sv)}")
    for key, kinds in (("arrays_sha256", (str,)), ("metadata", (dict,)), ("n_train", (dict,))):
        if doc.get(key) is not None and not isinstance(doc[key], kinds):
            raise ValueError(f"{path}: {key!r} must be a {'string' if kinds == (str,) else 'JSON object'}, "
                             f"got {_shown(doc[key])}")
    return doc


def read_model_arrays(directory: str | Path, doc: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a model folder, checked against ``doc["arrays_sha256"]`` when recorded.

    Read with ``allow_pickle=False``; only numeric arrays of finite values are accepted.

    Raises:
        FileNotFoundError: no ``arrays.npz``.
        ValueError: checksum mismatch, not an ``.npz`` archive, object arrays, NaN or
            infinite values (the message names the file).
    """
    import zipfile

    from morphlab.io import sha256_bytes

    path = Path(directory) / MODEL_ARRAYS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing model arrays (an incomplete model folder)")
    blob = path.read_bytes()
    if doc.get("arrays_sha256") and sha256_bytes(blob) != doc["arrays_sha256"]:
        raise ValueError(f"{path}: does not match {MODEL_JSON} (checksum differs)")
    unchecked = "" if doc.get("arrays_sha256") else f"; {MODEL_JSON} records no checksum"
    if not zipfile.is_zipfile(io.BytesIO(blob)):
        raise ValueError(f"{path}: not a NumPy .npz archive (corrupt or replaced{unchecked})")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{path}: holds object arrays (pickled Python objects), which "
                             "morphlab never loads; not a morphlab model file") from None
        raise ValueError(f"{path}: corrupt .npz archive ({exc}{unchecked})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, RuntimeError) as exc:
        raise ValueError(f"{path}: corrupt .npz archive ({type(exc).__name__}: {exc}{unchecked})") from None
    for k, v in arrays.items():
        if v.dtype.kind not in "biufc":
            raise ValueError(f"{path}: array {k!r} has dtype {v.dtype}, not a number type")
        if v.dtype.kind in "fc" and not np.isfinite(v).all():
            raise ValueError(f"{path}: array {k!r} holds NaN or infinite values")
    return arrays


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a parameter's type hint (unknown hints: yes)."""
    import collections.abc
    import types
    import typing

    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool) or (type(value) is int and value in (0, 1))
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and value.is_integer())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [a for a in args if a is not Ellipsis]
        return len(inner) != 1 or all(_fits(v, inner[0]) for v in value)
    return True


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def check_params(cls: type, params: dict[str, Any], path: Path) -> None:
    """Refuse hyper-parameters whose JSON type cannot be what ``cls.__init__`` declares
    (integral floats pass for ints, ints for floats; unknown hints pass).

    Raises:
        ValueError: ``"{path}: parameter 'x' = … does not fit 'name' (expected int)"``.
    """
    import typing

    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: nothing to check against
        return
    for key, value in params.items():
        if key in hints and not _fits(value, hints[key]):
            raise ValueError(f"{path}: parameter {key!r} = {_shown(value)} does not fit "
                             f"{detector_name(cls)!r} (expected {_hint_name(hints[key])})")


_check_params = check_params  # the name morphlab.experiments.config imports


def load_detector(directory: str | Path) -> Detector:
    """Load any registered detector's model folder (the class is found by its name).

    Only registered classes are ever instantiated; nothing in the folder is executed.
    """
    doc = read_model_info(directory)
    try:
        cls = DETECTORS.get(doc["detector"])
    except KeyError as exc:
        raise ValueError(
            f"{directory}: saved by detector {doc['detector']!r}, which is not installed "
            f"({exc.args[0]})"
        ) from None
    return cls.load(directory)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


class _MissingEntry(KeyError):
    """A saved state or array a detector asked for is not in the model folder."""


class _Entries(dict):
    """A dict whose missing keys raise :class:`_MissingEntry` naming the file."""

    def __init__(self, data: dict, where: str) -> None:
        super().__init__(data)
        self._where = where

    def __missing__(self, key: Any) -> Any:
        raise _MissingEntry(f"{self._where} {key!r}")
