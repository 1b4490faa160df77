"""`morphlab detect train|score|eval` on real sample morphs."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from morphlab.cli import main

pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")


def test_detect_train_score_eval(split_sample, no_face_image, tmp_path):
    tr, te = split_sample["train"], split_sample["test"]
    cli = CliRunner()
    model = tmp_path / "model"
    r = cli.invoke(main, ["detect", "train", "-d", "freq-logreg", "-p", "C=0.5",
                          "--bona-fide", str(tr["neutral"]), "--bona-fide", str(tr["smiling"]),
                          "--attacks", str(tr["attacks"]), "--variant", "complete",
                          "--crop-size", "96", "-o", str(model), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "trained freq-logreg on bona fide: 12, landmark/complete:" in r.output
    assert json.loads((model / "detector.json").read_text())["params"]["C"] == 0.5

    r = cli.invoke(main, ["detect", "score", str(model), str(no_face_image),
                          str(te["attacks"]), "--no-progress"])
    assert r.exit_code == 0, r.output  # a partial success: exit 0, the failure count last
    lines = [ln for ln in r.output.strip().splitlines()
             if not ln.startswith(("WARNING", "decision threshold"))]
    n_morphs = len(list(te["attacks"].glob("*.jpg")))
    assert lines[0].startswith("no face: ") and len(lines) == 2 + n_morphs
    assert all(("morph" in ln or "bona fide" in ln) for ln in lines[1:-1])
    assert lines[-1] == f"1 of {n_morphs + 1} images not scored (1 no face)"
    # nothing scored: exit 1, though the CSV still lists why
    r = cli.invoke(main, ["detect", "score", str(model), str(no_face_image), "--csv",
                          str(tmp_path / "s.csv"), "--no-progress"])
    assert r.exit_code == 1 and "Error: nothing could be scored: 1 no face (of 1 images)" in r.output
    assert (tmp_path / "s.csv").read_text().startswith("path,error")

    report = tmp_path / "report"
    args = ["detect", "eval", str(model), "--bona-fide", str(te["neutral"]), "--bona-fide",
            str(te["smiling"]), "--attacks", str(te["attacks"]), "-o", str(report), "--no-progress"]
    r = cli.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "landmark/spliced" in r.output and (report / "report.html").is_file()
    # every rate of the summary with its count and 95 % interval, e.g. "12.5 % [3.5, 36.0] (2/16)"
    summary = r.output.splitlines()[0]
    assert re.search(r"BPCER@APCER=10% \d+\.\d % \[\d+\.\d, \d+\.\d\] \(\d+/\d+\)", summary), summary
    assert re.search(r"D-EER [\d.]+ % \(APCER [\d.]+ % \[.*\] \(\d+/\d+\), BPCER", summary), summary

    # the training identities as test data: a one-line error, unless allowed
    overlap = ["detect", "eval", str(model), "--bona-fide", str(tr["neutral"]), "--attacks",
               str(tr["attacks"]), "-o", str(tmp_path / "r2"), "--no-progress"]
    r = cli.invoke(main, overlap)
    assert r.exit_code == 1 and "Error: the test data share 6 identities" in r.output
    r = cli.invoke(main, overlap + ["--allow-overlap"])
    assert r.exit_code == 0 and "not subject-disjoint" in r.output

    r = cli.invoke(main, ["detect", "train", "-d", "nope", "--bona-fide", str(tr["neutral"]),
                          "--attacks", str(tr["attacks"]), "-o", str(tmp_path / "m2")])
    assert r.exit_code == 1 and "unknown detector 'nope'" in r.output
