"""``run_experiment``: the stages of an experiment in order, and their bodies."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from morphlab.experiments.config import (
    DetectorConfig,
    ExperimentConfig,
    GeneratorConfig,
    PathLike,
    PostprocessConfig,
    _load_yaml,
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
    #: ``limit_pairs`` of a reduced run, None for a full run.
    limit_pairs: Optional[int] = None
    #: Each distinct warning of the run ("Category: message") → how many times it was
    #: raised (each was shown once).
    warnings: dict[str, int] = field(default_factory=dict)

    def ran(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "ran"]

    def cached(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "cached"]

    def summary(self) -> str:
        """One line: stages ran / cached, time, warnings, where the report is."""
        secs = self.seconds
        took = f"{secs:.1f} s" if secs < 60 else f"{int(secs // 60)} min {secs % 60:.0f} s"
        parts = [f"{len(self.ran())} stage(s) ran, {len(self.cached())} cached, {took}"]
        if self.limit_pairs is not None:
            parts.append(f"reduced run (at most {self.limit_pairs} pairs)")
        if self.warnings:
            total = sum(self.warnings.values())
            parts.append(f"{len(self.warnings)} distinct warning(s) shown once"
                         + (f" ({total} raised)" if total > len(self.warnings) else ""))
        return "; ".join(parts) + (f"; report: {self.report} and "
                                   f"{self.report.with_suffix('.html')}")


#: Files of the run folder itself (not of a stage); recorded as morphlab's when written.
_RUN_FILES = ("config.yaml", "report.md", "report.html", "figures/examples.png")


def _species(gen: str, rec: Mapping[str, Any]) -> str:
    return f"{gen}/{rec.get('tag') or 'default'}"


def stage_label(name: str) -> str:
    """A stage's name as the progress lines show it.

    ``map/print-scan/landmark`` → ``map: landmark × print-scan``,
    ``postprocess/jpeg/bona-fide`` → ``postprocess: bona fide × jpeg``,
    ``generate/landmark`` → ``generate: landmark``, ``pairs`` → ``pairs``.
    """
    kind, _, rest = name.partition("/")
    if not rest:
        return kind
    protocol, sep, what = rest.partition("/")
    if not sep:
        return f"{kind}: {protocol}"
    return f"{kind}: {'bona fide' if what == 'bona-fide' else what} × {protocol}"


# ----------------------------------------------------------------------------------------
# what a run shows: each warning once, progress bars named after their stage
# ----------------------------------------------------------------------------------------
class _OncePerHandler(logging.Filter):
    """Drops a warning (or worse) log record that this handler has already shown."""

    def __init__(self, counts: dict[str, int]) -> None:
        super().__init__()
        self.counts, self.seen = counts, set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = f"{record.levelname.lower()} {record.name}: {record.getMessage()}"
        if not getattr(record, "_morphlab_counted", False):  # once per record, not per handler
            record._morphlab_counted = True
            self.counts[key] = self.counts.get(key, 0) + 1
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def _each_warning_once() -> Iterator[dict[str, int]]:
    """Show each distinct warning once while the block runs; yields message → count.

    Python warnings are compared by category and text (the usual per-location registry
    is reset whenever a library touches the warning filters, and the same warning from
    each stage would be shown again); log records of level WARNING and above by level,
    logger and text, separately for each handler of the root logger (and Python's
    last-resort handler). The filters themselves (``-W``, ``filterwarnings``) are
    unchanged: what they ignore stays ignored.
    """
    counts: dict[str, int] = {}
    with warnings.catch_warnings():  # restores showwarning afterwards
        shown, seen = warnings.showwarning, set()

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            key = f"{category.__name__}: {message}"
            counts[key] = counts.get(key, 0) + 1
            if key not in seen:
                seen.add(key)
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        handlers = list(logging.getLogger().handlers)
        if logging.lastResort is not None:
            handlers.append(logging.lastResort)
        filters = [(h, _OncePerHandler(counts)) for h in handlers]
        for h, f in filters:
            h.addFilter(f)
        try:
            yield counts
        finally:
            for h, f in filters:
                h.removeFilter(f)


#: The label of the stage running now (the prefix of its progress bars).
_BAR_LABEL: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "morphlab_stage_label", default=None)


@contextlib.contextmanager
def _named_bars() -> Iterator[None]:
    """Every tqdm bar created while the block runs starts with the current stage's label.

    The stage bodies (generation, post-processing, MAP, detectors) name their bars by
    what they do ("embed facenet"), not by the stage they run in; this prefixes the
    label of :data:`_BAR_LABEL` (``map: landmark × jpeg · embed facenet``). tqdm's own
    ``__init__`` is restored when the block ends.
    """
    from tqdm import std

    saved = std.tqdm.__dict__["__init__"]  # the descriptor itself (a partialmethod in tqdm 4.66+)
    original = std.tqdm.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        label = _BAR_LABEL.get()
        if label is not None:
            if len(args) >= 2:  # tqdm(iterable, desc, ...)
                args = (args[0], f"{label} · {args[1]}" if args[1] else label, *args[2:])
            else:
                desc = kwargs.get("desc")
                kwargs["desc"] = f"{label} · {desc}" if desc else label
        original(self, *args, **kwargs)

    std.tqdm.__init__ = init
    try:
        yield
    finally:
        std.tqdm.__init__ = saved


def _check_not_full_run(out: Path, cfg: ExperimentConfig) -> None:
    """A reduced run never goes into a folder that holds the full run."""
    prev = out / "config.yaml"
    if cfg.limit_pairs is None or not prev.is_file() or not (out / "stages").is_dir():
        return
    try:
        data = _load_yaml(prev.read_text(encoding="utf-8"), str(prev))
    except Exception:  # noqa: BLE001 - an unreadable record decides nothing
        return
    if isinstance(data, dict) and "limit_pairs" in data and data["limit_pairs"] is None:
        raise ValueError(
            f"{out}: holds the full run of {data.get('name', 'this experiment')}; a reduced "
            f"run (limit_pairs {cfg.limit_pairs}) would replace its stages, so nothing was "
            f"changed. Leave out -o/--out-dir (a reduced run's folder is "
            f"{cfg.out_dir().as_posix()}) or choose another folder")


def run_experiment(
    config: Union[ExperimentConfig, PathLike],
    *,
    out_dir: Optional[PathLike] = None,
    base_dir: Optional[PathLike] = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    limit_pairs: Optional[int] = None,
    echo: Optional[Callable[[str], None]] = None,
) -> ExperimentResult:
    """Run (or bring up to date) an experiment and write its report.

    Args:
        config: an :class:`ExperimentConfig` or the path of its YAML file.
        out_dir: the output folder (default: the configuration's ``output_dir``).
        base_dir: folder that relative dataset paths are relative to (default: the
            YAML file's folder, or the working directory for a config object).
        overrides: ``KEY=VALUE`` overrides (with a path only).
        progress: progress bars (each named after its stage).
        limit_pairs: a reduced run of at most this many pairs (wins over
            ``MORPHLAB_LIMIT_PAIRS`` and the configuration). A reduced run's default
            folder is the full run's with ``-limit<N>`` appended, and a reduced run into
            a folder holding the full run is refused.
        echo: called with one line per stage as it starts, or is found in the cache
            (``[7/25] map: landmark × print-scan``, ``[8/25] … (cached)``).

    Each distinct warning (Python warning or log record) is shown once per run; the
    result counts how often each was raised.

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
    cfg = cfg.effective(limit_pairs)
    cfg.check_paths(base)
    out = Path(out_dir) if out_dir is not None else cfg.out_dir()
    check_disjoint(out, {"dataset folder": cfg.dataset_root(base)})
    _check_not_full_run(out, cfg)  # before the lock: a refused run leaves no trace there
    with contextlib.ExitStack() as stack:
        stack.enter_context(locked_folder(out))  # one run per folder, for the whole run
        counts = stack.enter_context(_each_warning_once())
        if progress:
            stack.enter_context(_named_bars())
        try:
            check_outputs(out, _RUN_FILES, overwrite=True)
        except ForeignFileError as exc:
            raise StageFolderError(str(exc)) from None
        _check_not_full_run(out, cfg)  # again under the lock (another run may have ended)
        atomic_write_text(out / "config.yaml", cfg.to_yaml())
        record_owned(out, ["config.yaml"])
        stages = _Stages(out)
        ctx = _Run(cfg, base, out, stages, progress)
        plan = ctx.plan()
        if echo is not None:
            stages.on_start = lambda name, cached: echo(
                f"[{plan.index(name) + 1}/{len(plan)}] {stage_label(name)}"
                + (" (cached)" if cached else ""))
        ctx.all()
        report = write_report(ctx)
        record_owned(out, [f for f in _RUN_FILES if (out / f).is_file()])
    result = ExperimentResult(out, report, stages.runs, time.perf_counter() - t_start,
                              cfg.limit_pairs, dict(counts))
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
        def labelled() -> dict:  # the stage's progress bars carry its label
            token = _BAR_LABEL.set(stage_label(name))
            try:
                return fn()
            finally:
                _BAR_LABEL.reset(token)

        run = self.stages.run(name, material, outputs, labelled)
        self.keys[name], self.results[name] = run.key, run.result
        return run.result

    def plan(self) -> list[str]:
        """The names of the stages :meth:`all` runs, in order (a protocol with no
        operators is the generated sets themselves: no stage of its own)."""
        gens, cfg = [g.name for g in self.cfg.generators], self.cfg
        names = ["dataset", "pairs", *(f"generate/{g}" for g in gens)]
        for p in cfg.postprocess:
            if p.ops:
                names += [f"postprocess/{p.name}/{g}" for g in gens]
                names.append(f"postprocess/{p.name}/bona-fide")
        if cfg.map.enabled:
            names += [f"map/{p.name}/{g}" for p in self._protocols(cfg.map.protocols) for g in gens]
        if cfg.detection.enabled:
            names += [f"detect/{p.name}/{d.name}" for p in self._protocols(cfg.detection.protocols)
                      for d in cfg.detection.detectors]
        return names

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
                            n_pairs=n, seed=seed, jobs=self.cfg.jobs, **dict(pc.options))
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
        from morphlab.postprocess.ops import cache_spec

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
                        {"source": self.keys[f"generate/{g.name}"], "ops": [cache_spec(o) for o in ops],
                         "seed": self.cfg.seed},
                        [out], run)
            self.morph_sets[p.name, g.name] = out
        out = self.out / "postprocess" / p.name / "bona-fide"

        def run_bf() -> dict:
            s = postprocess_set(items, out, ops, seed=self.cfg.seed, jobs=self.cfg.jobs,
                                progress=self.progress)
            return {"images": s.items, "processed": s.processed, "failed": s.failed}

        self._stage(f"postprocess/{p.name}/bona-fide",
                    {"pairs": self.keys["pairs"], "dataset": self.keys["dataset"],
                     "ops": [cache_spec(o) for o in ops],
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
