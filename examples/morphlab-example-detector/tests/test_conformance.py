"""What every plug-in should run: morphlab's detector conformance kit."""

from morphlab.detectors.testing import check_detector

from morphlab_example_detector import SharpnessDetector


def test_conforms():
    check_detector(SharpnessDetector)
