"""``run_experiment``: the stages of an experiment in order, and their bodies."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from morphlab.experiments.config import (
    DetectorConfig,
    ExperimentConfig,
    GeneratorConfig,
    PathLike,
    PostprocessConfig,
    _to_plain,
    apply_overrides,
    expand,
    load_config,
)
from morphlab.experiments.report import _deer_figure, write_report
from morphlab.experiments.stages import (
    ContentHashes,
    StageFolderError,
    StageRun,
    _key,
    _Stages,
)
from morphlab.io import atomic_write_text
from morphlab.outdir import (
    ForeignFileError,
    check_disjoint,
    check_outputs,
    locked_folder,
    record_owned,
)

log = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did."""

    out_dir: Path
    report: Path
    stages: list[StageRun]
    seconds: float

    def ran(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "ran"]

    def cached(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "cached"]


#: Files of the run folder itself (not of a stage); recorded as morphlab's when written.
_RUN_FILES = ("config.yaml", "report.md", "report.html", "figures/examples.png")


def _species(gen: str, rec: Mapping[str, Any]) -> str:
    return f"{gen}/{rec.get('tag') or 'default'}"


def run_experiment(
    config: Union[ExperimentConfig, PathLike],
    *,
    out_dir: Optional[PathLike] = None,
    base_dir: Optional[PathLike] = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> ExperimentResult:
    """Run (or bring up to date) an experiment and write its report.

    Args:
        config: an :class:`ExperimentConfig` or the path of its YAML file.
        out_dir: the output folder (default: the configuration's ``output_dir``).
        base_dir: folder that relative dataset paths are relative to (default: the
            YAML file's folder, or the working directory for a config object).
        overrides: ``KEY=VALUE`` overrides (with a path only).
        progress: progress bars.

    Returns:
        :class:`ExperimentResult` (which stages ran, which came from the cache).

    Raises:
        ConfigError, FileNotFoundError: a bad configuration or missing data.
        ValueError: the output folder is, contains or lies inside the dataset folder.
        StageFolderError: a stage must be redone but its folder holds files morphlab
            did not write (nothing is deleted).
        morphlab.outdir.FolderLockedError: another process is running in the folder.
    """
    t_start = time.perf_counter()
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        cfg = load_config(path, overrides=overrides)
        base = Path(base_dir) if base_dir is not None else path.parent
    else:
        if overrides:
            cfg = ExperimentConfig.from_dict(apply_overrides(config.to_dict(), overrides))
        else:
            cfg = config
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    cfg = cfg.effective()
    cfg.check_paths(base)
    out = Path(out_dir) if out_dir is not None else cfg.out_dir()
    check_disjoint(out, {"dataset folder": cfg.dataset_root(base)})
    with locked_folder(out):  # one run per folder, for the whole run
        try:
            check_outputs(out, _RUN_FILES, overwrite=True)
        except ForeignFileError as exc:
            raise StageFolderError(str(exc)) from None
        atomic_write_text(out / "config.yaml", cfg.to_yaml())
        record_owned(out, ["config.yaml"])
        stages = _Stages(out)
        ctx = _Run(cfg, base, out, stages, progress)
        ctx.all()
        report = write_report(ctx)
        record_owned(out, [f for f in _RUN_FILES if (out / f).is_file()])
    result = ExperimentResult(out, report, stages.runs, time.perf_counter() - t_start)
    log.info("%s: %d stage(s) ran, %d cached, %.1f s", out, len(result.ran()),
             len(result.cached()), result.seconds)
    return result


class _Run:
    """The state of one run: the stages in order, their keys and results."""

    def __init__(self, cfg: ExperimentConfig, base: Path, out: Path, stages: _Stages,
                 progress: bool) -> None:
        self.cfg, self.base, self.out, self.stages, self.progress = cfg, base, out, stages, progress
        self.dataset = None
        self.keys: dict[str, str] = {}
        self.results: dict[str, dict] = {}
        self.morph_sets: dict[tuple[str, str], Path] = {}  # (protocol, generator) → set folder
        self.bona_fide: dict[str, list[tuple[str, str]]] = {}  # protocol → (path, subject)

    def _stage(self, name: str, material: Mapping[str, Any], outputs: Sequence[Path],
               fn: Callable[[], dict]) -> dict:
        run = self.stages.run(name, material, outputs, fn)
        self.keys[name], self.results[name] = run.key, run.result
        return run.result

    def all(self) -> None:
        self.load_dataset()
        self.make_pairs()
        for g in self.cfg.generators:
            self.generate(g)
        for p in self.cfg.postprocess:
            self.postprocess(p)
        if self.cfg.map.enabled:
            for p in self._protocols(self.cfg.map.protocols):
                for g in self.cfg.generators:
                    self.map(p, g)
        if self.cfg.detection.enabled:
            for p in self._protocols(self.cfg.detection.protocols):
                for d in self.cfg.detection.detectors:
                    self.detect(p, d)

    def _protocols(self, names: Optional[Sequence[str]]) -> list[PostprocessConfig]:
        return [p for p in self.cfg.postprocess if names is None or p.name in names]

    # -- dataset and pairs --------------------------------------------------------------
    def load_dataset(self) -> None:
        from morphlab.datasets.loaders import load_dataset

        d = self.cfg.dataset
        root = self.cfg.dataset_root(self.base)
        ds = load_dataset(d.loader, root, **expand(dict(d.params), "dataset.params"))
        self.dataset = ds
        files = [s.path for s in ds.samples]
        meta = ds.params.get("metadata")
        if meta:
            check_disjoint(self.out, {"dataset metadata file": meta})
        hashes = ContentHashes(self.stages.dir / "file-hashes.json")
        material = {  # keyed by content: touching or copying the photos changes nothing
            "loader": d.loader, "root": str(root), "params": dict(ds.params),
            "files": hashes.fingerprint(files + ([Path(meta)] if meta else []), root),
        }
        hashes.save()
        log.info("dataset: %d file(s), %d hashed (the others' sha256 from the cache)",
                 len(material["files"]), hashes.hashed)

        def summary() -> dict:
            return {
                "root": str(root), "loader": d.loader, "subjects": len(ds.subjects()),
                "samples": len(ds.samples), "enrolment": len(ds.enrolment()),
                "probe_subjects": len(ds.probes()),
                "genders": sorted({s.gender or "unknown" for s in ds.enrolment()}),
            }

        self._stage("dataset", material, [], summary)

    def make_pairs(self) -> None:
        from morphlab.datasets.pairs import make_pairs, write_pairs

        pc = self.cfg.pairs
        n = pc.n_pairs
        if self.cfg.limit_pairs is not None:
            n = self.cfg.limit_pairs if n is None else min(n, self.cfg.limit_pairs)
        seed = self.cfg.seed if pc.seed is None else pc.seed
        path = self.out / "pairs" / "pairs.csv"
        self.pairs_csv = path

        def run() -> dict:
            ps = make_pairs(self.dataset, strategy=pc.strategy, per_subject=pc.per_subject,
                            n_pairs=n, seed=seed, **dict(pc.options))
            write_pairs(ps, path)
            return {"pairs": len(ps), **ps.protocol["counts"], "strategy": pc.strategy,
                    "seed": seed, "n_pairs": n}

        material = {"dataset": self.keys["dataset"], "pairs": _to_plain(pc), "n_pairs": n,
                    "seed": seed}
        self._stage("pairs", material, [path.parent], run)

    # -- generation and post-processing -------------------------------------------------
    def generate(self, g: GeneratorConfig) -> None:
        from morphlab.generators.runner import generate_attack_set

        out = self.out / "generate" / g.name
        params = expand(dict(g.params), f"generators[{g.name}].params")

        def run() -> dict:
            s = generate_attack_set(
                self.pairs_csv, g.generator, params, out, jobs=self.cfg.jobs,
                seed=self.cfg.seed, image_format=g.image_format, progress=self.progress,
            )
            return {"pairs": s.pairs, "morphs": s.morphs, "failed": s.failed,
                    "failures": [f"{r['pair_id']}: {r['error']}" for r in s.failures[:10]]}

        material = {"pairs": self.keys["pairs"], "generator": _to_plain(g), "seed": self.cfg.seed}
        self._stage(f"generate/{g.name}", material, [out], run)

    def _bona_fide_items(self) -> list[dict]:
        """The enrolment images of the subjects in the pairs (the bona fide references)."""
        from morphlab.datasets.pairs import read_pairs
        from morphlab.postprocess import image_items

        subjects = {s for p in read_pairs(self.pairs_csv).pairs for s in (p.subject_a, p.subject_b)}
        samples = [s for s in self.dataset.enrolment() if s.subject in subjects]
        extra = [{"subject": s.subject, "capture": s.capture, "role": s.role} for s in samples]
        return image_items([s.path for s in samples], self.dataset.root, extra=extra)

    def postprocess(self, p: PostprocessConfig) -> None:
        from morphlab.postprocess import postprocess_set

        items = self._bona_fide_items()
        if not p.ops:  # as generated: the sets themselves, no copy
            for g in self.cfg.generators:
                self.morph_sets[p.name, g.name] = self.out / "generate" / g.name
                self.keys[f"postprocess/{p.name}/{g.name}"] = self.keys[f"generate/{g.name}"]
            self.bona_fide[p.name] = [(r["path"], r["subject"]) for r in items]
            self.keys[f"postprocess/{p.name}/bona-fide"] = _key(
                {"pairs": self.keys["pairs"], "dataset": self.keys["dataset"]})
            return
        ops = list(p.ops)
        for g in self.cfg.generators:
            out = self.out / "postprocess" / p.name / g.name
            src = self.out / "generate" / g.name

            def run(src: Path = src, out: Path = out) -> dict:
                s = postprocess_set(src, out, ops, seed=self.cfg.seed, jobs=self.cfg.jobs,
                                    progress=self.progress)
                return {"images": s.items, "processed": s.processed, "failed": s.failed}

            self._stage(f"postprocess/{p.name}/{g.name}",
                        {"source": self.keys[f"generate/{g.name}"], "ops": ops, "seed": self.cfg.seed},
                        [out], run)
            self.morph_sets[p.name, g.name] = out
        out = self.out / "postprocess" / p.name / "bona-fide"

        def run_bf() -> dict:
            s = postprocess_set(items, out, ops, seed=self.cfg.seed, jobs=self.cfg.jobs,
                                progress=self.progress)
            return {"images": s.items, "processed": s.processed, "failed": s.failed}

        self._stage(f"postprocess/{p.name}/bona-fide",
                    {"pairs": self.keys["pairs"], "dataset": self.keys["dataset"], "ops": ops,
                     "seed": self.cfg.seed}, [out], run_bf)
        from morphlab.postprocess import load_set

        self.bona_fide[p.name] = [(r["path"], r["subject"]) for r in load_set(out)]

    # -- MAP ------------------------------------------------------------------------------
    def map(self, p: PostprocessConfig, g: GeneratorConfig) -> None:
        from morphlab.mapscore import map_score

        m = self.cfg.map
        out = self.out / "map" / p.name / g.name
        src = self.morph_sets[p.name, g.name]
        probes = {k: [str(s.path) for s in v] for k, v in self.dataset.probes().items()}

        def run() -> dict:
            res = map_score(src, probes, out, systems=list(expand(list(m.systems), "map.systems")),
                            target_fmr=m.target_fmr, backend=m.backend, progress=self.progress)
            rep = res.report
            return {
                "n_morphs": rep["overall"]["n_morphs"],
                "map": rep["overall"]["map"]["values"],
                "per_system": rep["overall"]["per_system"],
                "per_group": {k: {"n_morphs": v["n_morphs"], "per_system": v["per_system"]}
                              for k, v in rep.get("per_group", {}).items()},
                "systems": [s.get("label", s.get("name")) for s in rep.get("systems", [])],
                "thresholds": {s.get("label", s.get("name")): s.get("operating_point", {}).get("threshold")
                               for s in rep.get("systems", [])},
                "counts": rep.get("counts", {}),
            }

        material = {"morphs": self.keys[f"postprocess/{p.name}/{g.name}"],
                    "dataset": self.keys["dataset"],
                    "map": {k: v for k, v in _to_plain(m).items() if k != "protocols"}}
        self._stage(f"map/{p.name}/{g.name}", material, [out], run)

    # -- detection ------------------------------------------------------------------------
    def detect(self, p: PostprocessConfig, d: DetectorConfig) -> None:
        out = self.out / "detect" / p.name / d.name
        material = {
            "sets": {g.name: self.keys[f"postprocess/{p.name}/{g.name}"] for g in self.cfg.generators},
            "bona_fide": self.keys[f"postprocess/{p.name}/bona-fide"],
            "dataset": self.keys["dataset"], "detector": _to_plain(d),
            "test_fraction": self.cfg.detection.test_fraction,
            "backend": self.cfg.detection.backend, "seed": self.cfg.seed,
        }
        self._stage(f"detect/{p.name}/{d.name}", material, [out],
                    lambda: self._cross_evaluate(p, d, out))

    def _cross_evaluate(self, p: PostprocessConfig, d: DetectorConfig, out: Path) -> dict:
        from dataclasses import replace

        from morphlab.detect import (
            BONA_FIDE_SPECIES,
            Presentation,
            PresentationSet,
            evaluate_detector,
            split_keeping_morphs,
            train_detector,
        )
        from morphlab.detectors.base import DETECTORS, DIFFERENTIAL
        from morphlab.postprocess import load_set

        items = [Presentation(Path(path), 0, (subj,)) for path, subj in self.bona_fide[p.name]]
        for g in self.cfg.generators:
            for rec in load_set(self.morph_sets[p.name, g.name]):
                ids = (str(rec["subject_a"]["id"]), str(rec["subject_b"]["id"]))
                items.append(Presentation(Path(rec["path"]), 1, ids, _species(g.name, rec)))
        if DETECTORS.get(d.detector).kind == DIFFERENTIAL:  # pair each with live probes
            live = {k: [s.path for s in v] for k, v in self.dataset.probes().items()}
            items = [replace(it, live=probe, live_subject=s)
                     for it in items for s in it.subjects for probe in live.get(s, [])]
        data = PresentationSet(items)
        species = list(dict.fromkeys(it.species for it in items if it.label == 1))
        train_ids, test_ids = split_keeping_morphs(
            data, test_fraction=self.cfg.detection.test_fraction, seed=self.cfg.seed)
        params = expand(dict(d.params), f"detection.detectors[{d.name}].params")
        matrix: list[list[Optional[float]]] = []
        counts: dict[str, dict] = {}
        for tr in species:
            train = PresentationSet([it for it in items if it.species in (BONA_FIDE_SPECIES, tr)])
            train = train.restrict(train_ids)
            model = out / "models" / tr.replace("/", "__")
            try:
                summary = train_detector(d.detector, train, model, params=params,
                                         backend=self.cfg.detection.backend, progress=self.progress)
            except ValueError as exc:  # e.g. no morph of that species among training identities
                log.warning("detect/%s/%s: cannot train on %s: %s", p.name, d.name, tr, exc)
                matrix.append([None] * len(species))
                continue
            counts[tr] = {"train": summary["n_by_species"]}
            row = []
            for te in species:
                test = PresentationSet([it for it in items if it.species in (BONA_FIDE_SPECIES, te)])
                test = test.restrict(test_ids)
                try:
                    res = evaluate_detector(model, test, None, progress=self.progress)
                    row.append(float(res["metrics"]["D-EER"]))
                except ValueError as exc:  # e.g. no morph of that species among test identities
                    log.warning("detect/%s/%s: %s on %s: %s", p.name, d.name, tr, te, exc)
                    row.append(None)
            matrix.append(row)
        fig = _deer_figure(matrix, species, f"{d.name}, {p.name}: D-EER")
        from morphlab.reports.document import save_figure

        save_figure(fig, out / "deer.png")
        return {"species": species, "deer": matrix, "train_subjects": len(train_ids),
                "test_subjects": len(test_ids), "counts": counts,
                "figure": (out / "deer.png").relative_to(self.out).as_posix()}
