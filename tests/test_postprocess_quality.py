"""One JPEG-quality spelling: ``jpeg:quality=Q`` (``jpeg:q=Q`` a deprecated alias).

A set made with ``jpeg:q=Q`` still resumes, under either spelling, and a cache keyed on
the spec text (``morphlab run``'s stage keys) keys both spellings as before.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.generators.runner import RunConflictError
from morphlab.io import write_image
from morphlab.postprocess import cache_spec, parse_op, postprocess_set, same_ops


def _photos(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(root / f"{i:03d}_01.png", rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def test_q_is_a_deprecated_spelling_of_quality():
    with pytest.warns(FutureWarning, match=r"jpeg:q= is deprecated .*: use jpeg:quality="):
        old = parse_op("jpeg:q=75")
    assert old == parse_op("jpeg:quality=75") and old.spec() == "jpeg:quality=75"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: no second warning
        assert parse_op("jpeg:q=60").quality == 60
    # a bad value is named as the user spelled it; both spellings at once is a repeat
    with pytest.raises(ValueError, match=r"jpeg: q must be in \[1, 100\], got 200"):
        parse_op("jpeg:q=200")
    with pytest.raises(ValueError, match=r"jpeg: quality must be in \[1, 100\], got 0"):
        parse_op("jpeg:quality=0")
    with pytest.raises(ValueError, match="parameter 'quality' given twice"):
        parse_op("jpeg:q=70,quality=70")


def test_cache_spec_keys_both_spellings_as_before():
    assert cache_spec("jpeg:quality=75") == cache_spec("jpeg:q=75") == "jpeg:q=75"
    for spec in ("icao", "jpeg", "print-scan:noise=1", "icao:fill=240,240,240,width=300",
                 "jpeg: q = 90", "sharpen:q=1"):
        assert cache_spec(spec) == spec  # every other text keys as it always did
    assert cache_spec("jpeg: quality = 90") == "jpeg: q = 90"
    assert same_ops(["jpeg:q=75"], ["jpeg:quality=75"])
    assert not same_ops(["jpeg:q=70"], ["jpeg:quality=75"])
    assert not same_ops(["jpeg:q=75", "icao"], ["jpeg:quality=75"])
    assert not same_ops("jpeg:q=75", ["jpeg:quality=75"]) and not same_ops(["blur"], ["x"])


def _as_old_version(folder: Path, quality: int) -> None:
    """Rewrite a set as the version before the rename recorded it (``jpeg:q=Q``)."""
    for name in ("run.json", "manifest.jsonl"):
        f = folder / name
        f.write_text(f.read_text().replace(f'"jpeg:quality={quality}"', f'"jpeg:q={quality}"'))


@pytest.mark.parametrize("spelling", ["jpeg:q=50", "jpeg:quality=50"])
def test_a_set_made_with_q_resumes_under_either_spelling(tmp_path, spelling):
    photos = _photos(tmp_path / "photos")
    full = tmp_path / "full"
    postprocess_set(photos, full, ["jpeg:quality=50"], progress=False)
    _as_old_version(full, 50)
    expected = _tree(full)
    assert json.loads(expected["run.json"])["ops"] == ["jpeg:q=50"]
    # an interrupted run of the old version: two of three images done
    part = tmp_path / "part"
    postprocess_set(photos, part, ["jpeg:quality=50"], progress=False)
    _as_old_version(part, 50)
    lines = (part / "manifest.jsonl").read_text().splitlines(keepends=True)
    (part / "manifest.jsonl").write_text("".join(lines[:2]))
    (part / json.loads(lines[2])["file"]).unlink()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        s = postprocess_set(photos, part, [spelling], resume=True, progress=False)
    assert (s.skipped, s.processed, s.failed) == (2, 1, 0)
    assert _tree(part) == expected  # the old run's spelling kept: one run, byte for byte
    with pytest.raises(RunConflictError, match="different configuration"):
        postprocess_set(photos, part, ["jpeg:quality=60"], resume=True, progress=False)


def test_cli_op_quality_and_the_deprecated_q(tmp_path):
    photos = _photos(tmp_path / "photos", n=2)
    new = CliRunner().invoke(main, ["postprocess", str(photos), "-o", str(tmp_path / "a"),
                                    "--op", "jpeg:quality=80", "--no-progress"])
    assert new.exit_code == 0, new.output
    assert "Warning:" not in new.output
    old = CliRunner().invoke(main, ["postprocess", str(photos), "-o", str(tmp_path / "b"),
                                    "--op", "jpeg:q=80", "--no-progress"])
    assert old.exit_code == 0, old.output
    assert old.output.count("Warning: jpeg:q= is deprecated") == 1, old.output
    assert "use jpeg:quality=" in old.output
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert json.loads(b["run.json"])["ops"] == ["jpeg:quality=80"]
    assert a == b  # the same set, recorded the same way


def test_cli_out_dir_is_a_deprecated_spelling_of_out(tmp_path):
    photos = _photos(tmp_path / "photos", n=2)
    r = CliRunner().invoke(main, ["postprocess", str(photos), "--out-dir", str(tmp_path / "old"),
                                  "--op", "jpeg:quality=80", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert r.output.count("Warning: --out-dir is deprecated") == 1 and "use -o/--out" in r.output
    assert "2 images: 0 done before, 2 processed" in r.output
    r = CliRunner().invoke(main, ["postprocess", str(photos), "--op", "jpeg", "--no-progress"])
    assert r.exit_code == 2 and "Missing option '-o'" in r.output
