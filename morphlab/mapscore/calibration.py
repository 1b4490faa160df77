"""The calibration protocol of map-score: bona fide comparisons disjoint from the attack set.

Thresholds at a target FMR are set on **bona fide comparisons that share no image and no
subject with the attack evaluation** (the morphs, their contributors' enrolment images and
the probes), as NIST FATE MORPH and ISO/IEC 20059 practice imply. Two sources:

* ``calibration=FOLDER`` (or a mapping subject → images): every unordered pair of distinct
  images in it; same subject = genuine, different subjects = impostor.
  :func:`check_overlap` refuses a set that shares an image (by sha256) or a subject id
  with the attack evaluation, unless the caller allows it (then the overlap is recorded
  and warned about loudly).
* **default, the subject-disjoint split** (:func:`default_split`): the bona fide images of
  the subjects that contribute to **no** morph of the set (every manifest line counts,
  failed pairs included), found in the probe folder and in the folder(s) the morphs'
  source images came from (e.g. FRLL ``smiling/`` and ``neutral/``), all pairs as above.
  Fewer than two such subjects is an error asking for ``--calibration``.

Impostors: ``"all"`` pairs of different subjects, or ``"same-gender"`` (demographic
pairing as in FATE MORPH practice: only pairs of two subjects of the same known gender).

Thresholds may also be given per system (:func:`parse_threshold`): a similarity value,
``distance:V`` for systems whose native score is a distance (converted once by
:func:`to_similarity`; dlib-resnet: similarity = 1 − distance), or ``published``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from morphlab.mapscore.inputs import LISTED, MapScoreError, PathLike
from morphlab.metrics.thresholds import (
    PAIRINGS,
    OperatingPoint,
    calibrate,
    fixed,
    impostor_mask,
    parse_threshold_spec,
    to_similarity_threshold,
)
from morphlab.recognition.base import RecognitionSystem

log = logging.getLogger(__name__)

IMPOSTOR_POLICIES = PAIRINGS
ThresholdSpec = Union[float, str]


@dataclass
class CalibrationImages:
    """The bona fide images thresholds are calibrated on.

    Attributes:
        images: ``(subject id, path)`` pairs, sorted.
        description: how they were chosen (recorded in the report).
        source: ``"split"`` (subject-disjoint split), ``"folder"``, ``"mapping"`` or
            ``"none"`` (every threshold fixed, no subject left to calibrate on).
        path: the folder given, if any.
    """

    images: list[tuple[str, str]]
    description: str
    source: str
    path: Optional[str] = None

    @property
    def subjects(self) -> list[str]:
        return sorted({s for s, _ in self.images})


def default_split(probe_map: Mapping[str, Sequence[PathLike]], source_folders: Sequence[Path],
                  contributors: set[str], pattern: str, *, required: bool = True
                  ) -> CalibrationImages:
    """The subject-disjoint split: images of subjects that contribute to no morph.

    With ``required=False`` (every system has a fixed threshold) too few such subjects is
    no error: the split is then empty and the report shows FMR/FNMR as unknown.

    Args:
        probe_map: subject id → probe images (the whole probe folder).
        source_folders: folders holding the contributors' enrolment images; their images
            of non-contributing subjects are used too (a folder whose names do not match
            ``pattern`` is ignored with a log message).
        contributors: every subject id of the attack set.
        pattern: file-name pattern giving the subject id.

    Raises:
        MapScoreError: fewer than two non-contributing subjects.
    """
    from morphlab.datasets.folder import load_folder

    images: set[tuple[str, str]] = set()
    for sid, paths in probe_map.items():
        if str(sid) not in contributors:
            images.update((str(sid), str(Path(p))) for p in paths)
    for folder in source_folders:
        try:
            ds = load_folder(folder, pattern=pattern, check_images=False, recursive=False)
        except (ValueError, FileNotFoundError) as exc:
            log.info("calibration split: not using %s (%s)", folder, exc)
            continue
        images.update((s.subject, str(s.path)) for s in ds.samples if s.subject not in contributors)
    cal = CalibrationImages(
        sorted(images),
        "subject-disjoint split: bona fide images of the subjects who contribute to no "
        "morph of the set, from the probe folder and the morphs' source folder(s)",
        "split",
    )
    if len(cal.subjects) < 2 and not required:
        return CalibrationImages(
            [], "none: every threshold is fixed and fewer than two subjects contribute to "
            "no morph, so FMR and FNMR are not measured", "none")
    if len(cal.subjects) < 2:
        raise MapScoreError(
            f"the subject-disjoint calibration split has {len(cal.subjects)} subject(s) "
            "(the probe folder and the morphs' source folders hold no images of at least two "
            "subjects who contribute to no morph); pass --calibration FOLDER with bona fide "
            "images of other subjects, or fixed thresholds (--threshold SYSTEM=published)"
        )
    return cal


def from_source(calibration: Union[PathLike, Mapping[str, Sequence[PathLike]]],
                pattern: str) -> CalibrationImages:
    """Calibration images from a folder (subject ids by ``pattern``) or a mapping."""
    from morphlab.datasets.folder import load_folder

    if isinstance(calibration, Mapping):
        images = sorted((str(k), str(Path(p))) for k, v in calibration.items() for p in v)
        return CalibrationImages(images, "the calibration images given", "mapping")
    ds = load_folder(calibration, pattern=pattern, check_images=False)
    root = str(Path(calibration).resolve())
    return CalibrationImages(sorted((s.subject, str(s.path)) for s in ds.samples),
                             f"all pairs of images in {root}", "folder", root)


def check_overlap(cal: CalibrationImages, sha: Mapping[str, str], attack_images: Mapping[str, str],
                  contributors: set[str], *, allow: bool) -> Optional[dict]:
    """Refuse a calibration set sharing images or subjects with the attack evaluation.

    Args:
        cal: the calibration images.
        sha: path → sha256 of every image (calibration ones included).
        attack_images: sha256 → what it is in the attack evaluation (``"morph X"``,
            ``"probe Y"``, ``"enrolment image of subject Z"``).
        contributors: subject ids of the attack set.
        allow: downgrade the refusal to a warning.

    Returns:
        ``None`` when disjoint; else ``{"images": [...], "subjects": [...], "message"}``.

    Raises:
        MapScoreError: overlap and not ``allow``.
    """
    shared_images = sorted({f"{Path(p).name} = {attack_images[sha[p]]}" for _, p in cal.images
                            if sha[p] in attack_images})
    shared_subjects = sorted(set(cal.subjects) & contributors)
    if not shared_images and not shared_subjects:
        return None
    parts = []
    if shared_images:
        parts.append(f"{len(shared_images)} image(s) ({', '.join(shared_images[:3])}"
                     f"{' …' if len(shared_images) > 3 else ''})")
    if shared_subjects:
        parts.append(f"{len(shared_subjects)} subject(s) ({', '.join(shared_subjects[:LISTED])}"
                     f"{' …' if len(shared_subjects) > LISTED else ''})")
    msg = (f"the calibration set ({cal.description}) shares {' and '.join(parts)} with the "
           "attack evaluation, so its thresholds are tuned on the very comparisons MAP "
           "measures")
    if not allow:
        raise MapScoreError(
            msg + "; give a --calibration folder of other subjects' images, or omit "
            "--calibration to use the subject-disjoint split (--allow-calibration-overlap "
            "accepts it with a warning in the report)")
    return {"images": shared_images, "subjects": shared_subjects,
            "message": "CALIBRATION OVERLAP (allowed by --allow-calibration-overlap): " + msg}


# ----------------------------------------------------------------------------------------
# comparisons
# ----------------------------------------------------------------------------------------
@dataclass
class Comparisons:
    """One system's bona fide calibration comparisons.

    Attributes:
        genuine, impostor: ``(probe name, reference name, score)`` lists (report CSV).
        genuine_subjects: ``(G,)`` subject id of each genuine comparison.
        impostor_subjects: ``(N, 2)`` the two subject ids of each impostor comparison.
        cross_gender_dropped: impostor pairs left out by the same-gender policy.
    """

    genuine: list[tuple[str, str, float]] = field(default_factory=list)
    impostor: list[tuple[str, str, float]] = field(default_factory=list)
    genuine_subjects: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    impostor_subjects: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=object))
    cross_gender_dropped: int = 0

    def scores(self, kind: str) -> np.ndarray:
        return np.array([v for _, _, v in getattr(self, kind)], dtype=np.float64)


def check_genders(subjects: Sequence[str], genders: Mapping[str, str], impostors: str) -> None:
    """With same-gender impostors, every calibration subject needs a known gender."""
    if impostors not in IMPOSTOR_POLICIES:
        raise MapScoreError(f"impostors must be one of {', '.join(IMPOSTOR_POLICIES)}, "
                            f"got {impostors!r}")
    if impostors == "same-gender":
        unknown = sorted(s for s in subjects if not genders.get(s))
        if unknown:
            raise MapScoreError(
                f"--impostors same-gender: no gender known for {len(unknown)} calibration "
                f"subject(s) ({', '.join(unknown[:LISTED])}{' …' if len(unknown) > LISTED else ''}); "
                "give a --metadata CSV with their gender (as for `morphlab pairs`)")


def comparisons(system: RecognitionSystem, emb: Mapping[str, np.ndarray], cal: CalibrationImages,
                genders: Mapping[str, str], impostors: str = "all") -> Comparisons:
    """Every unordered pair of distinct calibration images embedded by ``system``."""
    items = [(s, p) for s, p in cal.images if p in emb]
    out = Comparisons()
    if len(items) < 2:
        return out
    E = np.stack([emb[p] for _, p in items])
    sim = system.similarity(E, E)
    i, j = np.triu_indices(len(items), k=1)
    subj = np.array([s for s, _ in items], dtype=object)
    names = [Path(p).name for _, p in items]
    same = subj[i] == subj[j]
    keep = impostor_mask(subj[i], subj[j], genders, impostors)
    out.cross_gender_dropped = int((~same & ~keep).sum())
    vals = sim[i, j]
    out.genuine = [(names[a], names[b], float(v)) for a, b, v in zip(i[same], j[same], vals[same])]
    out.impostor = [(names[a], names[b], float(v)) for a, b, v in zip(i[keep], j[keep], vals[keep])]
    out.genuine_subjects = subj[i[same]]
    out.impostor_subjects = np.stack([subj[i[keep]], subj[j[keep]]], axis=1) if keep.any() \
        else np.zeros((0, 2), dtype=object)
    return out


# ----------------------------------------------------------------------------------------
# thresholds
# ----------------------------------------------------------------------------------------
def parse_threshold(spec: ThresholdSpec) -> tuple[str, Optional[float]]:
    """``("similarity" | "distance", value)`` or ``("published", None)`` (see
    :func:`morphlab.metrics.thresholds.parse_threshold_spec`); a number is a similarity."""
    try:
        parsed = parse_threshold_spec(f"system={spec}")
    except ValueError as exc:
        raise MapScoreError(str(exc).replace("'system=", "'")) from None
    return parsed.scale, parsed.value


def to_similarity(system: RecognitionSystem, kind: str, value: float) -> float:
    """A threshold on the system's similarity scale (the one conversion, at the boundary).

    A system whose native score is a distance declares ``native_score = ("distance", a,
    b)`` (similarity = a + b × distance); dlib-resnet's is ``(1, -1)``.
    """
    native = getattr(system, "native_score", None)
    conversion = tuple(native[1:]) if native and native[0] == "distance" else None
    try:
        return to_similarity_threshold(value, kind, conversion, what=system.name)
    except ValueError as exc:
        raise MapScoreError(f"{exc} ({system.score_description})") from None


def operating_point(system: RecognitionSystem, label: str, spec: Optional[ThresholdSpec],
                    comps: Comparisons, target_fmr: float, cal_desc: str) -> OperatingPoint:
    """The system's threshold: calibrated at ``target_fmr`` unless ``spec`` gives one."""
    g, i = comps.scores("genuine"), comps.scores("impostor")
    subjects = comps.impostor_subjects
    if spec is None:
        if not i.size:
            raise MapScoreError(
                f"{label}: the calibration set ({cal_desc}) has no impostor comparisons; it "
                "needs bona fide images of at least two different subjects, or give a fixed "
                "threshold")
        return calibrate(g, i, target_fmr, what=label, impostor_subjects=comps.impostor_subjects)
    kind, value = parse_threshold(spec)
    if kind == "published":
        if system.default_threshold is None:
            raise MapScoreError(
                f"{label}: its authors publish no threshold; calibrate one at a target FMR or "
                "give a value")
        return replace(fixed(system.default_threshold, g, i, impostor_subjects=subjects),
                       policy="published")
    op = fixed(to_similarity(system, kind, value), g, i, impostor_subjects=subjects)
    return op if kind == "similarity" else replace(op, policy=f"fixed (distance {value:g})")
