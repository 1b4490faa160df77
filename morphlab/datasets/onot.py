"""ONOT: synthetic ICAO-compliant mugshots (Di Domenico, Borghi, Franco, Maltoni, FG 2024;
University of Bologna, https://miatbiolab.csr.unibo.it/icao-synthetic-dataset).

ONOT holds several ISO/IEC 39794-5 compliant images per synthetic identity. morphlab has
no copy of the release here, so its layout is an assumption made **configurable**:

- default, :data:`DEFAULT_PATTERN`: **one folder per identity**, any image name inside::

      <root>/[any/folders/]<identity>/<capture>.<png|jpg>

  the identity is the image's parent folder, the capture label its file stem;
- a flat layout such as ``<identity>_<capture>.png`` is read with
  ``pattern=r"^(?:.*/)?(?P<subject>[^/_]+)_(?P<capture>[^/]+)$"``.

The pattern is matched against each image's path relative to ``root`` without the
suffix, with ``/`` separators (:func:`~morphlab.datasets.folder.load_folder` with
``match_path=True``); it needs a named group ``subject`` and should have ``capture``.

Roles: the **enrolment** image is the capture labelled ``enrolment`` (default: each
identity's first capture label in sorted order); the **probes** are the captures listed in
``probes`` (default: all the identity's other images). Check the release's README and
set ``enrolment``/``probes`` (e.g. to keep its print-and-scan versions out) accordingly.

Validation: every identity has at least ``min_images`` images (default 2: one to morph,
one to probe; unless ``allow_incomplete``, which drops the others with a warning), an
explicit ``enrolment`` label exists for every identity, every image is readable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from morphlab.datasets.folder import ENROLMENT, PROBE, Dataset, load_folder
from morphlab.datasets.loaders import dataset_root, incomplete, listed, register_loader, with_roles

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Identity = the parent folder, capture = the file stem (matched on the relative path).
DEFAULT_PATTERN = r"^(?:.*/)?(?P<subject>[^/]+)/(?P<capture>[^/]+)$"


@register_loader("onot")
def load_onot(
    root: PathLike,
    *,
    pattern: str = DEFAULT_PATTERN,
    enrolment: Optional[str] = None,
    probes: Optional[Sequence[str]] = None,
    min_images: int = 2,
    metadata: Optional[PathLike] = None,
    meta_id_column: Optional[str] = None,
    meta_gender_column: Optional[str] = None,
    allow_incomplete: bool = False,
    check_images: bool = True,
) -> Dataset:
    """Load an ONOT folder (see the module docstring for the assumed layout).

    Args:
        root: the dataset folder.
        pattern: regex with groups ``subject`` and ``capture`` matched against each
            image's relative path without suffix (``0001/03``).
        enrolment: capture label of the enrolment image (default: each identity's first
            label in sorted order).
        probes: capture labels of the probes (default: every other image).
        min_images: fewest images an identity must have.
        metadata: optional per-identity CSV (see the ``folder`` loader).
        meta_id_column: its identity column (default: the first).
        meta_gender_column: its gender column (default: auto-detected).
        allow_incomplete: drop identities with too few images (or without the
            ``enrolment`` label) with a warning instead of raising.
        check_images: open every image's header.

    Returns:
        The :class:`~morphlab.datasets.folder.Dataset` (loader ``"onot"``).

    Raises:
        FileNotFoundError: ``root`` or ``metadata`` missing.
        ValueError: no image matching the pattern, identities with too few images or
            without the enrolment label, a bad pattern.
        morphlab.io.ImageError: an unreadable image.
    """
    root_p = dataset_root(root, "ONOT")
    if not isinstance(min_images, int) or min_images < 1:
        raise ValueError(f"min_images must be an integer >= 1, got {min_images!r}")
    try:
        ds = load_folder(
            root_p, pattern=pattern, metadata=metadata, meta_id_column=meta_id_column,
            meta_gender_column=meta_gender_column, check_images=check_images, match_path=True,
        )
    except ValueError as exc:
        if "no file name matches" not in str(exc):
            raise
        raise ValueError(
            f"{exc}. The default ONOT layout is one folder per identity "
            "(<identity>/<capture>.png); for another layout pass pattern="
        ) from None
    probes = None if probes is None else {str(p) for p in probes}
    enrolment = None if enrolment is None else str(enrolment)

    roles: dict[Path, Optional[str]] = {}
    dropped: list[str] = []
    for subject, samples in ds.by_subject().items():
        caps = sorted(str(s.capture) for s in samples)
        enrol = caps[0] if enrolment is None else enrolment
        problem = None
        if len(samples) < min_images:
            problem = f"{subject} ({len(samples)} image(s))"
        elif enrol not in caps:
            problem = f"{subject} (no capture {enrol!r}; has {', '.join(caps)})"
        if problem:
            dropped.append(problem)
            continue
        for s in samples:
            if str(s.capture) == enrol:
                roles[s.path] = ENROLMENT
            elif probes is None or str(s.capture) in probes:
                roles[s.path] = PROBE
            else:
                roles[s.path] = None
    if dropped:
        msg = (
            f"{ds.root}: {len(dropped)} of {len(ds.subjects())} identities lack images "
            f"(at least {min_images}, with the enrolment capture, are needed): {listed(dropped)}"
        )
        incomplete(msg, allow_incomplete, "fix the folder")
    kept = Dataset(ds.root, tuple(s for s in ds.samples if s.path in roles), ds.loader, ds.params)

    params = {
        "pattern": pattern,
        "enrolment": enrolment,
        "probes": sorted(probes) if probes is not None else None,
        "min_images": min_images,
        "metadata": str(Path(metadata).resolve()) if metadata is not None else None,
        "meta_id_column": meta_id_column,
        "meta_gender_column": meta_gender_column,
        "allow_incomplete": allow_incomplete,
    }
    return with_roles(kept, lambda s: roles[s.path], loader="onot", params=params)
