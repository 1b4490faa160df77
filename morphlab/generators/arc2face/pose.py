"""Pose maps for Arc2Face's ControlNet: where each pair's normal map comes from.

Arc2Morph (``morph_multiple.py`` of MI-BioLab/arc2morph) conditions Arc2Face's
ControlNet on an EMOCA normal map rendered from the **3-D face shape (and detail) of
subject B** (the reference's "criminal", its second pair column) with the **head pose,
expression and camera of subject A** (its "accomplice", the first column), in
**subject A's FFHQ-aligned 512×512 frame** (``image_align(..., output_size=512)``). So the
morph takes A's pose and framing; ``t = 0`` is A in both codes. morphlab does not run
EMOCA: render the maps yourself (EMOCA v2 ``EMOCA_v2_lr_mse_20``, ``detail`` mode, the
``normal_images`` output mapped from [-1, 1] to [0, 255]) and point ``pose_dir`` at them.

Sources (generator parameter ``pose``):

- ``none`` — no ControlNet (morphlab's behaviour before pose conditioning): pose,
  expression and framing come from the model's prior. Recorded as such in the manifest.
- ``file`` — :class:`FilePoseSource`: a folder of PNG/JPEG normal maps, one per pair
  (``<stem of A's image>__<stem of B's image>.png``) or one per subject A
  (``<stem of A's image>.png``, e.g. A's own shape and pose when no shape swap was
  rendered); the per-pair file wins. A missing map fails its pair with a
  ``FileNotFoundError`` naming both accepted names.
- anything registered with :func:`register_pose_source` (the plug-in point), or, from
  Python, any callable ``source(a, b) -> PoseMap`` passed as ``pose=``.

A map is returned as read; the pipeline resizes it to the output size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from morphlab.generators.base import Contributor
from morphlab.io import ImageError, read_image, sha256_file

#: Which contributor gives what in the reference's maps (recorded in the manifest).
REFERENCE_CONVENTION = {
    "shape_from": "subject B",
    "pose_expression_from": "subject A",
    "frame": "subject A's FFHQ-aligned 512x512 crop",
}
#: File suffixes :class:`FilePoseSource` accepts, preferred first.
SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass
class PoseMap:
    """One pair's conditioning image.

    Attributes:
        image: ``(H, W, 3)`` RGB uint8 normal map.
        record: what the manifest says about it (JSON-serialisable); ``sha256`` of the
            map's file (or of its pixels when it has no file) is added by the generator
            when absent.
    """

    image: np.ndarray
    record: dict[str, Any] = dataclasses.field(default_factory=dict)


#: A pose source: ``(subject A, subject B) -> PoseMap``; raises for a pair it cannot serve.
PoseSource = Callable[[Contributor, Contributor], PoseMap]

#: Registered pose sources by name: factories ``(**options) -> PoseSource``.
POSE_SOURCES: dict[str, Callable[..., PoseSource]] = {}


def register_pose_source(name: str):
    """Register a pose-source factory under ``name`` (usable as ``pose=name``).

    The factory receives the generator's pose options as keywords (today ``pose_dir``,
    ``None`` when unset) and returns a :data:`PoseSource`. Registering a name twice raises.

    Example::

        @register_pose_source("my-emoca")
        def my_emoca(pose_dir=None):
            def source(a, b):
                return PoseMap(render_normals(shape=b.path, pose=a.path), {"source": "my-emoca"})
            return source
    """
    def deco(factory):
        if name in POSE_SOURCES or name == "none":
            raise ValueError(f"pose source {name!r} is already registered")
        POSE_SOURCES[name] = factory
        return factory

    return deco


def create_pose_source(pose: Union[str, PoseSource, None], **options: Any) -> Optional[PoseSource]:
    """The pose source for a ``pose`` value: ``None`` for ``"none"``.

    Raises:
        KeyError: an unknown name (the message lists the registered ones).
    """
    if pose is None or pose == "none":
        return None
    if callable(pose):
        return pose
    try:
        factory = POSE_SOURCES[str(pose)]
    except KeyError:
        raise KeyError(
            f"unknown pose source {pose!r}; choose none or one of {', '.join(sorted(POSE_SOURCES))}"
        ) from None
    return factory(**options)


def pose_source_name(pose: Union[str, PoseSource, None]) -> str:
    """The name recorded for a ``pose`` value."""
    if pose is None:
        return "none"
    if isinstance(pose, str):
        return pose
    return getattr(pose, "name", None) or f"{type(pose).__module__}.{getattr(pose, '__qualname__', type(pose).__qualname__)}"


class FilePoseSource:
    """Normal maps from a folder, per pair or per subject A (see the module docstring).

    Args:
        pose_dir: the folder (required).

    Raises:
        FileNotFoundError: ``pose_dir`` is unset or not a folder.
    """

    name = "file"

    def __init__(self, pose_dir: Optional[Union[str, Path]] = None) -> None:
        if pose_dir in (None, ""):
            raise FileNotFoundError(
                "pose=file needs pose_dir=DIR (--param pose_dir=DIR), a folder of normal maps "
                "named <A image stem>__<B image stem>.png (per pair) or <A image stem>.png")
        self.pose_dir = Path(pose_dir).expanduser().resolve()
        if not self.pose_dir.is_dir():
            raise FileNotFoundError(f"{self.pose_dir}: pose_dir is not a folder")

    def candidates(self, a: Contributor, b: Contributor) -> list[tuple[str, Path]]:
        """``[(match, path)]`` the lookup tries, in order."""
        sa, sb = Path(a.path).stem, Path(b.path).stem
        return ([("pair", self.pose_dir / f"{sa}__{sb}{s}") for s in SUFFIXES]
                + [("subject", self.pose_dir / f"{sa}{s}") for s in SUFFIXES])

    def __call__(self, a: Contributor, b: Contributor) -> PoseMap:
        for match, path in self.candidates(a, b):
            if path.is_file():
                image = read_image(path)
                if image.ndim != 3 or image.shape[2] != 3:
                    raise ImageError(f"{path}: pose map must be an RGB image, got shape {image.shape}")
                return PoseMap(image, {"source": "file", "file": str(path), "match": match,
                                       "sha256": sha256_file(path)})
        sa, sb = Path(a.path).stem, Path(b.path).stem
        raise FileNotFoundError(
            f"{self.pose_dir}: no pose map for pair {a.subject_id}/{b.subject_id}; expected "
            f"{sa}__{sb}.png (per pair) or {sa}.png (per subject A), .jpg also accepted")


register_pose_source("file")(FilePoseSource)
