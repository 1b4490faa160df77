"""The map-score job: embed morphs, probes and calibration images, set thresholds, report.

See :mod:`morphlab.mapscore` for the protocol; :func:`map_score` is the one entry point.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from morphlab import __version__
from morphlab.datasets.folder import DEFAULT_PATTERN
from morphlab.io import sha256_file
from morphlab.mapscore import calibration as calib
from morphlab.mapscore.independence import model_file_overlap
from morphlab.mapscore.inputs import (
    LISTED,
    MapScoreError,
    PathLike,
    find_probes,
    manifest_path,
    manifest_subjects,
    read_attack_set,
    read_genders,
)
from morphlab.metrics.thresholds import DEFAULT_TARGET_FMR
from morphlab.recognition.base import RecognitionSystem, system_from_spec
from morphlab.recognition.cache import DEFAULT_BATCH, EmbedRun, embed_many
from morphlab.reports.map_report import MapScores, write_map_report

log = logging.getLogger(__name__)

try:  # the models helper's constant; ("dlib-resnet",) until it lands
    from morphlab.recognition.base import DEFAULT_SYSTEMS
except ImportError:  # pragma: no cover
    DEFAULT_SYSTEMS = ("dlib-resnet",)

Probes = Union[PathLike, Mapping[str, Sequence[PathLike]]]


@dataclass
class MapScoreResult:
    """What :func:`map_score` wrote: the report folder and the ``map.json`` content."""

    out_dir: Path
    report: dict

    @property
    def map(self) -> np.ndarray:
        """The overall (conditional) MAP matrix ``(R, C)``."""
        return np.array(self.report["overall"]["map"]["values"], dtype=float)


def _systems(systems: Sequence[Union[str, RecognitionSystem]]) -> list[RecognitionSystem]:
    out = [s if isinstance(s, RecognitionSystem) else system_from_spec(s) for s in systems]
    if not out:
        raise MapScoreError("no face recognition system given (e.g. --fr dlib-resnet)")
    return out


def _labels(systems: Sequence[RecognitionSystem]) -> list[str]:
    seen: dict[str, int] = defaultdict(int)
    labels = []
    for s in systems:
        seen[s.name] += 1
        labels.append(s.name if seen[s.name] == 1 else f"{s.name}#{seen[s.name]}")
    return labels


def _check_options(target_fmr: float, attempts: Optional[int], bootstrap: int,
                   impostors: str) -> None:
    if not (isinstance(target_fmr, (int, float)) and math.isfinite(target_fmr)
            and 0 < target_fmr < 1):
        raise MapScoreError(f"target FMR must lie in (0, 1), got {target_fmr!r}")
    if attempts is not None and attempts < 1:
        raise MapScoreError(f"attempts must be at least 1, got {attempts}")
    if bootstrap < 0:
        raise MapScoreError(f"bootstrap replicates must be >= 0, got {bootstrap}")
    if impostors not in calib.IMPOSTOR_POLICIES:
        raise MapScoreError(f"impostors must be one of {', '.join(calib.IMPOSTOR_POLICIES)}, "
                            f"got {impostors!r}")


def map_score(
    attack_set: PathLike,
    probes: Probes,
    out_dir: PathLike,
    *,
    systems: Sequence[Union[str, RecognitionSystem]] = DEFAULT_SYSTEMS,
    probe_pattern: str = DEFAULT_PATTERN,
    target_fmr: float = DEFAULT_TARGET_FMR,
    thresholds: Optional[Mapping[str, calib.ThresholdSpec]] = None,
    calibration: Optional[Probes] = None,
    calibration_pattern: str = DEFAULT_PATTERN,
    allow_calibration_overlap: bool = False,
    impostors: str = "all",
    metadata: Optional[PathLike] = None,
    meta_id_column: Optional[str] = None,
    meta_gender_column: Optional[str] = None,
    attempts: Optional[int] = None,
    bootstrap: int = 0,
    seed: int = 0,
    backend: str = "dlib",
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
    workers: int = 1,
    executor: Any = None,
    batch_size: int = DEFAULT_BATCH,
    allow_missing_probes: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    scores_out: Optional[PathLike] = None,
) -> MapScoreResult:
    """Score an attack set against several face recognition systems and write the MAP report.

    Args:
        attack_set: the folder written by ``morphlab generate`` (or its manifest.jsonl).
        probes: folder of bona fide probe images, or ``{subject id: [paths]}``.
        out_dir: the report folder (created; locked while written; files morphlab did not
            write are never replaced).
        systems: registered names, ``name=MODEL_PATH`` specs, or instances (default
            :data:`~morphlab.recognition.base.DEFAULT_SYSTEMS`).
        probe_pattern: file-name pattern giving the subject id of a probe file.
        target_fmr: FMR in (0, 1) at which thresholds are calibrated.
        thresholds: per system name (or label): a similarity, ``"similarity:V"``,
            ``"distance:V"`` or ``"published"``; the others are calibrated.
        calibration: folder (or mapping) of bona fide images of subjects outside the
            attack set; default: the subject-disjoint split (see
            :mod:`morphlab.mapscore.calibration`).
        calibration_pattern: file-name pattern of the calibration folder.
        allow_calibration_overlap: accept a calibration set sharing images or subjects
            with the attack evaluation (a warning recorded in the report).
        impostors: ``"all"`` or ``"same-gender"`` impostor comparisons.
        metadata, meta_id_column, meta_gender_column: a per-subject CSV with the gender
            (as ``morphlab pairs --metadata``), for ``same-gender``.
        attempts: truncate every subject to its first ``attempts`` probes (sorted).
        bootstrap: subject-bootstrap replicates (0 = none).
        seed: the bootstrap's seed.
        backend: landmark backend for every image.
        cache_dir, use_cache: the landmark and embedding caches.
        workers: processes for embedding (ignored with ``executor``).
        executor: a :class:`morphlab.ray_executor.RayExecutor` to embed on Ray actors
            (each loads the systems once); this process writes the caches and the
            report, so the scores and MAP are those of a local run.
        batch_size: images per worker task and faces per model call.
        allow_missing_probes: skip (and list) morphs whose contributor has no probe.
        overwrite: replace a previous map-score result in ``out_dir`` (only what
            morphlab wrote is removed).
        progress: tqdm progress bars.
        scores_out: also write the morph-vs-probe scores as score files of the MAP
            authors' format to this folder (:func:`morphlab.scorefiles.write_score_files`;
            read back with ``map-score --scores``); ``overwrite`` applies to it too.

    Raises:
        MapScoreError: unusable inputs (the message says which and what to do).
        KeyError: an unknown system name (the message lists the valid ones).
        ValueError: ``out_dir`` is, contains or lies inside an input folder.
        morphlab.outdir.FolderLockedError, ForeignFileError, OutputExistsError.
    """
    from morphlab.outdir import check_disjoint, check_outputs, locked_folder

    _check_options(target_fmr, attempts, bootstrap, impostors)
    systems_ = _systems(systems)
    labels = _labels(systems_)
    thresholds = dict(thresholds or {})
    unknown = [k for k in thresholds if k not in labels]
    if unknown:
        raise MapScoreError(f"threshold given for system(s) not scored: {', '.join(unknown)}; "
                            f"systems: {', '.join(labels)}")
    for spec in thresholds.values():
        calib.parse_threshold(spec)  # fail before any work
    src = Path(attack_set)
    inputs = {
        "attack set": manifest_path(src).parent,
        "probe folder": None if isinstance(probes, Mapping) else probes,
        "calibration folder": None if isinstance(calibration, Mapping) else calibration,
    }
    check_disjoint(out_dir, inputs)
    if scores_out is not None:
        check_disjoint(scores_out, {**inputs, "report folder": out_dir})
    with locked_folder(out_dir):
        check_outputs(out_dir, ["map.json", "report.md", "report.html", "scores.csv",
                                "calibration.csv"], overwrite=overwrite)
        data = _score(
            src, probes, systems_, labels, thresholds, probe_pattern=probe_pattern,
            target_fmr=target_fmr, calibration=calibration,
            calibration_pattern=calibration_pattern,
            allow_overlap=allow_calibration_overlap, impostors=impostors,
            genders_from=(metadata, meta_id_column, meta_gender_column), attempts=attempts,
            bootstrap=bootstrap, seed=seed, backend=backend, cache_dir=cache_dir,
            use_cache=use_cache, workers=workers, executor=executor, batch_size=batch_size,
            allow_missing_probes=allow_missing_probes, progress=progress)
        if scores_out is not None:
            from morphlab.scorefiles import write_score_files

            write_score_files(data, scores_out, overwrite=overwrite)
        report = write_map_report(data, out_dir, overwrite=overwrite)
    return MapScoreResult(Path(out_dir), report)


def _score(src: Path, probes: Probes, systems_: list[RecognitionSystem], labels: list[str],
           thresholds: dict, *, probe_pattern: str, target_fmr: float,
           calibration: Optional[Probes], calibration_pattern: str, allow_overlap: bool,
           impostors: str, genders_from: tuple, attempts: Optional[int], bootstrap: int,
           seed: int, backend: str, cache_dir, use_cache: bool, workers: int, executor: Any,
           batch_size: int, allow_missing_probes: bool, progress: bool) -> MapScores:
    records, skipped, manifest = read_attack_set(src)
    n_read = len(records) + sum(1 for s in skipped if not s["reason"].startswith("generation"))
    probe_map = find_probes(probes, pattern=probe_pattern)
    contributors = manifest_subjects(manifest)

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
            if not isinstance(sub, dict) or not sub.get("path"):
                raise MapScoreError(
                    f"{manifest}: morph {rec['file']}: the image subject {key[-1].upper()} "
                    "(id {}) was morphed from is not recorded (an imported set without "
                    "--dataset?); map-score must leave it out of the probes: re-import with "
                    "`morphlab import ... --dataset FOLDER`".format(
                        sub.get("id") if isinstance(sub, dict) else "?"))
            enrol.setdefault(str(sub["id"]), {})[sub.get("sha256") or sha(sub["path"])] = sub["path"]
    probes_by_subject, excluded = _probes_for(enrol, probe_map, sha, attempts, skipped)
    records = _drop_missing(records, probes_by_subject, allow_missing_probes, skipped)
    if not records:
        raise MapScoreError(
            f"{manifest}: no usable morph ({len(skipped)} skipped: "
            + "; ".join(f"{s['what']}: {s['reason']}" for s in skipped[:3]) + ")")
    subjects = sorted({str(r[k]["id"]) for r in records for k in ("subject_a", "subject_b")})
    morph_paths = [r["path"] for r in records]
    probe_paths = sorted({p for s in subjects for p in probes_by_subject[s]})

    # -- calibration images, disjoint from the attack evaluation
    if calibration is None:
        folders = sorted({Path(r[k]["path"]).parent for r in records
                          for k in ("subject_a", "subject_b")})
        all_fixed = all(thresholds.get(lab, thresholds.get(s.name)) is not None
                        for lab, s in zip(labels, systems_))
        cal = calib.default_split(probe_map, folders, contributors, probe_pattern,
                                  required=not all_fixed)
    else:
        cal = calib.from_source(calibration, calibration_pattern)
    attack_images = {}
    for rec in records:
        attack_images[sha(rec["path"])] = f"morph {rec['file']}"
    for sid, imgs in enrol.items():
        for h in imgs:
            attack_images.setdefault(h, f"enrolment image of subject {sid}")
    for p in probe_paths:
        attack_images.setdefault(sha(p), f"probe {Path(p).name}")
    for _, p in cal.images:
        sha(p)
    overlap = calib.check_overlap(cal, shas, attack_images, contributors, allow=allow_overlap)
    notes = []
    if overlap:
        warnings.warn(overlap["message"], UserWarning, stacklevel=3)
        notes.append(overlap["message"])
    circular = selection_overlap(records, systems_)
    if circular:
        warnings.warn(circular, UserWarning, stacklevel=3)
        notes.append(circular)
    # the FR model files that conditioned or selected the morphs (sha256 / path in the lines)
    not_independent = model_file_overlap(records, systems_, labels)
    for hit in not_independent:
        warnings.warn(hit["message"], UserWarning, stacklevel=3)
        notes.append(hit["message"])
    genders = read_genders(genders_from[0], id_column=genders_from[1],
                           gender_column=genders_from[2], records=records)
    calib.check_genders(cal.subjects, genders, impostors)

    # -- embed with every system, through the cache
    cal_paths = sorted({p for _, p in cal.images})
    all_paths = list(dict.fromkeys(morph_paths + probe_paths + cal_paths))
    run = embed_many(systems_, all_paths, backend=backend, cache_dir=cache_dir,
                     use_cache=use_cache, workers=workers, executor=executor,
                     batch_size=batch_size, progress=progress, sha256s=shas)
    results = run.results
    scores, att, probe_names, embedded = _morph_scores(records, probes_by_subject, systems_,
                                                      labels, results, skipped)
    if not embedded.all(axis=1).any():
        raise MapScoreError(f"{manifest}: no morph could be embedded by every system "
                            "(no face found?)")
    for label, res in zip(labels, results):
        for p in cal_paths:
            if p in res.failures:
                skipped.append({"what": Path(p).name,
                                "reason": f"calibration image not embedded by {label}: "
                                          f"{res.failures[p]}"})

    # -- calibration comparisons and thresholds
    comps = {lab: calib.comparisons(system, res.embeddings, cal, genders, impostors)
             for lab, system, res in zip(labels, systems_, results)}
    ops = [calib.operating_point(system, lab, thresholds.get(lab, thresholds.get(system.name)),
                                 comps[lab], target_fmr, cal.description)
           for lab, system in zip(labels, systems_)]
    boot = None
    if bootstrap:
        from morphlab.mapscore.bootstrap import comparison_inputs, subject_bootstrap

        cond = embedded.all(axis=1)
        valid = (np.arange(scores.shape[2])[None, None, :] < att[:, :, None])[..., None]
        gen, imp = comparison_inputs(comps, labels)
        boot = subject_bootstrap(
            scores=scores[cond], valid=np.broadcast_to(valid, scores.shape)[cond],
            morph_subjects=[[str(r["subject_a"]["id"]), str(r["subject_b"]["id"])]
                            for r, ok in zip(records, cond) if ok],
            labels=labels, thresholds=np.array([op.threshold for op in ops]),
            calibrated=[op.policy == "fmr" for op in ops], genuine=gen, impostor=imp,
            target_fmr=target_fmr, n=bootstrap, seed=seed)

    settings = {
        "attack_set": str(manifest.resolve()),
        "manifest_sha256": sha256_file(manifest),
        "probes": str(Path(probes).resolve()) if not isinstance(probes, Mapping) else "(mapping)",
        "probe_pattern": probe_pattern,
        "calibration": {
            "description": cal.description, "source": cal.source, "path": cal.path,
            "subjects": len(cal.subjects), "images": len(cal.images), "impostors": impostors,
            "cross_gender_impostors_dropped": {lab: c.cross_gender_dropped
                                               for lab, c in comps.items()},
            "overlap": overlap,
        },
        "independence": {"independent": not not_independent,
                         "systems_sharing_the_generators_models": not_independent},
        "target_fmr": target_fmr,
        "thresholds_given": dict(thresholds),
        "attempts": attempts,
        "landmark_backend": backend,
        "morphlab_version": __version__,
    }
    gen_skip = sum(1 for s in skipped if s["reason"].startswith("generation"))
    counts = {
        "morphs_read": n_read,
        "morphs_used": len(records),
        "morphs_fte": int((~embedded.all(axis=1)).sum()),
        "morphs_skipped": n_read - len(records),
        "pairs_failed_in_generation": gen_skip,
        "subjects": len(subjects),
        "probe_images": len(probe_paths),
        "probes_excluded_as_enrolment_images": excluded,
        "attempts_per_subject_max": int(att.max()),
        "calibration_subjects": len(cal.subjects),
        "embeddings_from_cache": {lab: r.hits for lab, r in zip(labels, results)},
        "embeddings_computed": {lab: r.computed for lab, r in zip(labels, results)},
        "images_not_embedded": {lab: len(r.failures) for lab, r in zip(labels, results)},
        "embedding": embedding_counts(run, labels, images=len(all_paths), workers=workers,
                                      executor=executor, batch_size=batch_size),
    }
    if counts["morphs_skipped"]:
        log.warning("%d morph(s) skipped (see map.json 'skipped')", counts["morphs_skipped"])
    return MapScores(
        systems=[{**s.describe(), "label": lab} for s, lab in zip(systems_, labels)],
        operating_points=ops,
        morphs=[{"file": r["file"], "group": r["group"], "pair_id": r.get("pair_id", ""),
                 "subject_ids": [str(r["subject_a"]["id"]), str(r["subject_b"]["id"])]}
                for r in records],
        probes=probe_names, scores=scores,
        calibration={lab: {"genuine": c.genuine, "impostor": c.impostor} for lab, c in comps.items()},
        settings=settings, counts=counts, skipped=skipped, attempts=att, embedded=embedded,
        bootstrap=boot, warnings=notes)


def embedding_counts(run: EmbedRun, labels: Sequence[str], *, images: int, workers: int,
                     executor: Any, batch_size: int) -> dict:
    """``counts["embedding"]`` of ``map.json``: faces embedded (cache misses), taken from the
    cache, seconds and faces/s per system, and the time shared by the systems.

    ``seconds`` of a system is its alignment + network time summed over the workers, so
    ``faces_per_s`` is the speed of one worker; ``prepare_seconds`` (reading images,
    finding faces) is shared by the systems; ``wall_seconds`` is the whole embedding step.
    """
    ray = executor is not None
    return {
        "images": images,
        "executor": "ray" if ray else "local",
        "workers": int(getattr(executor, "workers", workers) if ray else workers),
        "batch_size": batch_size,
        "per_system": {lab: {"computed": r.computed, "from_cache": r.hits,
                             "seconds": round(r.seconds, 3),
                             "faces_per_s": (None if r.faces_per_second is None
                                             else round(r.faces_per_second, 2))}
                       for lab, r in zip(labels, run.results)},
        "prepare_seconds": round(run.prepare_seconds, 3),
        "wall_seconds": round(run.wall_seconds, 3),
    }


def selection_overlap(records: Sequence[Mapping], systems_: Sequence[RecognitionSystem]) -> str:
    """A warning when morphs were chosen by a recognition system that also evaluates them.

    ``alpha="auto"`` generators record ``params["selection_systems"]`` (the systems whose
    similarities picked the morph factor); evaluating with one of them is circular (the
    morphs were optimised against it). Returns the message, or ``""``.
    """
    chosen = {str(s) for r in records
              for s in ((r.get("params") or {}).get("selection_systems") or ())}
    both = sorted(chosen & {s.name for s in systems_})
    if not both:
        return ""
    return (f"circular evaluation: {', '.join(both)} also selected the morph factors of "
            f"this attack set (params.selection_systems: {', '.join(sorted(chosen))}); its "
            "MMPMR/MAP are optimistic for the attacker; evaluate with other systems")


def _probes_for(enrol: Mapping[str, Mapping[str, str]], probe_map: Mapping[str, list],
                sha, attempts: Optional[int], skipped: list) -> tuple[dict[str, list[str]], int]:
    """Each contributor's probes: enrolment images excluded, truncated to ``attempts``."""
    out: dict[str, list[str]] = {}
    excluded = 0
    for subject in enrol:
        kept = []
        for p in sorted(str(x) for x in probe_map.get(subject, [])):
            if sha(p) in enrol[subject]:
                excluded += 1
                skipped.append({"what": Path(p).name, "reason": f"probe of subject {subject} is "
                                "the image a morph was made from; not a probe"})
                continue
            kept.append(p)
        if attempts is not None and len(kept) > attempts:
            for p in kept[attempts:]:
                skipped.append({"what": Path(p).name,
                                "reason": f"probe beyond --attempts {attempts} of subject {subject}"})
            kept = kept[:attempts]
        out[subject] = kept
    return out, excluded


def _drop_missing(records: list[dict], probes_by_subject: Mapping[str, list], allow: bool,
                  skipped: list) -> list[dict]:
    missing = sorted(s for s, v in probes_by_subject.items() if not v)
    if not missing:
        return records
    if not allow:
        raise MapScoreError(
            f"{len(missing)} contributing subject(s) have no probe image (a bona fide image "
            f"other than the one used to make the morph): {', '.join(missing[:LISTED])}"
            f"{' …' if len(missing) > LISTED else ''}. Check the probe folder and "
            "--probe-pattern (subject ids must match the manifest's), or pass "
            "--allow-missing-probes to skip their morphs")
    keep = []
    for rec in records:
        lacking = [str(rec[k]["id"]) for k in ("subject_a", "subject_b")
                   if not probes_by_subject.get(str(rec[k]["id"]))]
        if lacking:
            skipped.append({"what": rec["file"],
                            "reason": f"no probe image for subject(s) {', '.join(lacking)}"})
        else:
            keep.append(rec)
    return keep


def _morph_scores(records, probes_by_subject, systems_, labels, results, skipped):
    """``(scores (M,S,A,C), attempts (M,S), probe names, embedded (M,C))``; failures listed.

    A morph a system cannot embed has NaN scores under that system only (failure to
    enrol, counted as a failed attack in the unconditional MAP); a probe a system cannot
    embed is NaN for that system only (a rejected attempt), never a shorter R.
    """
    M, S = len(records), 2
    A = max(len(probes_by_subject[str(r[k]["id"])]) for r in records
            for k in ("subject_a", "subject_b"))
    C = len(systems_)
    scores = np.full((M, S, A, C), np.nan)
    att = np.zeros((M, S), dtype=int)
    embedded = np.ones((M, C), dtype=bool)
    probe_names = []
    for c, (label, res) in enumerate(zip(labels, results)):
        for subject in sorted({str(r[k]["id"]) for r in records for k in ("subject_a", "subject_b")}):
            for p in probes_by_subject[subject]:
                if p in res.failures:
                    skipped.append({"what": Path(p).name,
                                    "reason": f"probe of subject {subject} not embedded by "
                                              f"{label} ({res.failures[p]}): a rejected attempt "
                                              f"for {label} only"})
    for m, rec in enumerate(records):
        per_subject = []
        for s, key in enumerate(("subject_a", "subject_b")):
            plist = probes_by_subject[str(rec[key]["id"])]
            att[m, s] = len(plist)
            per_subject.append([Path(p).name for p in plist])
        probe_names.append(per_subject)
        for c, (system, label, res) in enumerate(zip(systems_, labels, results)):
            emb = res.embeddings
            if rec["path"] not in emb:
                embedded[m, c] = False
                skipped.append({"what": rec["file"],
                                "reason": f"failure to enrol: {label} cannot embed the morph "
                                          f"({res.failures.get(rec['path'], 'no embedding')}); "
                                          "left out of the conditional MAP, a failed attack in "
                                          "the unconditional one"})
                continue
            for s, key in enumerate(("subject_a", "subject_b")):
                plist = probes_by_subject[str(rec[key]["id"])]
                have = [i for i, p in enumerate(plist) if p in emb]
                if have:
                    sims = system.similarity(emb[rec["path"]][None],
                                             np.stack([emb[plist[i]] for i in have]))[0]
                    scores[m, s, have, c] = sims
    return scores, att, probe_names, embedded
