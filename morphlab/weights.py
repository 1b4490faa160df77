"""Reading network weight files without running code from them.

A weights file a user passes in (``init_weights`` of the ``cnn`` detector, the FAN
landmark network, …) is untrusted input: a PyTorch checkpoint is a pickle, and unpickling
runs arbitrary code. :func:`read_state_dict` reads ``.safetensors``, NumPy ``.npz``
(``allow_pickle=False``) and PyTorch checkpoints through ``torch.load(weights_only=True)``
only, which is safe from PyTorch 2.6 on (CVE-2025-32434: older versions could be made to
run code even with ``weights_only=True``); :func:`require_safe_torch` enforces that
version. TorchScript archives are refused, since loading one executes its code.

Errors are one line naming the file and what it is (never a suggestion to load it
unsafely).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any, Union

import numpy as np

PathLike = Union[str, Path]

#: The first PyTorch release whose ``torch.load(weights_only=True)`` is safe on untrusted
#: files (CVE-2025-32434).
SAFE_TORCH = (2, 6)


def torch_version_tuple(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string such as ``"2.13.0+cpu"``."""
    m = re.match(r"\s*(\d+)\.(\d+)", str(version))
    if not m:
        raise ValueError(f"cannot parse the PyTorch version {version!r}")
    return int(m.group(1)), int(m.group(2))


def require_safe_torch(what: str = "reading weight files", version: str | None = None) -> Any:
    """Import torch and check that ``torch.load(weights_only=True)`` is safe in it.

    Args:
        what: what needs it, for the message.
        version: the version to check instead of the installed one (tests).

    Returns:
        The ``torch`` module.

    Raises:
        ImportError: torch is missing, or older than 2.6 (CVE-2025-32434).
    """
    try:
        import torch
    except ImportError:
        raise ImportError(f"{what} needs PyTorch >= 2.6: pip install 'torch>=2.6'") from None
    v = version if version is not None else torch.__version__
    if torch_version_tuple(v) < SAFE_TORCH:
        raise ImportError(
            f"{what} needs PyTorch >= 2.6, found {v}: older versions can run code hidden in a "
            "checkpoint even with weights_only=True (CVE-2025-32434); pip install 'torch>=2.6'"
        )
    return torch


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _to_numpy(torch, t) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16
        t = t.float()
    return t.numpy()


def _not_weights(path: Path, detail: str) -> ValueError:
    return ValueError(
        f"{path}: not a weights file ({detail}); expected a state dict (name -> tensor) as "
        ".safetensors, .npz or a PyTorch checkpoint saved with torch.save(model.state_dict())"
    )


def read_state_dict(path: PathLike, *, what: str = "weights") -> dict[str, np.ndarray]:
    """A state dict (``{name: array}``) from a local file, without executing code.

    Formats: ``.safetensors``; ``.npz`` (no object arrays); otherwise a PyTorch checkpoint
    read with ``torch.load(weights_only=True)`` (PyTorch >= 2.6). A checkpoint holding
    ``{"state_dict": {...}}`` is unwrapped, and a ``module.`` prefix (DataParallel) is
    dropped. Non-tensor entries are ignored.

    Args:
        path: the file.
        what: what the file is for, for messages (e.g. ``"initial weights"``).

    Returns:
        ``{name: ndarray}``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a weights file of a supported kind (a pickle of
            anything else, a TorchScript archive, garbage, an empty or truncated file).
        ImportError: PyTorch (< 2.6) or safetensors is needed and missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise _not_weights(path, "the file is empty")
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError(f"{path}: reading .safetensors needs: pip install safetensors") from None
        try:
            return dict(load_file(str(path)))
        except Exception as exc:  # safetensors raises its own error types
            raise _not_weights(path, f"unreadable safetensors: {type(exc).__name__}") from None
    if path.suffix == ".npz":
        if not zipfile.is_zipfile(path):
            raise _not_weights(path, "not a .npz archive: corrupt, or another kind of file")
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except ValueError as exc:
            detail = "it holds pickled objects" if "pickle" in str(exc) else "corrupt .npz archive"
            raise _not_weights(path, detail) from None
        except (OSError, zipfile.BadZipFile, EOFError, KeyError):
            raise _not_weights(path, "corrupt .npz archive") from None
    if _is_torchscript(path):
        raise _not_weights(path, "a TorchScript archive, whose loading runs code from the file; "
                                 "morphlab reads plain state dicts only")
    torch = require_safe_torch(f"reading {what} ({path})")
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of garbage
            warnings.simplefilter("ignore", UserWarning)
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise _not_weights(path, "a pickle that holds something other than tensors, or not a "
                                 "checkpoint at all") from None
    except (EOFError, RuntimeError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise _not_weights(path, f"corrupt or truncated checkpoint: {type(exc).__name__}") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise _not_weights(path, f"it holds a {type(sd).__name__}, not a state dict")
    out = {str(k).removeprefix("module."): _to_numpy(torch, v)
           for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not out:
        raise _not_weights(path, "it holds no tensors")
    return out
