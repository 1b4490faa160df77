"""The stage cache's deletion rule and the content key (morphlab.experiments.stages)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from morphlab.experiments.stages import ContentHashes, StageFolderError, _Stages
from morphlab.outdir import OWNED_NAME


def _writer(folder: Path, files: dict[str, str]):
    def fn() -> dict:
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        return {"files": sorted(files)}
    return fn


def test_user_file_in_a_map_folder_survives_a_key_change(tmp_path: Path):
    out = tmp_path / "run"
    folder = out / "map" / "digital" / "landmark"
    stages = _Stages(out)
    r = stages.run("map/digital/landmark", {"fmr": 0.001}, [folder],
                   _writer(folder, {"report.html": "a", "scores.csv": "1", "old-only.png": "x"}))
    assert r.status == "ran"
    assert set(json.loads((folder / OWNED_NAME).read_text())) == {
        "report.html", "scores.csv", "old-only.png"}
    (folder / "notes.txt").write_text("my own notes")

    with pytest.raises(StageFolderError, match=r"map/digital/landmark: stage map/digital/landmark "
                                               r"must be redone.*: notes.txt; nothing was deleted"):
        _Stages(out).run("map/digital/landmark", {"fmr": 0.01}, [folder],
                         _writer(folder, {"report.html": "b"}))
    assert (folder / "notes.txt").read_text() == "my own notes"
    assert (folder / "report.html").read_text() == "a"  # nothing deleted

    # the user's file moved away: morphlab's own files are cleaned, the stage re-runs
    (folder / "notes.txt").rename(tmp_path / "notes.txt")
    seen = []

    def fn() -> dict:
        seen.append(sorted(p.name for p in folder.iterdir()) if folder.exists() else [])
        return _writer(folder, {"report.html": "b", "scores.csv": "2"})()

    r = _Stages(out).run("map/digital/landmark", {"fmr": 0.01}, [folder], fn)
    assert r.status == "ran" and seen == [[]]
    assert sorted(p.name for p in folder.iterdir()) == sorted([OWNED_NAME, "report.html", "scores.csv"])
    # unchanged key: cached, nothing touched
    assert _Stages(out).run("map/digital/landmark", {"fmr": 0.01}, [folder],
                            _writer(folder, {})).status == "cached"


def test_an_edited_output_and_a_folder_with_no_record_are_refused(tmp_path: Path):
    out = tmp_path / "run"
    folder = out / "detect" / "digital" / "lbp-svm"
    _Stages(out).run("detect/digital/lbp-svm", {"k": 1}, [folder],
                     _writer(folder, {"deer.png": "png", "models/a/detector.json": "{}"}))
    (folder / "models/a/detector.json").write_text('{"edited": true}')
    with pytest.raises(StageFolderError, match=r"models/a/detector.json"):
        _Stages(out).run("detect/digital/lbp-svm", {"k": 2}, [folder], _writer(folder, {}))
    assert (folder / "deer.png").is_file()

    # a first run into a folder the user already filled: refused, up to 5 names shown
    pairs = out / "pairs"
    pairs.mkdir()
    for i in range(7):
        (pairs / f"mine{i}.csv").write_text("x")
    with pytest.raises(StageFolderError) as err:
        _Stages(out).run("pairs", {"seed": 0}, [pairs], _writer(pairs, {"pairs.csv": "p"}))
    msg = str(err.value)
    assert "mine0.csv, mine1.csv, mine2.csv, mine3.csv, mine4.csv … (7 files)" in msg
    assert "mine5.csv" not in msg and len(list(pairs.iterdir())) == 7

    # a file or a link where a stage folder goes: refused, kept
    (out / "generate").mkdir()
    (out / "generate" / "landmark").write_text("mine")
    (out / "map").mkdir()
    (out / "map" / "p").symlink_to(tmp_path)
    with pytest.raises(StageFolderError, match=r"generate/landmark: .* this is a file morphlab did not create"):
        _Stages(out).run("generate/landmark", {}, [out / "generate" / "landmark"], _writer(out, {}))
    with pytest.raises(StageFolderError, match=r"map/p: .* this is a link morphlab did not create"):
        _Stages(out).run("map/p", {}, [out / "map" / "p"], _writer(out, {}))
    assert (out / "generate" / "landmark").read_text() == "mine" and (out / "map" / "p").is_symlink()


def test_an_image_set_is_cleaned_by_its_manifest(tmp_path: Path):
    out = tmp_path / "run"
    folder = out / "generate" / "landmark"
    files = {"run.json": "{}", "a.png": "A", "b.png": "B",
             "manifest.jsonl": '{"status": "ok", "file": "a.png"}\n{"status": "ok", "file": "b.png"}\n'}
    _Stages(out).run("generate/landmark", {"alpha": 0.5}, [folder], _writer(folder, files))
    assert not (folder / OWNED_NAME).exists()  # the manifest is the set's record
    (folder / "c.png").write_text("C")  # not in the manifest
    with pytest.raises(StageFolderError, match=r": c.png; nothing was deleted"):
        _Stages(out).run("generate/landmark", {"alpha": 0.4}, [folder], _writer(folder, {}))
    assert (folder / "a.png").is_file()
    (folder / "c.png").unlink()
    r = _Stages(out).run("generate/landmark", {"alpha": 0.4}, [folder],
                         lambda: {"left": sorted(p.name for p in folder.iterdir()) if folder.exists() else []})
    assert r.result == {"left": []}


def test_an_interrupted_stage_continues_but_keeps_older_foreign_files(tmp_path: Path):
    out = tmp_path / "run"
    folder = out / "map" / "p" / "g"

    def crash() -> dict:
        _writer(folder, {"partial.csv": "1"})()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _Stages(out).run("map/p/g", {"k": 1}, [folder], crash)
    r = _Stages(out).run("map/p/g", {"k": 1}, [folder], _writer(folder, {"report.html": "r"}))
    assert r.status == "ran" and not (folder / "partial.csv").exists()  # its own: restarted
    assert sorted(p.name for p in folder.iterdir()) == [OWNED_NAME, "report.html"]

    with pytest.raises(KeyboardInterrupt):
        _Stages(out).run("map/p/g", {"k": 2}, [folder], crash)
    old = folder / "copied-in.txt"
    old.write_text("kept")
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))  # e.g. cp -p: older than the stage
    with pytest.raises(StageFolderError, match=r"was interrupted.*copied-in.txt"):
        _Stages(out).run("map/p/g", {"k": 2}, [folder], _writer(folder, {}))
    assert old.read_text() == "kept"


def test_content_hashes_ignore_mtime(tmp_path: Path):
    root = tmp_path / "data"
    root.mkdir()
    photos = [root / f"{i}.jpg" for i in range(3)]
    for i, p in enumerate(photos):
        p.write_bytes(bytes([i]) * 100)
    cache = tmp_path / "hashes.json"
    h = ContentHashes(cache)
    first = h.fingerprint(photos, root)
    h.save()
    assert h.hashed == 3 and first[0][0] == "0.jpg" and len(first[0][1]) == 64

    h = ContentHashes(cache)  # nothing changed: no file is read again
    assert h.fingerprint(photos, root) == first and h.hashed == 0
    for p in photos:
        os.utime(p, ns=(2_000_000_000, 2_000_000_000))
    h = ContentHashes(cache)
    assert h.fingerprint(photos, root) == first and h.hashed == 3  # re-hashed, same key
    h.save()
    photos[1].write_bytes(bytes([1]) * 99 + b"\x07")
    second = ContentHashes(cache).fingerprint(photos, root)
    assert second[0] == first[0] and second[1] != first[1]
    cache.write_text("not json")  # an unreadable cache only costs time
    assert ContentHashes(cache).fingerprint(photos, root) == second
