"""Datasets (folders of face images with identities) and contributor pairs."""

from morphlab.datasets.folder import DEFAULT_PATTERN, ENROLMENT, PROBE, Dataset, Sample, load_folder
from morphlab.datasets.loaders import LOADERS, load_dataset, loader_names, register_loader
from morphlab.datasets.fei import load_fei  # registers "fei"
from morphlab.datasets.frll import load_frll  # registers "frll"
from morphlab.datasets.onot import load_onot  # registers "onot"
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
    "ENROLMENT", "PROBE", "LOADERS", "load_dataset", "loader_names", "register_loader",
    "load_fei", "load_frll", "load_onot",
]
