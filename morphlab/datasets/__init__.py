"""Datasets (folders of face images with identities) and contributor pairs."""

from morphlab.datasets.folder import DEFAULT_PATTERN, Dataset, Sample, load_folder
from morphlab.datasets.pairs import (
    STRATEGIES,
    Pair,
    PairSet,
    PairsError,
    make_pairs,
    read_pairs,
    register_strategy,
    write_pairs,
)

__all__ = [
    "DEFAULT_PATTERN", "Dataset", "Sample", "load_folder", "STRATEGIES", "Pair", "PairSet",
    "PairsError", "make_pairs", "read_pairs", "register_strategy", "write_pairs",
]
