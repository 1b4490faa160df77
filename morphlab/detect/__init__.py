"""Train, score and evaluate morphing attack detectors on files — the library behind
``morphlab detect``.

Data come as *presentations* (:class:`Presentation`): a suspected image, its label
(bona fide or morph), the identities involved (the bona fide subject, or the morph's
subject A and subject B), its attack species (``"GENERATOR/VARIANT"``, e.g.
``"landmark/complete"``) and, for differential detectors, a trusted live probe.

* Bona fide images come from folders or list files (one path per line); the subject of
  each file is read from its name with the pattern of :mod:`morphlab.datasets.folder`
  (default: the part before the first ``_`` or ``-``, e.g. ``002_03.jpg`` → ``002``).
* Attacks come from attack-set manifests (:func:`morphlab.generators.runner.load_manifest`);
  each morph's sha256 is checked against its manifest line; pairs whose generation failed
  are counted, not used.
* D-MAD: a bona fide presentation is paired with a live image of the same subject (another
  file); a morph with a live image of each contributor (``contributors="both"``), as
  either could present the document.

The presentation-building half lives in :mod:`morphlab.detectors.presentations` and is
re-exported here. Every image goes through :func:`morphlab.detectors.preprocess.align_faces`;
unreadable images and images with no detectable face are counted and reported apart,
never silently dropped.

**Aligned crops are cached** (:mod:`morphlab.detectors.crop_cache`) by image content and
every alignment setting, so a second train/eval/calibrate/score run on the same photos
reads its crops back instead of decoding and aligning each photo again (``use_cache=False``:
neither the landmark nor the crop cache is read or written); the images the cache does not
hold are aligned in ``jobs`` worker processes, with the same crops as ``jobs=1``.

**Output folders** (model folders, report folders) follow :mod:`morphlab.outdir`: they
must not be, contain or lie inside an input folder; they are locked while written; a
previous result is replaced only with ``overwrite=True``, and then only the files morphlab
recorded writing (``.morphlab-owned.json``) are removed — a user's own file is never
replaced or deleted.

**Subject-disjoint evaluation**: the identities seen in training are stored in the model
folder; :func:`evaluate_detector` refuses a test set sharing any of them unless
``allow_overlap=True``, and the report states the overlap either way.

**Thresholds that transfer**: a freshly trained model decides at the D-EER point of its own
training scores, which on new faces can flag many bona fide photos.
:func:`calibrate_detector` (``morphlab detect calibrate``) sets it on held-out data —
identities the model was not trained on — at a named operating point (BPCER 10 % by
default, or an APCER); ``detector.json`` records where the threshold came from
(``metadata["threshold"]``) and ``detect score`` / ``detect eval`` state it
(:func:`threshold_origin`).
"""

from morphlab.detect.calibrate import (
    DEFAULT_BPCER,
    calibrate_detector,
    calibration_threshold,
)
from morphlab.detect.demo import quick_detector_demo
from morphlab.detect.evaluate import check_subject_overlap, evaluate_detector
from morphlab.detect.inputs import Inputs, prepare_inputs
from morphlab.detect.outputs import (
    MODEL_FILES,
    REPORT_FILES,
    PathLike,
    commit_outputs,
    output_folder,
    rows_to_csv,
)
from morphlab.detect.score import score_files
from morphlab.detect.thresholds import CALIBRATED, TRAINING_DEER, threshold_origin
from morphlab.detect.train import train_detector
from morphlab.detectors.presentations import (
    BONA_FIDE_SPECIES,
    Contributors,
    Presentation,
    PresentationSet,
    attack_presentations,
    bona_fide_presentations,
    build_presentations,
    expand_images,
    list_images,
    species_of,
    split_keeping_morphs,
    split_subjects,
    with_live_probes,
)

__all__ = [
    "BONA_FIDE_SPECIES",
    "CALIBRATED",
    "DEFAULT_BPCER",
    "MODEL_FILES",
    "REPORT_FILES",
    "TRAINING_DEER",
    "Contributors",
    "Inputs",
    "PathLike",
    "Presentation",
    "PresentationSet",
    "attack_presentations",
    "bona_fide_presentations",
    "build_presentations",
    "calibrate_detector",
    "calibration_threshold",
    "check_subject_overlap",
    "commit_outputs",
    "evaluate_detector",
    "expand_images",
    "list_images",
    "output_folder",
    "prepare_inputs",
    "quick_detector_demo",
    "rows_to_csv",
    "score_files",
    "species_of",
    "split_keeping_morphs",
    "split_subjects",
    "threshold_origin",
    "train_detector",
    "with_live_probes",
]
