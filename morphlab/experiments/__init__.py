"""Reproducible experiments: one YAML file → attack sets, MAP, detector cross-evaluation, report.

``morphlab run experiments/NAME.yaml`` runs the stages

    dataset → pairs → each generator → each post-processing protocol → MAP → detection

and writes one consolidated report (``report.md`` + ``report.html``) in the output folder.
Every stage is **cached**: its result is stored under ``stages/`` with a key, the sha256
of its configuration and of the keys of the stages it reads (the dataset stage hashes
every image's **content**; the sha256 are cached by path, size and mtime in
``stages/file-hashes.json``, so ``touch``, ``cp -r`` or ``rsync`` without ``-t`` change
no key). A re-run redoes exactly the stages whose key changed — and everything downstream
of them — and a re-run with nothing changed only re-reads the dataset listing and
rewrites the report.

The output folder is never the dataset folder, inside it or around it; it is locked for
the whole run (a second ``morphlab run`` on it stops with the first one's pid); and a
stage that must be redone deletes only what it wrote itself (its manifest, or its
``.morphlab-owned.json``), refusing a folder that holds anything else — see
:mod:`morphlab.experiments.stages`. YAML aliases are refused (they can expand without
bound). ``morphlab run --check`` also builds each generator and detector from its
parameters, so out-of-range values (``alpha: 7``) fail before anything runs.

A **reduced run** (``limit_pairs``, ``MORPHLAB_LIMIT_PAIRS=N`` or ``--limit-pairs N``)
writes its own folder, the full run's with ``-limit<N>`` appended
(``runs/frll_landmark-limit4``); pointed at a folder holding the full run it is refused,
and its report says it is a reduced run. ``morphlab run`` prints one line per stage as it
starts or is found in the cache (``[14/25] map: landmark × digital``,
``[3/25] generate: landmark (cached)``), prefixes each progress bar with its stage, shows
each distinct warning once per run, and ends with a summary line.

Modules: :mod:`~morphlab.experiments.config` (schema, validation, YAML, overrides),
:mod:`~morphlab.experiments.stages` (stage cache and its deletion rule),
:mod:`~morphlab.experiments.runner` (:func:`run_experiment` and the stage bodies),
:mod:`~morphlab.experiments.report` (the consolidated report).

The YAML schema (every key but ``name``, ``dataset`` and ``generators`` has a default;
unknown keys, wrong types and unknown component names are errors that list what is
valid)::

    name: frll_landmark                # file-name safe; default output folder runs/<name>
    description: ""                    # free text, printed in the report
    seed: 0                            # every random choice derives from it
    output_dir: null                   # default runs/<name> (relative to the working dir)
    limit_pairs: null                  # size knob: at most this many pairs (CI), in the folder
                                       # <output_dir>-limit<N>; MORPHLAB_LIMIT_PAIRS overrides it,
                                       # and --limit-pairs overrides both
    jobs: 1                            # worker processes (generation, post-processing);
                                       # not part of any cache key
    dataset:
      loader: frll                     # folder | frll | fei | onot (morphlab.datasets.loaders)
      root: ../../shared/data/frll     # relative paths: relative to the YAML file's folder
      params: {}                       # the loader's keyword parameters
    pairs:
      strategy: same-gender            # random | same-gender | similar (morphlab.datasets.pairs)
      per_subject: 1
      n_pairs: null
      seed: null                       # default: the experiment seed
      options: {}                      # the strategy's keyword options
    generators:                        # one attack set each
      - name: landmark                 # label (file-name safe, unique)
        generator: landmark            # registered generator (default: the label)
        params: {alpha: 0.5}           # the generator's parameters
        image_format: png              # png | jpg
    postprocess:                       # protocols, applied alike to morphs and bona fide images
      - name: icao                     # default: one protocol "digital" with no operator
        ops: ["icao"]                  # morphlab.postprocess specs; [] = as generated
    map:
      enabled: true
      systems: [dlib-resnet, lbph]     # recognition systems (name or name=MODEL_PATH)
      target_fmr: 0.001
      backend: dlib                    # face backend for recognition
      protocols: null                  # post-processing protocols to score (default: all)
    detection:
      enabled: true
      detectors:
        - name: lbp-svm                # label
          detector: lbp-svm            # registered detector (default: the label)
          params: {}
      test_fraction: 0.5               # subject-disjoint split of the identities
      backend: dlib
      protocols: null                  # default: all

String values may use ``${VAR}`` environment variables (e.g. ``weights: ${ARC2FACE_WEIGHTS}``);
they are expanded when the experiment runs, not when the configuration is read, so that
configurations validate anywhere and round-trip unchanged.

What the stages do:

- **dataset**: the loader's :class:`~morphlab.datasets.folder.Dataset` (enrolment images
  are the morph sources, probes the verification images);
- **pairs**: :func:`~morphlab.datasets.pairs.make_pairs` → ``pairs/pairs.csv``;
- **generate/<generator>**: :func:`~morphlab.generators.runner.generate_attack_set`;
- **postprocess/<protocol>/<generator>** and **…/bona-fide**: the protocol's operators
  (:func:`~morphlab.postprocess.postprocess_set`) on the morphs and, identically, on the
  bona fide images: the enrolment images of the subjects in the pairs;
- **map/<protocol>/<generator>**: :func:`~morphlab.mapscore.map_score` of the processed
  morphs against the dataset's (unprocessed) probes;
- **detect/<protocol>/<detector>**: the identities are split subject-disjointly
  (:func:`~morphlab.detect.split_keeping_morphs`); for every attack species (generator
  label / output tag) a detector is trained on the training identities' bona fide images
  and that species' morphs, and tested on the test identities' bona fide images and each
  species' morphs: a matrix of D-EER (rows: trained on, columns: tested on).
"""

from morphlab.experiments.config import (
    LIMIT_ENV,
    ConfigError,
    DatasetConfig,
    DetectionConfig,
    DetectorConfig,
    ExperimentConfig,
    GeneratorConfig,
    MapConfig,
    PairsConfig,
    PostprocessConfig,
    apply_overrides,
    expand,
    load_config,
)
from morphlab.experiments.report import write_report
from morphlab.experiments.runner import ExperimentResult, run_experiment
from morphlab.experiments.stages import StageRun

__all__ = [
    "LIMIT_ENV", "ConfigError", "DatasetConfig", "DetectionConfig", "DetectorConfig",
    "ExperimentConfig", "ExperimentResult", "GeneratorConfig", "MapConfig", "PairsConfig",
    "PostprocessConfig", "StageRun", "apply_overrides", "expand", "load_config",
    "run_experiment", "write_report",
]
