"""Detector data as *presentations*: which images, with which label, identities and live
probes — the data-loading half of :mod:`morphlab.detect` (which re-exports all of it).

A :class:`Presentation` is a suspected image, its label (bona fide or morph), the
identities involved (the bona fide subject, or the morph's subject A and subject B), its
attack species (``"GENERATOR/VARIANT"``, e.g. ``"landmark/complete"``) and, for
differential detectors, a trusted live probe.

* Bona fide images come from folders or list files (one path per line); the subject of
  each file is read from its name with the pattern of :mod:`morphlab.datasets.folder`
  (default: the part before the first ``_`` or ``-``, e.g. ``002_03.jpg`` → ``002``).
* Attacks come from attack-set manifests (:func:`morphlab.generators.runner.load_manifest`);
  each morph's sha256 is checked against its manifest line, and pairs whose generation
  failed are counted, not used.
* D-MAD: a bona fide presentation is paired with a live image of the same subject (another
  file); a morph with a live image of each contributor (``contributors="both"``), as
  either could present the document.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Literal, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, Path]
BONA_FIDE_SPECIES = "bona fide"
Contributors = Literal["a", "b", "both"]


@dataclass(frozen=True)
class Presentation:
    """One sample for a detector.

    Attributes:
        path: the suspected image.
        label: 1 = morph, 0 = bona fide.
        subjects: identities in the image (bona fide: one; morph: subject A, subject B).
        species: ``"bona fide"`` or the attack species ``"GENERATOR/VARIANT"``.
        live: D-MAD only: the trusted live probe.
        live_subject: identity of the live probe.
    """

    path: Path
    label: int
    subjects: tuple[str, ...]
    species: str = BONA_FIDE_SPECIES
    live: Optional[Path] = None
    live_subject: Optional[str] = None

    def identities(self) -> set[str]:
        ids = set(self.subjects)
        if self.live_subject is not None:
            ids.add(self.live_subject)
        return ids


@dataclass
class PresentationSet:
    """Presentations plus what was left out on the way (``(what, reason)`` pairs)."""

    items: list[Presentation] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __add__(self, other: "PresentationSet") -> "PresentationSet":
        return PresentationSet(self.items + other.items, self.skipped + other.skipped)

    def identities(self) -> set[str]:
        out: set[str] = set()
        for it in self.items:
            out |= it.identities()
        return out

    def counts(self) -> dict[str, int]:
        """Number of presentations per species (bona fide first)."""
        c = Counter(it.species for it in self.items)
        return {k: c[k] for k in sorted(c, key=lambda s: (s != BONA_FIDE_SPECIES, s))}

    def restrict(self, subjects: Iterable[str]) -> "PresentationSet":
        """The presentations whose every identity is in ``subjects``."""
        keep = set(subjects)
        return PresentationSet([it for it in self.items if it.identities() <= keep], list(self.skipped))


# -- building presentation sets ----------------------------------------------------------
def _subject_of(path: Path, rx) -> Optional[str]:
    m = rx.match(path.stem)
    return m.group("subject") if m and m.group("subject") else None


def listed_paths(list_file: Path, what: str) -> list[tuple[int, Path]]:
    """``(line number, resolved path)`` of a list file: one path per line, relative paths
    relative to the list, blank lines and ``#`` comments ignored.

    Raises:
        FileNotFoundError: a listed file is missing (``what`` names the kind).
        ValueError: the list names no file.
    """
    out = []
    for num, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        p = Path(text)
        p = (p if p.is_absolute() else list_file.parent / p).resolve()
        if not p.is_file():
            raise FileNotFoundError(f"{list_file}, line {num}: {what} {p} not found")
        out.append((num, p))
    if not out:
        raise ValueError(f"{list_file}: the list file names no {what}")
    return out


def list_images(source: PathLike, *, pattern: Optional[str] = None) -> list[tuple[Path, str]]:
    """``(path, subject)`` of the images of a folder, a list file or one image file.

    Args:
        source: a folder (searched recursively, as :func:`morphlab.datasets.folder.load_folder`),
            a text file with one image path per line (relative paths are relative to the
            list file; blank lines and ``#`` comments are ignored), or an image file.
        pattern: file-name pattern with a ``subject`` group (default
            :data:`morphlab.datasets.folder.DEFAULT_PATTERN`).

    Raises:
        FileNotFoundError: ``source`` or a listed file is missing.
        ValueError: a file name does not match the pattern, or nothing is found.
    """
    from morphlab.datasets.folder import DEFAULT_PATTERN, compile_pattern, load_folder
    from morphlab.io import IMAGE_SUFFIXES

    pattern = pattern or DEFAULT_PATTERN
    src = Path(source)
    if src.is_dir():
        ds = load_folder(src, pattern=pattern, check_images=False)
        return [(s.path, s.subject) for s in ds.samples]
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such folder, list file or image")
    rx = compile_pattern(pattern)
    if src.suffix.lower() in IMAGE_SUFFIXES:
        files = [src.resolve()]
    else:
        files = [p for _, p in listed_paths(src, "image")]
    out = []
    for f in files:
        subject = _subject_of(f, rx)
        if subject is None:
            raise ValueError(
                f"{f}: file name does not match the subject pattern {pattern!r}; rename it "
                "or pass another pattern (--pattern)"
            )
        out.append((f, subject))
    return out


def bona_fide_presentations(sources: Sequence[PathLike], *, pattern: Optional[str] = None) -> PresentationSet:
    """Bona fide presentations from folders / list files / images (see :func:`list_images`)."""
    items = [Presentation(p, 0, (s,)) for src in sources for p, s in list_images(src, pattern=pattern)]
    return PresentationSet(items)


def species_of(record: dict) -> str:
    """``"GENERATOR/VARIANT"`` of a manifest record (variant: ``params["variant"]``, else the tag)."""
    params = record.get("params") or {}
    variant = params.get("variant") or record.get("tag") or "default"
    return f"{record.get('generator', 'unknown')}/{variant}"


def is_attack_list(path: PathLike) -> bool:
    """True for a text file listing morph paths (as ``morphlab split`` writes), not a
    manifest: its first line that is not blank or a ``#`` comment is not a JSON object."""
    p = Path(path)
    if not p.is_file() or p.suffix.lower() == ".jsonl":
        return False
    with open(p, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            text = line.strip()
            if text and not text.startswith("#"):
                return not text.startswith("{")
    return p.suffix.lower() == ".txt"


def attack_records(source: PathLike, *, verify: bool = True) -> list[dict]:
    """Manifest records (failed pairs included) of an attack set or an attack list file.

    An attack list names morph files, one per line (relative paths relative to the list;
    blank lines and ``#`` comments ignored); each must be a morph of the
    ``manifest.jsonl`` in its own folder, whose record (sha256-checked with ``verify``)
    is returned. A list returns no failed pairs.

    Raises:
        FileNotFoundError: a listed file or its folder's manifest is missing.
        ValueError: a listed file is not a morph of its folder's manifest, is listed
            twice, or the list names none (the message names the list and line).
    """
    from morphlab.generators.runner import load_manifest

    src = Path(source)
    if not is_attack_list(src):
        return load_manifest(src, include_failed=True, verify=verify)
    wanted: dict[Path, int] = {}
    for num, p in listed_paths(src, "morph"):
        if p in wanted:
            raise ValueError(f"{src}, line {num}: {p} is listed twice (first on line {wanted[p]})")
        wanted[p] = num
    by_path: dict[Path, dict] = {}
    for folder in sorted({p.parent for p in wanted}):
        for rec in load_manifest(folder, verify=False):
            by_path[Path(rec["path"]).resolve()] = rec
    out = []
    for p, num in wanted.items():
        rec = by_path.get(p)
        if rec is None:
            raise ValueError(f"{src}, line {num}: {p} is not a morph of {p.parent / 'manifest.jsonl'}")
        if verify:
            from morphlab.io import sha256_file

            if sha256_file(p) != rec.get("sha256"):
                raise ValueError(f"{src}, line {num}: {p} does not match the sha256 its manifest "
                                 "records (modified?)")
        out.append(rec)
    return out


def attack_presentations(manifests: Sequence[PathLike], *, variants: Optional[Sequence[str]] = None,
                         verify: bool = True) -> PresentationSet:
    """Morph presentations from attack-set manifests.

    Args:
        manifests: ``manifest.jsonl`` files, attack-set folders or attack list files
            (:func:`attack_records`, e.g. written by ``morphlab split``).
        variants: keep only these variants (e.g. ``["complete"]``); matched against the
            variant part of :func:`species_of` or the full species.
        verify: check each morph file against the sha256 of its manifest line (as
            ``postprocess`` does), so a replaced or edited morph is never trained or
            tested on under its old label.

    Returns:
        The morphs; pairs whose generation failed are listed in ``skipped``.

    Raises:
        ValueError: a morph does not match its recorded sha256 (the message names the
            manifest line and the file), or no usable morph.
    """
    out = PresentationSet()
    for m in manifests:
        for rec in attack_records(m, verify=verify):
            if rec.get("status") != "ok":
                out.skipped.append((f"{m}: pair {rec.get('pair_id')}", f"generation failed: {rec.get('error')}"))
                continue
            sp = species_of(rec)
            if variants and sp not in variants and sp.split("/", 1)[1] not in variants:
                continue
            subjects = (str(rec["subject_a"]["id"]), str(rec["subject_b"]["id"]))
            out.items.append(Presentation(Path(rec["path"]), 1, subjects, sp))
    if not out.items:
        raise ValueError(
            f"no usable morph in {', '.join(map(str, manifests))}"
            + (f" with variant(s) {', '.join(variants)}" if variants else "")
        )
    return out


def with_live_probes(
    data: PresentationSet,
    live_sources: Sequence[PathLike],
    *,
    pattern: Optional[str] = None,
    contributors: Contributors = "both",
) -> PresentationSet:
    """Turn presentations into D-MAD ``(suspected, live)`` presentations.

    A bona fide presentation gets every live image of its subject other than itself; a
    morph gets, for subject A and/or subject B (``contributors``), every live image of
    that contributor. Presentations without any live image are listed in ``skipped``.
    """
    if contributors not in ("a", "b", "both"):
        raise ValueError(f"contributors must be 'a', 'b' or 'both', got {contributors!r}")
    live: dict[str, list[Path]] = {}
    for src in live_sources:
        for p, s in list_images(src, pattern=pattern):
            live.setdefault(s, []).append(p)
    out = PresentationSet([], list(data.skipped))
    for it in data.items:
        if it.label == 0:
            who = [it.subjects[0]]
        else:
            who = {"a": it.subjects[:1], "b": it.subjects[1:2], "both": it.subjects}[contributors]
        made = 0
        for s in who:
            for probe in live.get(s, []):
                if probe.resolve() != it.path.resolve():
                    out.items.append(replace(it, live=probe, live_subject=s))
                    made += 1
        if not made:
            out.skipped.append((str(it.path), f"no live probe of subject {'/'.join(who)}"))
    return out


def split_subjects(subjects: Iterable[str], *, test_fraction: float = 0.5, seed: int = 0) -> tuple[set[str], set[str]]:
    """Split identities at random into disjoint ``(train, test)`` sets."""
    subs = sorted(set(subjects))
    if len(subs) < 2:
        raise ValueError(f"need at least 2 identities to split, got {len(subs)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(subs))
    n_test = min(max(1, int(round(test_fraction * len(subs)))), len(subs) - 1)
    test = {subs[i] for i in order[:n_test]}
    return set(subs) - test, test


def build_presentations(
    bona_fide: Sequence[PathLike] = (),
    attacks: Sequence[PathLike] = (),
    *,
    live: Sequence[PathLike] = (),
    variants: Optional[Sequence[str]] = None,
    pattern: Optional[str] = None,
    contributors: Contributors = "both",
) -> PresentationSet:
    """Bona fide sources + attack manifests (+ live probes for D-MAD) → one presentation set."""
    data = bona_fide_presentations(bona_fide, pattern=pattern) if bona_fide else PresentationSet()
    if attacks:
        data = data + attack_presentations(attacks, variants=variants)
    if live:
        data = with_live_probes(data, live, pattern=pattern, contributors=contributors)
    return data


def split_keeping_morphs(data: PresentationSet, *, test_fraction: float = 0.5,
                         seed: int = 0) -> tuple[set[str], set[str]]:
    """Subject-disjoint ``(train, test)`` identities that lose as few morphs as possible.

    Identities linked by a morph (subject A and subject B) must fall on one side, so the
    connected groups of the "morphed together" graph are assigned whole, in seeded random
    order, to the test side until it holds ``test_fraction`` of the identities. With pairs
    made once per subject every morph is kept; a graph that is one big group cannot be
    split without losing morphs — then :func:`split_subjects` is used and the morphs
    spanning both sides are dropped by :meth:`PresentationSet.restrict`.
    """
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for it in data.items:
        ids = sorted(it.identities())
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    groups: dict[str, list[str]] = {}
    for a in sorted(data.identities()):
        groups.setdefault(find(a), []).append(a)
    comps = sorted(groups.values())
    total = sum(len(c) for c in comps)
    if len(comps) < 2 or max(len(c) for c in comps) > max(1, round(test_fraction * total)):
        return split_subjects(data.identities(), test_fraction=test_fraction, seed=seed)
    # groups holding morphs first, so that both sides get morphs when there are two or
    # more such groups (one is kept back for training); then single identities (bona
    # fide only) fill the test side up to its share
    rng = np.random.default_rng(seed)
    morphed = [comps[i] for i in rng.permutation(len(comps)) if len(comps[i]) > 1]
    single = [comps[i] for i in rng.permutation(len(comps)) if len(comps[i]) == 1]
    target = round(test_fraction * total)
    keep_for_train = morphed[-1:] if len(morphed) >= 2 else []
    test: set[str] = set()
    for comp in morphed[:len(morphed) - len(keep_for_train)] + single:
        if len(test) + len(comp) <= target or not test:
            test |= set(comp)
    return data.identities() - test, test


def expand_images(sources: Sequence[PathLike]) -> list[Path]:
    """Image files named directly, plus the images in named folders (recursively, sorted)."""
    from morphlab.io import IMAGE_SUFFIXES

    out: list[Path] = []
    for src in map(Path, sources):
        if src.is_dir():
            found = sorted(f for f in src.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(src).parts))
            if not found:
                raise ValueError(f"{src}: no image files in this folder")
            out += found
        elif src.is_file():
            out.append(src)
        else:
            raise FileNotFoundError(f"{src}: no such image or folder")
    return out
