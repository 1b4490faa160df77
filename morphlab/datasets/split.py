"""Subject-disjoint train/test splits by identity — the library behind ``morphlab split``.

:func:`split_by_identity` assigns every identity (the subjects of the bona fide images
and the contributors of the morphs) to the train or the test side, at random (seeded),
optionally stratified by gender. A bona fide image goes to its subject's side; a morph
goes to a side only if **both** its subjects (subject A and subject B) are on that side.
Morphs whose contributors straddle the split are *excluded* and listed.

:func:`write_split` writes the result as list files that ``morphlab detect train`` /
``detect eval`` take (``--bona-fide LIST``, ``--attacks LIST``)::

    OUT/train_bona_fide.txt   one image path per line (relative to OUT)
    OUT/test_bona_fide.txt
    OUT/train_attacks.txt     one morph path per line; each morph is looked up (and its
    OUT/test_attacks.txt      sha256 checked) in the manifest.jsonl of its own folder
    OUT/excluded_attacks.txt  the straddling morphs, with their subjects (comments)
    OUT/split.json            seed, test fraction, strata, identities and counts per side

Lines starting with ``#`` are comments (each list starts with a few, saying what it is).
The folder follows :mod:`morphlab.outdir`: locked while written, files written atomically,
a previous split replaced only with ``overwrite=True`` and a file morphlab did not write
never replaced.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: The files :func:`write_split` writes.
SPLIT_FILES = ("train_bona_fide.txt", "test_bona_fide.txt", "train_attacks.txt",
               "test_attacks.txt", "excluded_attacks.txt", "split.json")
SIDES = ("train", "test")
UNKNOWN = "unknown"


@dataclass
class Morph:
    """One usable morph of an attack set: its file and subject A / subject B."""

    path: Path
    subject_a: str
    subject_b: str
    species: str


@dataclass
class Split:
    """A subject-disjoint split (see the module docstring).

    Attributes:
        subjects: identities per side (``{"train": [...], "test": [...]}``, sorted).
        bona_fide: ``(path, subject)`` per side.
        attacks: morphs per side.
        excluded: morphs whose subjects fall on different sides.
        strata: stratum (gender or ``"unknown"``) → ``{"train": n, "test": n}``
            identities; one stratum ``"all"`` when not stratified.
        config: seed, test fraction, stratification and sources (for ``split.json``).
    """

    subjects: dict[str, list[str]]
    bona_fide: dict[str, list[tuple[Path, str]]]
    attacks: dict[str, list[Morph]]
    excluded: list[Morph]
    strata: dict[str, dict[str, int]]
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts per side, the excluded morphs and the strata (JSON-able)."""
        return {
            side: {"identities": len(self.subjects[side]), "bona_fide": len(self.bona_fide[side]),
                   "attacks": len(self.attacks[side]),
                   "attacks_by_species": dict(sorted(Counter(m.species for m in self.attacks[side]).items()))}
            for side in SIDES
        } | {"excluded_attacks": len(self.excluded), "strata": self.strata}


def _morphs(attack_sets: Sequence[PathLike]) -> tuple[list[Morph], list[str]]:
    """The usable morphs of the attack sets (manifest or folder each) and the manifests."""
    from morphlab.detectors.presentations import species_of
    from morphlab.generators.runner import MANIFEST_NAME, load_manifest

    morphs, manifests = [], []
    for src in attack_sets:
        p = Path(src)
        manifests.append(str((p / MANIFEST_NAME if p.is_dir() else p).resolve()))
        for rec in load_manifest(p):
            morphs.append(Morph(Path(rec["path"]), str(rec["subject_a"]["id"]),
                                str(rec["subject_b"]["id"]), species_of(rec)))
    return morphs, manifests


def _assign(subjects: Sequence[str], strata_of: Mapping[str, str], test_fraction: float,
            seed: int) -> tuple[set[str], dict[str, dict[str, int]]]:
    """Test identities: in each stratum, round(test_fraction * n) at random (at least one
    on each side where the stratum has two or more identities)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for s in sorted(subjects):
        groups.setdefault(strata_of.get(s, "all"), []).append(s)
    test: set[str] = set()
    strata = {}
    for name in sorted(groups):
        members = groups[name]
        n_test = int(round(test_fraction * len(members)))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        order = rng.permutation(len(members))
        test |= {members[i] for i in order[:n_test]}
        strata[name] = {"train": len(members) - n_test, "test": n_test}
    return test, strata


def _warn_other_subjects(images: Sequence[tuple[Path, str]], pattern: Optional[str]) -> None:
    """Warn when ``detect`` would read other subject ids from the listed file names than
    the loader gave (it reads them from the names, by ``--pattern``)."""
    from morphlab.datasets.folder import DEFAULT_PATTERN, compile_pattern

    rx = compile_pattern(pattern or DEFAULT_PATTERN)
    other = []
    for p, subject in images:
        m = rx.match(p.stem)
        if not m or m.group("subject") != subject:
            other.append(p.name)
    if other:
        log.warning("%d bona fide file name(s) do not give their subject id by %s (e.g. %s): "
                    "`detect` reads the subject from the name, so pass it a --pattern that does",
                    len(other), f"--pattern {pattern!r}" if pattern else "the default pattern",
                    ", ".join(other[:3]))


def split_by_identity(
    bona_fide: Sequence[PathLike],
    attack_sets: Sequence[PathLike] = (),
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
    loader: str = "folder",
    loader_params: Optional[Mapping[str, Any]] = None,
    stratify: Optional[str] = None,
) -> Split:
    """Split identities into disjoint train and test sides (see the module docstring).

    Args:
        bona_fide: dataset folders, read with ``loader`` (as ``morphlab pairs``: e.g.
            ``folder`` with a ``pattern``, or ``frll``); every image is a bona fide image
            of its subject.
        attack_sets: attack sets (``manifest.jsonl`` or its folder) whose morphs are
            split too; their contributors count as identities.
        test_fraction: share of the identities (per stratum) on the test side, in (0, 1).
        seed: the random seed (the same inputs and seed give the same split).
        loader: dataset loader name (:mod:`morphlab.datasets.loaders`).
        loader_params: its parameters (``pattern``, ``metadata``, ``meta_id_column``…).
        stratify: ``"gender"`` splits each gender apart (genders from the loader's
            metadata, e.g. FRLL's ``london_info.csv`` or ``--metadata``); identities of
            unknown gender form a stratum of their own, with a warning. ``None``: one
            stratum.

    Raises:
        ValueError: fewer than two identities, a bad ``test_fraction`` or ``stratify``,
            stratification without any gender, or a bad input (named).
        FileNotFoundError: a folder or manifest is missing.
    """
    from morphlab.datasets.loaders import load_dataset

    if isinstance(test_fraction, bool) or not 0 < float(test_fraction) < 1:
        raise ValueError(f"test fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")
    if stratify not in (None, "gender"):
        raise ValueError(f"stratify must be 'gender' or None, got {stratify!r}")
    if not bona_fide and not attack_sets:
        raise ValueError("nothing to split: give bona fide folders and/or attack sets")
    images: list[tuple[Path, str]] = []
    genders: dict[str, str] = {}
    for folder in bona_fide:
        ds = load_dataset(loader, folder, **dict(loader_params or {}))
        for s in ds.samples:
            images.append((Path(s.path).resolve(), s.subject))
            if s.gender:
                genders[s.subject] = s.gender
    _warn_other_subjects(images, (loader_params or {}).get("pattern"))
    morphs, manifests = _morphs(attack_sets)
    subjects = sorted({s for _, s in images} | {x for m in morphs for x in (m.subject_a, m.subject_b)})
    if len(subjects) < 2:
        raise ValueError(f"need at least 2 identities to split, found {len(subjects)}")
    strata_of: dict[str, str] = {}
    if stratify == "gender":
        if not genders:
            raise ValueError("--stratify gender: no identity has a gender; give a metadata CSV "
                             "(--metadata) or a loader that reads one (e.g. --loader frll)")
        strata_of = {s: genders.get(s, UNKNOWN) for s in subjects}
        unknown = [s for s in subjects if s not in genders]
        if unknown:
            log.warning("%d identities have no gender and form a stratum of their own: %s%s",
                        len(unknown), ", ".join(unknown[:5]), " …" if len(unknown) > 5 else "")
    test, strata = _assign(subjects, strata_of, float(test_fraction), int(seed))
    side_of = {s: ("test" if s in test else "train") for s in subjects}
    attacks: dict[str, list[Morph]] = {"train": [], "test": []}
    excluded = []
    for m in morphs:
        a, b = side_of[m.subject_a], side_of[m.subject_b]
        (attacks[a] if a == b else excluded).append(m)
    split = Split(
        subjects={side: sorted(s for s in subjects if side_of[s] == side) for side in SIDES},
        bona_fide={side: sorted((p, s) for p, s in images if side_of[s] == side) for side in SIDES},
        attacks=attacks, excluded=excluded, strata=strata,
        config={"seed": int(seed), "test_fraction": float(test_fraction), "stratify": stratify,
                "loader": loader, "loader_params": {k: str(v) for k, v in (loader_params or {}).items()},
                "bona_fide_sources": [str(Path(f).resolve()) for f in bona_fide],
                "attack_manifests": manifests},
    )
    if morphs and not attacks["train"] and not attacks["test"]:
        raise ValueError(f"every one of the {len(morphs)} morphs straddles the split (its subjects "
                         "fall on different sides); nothing to train or test on")
    return split


def _rel(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out.resolve())).as_posix()


def _list_text(header: Sequence[str], lines: Sequence[str]) -> str:
    return "".join(f"# {h}\n" for h in header) + "".join(f"{line}\n" for line in lines)


def write_split(split: Split, out_dir: PathLike, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``split``'s list files and ``split.json`` to ``out_dir``.

    Returns:
        File name → path of every file written.

    Raises:
        ValueError: ``out_dir`` is, contains or lies inside an input folder.
        morphlab.outdir.FolderLockedError / ForeignFileError / OutputExistsError: see
            :mod:`morphlab.outdir` (a file morphlab did not write is never replaced; a
            previous split only with ``overwrite``).
    """
    from morphlab.io import atomic_write_text
    from morphlab.outdir import check_disjoint, check_outputs, locked_folder, record_owned

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    for src in split.config.get("bona_fide_sources", []):
        check_disjoint(out, {"bona fide folder": src})
    for m in split.config.get("attack_manifests", []):
        check_disjoint(out, {"attack set folder": Path(m).parent})
    cfg = split.config
    what = (f"seed {cfg.get('seed')}, test fraction {cfg.get('test_fraction')}"
            + (f", stratified by {cfg['stratify']}" if cfg.get("stratify") else ""))
    texts = {}
    for side in SIDES:
        texts[f"{side}_bona_fide.txt"] = _list_text(
            [f"morphlab split: {side} bona fide images ({len(split.bona_fide[side])} of "
             f"{len(split.subjects[side])} identities; {what})",
             "paths relative to this file; use: morphlab detect ... --bona-fide THIS_FILE"],
            [_rel(p, out) for p, _ in split.bona_fide[side]])
        texts[f"{side}_attacks.txt"] = _list_text(
            [f"morphlab split: {side} morphs, both subjects on the {side} side "
             f"({len(split.attacks[side])} morphs; {what})",
             "each is checked against the manifest.jsonl of its folder; "
             "use: morphlab detect ... --attacks THIS_FILE"],
            [_rel(m.path, out) for m in split.attacks[side]])
    texts["excluded_attacks.txt"] = _list_text(
        [f"morphlab split: {len(split.excluded)} morphs excluded: subject A and subject B on "
         f"different sides ({what})"],
        [f"# subject A {m.subject_a} ({_side(split, m.subject_a)}) + subject B {m.subject_b} "
         f"({_side(split, m.subject_b)})\n{_rel(m.path, out)}" for m in split.excluded])
    texts["split.json"] = json.dumps({"format": "morphlab-split", "format_version": 1, **cfg,
                                      "subjects": split.subjects, "counts": split.summary()},
                                     indent=2, sort_keys=True) + "\n"
    with locked_folder(out):
        check_outputs(out, SPLIT_FILES, overwrite=overwrite)
        for name in SPLIT_FILES:
            atomic_write_text(out / name, texts[name])
        record_owned(out, SPLIT_FILES)
    return {name: out / name for name in SPLIT_FILES}


def _side(split: Split, subject: str) -> str:
    return "test" if subject in split.subjects["test"] else "train"
