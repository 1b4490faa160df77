"""``morphlab map-score``: how many systems, in how many attempts, accept a morph as both subjects.

:func:`map_score` reads an attack set (the ``manifest.jsonl`` of ``morphlab generate``),
finds each contributor's **probe images** (bona fide images *not* used to make the
morph, e.g. FRLL's smiling photos; several per subject where the dataset has them),
embeds morphs, probes and calibration images with each face recognition system (through
the embedding cache, so a re-run recomputes nothing), sets each system's threshold and
writes the report folder of :mod:`morphlab.reports.map_report`.

The evaluation protocol:

- **Thresholds** are calibrated at ``target_fmr`` (default 0.1 %) on bona fide
  comparisons that share no image and no subject with the attack evaluation: a
  calibration folder, or by default the *subject-disjoint split* — the images of the
  subjects who contribute to no morph (:mod:`morphlab.mapscore.calibration`). Overlap is
  refused unless explicitly allowed (then warned about in the report). Impostors are
  all pairs of different subjects or only same-gender pairs. Thresholds can be given
  instead (similarity, ``distance:V``, ``published``).
- **Uncertainty**: every rate carries k/n and a Wilson 95 % interval; an optional subject
  bootstrap (:mod:`morphlab.mapscore.bootstrap`) resamples subjects for threshold and
  MAP together.
- **Completeness**: morphs in which a system finds no face are the failure-to-enrol
  (FTE) count; MAP is given conditional (morphs every system embedded) and
  unconditional (FTE morphs count as failed attacks). R, the attempts per subject, and
  every morph or probe left out (``skipped``) are in ``map.json`` and the report; a probe
  one system cannot embed is a rejected attempt for that system only.

- **Speed**: ``counts["embedding"]`` of ``map.json`` (and the summary) gives per system
  the faces embedded (cache misses), those taken from the cache, the seconds and faces/s
  (:func:`~morphlab.mapscore.job.embedding_counts`). Each image is read and its face
  found once for all the systems (:func:`morphlab.recognition.cache.embed_many`), here,
  in ``workers`` processes or on Ray actors (``executor``); this process writes.

Modules: :mod:`~morphlab.mapscore.inputs` (attack set, probes, genders),
:mod:`~morphlab.mapscore.calibration`, :mod:`~morphlab.mapscore.bootstrap`,
:mod:`~morphlab.mapscore.job` (the job).
"""

from morphlab.mapscore.inputs import MapScoreError, find_probes, read_attack_set
from morphlab.mapscore.job import DEFAULT_SYSTEMS, MapScoreResult, map_score

__all__ = ["DEFAULT_SYSTEMS", "MapScoreError", "MapScoreResult", "find_probes", "map_score",
           "read_attack_set"]
