"""The README's "Detection, step by step" blocks run as written (pasted into bash)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


README = Path(__file__).resolve().parents[1] / "README.md"


def _tour_block(marker: str) -> str:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one README bash block with {marker!r}, found {len(found)}"
    return found[0]


def _paste(block: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the block in bash as a newcomer pastes it: line by line, stopping at an error."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("MORPHLAB_LIMIT_PAIRS", None)
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)


def _check(res: subprocess.CompletedProcess, root: Path, out: str) -> None:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    split = json.loads((root / out / "split" / "split.json").read_text())
    train, test = set(split["subjects"]["train"]), set(split["subjects"]["test"])
    assert train and test and not train & test
    c = split["counts"]
    assert c["train"]["attacks"] and c["test"]["attacks"]
    for variant in ("complete", "spliced"):
        m = json.loads((root / out / f"eval_{variant}" / "metrics.json").read_text())
        assert list(m["metrics"]["per species"]) == [f"landmark/{variant}"]
        assert m["metrics"]["n_attack"] == c["test"]["attacks_by_species"][f"landmark/{variant}"]
        assert m["info"]["subject-disjoint"].startswith("yes")
    assert "landmark/spliced" in res.stdout and "D-EER" in res.stdout
    assert "is deprecated" not in res.stderr, "the README uses an old spelling:\n" + res.stderr


def test_sample_tour_runs_as_pasted(tmp_path: Path, sample_dir: Path) -> None:
    """At a checkout's root: ``morphlab/sample/frll`` is there (copied, not the repo's own)."""
    block = _tour_block("morphlab split morphlab/sample/frll")
    assert "..." not in block and "[" not in block  # no placeholders to fill in
    shutil.copytree(sample_dir, tmp_path / "morphlab" / "sample" / "frll")
    res = _paste(block, tmp_path)
    _check(res, tmp_path, "tour")
    split = json.loads((tmp_path / "tour" / "split" / "split.json").read_text())
    # the README's comment states these counts
    assert (split["counts"]["train"]["attacks"], split["counts"]["test"]["attacks"],
            split["counts"]["excluded_attacks"]) == (12, 12, 36)
    scored = re.findall(r"^[+-]\d+\.\d+\s+(morph|bona fide)\s+(\S+)$", res.stdout, flags=re.M)
    assert [Path(p).name for _, p in scored] == ["005_08.jpg", "0008_005_018_spliced.png"], res.stdout[-2000:]


def test_frll_tour_runs_as_pasted(tmp_path: Path, frll_dir: Path) -> None:
    """The FRLL variant, with ``../shared/data/frll`` beside the working folder."""
    block = _tour_block("morphlab split ../shared/data/frll --loader frll --attacks tour_frll")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "frll").symlink_to(frll_dir.resolve())
    (tmp_path / "repo").mkdir()
    res = _paste(block, tmp_path / "repo")
    _check(res, tmp_path / "repo", "tour_frll")
