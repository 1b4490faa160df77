"""The stage cache of ``morphlab run``: keys, records, and what a stage may delete."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from morphlab import __version__
from morphlab.io import atomic_write_text

log = logging.getLogger(__name__)


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
