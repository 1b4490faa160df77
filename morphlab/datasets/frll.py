"""The Face Research Lab London set (FRLL; DeBruine & Jones 2017, CC BY 4.0).

Two layouts are recognised (``layout="auto"`` picks the one present):

``release`` — the folders as downloaded::

    neutral_front/NNN_03.jpg (+ NNN_03.tem)   neutral frontal portrait → enrolment
    smiling_front/NNN_08.jpg (+ NNN_08.tem)   smiling frontal portrait → probe
    london_info.csv                           face_id, face_age, face_gender, face_eth

(the release's other folders — left/right views — are not read);

``shared`` — the same images as kept in ``../shared/data/frll`` and the embedded sample
:mod:`morphlab.sample`: ``neutral/NNN_03.jpg`` (+ ``.tem``), ``smiling/NNN_08.jpg``,
``london_info.csv``.

Subject ids are the three digits ``NNN``; capture labels ``03`` (neutral) and ``08``
(smiling), as the ``folder`` loader would read them. The neutral image is the subject's
**enrolment** image (morphs are made from it; ``.tem`` landmarks beside it are used by the
``file`` face backend); the smiling image, from the same session, is the **probe**.
Metadata (gender, age, ethnicity) come from ``london_info.csv`` (gender column
``face_gender`` → ``gender``).

Validation: the layout's folders exist; every image is named ``NNN_03`` (neutral folder)
or ``NNN_08`` (smiling folder) and is readable; every subject has both images (unless
``allow_incomplete``); with ``require_tem``, every neutral image has its ``.tem``. Each
error names the folder and lists the offending subjects or files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Optional, Union

from morphlab.datasets.folder import Dataset, load_folder
from morphlab.datasets.loaders import (
    check_complete,
    dataset_root,
    listed,
    merge,
    register_loader,
    roles_from_captures,
    with_roles,
)

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Capture labels of the neutral (enrolment) and smiling (probe) frontal images.
NEUTRAL, SMILING = "03", "08"
#: ``layout`` → (neutral folder, smiling folder).
LAYOUTS = {"release": ("neutral_front", "smiling_front"), "shared": ("neutral", "smiling")}
#: The metadata file looked for with ``metadata="auto"``.
METADATA_NAME = "london_info.csv"
#: File stems of the set: three-digit subject id, two-digit image number.
PATTERN = r"^(?P<subject>\d{3})_(?P<capture>\d{2})$"


def _layout(root: Path, layout: str) -> str:
    if layout != "auto":
        if layout not in LAYOUTS:
            raise ValueError(
                f"unknown FRLL layout {layout!r}; choose auto, {', '.join(LAYOUTS)}"
            )
        return layout
    found = [name for name, (neutral, _) in LAYOUTS.items() if (root / neutral).is_dir()]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(
            f"{root}: holds both the release layout (neutral_front/) and the neutral/ "
            "layout; pass layout='release' or layout='shared'"
        )
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    raise ValueError(
        f"{root}: not an FRLL folder: expected neutral_front/ + smiling_front/ (the "
        f"release) or neutral/ + smiling/; found folders: {listed(folders) or 'none'}"
    )


def _check_labels(ds: Dataset, label: str, folder: Path) -> None:
    wrong = [ds.relpath(s) for s in ds.samples if s.capture != label]
    if wrong:
        raise ValueError(
            f"{folder}: {len(wrong)} image(s) not named NNN_{label}: "
            f"{listed([Path(w).name for w in wrong])}; this folder holds the NNN_{label} images"
        )


@register_loader("frll")
def load_frll(
    root: PathLike,
    *,
    layout: str = "auto",
    probes: bool = True,
    metadata: Optional[PathLike] = "auto",
    require_tem: bool = False,
    allow_incomplete: bool = False,
    check_images: bool = True,
) -> Dataset:
    """Load the London set (see the module docstring for the layouts).

    Args:
        root: the set's folder.
        layout: ``"auto"``, ``"release"`` or ``"shared"``.
        probes: also load the smiling images (the probes).
        metadata: ``"auto"`` (``london_info.csv`` in ``root`` if present), a CSV path, or
            ``None`` for none.
        require_tem: every neutral image must have its ``.tem`` landmark file.
        allow_incomplete: subjects lacking the neutral or smiling image are logged
            instead of raising.
        check_images: open every image's header.

    Returns:
        The :class:`~morphlab.datasets.folder.Dataset` (loader ``"frll"``): neutral
        images with role ``"enrolment"``, smiling images with role ``"probe"``.

    Raises:
        FileNotFoundError: ``root`` or a given metadata file is missing.
        ValueError: not an FRLL layout, misnamed files, incomplete subjects, missing
            ``.tem`` files (``require_tem``), bad metadata.
        morphlab.io.ImageError: an unreadable image.
    """
    root_p = dataset_root(root, "FRLL")
    layout = _layout(root_p, layout)
    neutral_dir, smiling_dir = (root_p / d for d in LAYOUTS[layout])
    if not neutral_dir.is_dir():
        raise FileNotFoundError(f"{neutral_dir}: folder of the neutral images not found")
    if metadata == "auto":
        metadata = root_p / METADATA_NAME if (root_p / METADATA_NAME).is_file() else None
        if metadata is None:
            log.info("%s: no %s, subjects have no gender/age metadata", root_p, METADATA_NAME)

    neutral = load_folder(
        neutral_dir, pattern=PATTERN, metadata=metadata, recursive=False,
        check_images=check_images,
    )
    _check_labels(neutral, NEUTRAL, neutral_dir)
    parts = [neutral]
    if probes:
        if not smiling_dir.is_dir():
            raise FileNotFoundError(
                f"{smiling_dir}: folder of the smiling (probe) images not found; pass "
                "probes=False to load the neutral images only"
            )
        smiling = load_folder(smiling_dir, pattern=PATTERN, recursive=False, check_images=check_images)
        _check_labels(smiling, SMILING, smiling_dir)
        meta = {s.subject: s.metadata for s in neutral.samples}
        parts.append(replace(smiling, samples=tuple(
            replace(s, metadata=meta.get(s.subject, MappingProxyType({}))) for s in smiling.samples
        )))
    ds = merge(root_p, parts)
    check_complete(
        ds, [NEUTRAL, SMILING] if probes else [NEUTRAL],
        what=f"FRLL set ({layout} layout)", allow_incomplete=allow_incomplete,
    )

    no_tem = [s.path.name for s in neutral.samples if not s.path.with_suffix(".tem").is_file()]
    if no_tem and require_tem:
        raise ValueError(
            f"{neutral_dir}: {len(no_tem)} neutral image(s) without their .tem landmark "
            f"file: {listed(no_tem)}"
        )

    params = {
        "layout": layout,
        "probes": probes,
        "metadata": str(Path(metadata).resolve()) if metadata is not None else None,
        "require_tem": require_tem,
        "allow_incomplete": allow_incomplete,
    }
    if no_tem:
        log.info("%s: %d neutral image(s) have no .tem file", neutral_dir, len(no_tem))
    return with_roles(ds, roles_from_captures(NEUTRAL, [SMILING]), loader="frll", params=params)
