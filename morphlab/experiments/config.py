"""The experiment configuration: schema, validation, YAML loading, ``KEY=VALUE`` overrides.

See :mod:`morphlab.experiments` for the YAML schema.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import logging
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

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


def _check_backend(name: str) -> None:
    from morphlab.face.base import FACE_BACKENDS

    if name not in FACE_BACKENDS.names():
        raise ConfigError(f"backend: unknown face backend {name!r}; valid: "
                          f"{', '.join(FACE_BACKENDS.names())}")


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
        _check_backend(self.backend)


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
        _check_backend(self.backend)


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
    def effective(self, limit_pairs: Optional[int] = None) -> "ExperimentConfig":
        """This configuration with the size knob applied.

        Args:
            limit_pairs: ``--limit-pairs`` (wins over ``MORPHLAB_LIMIT_PAIRS``, which
                wins over the configuration's ``limit_pairs``).
        """
        limit = limit_pairs
        if limit is None:
            raw = os.environ.get(LIMIT_ENV, "").strip()
            if not raw:
                return self
            try:
                limit = int(raw)
            except ValueError:
                limit = 0
            if limit < 1:
                raise ConfigError(f"{LIMIT_ENV}={raw!r}: expected a positive integer")
        return dataclasses.replace(self, limit_pairs=limit)

    def dataset_root(self, base_dir: PathLike) -> Path:
        """``dataset.root`` with ``${VAR}`` expanded, relative to ``base_dir``."""
        return (Path(base_dir) / expand(self.dataset.root, "dataset.root")).resolve()

    def out_dir(self, base: Optional[PathLike] = None) -> Path:
        """``output_dir`` (expanded), default ``runs/<name>``, relative to the working dir.

        A reduced run (``limit_pairs`` set) gets a folder of its own, the full run's name
        with ``-limit<N>`` appended (``runs/frll_landmark-limit4``), so that it never
        replaces the full run's stages.
        """
        out = expand(self.output_dir, "output_dir") if self.output_dir else f"runs/{self.name}"
        if self.limit_pairs is not None:
            out = f"{out.rstrip('/')}-limit{self.limit_pairs}"
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

    def check_values(self) -> None:
        """Check parameter *values* that the schema cannot: build each component cheaply.

        Each generator is constructed from its (expanded) parameters — constructors
        validate their values (``alpha`` in [0, 1], known ``variants``…) and load no
        model and read no image; each detector's parameters are checked against the
        types its ``__init__`` declares (as when a saved model is loaded; detectors
        check ranges only in ``fit``); a recognition system given as ``name=MODEL_PATH`` must name an
        existing file. Call after :meth:`check_paths` (``${VAR}`` values must be set).

        Raises:
            ConfigError: naming the key and the problem.
        """
        from morphlab.detectors.base import DETECTORS
        from morphlab.detectors.base import _check_params as check_detector_params
        from morphlab.generators.base import GENERATORS

        for i, g in enumerate(self.generators):
            where = f"generators[{i}].params"
            params = expand(dict(g.params), where)
            try:
                GENERATORS.get(g.generator)(**params)
            except (ValueError, TypeError, KeyError, OSError) as exc:
                msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                raise ConfigError(f"{where} (generator {g.generator!r}): {msg}") from None
        for i, d in enumerate(self.detection.detectors):
            where = f"detection.detectors[{i}].params"
            cls, params = DETECTORS.get(d.detector), expand(dict(d.params), where)
            try:
                check_detector_params(cls, params, Path(where))  # types, as a saved model's
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            try:
                cls(**params)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where} (detector {d.detector!r}): {exc}") from None
        for i, spec in enumerate(expand(list(self.map.systems), "map.systems")):
            name, sep, model = spec.partition("=")
            if sep and not Path(model).expanduser().exists():
                raise ConfigError(f"map.systems[{i}]: {name} model {model} not found")


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
        try:
            value = _load_yaml(raw, f"override {spec!r}") if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {spec!r}: the value is not valid YAML ({exc})") from None
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


def _load_yaml(text: str, source: str) -> Any:
    """YAML → plain data, refusing aliases before any object is built.

    An alias (``*name``) re-uses an anchored node; nested aliases expand exponentially
    ("billion laughs": a few hundred bytes → gigabytes), so they are refused while the
    document is composed, at the first alias event.

    Raises:
        ConfigError: an alias (naming ``source`` and the line).
        yaml.YAMLError: invalid YAML.
    """
    import yaml

    class _NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ConfigError(
                    f"{source}, line {event.start_mark.line + 1}: YAML alias *{event.anchor} "
                    "refused (aliases can expand without bound); write the value out instead"
                )
            return super().compose_node(parent, index)

    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _parse_yaml(text: str, source: str) -> dict:
    import yaml

    try:
        data = _load_yaml(text, source)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    return data
