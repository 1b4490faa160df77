"""The demo runs end to end on the embedded sample and is resumable."""

from __future__ import annotations

import json
from pathlib import Path

from morphlab.demo import run_demo
from morphlab.io import read_image


def test_demo_end_to_end(tmp_path: Path, installed_model) -> None:
    from morphlab.recognition.base import DEFAULT_SYSTEMS

    for name in ("facenet", "mobilefacenet"):  # the demo's MAP uses the deep systems
        installed_model(name)
    index = run_demo(tmp_path, progress=False, steps=("map",))
    assert index.name == "index.html" and index.exists()
    lines = [json.loads(l) for l in (tmp_path / "morphs" / "manifest.jsonl").read_text().splitlines()]
    ok = [l for l in lines if l["status"] == "ok"]
    assert len(ok) >= 16 and {l["params"]["variant"] for l in ok} == {"complete", "spliced"}
    # every pair is same-gender, and contributors are two different subjects
    assert all(l["subject_a"]["id"] != l["subject_b"]["id"] for l in ok)
    sheet = read_image(tmp_path / "attack_report" / "contact_sheet.jpg")
    # one row per pair (shown up to 12): subject A | complete | spliced | subject B,
    # 200 px tiles + a label bar each
    pairs = len({l["pair_id"] for l in ok})
    assert sheet.shape[1] >= 4 * 200 and sheet.shape[0] >= min(pairs, 12) * 200
    report = json.loads((tmp_path / "map" / "map.json").read_text())
    assert report["overall"]["map"]["values"]
    assert [s["name"] for s in report["systems"]] == list(DEFAULT_SYSTEMS)
    assert len(report["overall"]["map"]["values"][0]) == len(DEFAULT_SYSTEMS)
    md = (tmp_path / "index.md").read_text()
    assert "morphs" in md and "MAP" in md

    # a second run in the same folder redoes nothing
    before = (tmp_path / "morphs" / "manifest.jsonl").read_bytes()
    run_demo(tmp_path, progress=False, steps=())
    assert (tmp_path / "morphs" / "manifest.jsonl").read_bytes() == before
