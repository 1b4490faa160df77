"""``morphlab map-score``: how many systems, in how many attempts, accept a morph as both subjects.

:func:`map_score` reads an attack set (the ``manifest.jsonl`` of ``morphlab generate``),
finds each contributor's **probe images** (bona fide images *not* used to make the
morph, e.g. FRLL's smiling photos; several per subject where the dataset has them),
embeds morphs, probes and enrolment images with each face recognition system (through
the embedding cache, so a re-run recomputes nothing), sets each system's threshold and
writes the report folder of :mod:`morphlab.reports.map_report`.

Thresholds, per system: calibrated at ``target_fmr`` (default 0.1%) on the impostor
comparisons of a bona fide **calibration set**, or given (``thresholds={"dlib-resnet":
0.4}``, or ``"published"`` for the value the model's authors publish). The calibration
set is by default the probes against the enrolment images of all the attack set's
subjects (same subject: genuine; different subjects: impostor); a folder of bona fide
images can be given instead (all pairs within it).

Bad input: manifest lines whose image is missing or no longer matches its hash are
skipped and counted (never silently), as are morphs in which no face is found; a
contributor with no probe image is an error naming the subjects (or, with
``allow_missing_probes=True``, their morphs are skipped and counted).
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from morphlab import __version__
from morphlab.datasets.folder import DEFAULT_PATTERN, load_folder
from morphlab.io import sha256_file
from morphlab.metrics.thresholds import DEFAULT_TARGET_FMR, OperatingPoint, calibrate, fixed
from morphlab.recognition.base import RecognitionSystem, system_from_spec
from morphlab.recognition.cache import EmbedResult, embed_files
from morphlab.reports.map_report import MapScores, write_map_report

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
ThresholdSpec = Union[float, str]  # a similarity value, or "published"
_LISTED = 10


class MapScoreError(ValueError):
    """The inputs of map-score cannot be used; the message says which and what to do."""


# ----------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------
def read_attack_set(attack_set: PathLike) -> tuple[list[dict], list[dict], Path]:
    """The usable morph records of an attack set, and the skipped ones with reasons.

    Lines of failed pairs are skipped (reason ``"generation failed"``); a morph whose file
    is missing or whose sha256 differs from the manifest is skipped with that reason.

    Returns:
        ``(records, skipped, manifest_path)``; each record gains ``"path"`` (absolute) and
        ``"group"`` (``generator`` or ``generator/tag`` — see :func:`_group`).
    """
    from morphlab.generators.runner import MANIFEST_NAME, load_manifest

    p = Path(attack_set)
    manifest = p / MANIFEST_NAME if p.is_dir() else p
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest}: attack-set manifest not found (give the output folder of "
            "`morphlab generate` or its manifest.jsonl)"
        )
    folder = manifest.parent.resolve()
    records, skipped = [], []
    # load_manifest validates every line but stops at the first missing image; read the
    # lines one by one so that missing or modified images are skipped and counted instead
    for num, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest.name}:{num}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            skipped.append({"what": where, "reason": "not valid JSON (partial line?)"})
            continue
        if not isinstance(rec, dict):
            skipped.append({"what": where, "reason": "not a JSON object"})
            continue
        if rec.get("status") == "failed":
            skipped.append({"what": f"pair {rec.get('pair_id')}",
                            "reason": f"generation failed: {rec.get('error')}"})
            continue
        name = rec.get("file")
        path = folder / name if isinstance(name, str) and name == Path(name).name else None
        if path is None or not path.is_file():
            skipped.append({"what": str(name), "reason": "morph image missing"})
            continue
        lacking = [k for k in ("sha256", "subject_a", "subject_b") if k not in rec]
        if lacking:
            skipped.append({"what": where, "reason": f"manifest line lacks {', '.join(lacking)}"})
            continue
        rec["path"] = str(path)
        records.append(rec)
    if records:  # the manifest's own validation for everything but missing files
        ok = {r["file"] for r in records}
        try:
            validated = load_manifest(manifest)
        except FileNotFoundError:
            validated = None  # missing images: already skipped above
        if validated is not None:
            records = [r for r in validated if r["file"] in ok]
    for rec in records:
        rec["group"] = _group(rec)
    return records, skipped, manifest


def _group(rec: Mapping[str, Any]) -> str:
    gen = str(rec.get("generator", "?"))
    tag = rec.get("tag")
    return f"{gen}/{tag}" if tag else gen


def find_probes(
    probes: Union[PathLike, Mapping[str, Sequence[PathLike]]],
    *,
    pattern: str = DEFAULT_PATTERN,
) -> dict[str, list[Path]]:
    """Probe images by subject id.

    Args:
        probes: a folder (subject ids from the file names by ``pattern``, as
            :func:`morphlab.datasets.folder.load_folder`; e.g. FRLL ``smiling/`` gives
            ``002_08.jpg`` → subject ``002``), or a mapping subject id → image paths.
        pattern: file-name pattern with a ``subject`` group.
    """
    if isinstance(probes, Mapping):
        return {str(k): [Path(p) for p in v] for k, v in probes.items()}
    ds = load_folder(probes, pattern=pattern, check_images=False)
    return {k: [s.path for s in v] for k, v in ds.by_subject().items()}


# ----------------------------------------------------------------------------------------
# the job
# ----------------------------------------------------------------------------------------
@dataclass
class MapScoreResult:
    """What :func:`map_score` wrote: the report folder and the ``map.json`` content."""

    out_dir: Path
    report: dict

    @property
    def map(self) -> np.ndarray:
        """The overall MAP matrix ``(R, C)``."""
        return np.array(self.report["overall"]["map"]["values"], dtype=float)


def _systems(systems: Sequence[Union[str, RecognitionSystem]]) -> list[RecognitionSystem]:
    out = [s if isinstance(s, RecognitionSystem) else system_from_spec(s) for s in systems]
    if not out:
        raise MapScoreError("no face recognition system given (e.g. --fr dlib-resnet --fr lbph)")
    return out


def _labels(systems: Sequence[RecognitionSystem]) -> list[str]:
    seen: dict[str, int] = defaultdict(int)
    labels = []
    for s in systems:
        seen[s.name] += 1
        labels.append(s.name if seen[s.name] == 1 else f"{s.name}#{seen[s.name]}")
    return labels


def map_score(
    attack_set: PathLike,
    probes: Union[PathLike, Mapping[str, Sequence[PathLike]]],
    out_dir: PathLike,
    *,
    systems: Sequence[Union[str, RecognitionSystem]] = ("dlib-resnet", "lbph"),
    probe_pattern: str = DEFAULT_PATTERN,
    target_fmr: float = DEFAULT_TARGET_FMR,
    thresholds: Optional[Mapping[str, ThresholdSpec]] = None,
    calibration: Optional[PathLike] = None,
    calibration_pattern: str = DEFAULT_PATTERN,
    backend: str = "dlib",
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
    workers: int = 1,
    allow_missing_probes: bool = False,
    progress: bool = True,
) -> MapScoreResult:
    """Score an attack set against several face recognition systems and write the MAP report.

    Args:
        attack_set: the folder written by ``morphlab generate`` (or its manifest.jsonl).
        probes: folder of bona fide probe images, or ``{subject id: [paths]}``.
        out_dir: the report folder (created; files in it are replaced).
        systems: registered names, ``name=MODEL_PATH`` specs, or instances.
        probe_pattern: file-name pattern giving the subject id of a probe file.
        target_fmr: FMR at which thresholds are calibrated.
        thresholds: per system name (or label), a fixed similarity threshold or
            ``"published"``; the others are calibrated.
        calibration: folder of bona fide images for the calibration comparisons (default:
            the probes against the attack set's enrolment images).
        calibration_pattern: file-name pattern of the calibration folder.
        backend: landmark backend for every image.
        cache_dir: cache root for landmarks and embeddings.
        use_cache: read and write the caches.
        workers: processes for embedding.
        allow_missing_probes: skip (and count) morphs whose contributor has no probe,
            instead of failing.
        progress: tqdm progress bars.

    Returns:
        :class:`MapScoreResult`.

    Raises:
        MapScoreError: no usable morph, contributors without probes, no impostor pairs
            to calibrate with, a threshold for an unknown system, ….
        KeyError: an unknown system name (the message lists the valid ones).
    """
    systems_ = _systems(systems)
    labels = _labels(systems_)
    thresholds = dict(thresholds or {})
    unknown = [k for k in thresholds if k not in labels]
    if unknown:
        raise MapScoreError(
            f"threshold given for system(s) not scored: {', '.join(unknown)}; systems: "
            f"{', '.join(labels)}"
        )
    records, skipped, manifest = read_attack_set(attack_set)
    n_read = len(records) + sum(1 for s in skipped if not s["reason"].startswith("generation"))
    probe_map = find_probes(probes, pattern=probe_pattern)

    # -- hashes: verify morphs against the manifest, keep enrolment images out of the probes
    shas: dict[str, str] = {}

    def sha(p: PathLike) -> str:
        k = str(p)
        if k not in shas:
            shas[k] = sha256_file(k)
        return shas[k]

    good = []
    for rec in records:
        if sha(rec["path"]) != rec["sha256"]:
            skipped.append({"what": rec["file"], "reason": "morph image modified (sha256 differs "
                            "from the manifest)"})
        else:
            good.append(rec)
    records = good
    enrol: dict[str, dict[str, str]] = {}  # subject -> {sha256: path}
    for rec in records:
        for key in ("subject_a", "subject_b"):
            sub = rec[key]
            enrol.setdefault(str(sub["id"]), {})[sub.get("sha256") or sha(sub["path"])] = sub["path"]
    probes_by_subject: dict[str, list[str]] = {}
    excluded = 0
    for subject in enrol:
        kept = []
        for p in probe_map.get(subject, []):
            if sha(p) in enrol[subject]:
                excluded += 1  # the very image the morph was made from is no probe
                continue
            kept.append(str(p))
        probes_by_subject[subject] = kept
    if excluded:
        log.info("%d probe file(s) are enrolment images used to make morphs; not used as probes",
                 excluded)
    missing = sorted(s for s, v in probes_by_subject.items() if not v)
    if missing:
        if not allow_missing_probes:
            raise MapScoreError(
                f"{len(missing)} contributing subject(s) have no probe image (a bona fide image "
                f"other than the one used to make the morph): {', '.join(missing[:_LISTED])}"
                f"{' …' if len(missing) > _LISTED else ''}. Check the probe folder and "
                "--probe-pattern (subject ids must match the manifest's), or pass "
                "--allow-missing-probes to skip their morphs"
            )
        keep = []
        for rec in records:
            lacking = [rec[k]["id"] for k in ("subject_a", "subject_b")
                       if not probes_by_subject.get(str(rec[k]["id"]))]
            if lacking:
                skipped.append({"what": rec["file"],
                                "reason": f"no probe image for subject(s) {', '.join(lacking)}"})
            else:
                keep.append(rec)
        records = keep
    if not records:
        raise MapScoreError(
            f"{manifest}: no usable morph ({len(skipped)} skipped: "
            + "; ".join(f"{s['what']}: {s['reason']}" for s in skipped[:3]) + ")"
        )

    # -- the images to embed
    subjects = sorted({str(r[k]["id"]) for r in records for k in ("subject_a", "subject_b")})
    morph_paths = [r["path"] for r in records]
    probe_paths = sorted({p for s in subjects for p in probes_by_subject[s]})
    if calibration is None:
        cal_refs = {s: sorted(enrol[s].values()) for s in subjects}
        cal_probes = {s: probes_by_subject[s] for s in subjects}
        cal_desc = "probes vs enrolment images of the attack set's subjects"
    else:
        cal_ds = load_folder(calibration, pattern=calibration_pattern, check_images=False)
        cal_refs = {k: [str(x.path) for x in v] for k, v in cal_ds.by_subject().items()}
        cal_probes = None
        cal_desc = f"all pairs of images in {Path(calibration).resolve()}"
    cal_paths = sorted({p for v in cal_refs.values() for p in v}
                       | ({p for v in cal_probes.values() for p in v} if cal_probes else set()))
    all_paths = list(dict.fromkeys(morph_paths + probe_paths + cal_paths))
    for p in all_paths:
        sha(p)

    # -- embed with every system, through the cache
    results: list[EmbedResult] = []
    for system in systems_:
        res = embed_files(system, all_paths, backend=backend, cache_dir=cache_dir,
                          use_cache=use_cache, workers=workers, progress=progress, sha256s=shas)
        results.append(res)
    failed_morph = set()
    morph_set = set(morph_paths)
    for label, res in zip(labels, results):
        for p, why in res.failures.items():
            if p in morph_set:
                failed_morph.add(p)
            log.warning("%s: %s", label, why)
    if failed_morph:
        for rec in records:
            if rec["path"] in failed_morph:
                why = next(r.failures[rec["path"]] for r in results if rec["path"] in r.failures)
                skipped.append({"what": rec["file"], "reason": f"cannot embed the morph: {why}"})
        records = [r for r in records if r["path"] not in failed_morph]
        if not records:
            raise MapScoreError(f"{manifest}: no morph could be embedded (no face found?)")

    # -- morph vs probe scores (M, S, A, C)
    M, S = len(records), 2
    A = max(len(probes_by_subject[str(r[k]["id"])]) for r in records
            for k in ("subject_a", "subject_b"))
    scores = np.full((M, S, A, len(systems_)), np.nan)
    probe_names: list[list[list[str]]] = []
    for m, rec in enumerate(records):
        per_subject = []
        for s, key in enumerate(("subject_a", "subject_b")):
            plist = probes_by_subject[str(rec[key]["id"])]
            per_subject.append([Path(p).name for p in plist])
            for c, (system, res) in enumerate(zip(systems_, results)):
                emb = res.embeddings
                have = [i for i, p in enumerate(plist) if p in emb]
                if not have:
                    continue
                sims = system.similarity(emb[rec["path"]][None],
                                         np.stack([emb[plist[i]] for i in have]))[0]
                scores[m, s, have, c] = sims
        probe_names.append(per_subject)
    no_attempt = np.isnan(scores).all(axis=2).any(axis=(1, 2))
    if no_attempt.any():
        bad = [records[m]["file"] for m in np.flatnonzero(no_attempt)]
        raise MapScoreError(
            f"{len(bad)} morph(s) have a subject none of whose probes could be embedded "
            f"(no face found in the probe images?): {', '.join(bad[:_LISTED])}"
        )

    # -- calibration and thresholds
    ops: list[OperatingPoint] = []
    cal_out: dict[str, dict[str, list]] = {}
    for label, system, res in zip(labels, systems_, results):
        gen, imp = _calibration_scores(system, res.embeddings, cal_refs, cal_probes)
        cal_out[label] = {"genuine": gen, "impostor": imp}
        g = [v for _, _, v in gen]
        i = [v for _, _, v in imp]
        spec = thresholds.get(label, thresholds.get(system.name))
        if spec is None:
            if not i:
                raise MapScoreError(
                    f"{label}: the calibration set ({cal_desc}) has no impostor comparisons; "
                    "it needs bona fide images of at least two different subjects, or give a "
                    "fixed threshold"
                )
            ops.append(calibrate(g, i, target_fmr, what=label))
        elif spec == "published":
            if system.default_threshold is None:
                raise MapScoreError(
                    f"{label}: its authors publish no threshold; calibrate one at a target "
                    "FMR or give a value"
                )
            ops.append(_published(fixed(system.default_threshold, g, i)))
        else:
            ops.append(fixed(float(spec), g, i))

    settings = {
        "attack_set": str(manifest.resolve()),
        "manifest_sha256": sha256_file(manifest),
        "probes": str(probes) if not isinstance(probes, Mapping) else "(mapping)",
        "probe_pattern": probe_pattern,
        "calibration": cal_desc,
        "target_fmr": target_fmr,
        "thresholds_given": {k: v for k, v in thresholds.items()},
        "landmark_backend": backend,
        "morphlab_version": __version__,
    }
    counts = {
        "morphs_read": n_read,
        "morphs_used": len(records),
        "morphs_skipped": sum(1 for s in skipped if not s["reason"].startswith("generation")),
        "pairs_failed_in_generation": sum(1 for s in skipped
                                          if s["reason"].startswith("generation")),
        "subjects": len(subjects),
        "probe_images": len(probe_paths),
        "probes_excluded_as_enrolment_images": excluded,
        "attempts_per_subject_max": int(A),
        "embeddings_from_cache": {lab: r.hits for lab, r in zip(labels, results)},
        "embeddings_computed": {lab: r.computed for lab, r in zip(labels, results)},
        "images_not_embedded": {lab: len(r.failures) for lab, r in zip(labels, results)},
    }
    if counts["morphs_skipped"]:
        log.warning("%d morph(s) skipped (see map.json 'skipped')", counts["morphs_skipped"])
    data = MapScores(
        systems=[{**s.describe(), "label": lab} for s, lab in zip(systems_, labels)],
        operating_points=ops,
        morphs=[{"file": r["file"], "group": r["group"], "pair_id": r.get("pair_id", ""),
                 "subject_ids": [str(r["subject_a"]["id"]), str(r["subject_b"]["id"])]}
                for r in records],
        probes=probe_names,
        scores=scores,
        calibration=cal_out,
        settings=settings,
        counts=counts,
        skipped=skipped,
    )
    report = write_map_report(data, out_dir)
    return MapScoreResult(Path(out_dir), report)


def _published(op: OperatingPoint) -> OperatingPoint:
    from dataclasses import replace

    return replace(op, policy="published")


def _calibration_scores(system: RecognitionSystem, emb: Mapping[str, np.ndarray],
                        refs: Mapping[str, list[str]], probes: Optional[Mapping[str, list[str]]]
                        ) -> tuple[list, list]:
    """Genuine and impostor ``(probe, reference, score)`` lists.

    With ``probes``: every probe against every reference image (same subject: genuine).
    Without: every unordered pair of distinct images of ``refs``.
    """
    gen, imp = [], []
    ref_items = [(s, p) for s, ps in refs.items() for p in ps if p in emb]
    if not ref_items:
        return gen, imp
    R = np.stack([emb[p] for _, p in ref_items])
    if probes is not None:
        probe_items = [(s, p) for s, ps in probes.items() for p in ps if p in emb]
        if not probe_items:
            return gen, imp
        sim = system.similarity(np.stack([emb[p] for _, p in probe_items]), R)
        for i, (si, pi) in enumerate(probe_items):
            for j, (sj, pj) in enumerate(ref_items):
                if pi == pj:
                    continue
                (gen if si == sj else imp).append((Path(pi).name, Path(pj).name, float(sim[i, j])))
        return gen, imp
    sim = system.similarity(R, R)
    for i in range(len(ref_items)):
        for j in range(i + 1, len(ref_items)):
            (si, pi), (sj, pj) = ref_items[i], ref_items[j]
            (gen if si == sj else imp).append((Path(pi).name, Path(pj).name, float(sim[i, j])))
    return gen, imp
