"""The FEI face database (Centro Universitário da FEI, São Bernardo do Campo, Brazil).

200 subjects (100 women, 100 men), 14 colour images each, 640x480, against a white
background. Two subsets are recognised (``subset="auto"`` picks the one present):

``original`` — ``<subject>-<NN>.jpg``, ``NN`` = ``01`` … ``14`` (e.g. ``1-01.jpg`` …
``200-14.jpg``; the four ``originalimages_part*`` archives may be unpacked into one folder
or into sub-folders). The FEI documentation describes the 14 images as a head rotation
from one profile to the other, frontal images with a neutral and with a smiling
expression, and frontal images under changed illumination. morphlab's defaults assume this
numbering (from the FEI web page as we read it; the release has no per-image labels):

======  ===============================================  =================
image   content                                          default role
======  ===============================================  =================
01–10   head rotation, profile to profile                (none)
11      frontal, neutral expression                      enrolment
12      frontal, neutral, other (lower) illumination     (none)
13      frontal, smiling                                 probe
14      frontal, other illumination                      (none)
======  ===============================================  =================

Check these against the README of your copy (the labels 12/14 are not used by default);
``enrolment="NN"`` and ``probes=("NN", …)`` choose other images.

``frontal`` — the manually aligned frontal subset ``<subject>a.jpg`` (neutral →
enrolment) and ``<subject>b.jpg`` (smiling → probe); capture labels ``a``/``b``.

The release has no metadata file; gender (or anything else) can come from a CSV with
one row per subject (``metadata=``, columns as for the ``folder`` loader).

Validation: every subject has all ``images_per_subject`` images (14, or 2 for the frontal
subset; unless ``allow_incomplete``), no image number outside 01–14, every image
readable, the enrolment/probe labels exist.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from morphlab.datasets.folder import Dataset, load_folder
from morphlab.datasets.loaders import (
    check_complete,
    dataset_root,
    register_loader,
    roles_from_captures,
    with_roles,
)
from morphlab.io import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: File stems of the two subsets.
PATTERNS = {
    "original": r"^(?P<subject>\d+)-(?P<capture>\d{2})$",
    "frontal": r"^(?P<subject>\d+)(?P<capture>[ab])$",
}
#: Image numbers of the original subset.
ORIGINAL_LABELS = tuple(f"{i:02d}" for i in range(1, 15))
#: Default (enrolment, probes) per subset.
DEFAULT_ROLES = {"original": ("11", ("13",)), "frontal": ("a", ("b",))}


def _subset(root: Path, subset: str) -> str:
    if subset != "auto":
        if subset not in PATTERNS:
            raise ValueError(f"unknown FEI subset {subset!r}; choose auto, {', '.join(PATTERNS)}")
        return subset
    stems = [
        f.stem for f in root.rglob("*")
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    ]
    for name in ("original", "frontal"):
        if any(re.match(PATTERNS[name], s) for s in stems):
            return name
    raise ValueError(
        f"{root}: no FEI image found: expected <subject>-<NN>.jpg (e.g. 1-11.jpg, the "
        "original images) or <subject>a.jpg/<subject>b.jpg (the frontal subset)"
    )


@register_loader("fei")
def load_fei(
    root: PathLike,
    *,
    subset: str = "auto",
    enrolment: Optional[str] = None,
    probes: Optional[Sequence[str]] = None,
    metadata: Optional[PathLike] = None,
    meta_id_column: Optional[str] = None,
    meta_gender_column: Optional[str] = None,
    allow_incomplete: bool = False,
    check_images: bool = True,
) -> Dataset:
    """Load the FEI face database (see the module docstring).

    Args:
        root: the folder holding the images (sub-folders are searched).
        subset: ``"auto"``, ``"original"`` or ``"frontal"``.
        enrolment: capture label of the enrolment image (default ``"11"``, or ``"a"``).
        probes: capture labels of the probe images (default ``("13",)``, or ``("b",)``).
        metadata: optional per-subject CSV (e.g. ``subject,gender``).
        meta_id_column: its subject-id column (default: the first).
        meta_gender_column: its gender column (default: auto-detected).
        allow_incomplete: log subjects lacking images instead of raising.
        check_images: open every image's header.

    Returns:
        The :class:`~morphlab.datasets.folder.Dataset` (loader ``"fei"``); the images
        of neither role are kept with role ``None``.

    Raises:
        FileNotFoundError: ``root`` or ``metadata`` missing.
        ValueError: no FEI image, image numbers outside 01–14, incomplete subjects, an
            enrolment/probe label that is not an image of the subset.
        morphlab.io.ImageError: an unreadable image.
    """
    root_p = dataset_root(root, "FEI")
    subset = _subset(root_p, subset)
    labels = ORIGINAL_LABELS if subset == "original" else ("a", "b")
    default_enrol, default_probes = DEFAULT_ROLES[subset]
    enrolment = default_enrol if enrolment is None else str(enrolment)
    probes = tuple(default_probes if probes is None else (str(p) for p in probes))
    bad = [x for x in (enrolment, *probes) if x not in labels]
    if bad:
        raise ValueError(
            f"FEI {subset} subset: no image labelled {', '.join(map(repr, bad))}; labels "
            f"are {', '.join(labels)}"
        )
    if enrolment in probes:
        raise ValueError(f"image {enrolment!r} cannot be both the enrolment image and a probe")

    ds = load_folder(
        root_p, pattern=PATTERNS[subset], metadata=metadata, meta_id_column=meta_id_column,
        meta_gender_column=meta_gender_column, check_images=check_images,
    )
    check_complete(ds, labels, what=f"FEI {subset} subset", allow_incomplete=allow_incomplete)
    params = {
        "subset": subset,
        "enrolment": enrolment,
        "probes": list(probes),
        "metadata": str(Path(metadata).resolve()) if metadata is not None else None,
        "meta_id_column": meta_id_column,
        "meta_gender_column": meta_gender_column,
        "allow_incomplete": allow_incomplete,
    }
    return with_roles(ds, roles_from_captures(enrolment, probes), loader="fei", params=params)
