"""Reproducible experiments: one YAML file → attack sets, MAP, detector cross-evaluation, report.

``morphlab run experiments/NAME.yaml`` runs the stages

    dataset → pairs → each generator → each post-processing protocol → MAP → detection

and writes one consolidated report (``report.md`` + ``report.html``) in the output folder.
Every stage is **cached**: its result is stored under ``stages/`` with a key, the sha256
of its configuration and of the keys of the stages it reads (the dataset stage hashes
every image's path, size and modification time). A re-run redoes exactly the stages whose
key changed — and everything downstream of them — and a re-run with nothing changed only
re-reads the dataset listing and rewrites the report.

The YAML schema (every key but ``name``, ``dataset`` and ``generators`` has a default;
unknown keys, wrong types and unknown component names are errors that list what is
valid)::

    name: frll_landmark                # file-name safe; default output folder runs/<name>
    description: ""                    # free text, printed in the report
    seed: 0                            # every random choice derives from it
    output_dir: null                   # default runs/<name> (relative to the working dir)
    limit_pairs: null                  # size knob: at most this many pairs (CI);
                                       # the environment variable MORPHLAB_LIMIT_PAIRS overrides it
    jobs: 1                            # worker processes (generation, post-processing);
                                       # not part of any cache key
    dataset:
      loader: frll                     # folder | frll | fei | onot (morphlab.datasets.loaders)
      root: ../../shared/data/frll     # relative paths: relative to the YAML file's folder
      params: {}                       # the loader's keyword parameters
    pairs:
      strategy: same-gender            # random | same-gender | similar (morphlab.datasets.pairs)
      per_subject: 1
      n_pairs: null
      seed: null                       # default: the experiment seed
      options: {}                      # the strategy's keyword options
    generators:                        # one attack set each
      - name: landmark                 # label (file-name safe, unique)
        generator: landmark            # registered generator (default: the label)
        params: {alpha: 0.5}           # the generator's parameters
        image_format: png              # png | jpg
    postprocess:                       # protocols, applied alike to morphs and bona fide images
      - name: icao                     # default: one protocol "digital" with no operator
        ops: ["icao"]                  # morphlab.postprocess specs; [] = as generated
    map:
      enabled: true
      systems: [dlib-resnet, lbph]     # recognition systems (name or name=MODEL_PATH)
      target_fmr: 0.001
      backend: dlib                    # face backend for recognition
      protocols: null                  # post-processing protocols to score (default: all)
    detection:
      enabled: true
      detectors:
        - name: lbp-svm                # label
          detector: lbp-svm            # registered detector (default: the label)
          params: {}
      test_fraction: 0.5               # subject-disjoint split of the identities
      backend: dlib
      protocols: null                  # default: all

String values may use ``${VAR}`` environment variables (e.g. ``weights: ${ARC2FACE_WEIGHTS}``);
they are expanded when the experiment runs, not when the configuration is read, so that
configurations validate anywhere and round-trip unchanged.

What the stages do:

- **dataset**: the loader's :class:`~morphlab.datasets.folder.Dataset` (enrolment images
  are the morph sources, probes the verification images);
- **pairs**: :func:`~morphlab.datasets.pairs.make_pairs` → ``pairs/pairs.csv``;
- **generate/<generator>**: :func:`~morphlab.generators.runner.generate_attack_set`;
- **postprocess/<protocol>/<generator>** and **…/bona-fide**: the protocol's operators
  (:func:`~morphlab.postprocess.postprocess_set`) on the morphs and, identically, on the
  bona fide images: the enrolment images of the subjects in the pairs;
- **map/<protocol>/<generator>**: :func:`~morphlab.mapscore.map_score` of the processed
  morphs against the dataset's (unprocessed) probes;
- **detect/<protocol>/<detector>**: the identities are split subject-disjointly
  (:func:`~morphlab.detect.split_keeping_morphs`); for every attack species (generator
  label / output tag) a detector is trained on the training identities' bona fide images
  and that species' morphs, and tested on the test identities' bona fide images and each
  species' morphs: a matrix of D-EER (rows: trained on, columns: tested on).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from morphlab import __version__
from morphlab.io import atomic_write_text

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Environment variable overriding ``limit_pairs`` (CI runs a reduced experiment).
LIMIT_ENV = "MORPHLAB_LIMIT_PAIRS"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """An experiment configuration that cannot be used; the message names the key."""


def _fail(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}" if where else msg)


def _check_name(what: str, value: str) -> None:
    if not _SAFE.match(value):
        raise ConfigError(
            f"{what} {value!r} must be file-name safe (letters, digits, '.', '-', '_', "
            "starting with a letter or digit)"
        )


def _signature_names(fn: Callable, skip: int = 0) -> list[str]:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _check_params(what: str, params: Mapping[str, Any], valid: Sequence[str]) -> None:
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"{what} has no parameter(s) {', '.join(unknown)}; valid: {', '.join(valid) or '(none)'}"
        )


def _unique(what: str, names: Sequence[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{what} names must be unique; repeated: {', '.join(dup)}")


# ----------------------------------------------------------------------------------------
# the configuration
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetConfig:
    """``dataset:`` — which loader reads which folder."""

    loader: str
    root: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from morphlab.datasets.loaders import get_loader, loader_params

        try:
            get_loader(self.loader)
        except KeyError as exc:
            raise ConfigError(f"loader: {exc.args[0]}") from None
        try:
            _check_params(f"dataset loader {self.loader!r}", self.params,
                          list(loader_params(self.loader)))
        except ConfigError as exc:
            raise ConfigError(f"params: {exc}") from None


@dataclass(frozen=True)
class PairsConfig:
    """``pairs:`` — the pair protocol."""

    strategy: str = "random"
    per_subject: int = 1
    n_pairs: Optional[int] = None
    seed: Optional[int] = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from morphlab.datasets.pairs import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"strategy: unknown pair strategy {self.strategy!r}; valid: "
                f"{', '.join(sorted(STRATEGIES))}"
            )
        if self.per_subject < 1:
            raise ConfigError(f"per_subject: must be >= 1, got {self.per_subject}")
        if self.n_pairs is not None and self.n_pairs < 1:
            raise ConfigError(f"n_pairs: must be >= 1 or null, got {self.n_pairs}")
        try:
            _check_params(f"pair strategy {self.strategy!r}", self.options,
                          _signature_names(STRATEGIES[self.strategy], skip=2))
        except ConfigError as exc:
            raise ConfigError(f"options: {exc}") from None


@dataclass(frozen=True)
class GeneratorConfig:
    """One entry of ``generators:`` — an attack set."""

    name: str
    generator: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    image_format: str = "png"

    def __post_init__(self) -> None:
        from morphlab.generators.base import GENERATORS

        _check_name("name", self.name)
        if not self.generator:
            object.__setattr__(self, "generator", self.name)
        if self.generator not in GENERATORS.names():
            raise ConfigError(
                f"generator: unknown generator {self.generator!r}; valid: "
                f"{', '.join(GENERATORS.names())}"
            )
        cls = GENERATORS.get(self.generator)
        try:
            _check_params(f"generator {self.generator!r}", self.params,
                          _signature_names(cls.__init__, skip=1))
        except ConfigError as exc:
            raise ConfigError(f"params: {exc}") from None
        if self.image_format not in ("png", "jpg"):
            raise ConfigError(f"image_format: png or jpg, got {self.image_format!r}")


@dataclass(frozen=True)
class PostprocessConfig:
    """One entry of ``postprocess:`` — a protocol (operator specs; empty = as generated)."""

    name: str
    ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from morphlab.postprocess import parse_op

        _check_name("name", self.name)
        for i, spec in enumerate(self.ops):
            try:
                parse_op(spec)
            except (KeyError, ValueError) as exc:
                msg = exc.args[0] if isinstance(exc, KeyError) else str(exc)
                raise ConfigError(f"ops[{i}]: {msg}") from None


@dataclass(frozen=True)
class MapConfig:
    """``map:`` — Morphing Attack Potential with several recognition systems."""

    enabled: bool = True
    systems: tuple[str, ...] = ("dlib-resnet", "lbph")
    target_fmr: float = 0.001
    backend: str = "dlib"
    protocols: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        from morphlab.recognition.base import RECOGNITION

        if not self.systems:
            raise ConfigError("systems: at least one recognition system is needed")
        for i, spec in enumerate(self.systems):
            name = spec.split("=", 1)[0]
            if name not in RECOGNITION.names():
                raise ConfigError(
                    f"systems[{i}]: unknown recognition system {name!r}; valid: "
                    f"{', '.join(RECOGNITION.names())}"
                )
        if not 0 < self.target_fmr < 1:
            raise ConfigError(f"target_fmr: must be in (0, 1), got {self.target_fmr}")


@dataclass(frozen=True)
class DetectorConfig:
    """One entry of ``detection.detectors:``."""

    name: str
    detector: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from morphlab.detectors.base import DETECTORS

        _check_name("name", self.name)
        if not self.detector:
            object.__setattr__(self, "detector", self.name)
        if self.detector not in DETECTORS.names():
            raise ConfigError(
                f"detector: unknown detector {self.detector!r}; valid: "
                f"{', '.join(DETECTORS.names())}"
            )
        try:
            _check_params(f"detector {self.detector!r}", self.params,
                          DETECTORS.get(self.detector)._param_names())
        except ConfigError as exc:
            raise ConfigError(f"params: {exc}") from None


@dataclass(frozen=True)
class DetectionConfig:
    """``detection:`` — detector cross-evaluation between attack species."""

    enabled: bool = True
    detectors: tuple[DetectorConfig, ...] = (DetectorConfig("lbp-svm"),)
    test_fraction: float = 0.5
    backend: str = "dlib"
    protocols: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if self.enabled and not self.detectors:
            raise ConfigError("detectors: at least one detector is needed (or enabled: false)")
        _unique("detectors", [d.name for d in self.detectors])
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction: must be in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment (see the module docstring for the YAML schema)."""

    name: str
    dataset: DatasetConfig
    generators: tuple[GeneratorConfig, ...]
    description: str = ""
    seed: int = 0
    output_dir: Optional[str] = None
    limit_pairs: Optional[int] = None
    jobs: int = 1
    pairs: PairsConfig = PairsConfig()
    postprocess: tuple[PostprocessConfig, ...] = (PostprocessConfig("digital"),)
    map: MapConfig = MapConfig()
    detection: DetectionConfig = DetectionConfig()

    def __post_init__(self) -> None:
        _check_name("name", self.name)
        if not self.generators:
            raise ConfigError("generators: at least one generator is needed")
        _unique("generators", [g.name for g in self.generators])
        if not self.postprocess:
            raise ConfigError("postprocess: at least one protocol is needed (ops: [] = as generated)")
        names = [p.name for p in self.postprocess]
        _unique("postprocess", names)
        for key, section in (("map", self.map), ("detection", self.detection)):
            unknown = [p for p in (section.protocols or ()) if p not in names]
            if unknown:
                raise ConfigError(
                    f"{key}.protocols: unknown protocol(s) {', '.join(unknown)}; defined: "
                    f"{', '.join(names)}"
                )
        if self.limit_pairs is not None and self.limit_pairs < 1:
            raise ConfigError(f"limit_pairs: must be >= 1 or null, got {self.limit_pairs}")
        if self.jobs < 1:
            raise ConfigError(f"jobs: must be >= 1, got {self.jobs}")

    # -- conversion ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dicts/lists/scalars (what the YAML holds), every key written."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "") -> "ExperimentConfig":
        """Validate and build; errors name ``source`` and the key (``generators[1].params``)."""
        try:
            return _build(cls, data, "")
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<yaml>") -> "ExperimentConfig":
        return cls.from_dict(_parse_yaml(text, source), source=source)

    # -- running ------------------------------------------------------------------------
    def effective(self) -> "ExperimentConfig":
        """This configuration with the ``MORPHLAB_LIMIT_PAIRS`` override applied."""
        raw = os.environ.get(LIMIT_ENV, "").strip()
        if not raw:
            return self
        try:
            limit = int(raw)
        except ValueError:
            raise ConfigError(f"{LIMIT_ENV}={raw!r}: expected a positive integer") from None
        return dataclasses.replace(self, limit_pairs=limit)

    def dataset_root(self, base_dir: PathLike) -> Path:
        """``dataset.root`` with ``${VAR}`` expanded, relative to ``base_dir``."""
        return (Path(base_dir) / expand(self.dataset.root, "dataset.root")).resolve()

    def out_dir(self, base: Optional[PathLike] = None) -> Path:
        """``output_dir`` (expanded), default ``runs/<name>``, relative to the working dir."""
        out = expand(self.output_dir, "output_dir") if self.output_dir else f"runs/{self.name}"
        return Path(base or ".") / out

    def check_paths(self, base_dir: PathLike) -> None:
        """Check that the dataset folder exists and every ``${VAR}`` is set.

        Raises:
            FileNotFoundError: the dataset folder is missing (message names the key).
            ConfigError: an environment variable is not set.
        """
        root = self.dataset_root(base_dir)
        if not root.is_dir():
            raise FileNotFoundError(
                f"dataset.root: {root} not found (relative paths are relative to the "
                f"configuration's folder {Path(base_dir).resolve()})"
            )
        for i, g in enumerate(self.generators):
            expand(dict(g.params), f"generators[{i}].params")
        for i, d in enumerate(self.detection.detectors):
            expand(dict(d.params), f"detection.detectors[{i}].params")
        expand(dict(self.dataset.params), "dataset.params")
        expand(list(self.map.systems), "map.systems")


def expand(value: Any, where: str) -> Any:
    """``${VAR}`` environment variables expanded in every string of ``value``."""
    if isinstance(value, str):
        missing = [v for v in _VAR.findall(value) if v not in os.environ]
        if missing:
            raise ConfigError(
                f"{where}: environment variable {', '.join(missing)} is not set "
                f"(used in {value!r})"
            )
        return _VAR.sub(lambda m: os.environ[m.group(1)], value)
    if isinstance(value, Mapping):
        return {k: expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(expand(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type hint ``tp`` (and converted: lists → tuples)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return _to_plain(value)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _fail(where, f"expected a list, got {type(value).__name__} {value!r}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict) or tp in (Mapping, dict):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _fail(where, f"expected a mapping of names to values, got {value!r}")
        return {k: _to_plain(v) for k, v in value.items()}
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:  # pragma: no cover - a type the schema does not use
        raise _fail(where, f"unsupported type {tp!r}")
    if not ok:
        raise _fail(where, f"expected {_TYPE_NAMES[tp]}, got {type(value).__name__} {value!r}")
    return float(value) if tp is float else value


def _build(cls: type, data: Any, where: str) -> Any:
    """Build the dataclass ``cls`` from a mapping: unknown/missing keys, types, semantics."""
    if not isinstance(data, Mapping):
        raise _fail(where, f"expected a mapping, got {type(data).__name__} {data!r}")
    flds = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in flds]
    if unknown:
        raise _fail(
            where, f"unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(flds)}"
        )
    required = [
        n for n, f in flds.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in data]
    if missing:
        raise _fail(where, f"missing required key(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    kwargs = {
        k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise _fail(where, str(exc)) from None


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``["limit_pairs=3", "generators.0.params.alpha=0.3"]`` applied to a config dict.

    Keys are dotted paths (list items by index); values are parsed as YAML (``3``,
    ``true``, ``[a, b]``, ``null``…).

    Raises:
        ConfigError: a malformed override or a path that does not exist.
    """
    import copy

    import yaml

    out = copy.deepcopy(dict(data))
    for spec in overrides:
        key, sep, raw = spec.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {spec!r}: expected KEY=VALUE (e.g. limit_pairs=3)")
        parts = key.strip().split(".")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override {spec!r}: no item {part} in {'.'.join(parts[:i])}")
                nxt = node[int(part)]
            else:
                nxt = node.setdefault(part, {}) if node.get(part) is None else node[part]
            if not isinstance(nxt, (dict, list)):
                raise ConfigError(f"override {spec!r}: {'.'.join(parts[:i + 1])} is not a section")
            node = nxt
        last = parts[-1]
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"override {spec!r}: no item {last} in {'.'.join(parts[:-1])}")
            node[int(last)] = value
        else:
            node[last] = value
    return out


def load_config(
    path: PathLike, *, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Read and validate an experiment YAML file (with ``KEY=VALUE`` overrides).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid YAML or configuration (the message names file and key).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: experiment configuration not found")
    data = _parse_yaml(p.read_text(encoding="utf-8"), str(p))
    return ExperimentConfig.from_dict(apply_overrides(data, overrides), source=str(p))


def _parse_yaml(text: str, source: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    return data


# ----------------------------------------------------------------------------------------
# stages and their cache
# ----------------------------------------------------------------------------------------
def _key(material: Any) -> str:
    return hashlib.sha256(
        json.dumps(material, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()


@dataclass
class StageRun:
    """One stage of a run: whether it ran or came from the cache, and its result."""

    name: str
    key: str
    status: str  # "ran" | "cached"
    seconds: float
    result: dict


class _Stages:
    """Runs stages, skipping those whose key matches a completed record."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.dir = out / "stages"
        self.runs: list[StageRun] = []

    def run(self, name: str, material: Mapping[str, Any], outputs: Sequence[Path],
            fn: Callable[[], dict]) -> StageRun:
        key = _key({"stage": name, **material})
        rec_file = self.dir / (name.replace("/", "__") + ".json")
        old: dict = {}
        if rec_file.is_file():
            try:
                old = json.loads(rec_file.read_text(encoding="utf-8"))
            except ValueError:
                old = {}
        if old.get("key") == key and old.get("complete") and all(p.exists() for p in outputs):
            run = StageRun(name, key, "cached", 0.0, old.get("result", {}))
            log.info("stage %s: cached", name)
        else:
            if old.get("key") != key:  # another configuration: start the stage afresh
                for p in outputs:
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
            log.info("stage %s: running", name)
            t0 = time.perf_counter()
            atomic_write_text(rec_file, json.dumps({"key": key, "complete": False}) + "\n")
            result = fn()
            seconds = time.perf_counter() - t0
            atomic_write_text(rec_file, json.dumps(
                {"key": key, "complete": True, "seconds": round(seconds, 3), "stage": name,
                 "material": material, "result": result, "morphlab_version": __version__},
                indent=2, sort_keys=True, default=str) + "\n")
            run = StageRun(name, key, "ran", seconds, result)
        self.runs.append(run)
        return run


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


def _fingerprint(paths: Sequence[Path], root: Path) -> list:
    out = []
    for p in paths:
        st = p.stat()
        out.append([Path(os.path.relpath(p, root)).as_posix(), st.st_size, st.st_mtime_ns])
    return out


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
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    stages = _Stages(out)
    ctx = _Run(cfg, base, out, stages, progress)
    ctx.all()
    report = write_report(ctx)
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
        material = {
            "loader": d.loader, "root": str(root), "params": dict(ds.params),
            "files": _fingerprint(files + ([Path(meta)] if meta else []), root),
        }

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


# ----------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------
def _deer_figure(matrix: Sequence[Sequence[Optional[float]]], species: Sequence[str], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    n = len(species)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * n, 1.2 + 0.9 * n))
    im = ax.imshow(m * 100, vmin=0, vmax=50, cmap="RdYlGn_r")
    for i in range(n):
        for j in range(n):
            txt = "–" if np.isnan(m[i, j]) else f"{m[i, j] * 100:.1f}%"
            ax.text(j, i, txt, ha="center", va="center", fontsize=9)
    ax.set_xticks(range(n), species, rotation=30, ha="right")
    ax.set_yticks(range(n), species)
    ax.set_xlabel("tested on")
    ax.set_ylabel("trained on")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="D-EER (%)")
    return fig


def _examples_figure(run: _Run):
    """First pair: bona fide A, the morphs, bona fide B — one row per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from morphlab.io import read_image
    from morphlab.postprocess import load_set

    rows = []
    for p in run.cfg.postprocess:
        bf = dict((s, path) for path, s in run.bona_fide.get(p.name, []))
        cells = []
        first = None
        for g in run.cfg.generators:
            recs = load_set(run.morph_sets[p.name, g.name])
            if first is None and recs:
                first = recs[0]["pair_id"]
            for r in recs:
                if r["pair_id"] == first:
                    cells.append((f"{g.name}/{r.get('tag')}", r["path"], r))
        if first is None:
            continue
        r0 = cells[0][2]
        a, b = str(r0["subject_a"]["id"]), str(r0["subject_b"]["id"])
        row = [(f"subject A ({a})", bf.get(a))] + [(t, path) for t, path, _ in cells] + \
              [(f"subject B ({b})", bf.get(b))]
        rows.append((p.name, row))
    if not rows:
        return None
    ncol = max(len(r) for _, r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.2 * ncol, 2.6 * len(rows)), squeeze=False)
    for i, (proto, row) in enumerate(rows):
        for j in range(ncol):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(row) and row[j][1]:
                ax.imshow(read_image(row[j][1]))
                ax.set_title(f"{row[j][0]}" + (f"\n[{proto}]" if j == 0 else ""), fontsize=8)
    fig.tight_layout()
    return fig


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def write_report(run: _Run) -> Path:
    """The consolidated report (``report.md`` / ``report.html``) in the output folder."""
    from morphlab.reports.document import Code, Document, Figure, Heading, Paragraph, Table, save_figure

    cfg, out, res = run.cfg, run.out, run.results
    doc = Document(f"Experiment {cfg.name}")
    if cfg.description:
        doc.add(Paragraph(cfg.description.strip()))
    ds, pr = res["dataset"], res["pairs"]
    limit = f" (limited to {cfg.limit_pairs} pairs)" if cfg.limit_pairs else ""
    doc.add(
        Heading("Data"),
        Table(["dataset", "loader", "subjects", "images", "enrolment images", "subjects with probes"],
              [[ds["root"], ds["loader"], ds["subjects"], ds["samples"], ds["enrolment"],
                ds["probe_subjects"]]]),
        Paragraph(f"Pairs: strategy {pr['strategy']}, seed {pr['seed']}, {pr['pairs']} pairs of "
                  f"{pr['subjects_used']} subjects{limit}; file pairs/pairs.csv."),
        Table(["generator", "registered as", "parameters", "morphs", "failed pairs"],
              [[g.name, g.generator, json.dumps(dict(g.params), sort_keys=True) or "{}",
                res[f"generate/{g.name}"]["morphs"], res[f"generate/{g.name}"]["failed"]]
               for g in cfg.generators], "Attack sets (folder generate/<generator>)"),
        Table(["protocol", "operators (applied alike to morphs and bona fide images)"],
              [[p.name, " → ".join(p.ops) or "(as generated)"] for p in cfg.postprocess],
              "Post-processing protocols"),
    )
    fig = _examples_figure(run)
    if fig is not None:
        save_figure(fig, out / "figures" / "examples.png")
        doc.add(Figure("figures/examples.png", "The first pair: bona fide images and morphs, per protocol"))

    maps = [(p, g) for p in run._protocols(cfg.map.protocols) for g in cfg.generators
            if f"map/{p.name}/{g.name}" in res] if cfg.map.enabled else []
    if maps:
        doc.add(Heading("Morphing Attack Potential"),
                Paragraph(f"Systems {', '.join(cfg.map.systems)}, thresholds at FMR "
                          f"{cfg.map.target_fmr:g}; probes: the dataset's probe images "
                          "(unprocessed). MinMax-MMPMR / ProdAvg-MMPMR per system; MAP[1,1]: "
                          "share of morphs accepted for both subjects by at least one system at "
                          "the first attempt."))
        systems = res[f"map/{maps[0][0].name}/{maps[0][1].name}"]["systems"]
        rows = []
        for p, g in maps:
            r = res[f"map/{p.name}/{g.name}"]
            overall = {"n_morphs": r["n_morphs"], "per_system": r["per_system"]}
            groups = {f"{g.name}/{k.split('/', 1)[-1]}": v for k, v in r["per_group"].items()}
            groups[f"{g.name} (all)" if groups else g.name] = overall  # per tag, then all
            for label, v in groups.items():
                rows.append([p.name, label, v["n_morphs"], *[
                    f"{_pct(v['per_system'][s]['minmax_mmpmr'])} / "
                    f"{_pct(v['per_system'][s]['prodavg_mmpmr'])}" for s in systems]])
        doc.add(Table(["protocol", "attack", "morphs", *systems], rows,
                      "MinMax-MMPMR / ProdAvg-MMPMR"))
        for p, g in maps:
            doc.add(Figure(f"map/{p.name}/{g.name}/map.png",
                           f"MAP, {g.name}, protocol {p.name} (full report: map/{p.name}/{g.name}/report.html)"))

    dets = [(p, d) for p in run._protocols(cfg.detection.protocols) for d in cfg.detection.detectors
            if f"detect/{p.name}/{d.name}" in res] if cfg.detection.enabled else []
    if dets:
        doc.add(Heading("Detection: train on one attack species, test on each"),
                Paragraph(f"Subject-disjoint split (test fraction {cfg.detection.test_fraction:g}); "
                          "bona fide images: the enrolment images of the pair subjects, processed "
                          "like the morphs. Rows: the species trained on; columns: tested on."))
        for p, d in dets:
            r = res[f"detect/{p.name}/{d.name}"]
            doc.add(Table(["trained on \\ tested on", *r["species"]],
                          [[tr, *[_pct(v) for v in row]] for tr, row in zip(r["species"], r["deer"])],
                          f"D-EER, {d.name}, protocol {p.name} ({r['train_subjects']} training / "
                          f"{r['test_subjects']} test identities)"),
                    Figure(r["figure"], f"D-EER matrix, {d.name}, protocol {p.name}"))

    doc.add(Heading("Stages"),
            Table(["stage", "status", "seconds"],
                  [[s.name, s.status, round(s.seconds, 2)] for s in run.stages.runs],
                  "This run (cached: key unchanged, result reused)"),
            Heading("Configuration"), Code(cfg.to_yaml()),
            Paragraph(f"morphlab {__version__}; re-run: morphlab run <this configuration>."))
    md, _ = doc.write(out)
    return md
