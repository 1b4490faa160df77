"""Morphing attack detectors: the contract (:mod:`.base`), one file per detector, the
shared preprocessing (:mod:`.preprocess`) and the conformance kit (:mod:`.testing`).

Built-ins: ``lbp-svm``, ``freq-logreg``, ``cnn`` (S-MAD) and ``embedding-diff`` (D-MAD);
third-party detectors plug in through the ``morphlab.detectors`` entry-point group.
"""

from morphlab.detectors.base import (
    DETECTORS,
    DifferentialDetector,
    NotFittedError,
    SingleImageDetector,
    create_detector,
    load_detector,
    register_detector,
)

__all__ = [
    "DETECTORS",
    "DifferentialDetector",
    "NotFittedError",
    "SingleImageDetector",
    "create_detector",
    "load_detector",
    "register_detector",
]
