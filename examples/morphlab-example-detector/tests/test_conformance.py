"""What every plug-in should run: morphlab's detector conformance kit."""

from morphlab.detectors.testing import check_detector

from morphlab_example_detector import SharpnessDetector


def test_conforms():
    check_detector(SharpnessDetector)


def test_cross_validates_with_scikit_learn():
    from sklearn.model_selection import cross_val_score

    from morphlab.detectors.testing import make_synthetic_task

    X, y = make_synthetic_task(n=48)
    aucs = cross_val_score(SharpnessDetector(), X, y, cv=4, scoring="roc_auc", error_score="raise")
    assert aucs.shape == (4,) and (aucs > 0.5).all()
