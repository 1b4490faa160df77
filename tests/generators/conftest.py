"""Fixtures shared by the runner tests (local pool, safety, throughput, Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner_testgens import make_dataset

from morphlab.datasets.folder import load_folder
from morphlab.datasets.pairs import make_pairs, write_pairs


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory) -> Path:
    """6 small subjects, per_subject=2: 6 pairs (one per test module)."""
    root = make_dataset(tmp_path_factory.mktemp("data") / "ds", n=6)
    ds = load_folder(root, metadata=root / "london_info.csv", meta_id_column="face_id")
    ps = make_pairs(ds, per_subject=2, seed=0, capture="03")
    assert len(ps) == 6
    out = root.parent / "pairs.csv"
    write_pairs(ps, out)
    return out
