"""One generic registry for every kind of pluggable component.

Built-in components register with a decorator (``@GENERATORS.register("landmark")``);
third-party packages plug in through an entry-point group (``morphlab.generators``,
``morphlab.detectors``, ``morphlab.recognition``, ``morphlab.face``), loaded lazily the
first time a registry is queried. A plug-in that fails to load becomes a warning naming
its distribution, never a crash.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterator, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered component: its name, the class, and where it came from."""

    name: str
    obj: T
    origin: str  # "morphlab" for built-ins, else the distribution "name version"


class Registry(Generic[T]):
    """A name → class mapping with entry-point discovery.

    Args:
        kind: human-readable kind, used in error messages ("generator").
        group: the entry-point group third-party packages use.
        builtins: modules imported lazily to register the built-in components.
    """

    def __init__(self, kind: str, group: str, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = group
        self._builtins = builtins
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False
        self._loading = False

    # -- registration -----------------------------------------------------------------
    def register(self, name: str, *, origin: str = "morphlab") -> Callable[[T], T]:
        """Class decorator registering ``obj`` under ``name``; a duplicate name raises."""

        def deco(obj: T) -> T:
            self.add(name, obj, origin=origin)
            return obj

        return deco

    def add(self, name: str, obj: T, *, origin: str = "morphlab") -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            prev = self._entries[name]
            if prev.obj is obj:
                return
            raise ValueError(
                f"{self.kind} {name!r} is already registered (by {prev.origin}); "
                "choose another name"
            )
        try:
            setattr(obj, "registry_name", name)
        except (AttributeError, TypeError):
            pass
        self._entries[name] = Entry(name, obj, origin)

    # -- discovery --------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for mod in self._builtins:
                importlib.import_module(mod)
            for ep in entry_points(group=self.group):
                if ep.name in self._entries:
                    continue
                dist = getattr(ep, "dist", None)
                origin = f"{dist.name} {dist.version}" if dist is not None else ep.value
                try:
                    obj = ep.load()
                except Exception as exc:  # a broken plug-in must not break the CLI
                    warnings.warn(
                        f"morphlab: could not load {self.kind} plug-in {ep.name!r} from "
                        f"{origin}: {type(exc).__name__}: {exc}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                if ep.name not in self._entries:
                    self.add(ep.name, obj, origin=origin)
        finally:
            self._loading = False
        self._loaded = True

    # -- queries ----------------------------------------------------------------------
    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        self._load()
        for name in sorted(self._entries):
            yield self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def get(self, name: str) -> T:
        """Return the class registered as ``name``; unknown names list the valid ones."""
        self._load()
        try:
            return self._entries[name].obj
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def create(self, name_or_class: str | type, **params: Any) -> Any:
        """Instantiate a component from its registered name or from a class."""
        cls = self.get(name_or_class) if isinstance(name_or_class, str) else name_or_class
        return cls(**params)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split a CLI component spec ``name=VALUE`` into ``(name, VALUE)``.

    ``"arcface-onnx=/models/w600k_r50.onnx"`` → ``("arcface-onnx", "/models/w600k_r50.onnx")``;
    ``"dlib-resnet"`` → ``("dlib-resnet", None)``.
    """
    name, sep, value = spec.partition("=")
    return name.strip(), (value if sep else None)
