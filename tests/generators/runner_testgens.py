"""Tiny generators and a tiny dataset for the runner and CLI tests.

Importing this module registers ``avg-test`` and ``avg-batch-test`` in the generator
registry. It is imported by name in spawned worker processes and in CLI subprocesses
(``PYTHONPATH`` = this folder), so it must stay importable on its own.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from morphlab.face.base import NoFaceError
from morphlab.generators.base import GENERATORS, Contributor, Generator, MorphOutput
from morphlab.io import read_image, write_image

HERE = Path(__file__).resolve().parent
#: The embedded FRLL sample (600x600 photos + london_info.csv).
SAMPLE = HERE.parents[1] / "morphlab" / "sample" / "frll"


class AverageGen(Generator):
    """Test generator: resized blend of the two images plus seeded noise.

    One output per ``variants`` entry: ``plain`` (the blend) or ``inverted`` (255 - blend).
    Subjects in ``fail_subjects`` raise NoFaceError; ``delay`` seconds of sleep per pair.
    """

    name = "avg-test"
    version = "1"

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        size: int = 48,
        variants: Sequence[str] = ("plain",),
        fail_subjects: Sequence[str] = (),
        delay: float = 0.0,
    ) -> None:
        self.alpha = alpha
        self.size = size
        self.variants = list(variants)
        self.fail_subjects = list(fail_subjects)
        self.delay = delay

    def get_params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha, "size": self.size, "variants": self.variants,
            "fail_subjects": self.fail_subjects, "delay": self.delay,
        }

    def output_tags(self) -> list[str]:
        return list(self.variants)

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        if self.delay:
            time.sleep(self.delay)
        for c in (a, b):
            if c.subject_id in self.fail_subjects:
                raise NoFaceError(f"{c.path}: no face found by the 'test' backend")
        ia, ib = (
            cv2.resize(read_image(c.path), (self.size, self.size), interpolation=cv2.INTER_AREA)
            for c in (a, b)
        )
        blend = (1 - self.alpha) * ia + self.alpha * ib
        noise = np.random.default_rng(seed).integers(0, 4, blend.shape)
        img = np.clip(blend + noise, 0, 255).astype(np.uint8)
        return [
            MorphOutput(
                img if v == "plain" else 255 - img, v, {"variant": v},
                {"mean": np.float32(img.mean()), "backend": "none"},
            )
            for v in self.variants
        ]


class BatchAverageGen(AverageGen):
    """AverageGen that asks for batches of 3 and records each batch's size."""

    name = "avg-batch-test"
    batch_size = 3

    def generate_batch(self, jobs):
        out = super().generate_batch(jobs)
        for res in out:
            if not isinstance(res, Exception):
                for o in res:
                    o.extra["batch"] = len(jobs)
        return out


class CrashGen(AverageGen):
    """AverageGen whose process dies (no exception: a hard crash) on subject ``crash_on``."""

    name = "crash-test"

    def __init__(self, *, crash_on: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.crash_on = crash_on

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "crash_on": self.crash_on}

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        if self.crash_on in (a.subject_id, b.subject_id):
            os._exit(3)
        return super().generate(a, b, seed=seed)


class BlockGen(AverageGen):
    """AverageGen that announces each pair and then waits for a file (no fixed delays).

    Before morphing a pair it writes ``<signal_dir>/<pid>-<pair>`` (its process id, so a
    test knows which processes are working), then waits until the file ``release`` exists
    (at most ``timeout`` seconds, then the pair fails).
    """

    name = "block-test"

    def __init__(self, *, signal_dir: str = "", release: str = "", timeout: float = 120.0,
                 fork: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.signal_dir, self.release, self.timeout = signal_dir, release, timeout
        self.fork = bool(fork)

    @property
    def fork_safe(self) -> bool:
        """``fork=True``: the runner forks the workers (as for the landmark generator)."""
        return self.fork

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "signal_dir": self.signal_dir, "release": self.release,
                "timeout": self.timeout, "fork": self.fork}

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        if self.signal_dir:
            mark = Path(self.signal_dir) / f"{os.getpid()}-{a.subject_id}-{b.subject_id}"
            mark.write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while self.release and not os.path.exists(self.release):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.release} did not appear in {self.timeout} s")
            time.sleep(0.005)
        return super().generate(a, b, seed=seed)


for _cls in (AverageGen, BatchAverageGen, BlockGen):
    GENERATORS.add(_cls.name, _cls, origin="tests")


def make_dataset(root: Path, n: int = 6, size: int = 64) -> Path:
    """A small dataset: the first ``n`` sample subjects, neutral + smiling, ``size`` px PNGs.

    Also copies ``london_info.csv``. Returns ``root``.
    """
    neutral = sorted((SAMPLE / "neutral").glob("*.jpg"))[:n]
    if len(neutral) < n:
        raise FileNotFoundError(f"{SAMPLE}: the embedded sample has fewer than {n} subjects")
    for src in neutral:
        sid = src.stem.split("_")[0]
        for sub, cap in (("neutral", "03"), ("smiling", "08")):
            img = read_image(SAMPLE / sub / f"{sid}_{cap}.jpg")
            small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            write_image(root / sub / f"{sid}_{cap}.png", small)
    shutil.copy(SAMPLE / "london_info.csv", root / "london_info.csv")
    return root


def run_set(pairs_csv: Path, out: Path, params=None, **kw):
    """``generate_attack_set`` with :class:`AverageGen` (or ``gen=``), no progress bars."""
    from morphlab.generators.runner import generate_attack_set

    kw.setdefault("progress", False)
    return generate_attack_set(pairs_csv, kw.pop("gen", AverageGen), params or {}, out, **kw)


def snapshot(out: Path) -> dict[str, bytes]:
    """Every visible file of an attack-set folder, by name."""
    return {f.name: f.read_bytes() for f in sorted(out.iterdir()) if not f.name.startswith(".")}
