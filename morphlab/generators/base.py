"""The morph-generator interface and registry.

A generator turns one contributor pair (subject A, subject B) into one or more morph
images. The attack-set runner (:mod:`morphlab.generators.runner`) handles files, the
manifest, resumption and worker processes; generators only compute pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from morphlab._registry import Registry

#: Morph generators; plug-ins use the ``morphlab.generators`` entry-point group.
GENERATORS: Registry = Registry(
    "generator",
    "morphlab.generators",
    builtins=("morphlab.generators.landmark", "morphlab.generators.arc2face"),
)


@dataclass(frozen=True)
class Contributor:
    """One contributor of a morph ("subject A" or "subject B").

    Attributes:
        subject_id: identity label.
        path: the image file (absolute).
    """

    subject_id: str
    path: Path


@dataclass
class MorphOutput:
    """One morph image produced for a pair.

    Attributes:
        image: RGB uint8 ``(H, W, 3)``.
        tag: short label distinguishing outputs of one pair (e.g. ``"complete"``), used in
            the file name; must be one of :meth:`Generator.output_tags`.
        params: parameters specific to this output (e.g. ``{"variant": "spliced"}``).
        extra: anything else worth recording in the manifest (scores, backend, timings).
    """

    image: np.ndarray
    tag: str
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Generator(ABC):
    """Base class of morph generators.

    ``__init__`` takes keyword parameters only and stores them; :meth:`get_params` returns
    every parameter (JSON-serialisable) so the manifest says exactly how a morph was made.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    #: How many pairs :meth:`generate_batch` likes to receive at once.
    batch_size: int = 1
    #: Parameters that change speed, not the images (batch size, compilation …). They are
    #: recorded in the manifest but a run may be resumed with other values.
    runtime_params: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """All parameters, JSON-serialisable, defaults included."""

    @abstractmethod
    def output_tags(self) -> list[str]:
        """The tags of the outputs :meth:`generate` produces for every pair."""

    @abstractmethod
    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        """Morph ``a`` and ``b``; one output per tag. Errors raise (e.g. NoFaceError)."""

    def generate_batch(
        self, jobs: Sequence[tuple[Contributor, Contributor, int]]
    ) -> list[list[MorphOutput] | Exception]:
        """Morph several pairs; a failing pair yields its exception, not a crash."""
        out: list[list[MorphOutput] | Exception] = []
        for a, b, seed in jobs:
            try:
                out.append(self.generate(a, b, seed=seed))
            except Exception as exc:  # recorded in the manifest by the runner
                out.append(exc)
        return out


def create_generator(name_or_class: str | type, **params: Any) -> Generator:
    """Instantiate a generator by registered name or class."""
    return GENERATORS.create(name_or_class, **params)
