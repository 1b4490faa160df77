"""map-score warns when a scoring system's model file conditioned or selected the morphs."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from morphlab.generators.base import Contributor, Generator, MorphOutput
from morphlab.generators.runner import generate_attack_set
from morphlab.io import read_image, sha256_file
from morphlab.mapscore import map_score
from morphlab.mapscore.independence import model_file_overlap

PAIRS = (("002", "003"), ("005", "006"))
OTHERS = ("004", "007", "008", "009")


class ConditionedGen(Generator):
    """Records its FR model as Arc2Face does: ``params.files[...]`` with size and sha256."""

    name = "conditioned-test"
    version = "1"

    def __init__(self, weights: str = "", hash_weights: bool = True) -> None:
        self.weights = weights
        self.hash_weights = hash_weights

    def get_params(self) -> dict[str, Any]:
        model = Path(self.weights) / "arcface.onnx"
        rec: dict[str, Any] = {"bytes": model.stat().st_size}
        if self.hash_weights:
            rec["sha256"] = sha256_file(model)
        return {"weights": self.weights, "files": {"arcface.onnx": rec},
                "recognition": f"arcface-onnx={model}", "hash_weights": self.hash_weights}

    def output_tags(self) -> list[str]:
        return ["blend"]

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        ia, ib = read_image(a.path), read_image(b.path)
        ib = cv2.resize(ib, (ia.shape[1], ia.shape[0]), interpolation=cv2.INTER_AREA)
        return [MorphOutput(((ia.astype(np.float32) + ib) / 2).round().astype(np.uint8), "blend")]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("onnx", reason="the onnx package (morphlab[onnx]) builds the tiny models")
    from morphlab.recognition.testing import make_tiny_fr_onnx

    d = tmp_path_factory.mktemp("weights")
    other = tmp_path_factory.mktemp("other")
    return {"weights": d, "own": make_tiny_fr_onnx(d / "arcface.onnx", seed=0),
            "other": make_tiny_fr_onnx(other / "arcface.onnx", seed=1)}


def test_map_score_warns_and_records_a_conditioning_model(sample_dir: Path, models, tmp_path: Path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("pair_id,subject_a,image_a,subject_b,image_b\n" + "".join(
        f"{k:04d},{a},neutral/{a}_03.jpg,{b},neutral/{b}_03.jpg\n"
        for k, (a, b) in enumerate(PAIRS, start=1)))
    generate_attack_set(pairs, ConditionedGen, {"weights": str(models["weights"])},
                        tmp_path / "set", dataset_dir=sample_dir, progress=False)
    probes = tmp_path / "probes"
    probes.mkdir()
    for s in {x for p in PAIRS for x in p} | set(OTHERS):
        shutil.copy(sample_dir / "smiling" / f"{s}_08.jpg", probes)
    own = f"arcface-onnx={models['own']}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        map_score(tmp_path / "set", probes, tmp_path / "report", systems=["lbph", own],
                  target_fmr=0.1, progress=False)
    msgs = [str(w.message) for w in caught if "not independent" in str(w.message)]
    assert len(msgs) == 1 and "arcface-onnx" in msgs[0] and "conditioned the generator" in msgs[0]
    assert "params.files['arcface.onnx']" in msgs[0] and "lbph" not in msgs[0].split("(")[0]
    doc = json.loads((tmp_path / "report" / "map.json").read_text())
    ind = doc["settings"]["independence"]
    assert ind["independent"] is False
    (hit,) = ind["systems_sharing_the_generators_models"]
    assert hit["system"] == "arcface-onnx" and hit["roles"] == ["conditioned"]
    assert hit["model_sha256"] == sha256_file(models["own"])
    assert hit["groups"] == ["conditioned-test/blend"]
    from morphlab.reports.provenance import relative_paths

    # the warning as shown, with its paths relative to the report folder (no absolute path)
    assert relative_paths(msgs[0], tmp_path / "report") in doc["warnings"]
    assert "not independent" in (tmp_path / "report" / "report.md").read_text()
    # another ArcFace file: independent, no warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        map_score(tmp_path / "set", probes, tmp_path / "report2",
                  systems=["lbph", f"arcface-onnx={models['other']}"], target_fmr=0.1,
                  progress=False)
    assert not [w for w in caught if "not independent" in str(w.message)]
    doc = json.loads((tmp_path / "report2" / "map.json").read_text())
    assert doc["settings"]["independence"] == {"independent": True,
                                               "systems_sharing_the_generators_models": []}


def _system(name: str, path: Path | None, version: str = "v") -> SimpleNamespace:
    return SimpleNamespace(name=name, version=version, model_path=path)


def test_overlap_by_sha256_path_and_selection(models, tmp_path: Path):
    own, other, weights = models["own"], models["other"], models["weights"]
    sha = sha256_file(own)
    hashed = {"group": "arc2face/arc2face", "params": {
        "weights": str(weights), "files": {"arcface.onnx": {"bytes": 1, "sha256": sha},
                                           "arc2face/x.safetensors": {"bytes": 1, "sha256": "0" * 64}}}}
    # a copy of the same file elsewhere: found by content
    copy = tmp_path / "renamed.onnx"
    shutil.copy(own, copy)
    (hit,) = model_file_overlap([hashed], [_system("arcface-onnx", copy)], ["arcface-onnx"])
    assert hit["roles"] == ["conditioned"] and hit["recorded_as"] == ["params.files['arcface.onnx']"]
    assert model_file_overlap([hashed], [_system("arcface-onnx", other)], ["arcface-onnx"]) == []
    # sizes only (hash_weights=False): the path weights/arcface.onnx
    sized = {"group": "g", "params": {"weights": str(weights), "files": {"arcface.onnx": {"bytes": 1}}}}
    (hit,) = model_file_overlap([sized], [_system("arcface-onnx", own)], ["a"])
    assert hit["roles"] == ["conditioned"] and hit["model_sha256"] is None
    assert model_file_overlap([sized], [_system("arcface-onnx", copy)], ["a"]) == []
    # the system that picked the kept candidate (name and version, as arc2face records)
    selected = {"group": "g", "params": {}, "extra": {"selection": {
        "recognition": "sface-onnx", "recognition_version": "abc123"}}}
    (hit,) = model_file_overlap([selected], [_system("sface-onnx", other, "abc123")], ["s"])
    assert hit["roles"] == ["selected"] and "selected the kept candidates" in hit["message"]
    assert model_file_overlap([selected], [_system("sface-onnx", other, "zzz")], ["s"]) == []
    # both at once; a system without a model file is never flagged
    both = {**hashed, "params": {**hashed["params"], "recognition": f"arcface-onnx={own}"},
            "extra": {"selection": {"recognition": "arcface-onnx", "recognition_version": "q"}}}
    hits = model_file_overlap([both], [_system("lbph", None), _system("arcface-onnx", own)],
                              ["lbph", "arcface-onnx"])
    assert [h["system"] for h in hits] == ["arcface-onnx"]
    assert hits[0]["roles"] == ["conditioned", "selected"]
    # what arc2face records per morph: extra.conditioning_models / extra.selection_models
    per_morph = {"group": "arc2face", "params": {}, "extra": {
        "conditioning_models": {"arcface": sha}, "selection_models": {"sface-onnx": sha256_file(other)}}}
    hits = model_file_overlap([per_morph], [_system("arcface-onnx", copy), _system("sface-onnx", other)],
                              ["arcface-onnx", "sface-onnx"])
    assert [(h["system"], h["roles"], h["recorded_as"]) for h in hits] == [
        ("arcface-onnx", ["conditioned"], ["extra.conditioning_models['arcface']"]),
        ("sface-onnx", ["selected"], ["extra.selection_models['sface-onnx']"])]
    assert model_file_overlap([{"group": "landmark", "params": {"alpha": 0.5}}],
                              [_system("arcface-onnx", own)], ["a"]) == []
