"""Verification thresholds of face recognition systems: calibrated at a target FMR, or given.

Conventions used by every function here:

* **Score direction**: scores are *similarities* — higher means more likely the same person.
* **Tie rule**: a comparison is **accepted** (a match) when ``score >= threshold``; a score
  strictly below the threshold is rejected. Hence

  - ``FMR(t)``  = fraction of impostor (different-person) scores ``>= t``;
  - ``FNMR(t)`` = fraction of genuine (same-person) scores ``< t``.

* Scores are 1-D arrays of **finite** floats: NaN or ±inf similarity scores, a NaN/±inf
  threshold, or a target FMR outside the open interval ``(0, 1)`` raise ``ValueError``
  (saying how many scores of which kind). Rates are floats in ``[0, 1]``.

Calibration (:func:`threshold_at_fmr`) picks the **smallest threshold whose FMR does not
exceed the target** on the bona fide impostor comparisons given: with ``N`` impostor
scores, at most ``floor(target * N)`` may be accepted, so the threshold is placed just
above (``numpy.nextafter``) the ``(floor(target * N) + 1)``-th highest impostor score.
Tied impostor scores are never split, so the achieved FMR can be below the target.

**Sample size — the rule of 30** (Doddington et al., "The NIST speaker recognition
evaluation", 2000; ISO/IEC 19795-1): an error rate ``p`` is estimated with ~±30 % relative
error at 90 % confidence only once ~30 errors are observed, i.e. with at least
``30 / target`` impostor comparisons (30,000 for FMR 0.1 %). :func:`calibrate` warns below
that and records ``too_few_impostors`` and ``min_impostors`` in the
:class:`OperatingPoint`, with the number of impostor comparisons and of the independent
subjects they come from (comparisons of the same few subjects are not independent). A
threshold above every impostor score has an achieved FMR of 0 *on this sample only*; its
``fmr_label`` reads ``"≤ 1/N (0 of N accepted)"``.

Every rate of an :class:`OperatingPoint` also comes with its count and a Wilson 95 %
interval (:attr:`OperatingPoint.fmr_rate`, :attr:`OperatingPoint.fnmr_rate`, both in
:meth:`OperatingPoint.as_dict`), from :func:`morphlab.metrics.intervals.rate`. The interval
is that of the error count at a fixed threshold; it does not include the variation of a
threshold calibrated on the same comparisons (a subject bootstrap does).

**Thresholds on a system's native scale.** Every morphlab recognition system scores
similarities; a system whose native score is a distance converts it at its boundary and
declares the conversion as the optional class attribute ``native_score = ("distance", a,
b)``, meaning ``similarity = a + b * distance`` with ``b < 0`` (``dlib-resnet``:
``("distance", 1.0, -1.0)``, similarity = 1 − distance). That attribute lives with the
systems (:mod:`morphlab.recognition`); the functions here take the conversion as an
``(a, b)`` pair or a callable and import nothing from there.
:func:`parse_threshold_spec` reads ``--threshold`` specs (``dlib-resnet=0.4``,
``dlib-resnet=similarity:0.4``, ``dlib-resnet=distance:0.6``, ``dlib-resnet=published``)
and :func:`to_similarity_threshold` converts a distance threshold once:
``distance:0.6`` → similarity 0.4, and accepting ``similarity >= 0.4`` is accepting
``distance <= 0.6`` (the conversion is strictly decreasing, so the tie rule carries over).

**Impostor pairing** (:func:`impostor_mask`): ``"all"`` uses every different-subject
comparison; ``"same-gender"`` only those of two subjects of the same recorded gender, the
demographic pairing of NIST FATE MORPH practice (impostors of other genders are easy and
lower the threshold an attacker faces).

The default target FMR of 0.1% is the operating point recommended by Frontex for
automated border control and used by the MAP papers (Ferrara et al., IWBF 2022).

API summary: :func:`fmr`, :func:`fnmr`, :func:`threshold_at_fmr`, :func:`calibrate`,
:func:`fixed`, :class:`OperatingPoint`, :func:`min_impostors`, :func:`fmr_label`,
:func:`count_subjects`, :class:`ThresholdSpec`, :func:`parse_threshold_spec`,
:func:`to_similarity_threshold`, :func:`impostor_mask`.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from morphlab.metrics.intervals import Rate, rate

log = logging.getLogger(__name__)

#: The operating point of the Frontex best-practice guidelines for ABC systems.
DEFAULT_TARGET_FMR = 1e-3
#: Errors the rule of 30 asks for: at least ``RULE_OF_30 / target_fmr`` impostor comparisons.
RULE_OF_30 = 30
#: Scales a ``--threshold`` value can be given on.
SCALES = ("similarity", "distance")
#: Impostor pairings of :func:`impostor_mask`.
PAIRINGS = ("all", "same-gender")


def _finite_scores(x: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """1-D float64 copy of ``x``; ValueError if empty or any score is NaN/±inf."""
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{what}: no scores given (need at least one)")
    bad = ~np.isfinite(a)
    if bad.any():
        kinds = [(int(np.isnan(a).sum()), "NaN"), (int(np.isposinf(a).sum()), "+inf"),
                 (int(np.isneginf(a).sum()), "-inf")]
        desc = ", ".join(f"{n} {k}" for n, k in kinds if n)
        raise ValueError(f"{what}: {int(bad.sum())} of {a.size} score(s) are not finite "
                         f"({desc}); similarity scores must be finite numbers")
    return a


def _finite_threshold(threshold: float, what: str = "threshold") -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {threshold!r}") from None
    if not math.isfinite(t):
        raise ValueError(f"{what} must be a finite number, got {threshold!r}")
    return t


def _check_target(target_fmr: float) -> float:
    try:
        t = float(target_fmr)
    except (TypeError, ValueError):
        raise ValueError(f"target FMR must be a number, got {target_fmr!r}") from None
    if not (0.0 < t < 1.0):  # also false for NaN
        raise ValueError(f"target FMR must lie strictly between 0 and 1, got {target_fmr!r} "
                         "(e.g. 0.001 for FMR 0.1 %)")
    return t


def fmr(impostor_scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """False match rate: the fraction of impostor similarity scores ``>= threshold``."""
    s = _finite_scores(impostor_scores, "impostor scores")
    t = _finite_threshold(threshold)
    return float(np.count_nonzero(s >= t) / s.size)


def fnmr(genuine_scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """False non-match rate: the fraction of genuine similarity scores ``< threshold``."""
    s = _finite_scores(genuine_scores, "genuine scores")
    t = _finite_threshold(threshold)
    return float(np.count_nonzero(s < t) / s.size)


def threshold_at_fmr(impostor_scores: Sequence[float] | np.ndarray, target_fmr: float) -> float:
    """The smallest threshold with ``FMR <= target_fmr`` on these impostor scores.

    Args:
        impostor_scores: ``(N,)`` finite similarity scores of different-person comparisons.
        target_fmr: in the open interval ``(0, 1)``.

    Returns:
        A threshold ``t`` (accept ``score >= t``) just above the
        ``(floor(target_fmr * N) + 1)``-th highest impostor score (always finite, since
        ``floor(target_fmr * N) < N``).

    Raises:
        ValueError: non-finite scores or a target outside ``(0, 1)``.
    """
    s = _finite_scores(impostor_scores, "impostor scores")
    target = _check_target(target_fmr)
    allowed = math.floor(target * s.size + 1e-9)  # guard 0.001 * 1000 = 0.9999…
    desc = np.sort(s)[::-1]
    return float(np.nextafter(desc[allowed], np.inf))


def min_impostors(target_fmr: float) -> int:
    """Impostor comparisons the rule of 30 asks for at ``target_fmr``: ``ceil(30 / target)``."""
    target = _check_target(target_fmr)
    return int(math.ceil(RULE_OF_30 / target - 1e-9))


def fmr_label(n_false_matches: int, n_impostor: int) -> str:
    """How to print an achieved FMR: ``"≤ 1/380 (0 of 380 accepted)"`` when no impostor is
    accepted (FMR 0 holds only on this sample), else ``"0.263 % (1 of 380 accepted)"``."""
    if n_impostor <= 0:
        return "n/a (no impostor comparisons)"
    if n_false_matches == 0:
        return f"≤ 1/{n_impostor} (0 of {n_impostor} accepted)"
    return (f"{100.0 * n_false_matches / n_impostor:.3g} % "
            f"({n_false_matches} of {n_impostor} accepted)")


def count_subjects(subjects: Optional[int | Iterable[Any]]) -> Optional[int]:
    """Number of distinct subjects: an int is taken as the count; an iterable of subject
    ids, or of ``(id, id)`` comparison pairs, counts the distinct ids; ``None`` → ``None``."""
    if subjects is None:
        return None
    if isinstance(subjects, (int, np.integer)):
        if subjects < 0:
            raise ValueError(f"number of subjects must be >= 0, got {subjects}")
        return int(subjects)
    ids: set = set()
    for s in subjects:
        if isinstance(s, (tuple, list, np.ndarray)):
            ids.update(str(x) for x in s)
        else:
            ids.add(str(s))
    return len(ids)


@dataclass(frozen=True)
class OperatingPoint:
    """A system's threshold and its error rates on the calibration comparisons.

    Attributes:
        threshold: accept when ``similarity >= threshold`` (finite).
        policy: ``"fmr"`` (calibrated at ``target_fmr``), ``"fixed"`` (given) or
            ``"published"`` (its authors' value, set by the caller).
        target_fmr: the target of a calibrated threshold, else ``None``.
        fmr: achieved FMR on the impostor scores (``None`` without impostor scores).
        fnmr: FNMR on the genuine scores (``None`` without genuine scores).
        n_genuine: number of genuine comparisons.
        n_impostor: number of impostor comparisons.
        too_few_impostors: fewer than ``min_impostors`` (rule of 30) impostor comparisons.
        n_false_matches: impostor comparisons accepted (``None`` without impostor scores).
        n_false_non_matches: genuine comparisons rejected (``None`` without genuine scores).
        impostor_subjects: distinct subjects the impostor comparisons come from, when known.
        min_impostors: ``ceil(30 / target_fmr)`` for a calibrated threshold, else ``None``.
        fmr_label: the achieved FMR as a report should print it (see :func:`fmr_label`).
    """

    threshold: float
    policy: str
    target_fmr: Optional[float]
    fmr: Optional[float]
    fnmr: Optional[float]
    n_genuine: int
    n_impostor: int
    too_few_impostors: bool = False
    n_false_matches: Optional[int] = None
    n_false_non_matches: Optional[int] = None
    impostor_subjects: Optional[int] = None
    min_impostors: Optional[int] = None
    fmr_label: Optional[str] = None

    @property
    def fmr_rate(self) -> Optional[Rate]:
        """Achieved FMR with its count and Wilson 95 % interval (``None`` without impostors)."""
        if self.n_false_matches is None:
            return None
        return rate(self.n_false_matches, self.n_impostor)

    @property
    def fnmr_rate(self) -> Optional[Rate]:
        """FNMR with its count and Wilson 95 % interval (``None`` without genuine scores)."""
        if self.n_false_non_matches is None:
            return None
        return rate(self.n_false_non_matches, self.n_genuine)

    def as_dict(self) -> dict:
        """JSON form: the fields, plus ``fmr_rate`` / ``fnmr_rate`` as
        :meth:`Rate.to_dict <morphlab.metrics.intervals.Rate.to_dict>` (or ``None``)."""
        d = asdict(self)
        fr, fn = self.fmr_rate, self.fnmr_rate
        d["fmr_rate"] = fr.to_dict() if fr is not None else None
        d["fnmr_rate"] = fn.to_dict() if fn is not None else None
        return d


def _rates_at(threshold: float, gen: np.ndarray, imp: np.ndarray) -> dict:
    k_imp = int(np.count_nonzero(imp >= threshold)) if imp.size else None
    k_gen = int(np.count_nonzero(gen < threshold)) if gen.size else None
    return {
        "fmr": k_imp / imp.size if imp.size else None,
        "fnmr": k_gen / gen.size if gen.size else None,
        "n_genuine": int(gen.size),
        "n_impostor": int(imp.size),
        "n_false_matches": k_imp,
        "n_false_non_matches": k_gen,
        "fmr_label": fmr_label(k_imp, int(imp.size)) if imp.size else None,
    }


def calibrate(
    genuine_scores: Optional[Sequence[float] | np.ndarray],
    impostor_scores: Sequence[float] | np.ndarray,
    target_fmr: float = DEFAULT_TARGET_FMR,
    *,
    what: str = "system",
    impostor_subjects: Optional[int | Iterable[Any]] = None,
) -> OperatingPoint:
    """Threshold at ``target_fmr`` from bona fide comparisons, with its FMR and FNMR.

    Args:
        genuine_scores: same-person similarity scores (may be ``None`` or empty: FNMR
            is then not reported).
        impostor_scores: different-person similarity scores (required, finite).
        target_fmr: target false match rate in ``(0, 1)``, e.g. ``0.001``.
        what: name used in the messages (the system's name).
        impostor_subjects: the number of distinct subjects the impostor comparisons come
            from, or their ids / ``(id, id)`` pairs (see :func:`count_subjects`).

    Raises:
        ValueError: no impostor scores, non-finite scores, a target outside ``(0, 1)``.

    Warns:
        UserWarning when there are fewer than ``ceil(30 / target_fmr)`` impostor
        comparisons (the rule of 30); the message gives the number of subjects.
    """
    imp = np.asarray(impostor_scores if impostor_scores is not None else [], dtype=np.float64).ravel()
    if imp.size == 0:
        raise ValueError(
            f"{what}: the calibration set has no impostor comparisons (pairs of images of "
            "different subjects); give bona fide images of at least two subjects, or a fixed "
            "threshold"
        )
    try:
        target = _check_target(target_fmr)
        imp = _finite_scores(imp, "impostor scores")
        gen = _optional(genuine_scores, "genuine scores")
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    thr = threshold_at_fmr(imp, target)
    need = min_impostors(target)
    n_subj = count_subjects(impostor_subjects)
    few = imp.size < need
    if few:
        src = f" from {n_subj} subjects" if n_subj is not None else ""
        msg = (f"{what}: only {imp.size} impostor comparisons{src} to calibrate at FMR "
               f"{target:g}; the rule of 30 needs at least {need} (30 / FMR) for a reliable "
               "threshold")
        warnings.warn(msg, UserWarning, stacklevel=2)
    return OperatingPoint(
        threshold=thr, policy="fmr", target_fmr=target, **_rates_at(thr, gen, imp),
        too_few_impostors=bool(few), impostor_subjects=n_subj, min_impostors=need,
    )


def fixed(
    threshold: float,
    genuine_scores: Optional[Sequence[float] | np.ndarray] = None,
    impostor_scores: Optional[Sequence[float] | np.ndarray] = None,
    *,
    impostor_subjects: Optional[int | Iterable[Any]] = None,
) -> OperatingPoint:
    """A given (finite) similarity threshold, with its FMR/FNMR on whatever bona fide scores
    are available (accept ``score >= threshold``).

    Raises:
        ValueError: a NaN/±inf threshold or non-finite scores.
    """
    t = _finite_threshold(threshold, "fixed threshold")
    gen = _optional(genuine_scores, "genuine scores")
    imp = _optional(impostor_scores, "impostor scores")
    return OperatingPoint(threshold=t, policy="fixed", target_fmr=None, **_rates_at(t, gen, imp),
                          impostor_subjects=count_subjects(impostor_subjects))


def _optional(x, what: str = "scores") -> np.ndarray:
    if x is None:
        return np.zeros(0)
    a = np.asarray(x, dtype=np.float64).ravel()
    return _finite_scores(a, what) if a.size else a


# -- thresholds on a system's native scale --------------------------------------------------
@dataclass(frozen=True)
class ThresholdSpec:
    """A parsed ``--threshold SYSTEM=[SCALE:]VALUE`` (or ``SYSTEM=published``).

    Attributes:
        system: the system's name or label.
        scale: ``"similarity"``, ``"distance"`` or ``"published"``.
        value: the threshold on that scale (``None`` for ``"published"``).
    """

    system: str
    scale: str
    value: Optional[float]


def parse_threshold_spec(spec: str) -> ThresholdSpec:
    """Parse ``dlib-resnet=0.4``, ``dlib-resnet=similarity:0.4``, ``dlib-resnet=distance:0.6``
    or ``dlib-resnet=published``.

    Raises:
        ValueError: no ``=``, an unknown scale, a value that is not a finite number.
    """
    name, sep, rest = str(spec).partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not rest:
        raise ValueError(f"threshold {spec!r}: expected SYSTEM=VALUE, SYSTEM=similarity:VALUE, "
                         "SYSTEM=distance:VALUE or SYSTEM=published")
    if rest == "published":
        return ThresholdSpec(name, "published", None)
    scale, colon, num = rest.partition(":")
    if not colon:
        scale, num = "similarity", rest
    scale = scale.strip()
    if scale not in SCALES:
        raise ValueError(f"threshold {spec!r}: unknown scale {scale!r}; use one of "
                         f"{', '.join(SCALES)}")
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"threshold {spec!r}: {num.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"threshold {spec!r}: the value must be a finite number")
    return ThresholdSpec(name, scale, value)


Conversion = Callable[[float], float] | tuple[float, float]


def to_similarity_threshold(value: float, scale: str = "similarity",
                            conversion: Optional[Conversion] = None, *,
                            what: str = "system") -> float:
    """A threshold on the similarity scale from one on the system's native scale.

    Args:
        value: the threshold on ``scale`` (finite).
        scale: ``"similarity"`` (returned unchanged) or ``"distance"``.
        conversion: for ``"distance"``: ``(a, b)`` with ``similarity = a + b * distance``
            and ``b < 0`` (a system's ``native_score[1:]``), or a strictly decreasing
            callable ``distance -> similarity``.
        what: the system's name, for messages.

    Returns:
        ``s`` such that accepting ``similarity >= s`` accepts exactly ``distance <= value``.

    Raises:
        ValueError: a non-finite value, an unknown scale, no or an increasing conversion.
    """
    v = _finite_threshold(value, f"{what}: threshold")
    if scale == "similarity":
        return v
    if scale != "distance":
        raise ValueError(f"{what}: unknown threshold scale {scale!r}; use one of {', '.join(SCALES)}")
    if conversion is None:
        raise ValueError(f"{what}: its scores are similarities with no declared distance "
                         "conversion; give the threshold as a similarity")
    if callable(conversion):
        f = conversion
        step = 1e-6 * max(1.0, abs(v))
        lo, mid, hi = float(f(v - step)), float(f(v)), float(f(v + step))
        if not (lo > mid > hi):
            raise ValueError(f"{what}: the distance-to-similarity conversion is not strictly "
                             f"decreasing near {v:g}")
        out = mid
    else:
        a, b = (float(x) for x in conversion)
        if not b < 0:
            raise ValueError(f"{what}: a distance conversion similarity = a + b * distance "
                             f"needs b < 0, got b = {b:g}")
        out = a + b * v
    if not math.isfinite(out):
        raise ValueError(f"{what}: distance {v:g} converts to a non-finite similarity")
    return float(out)


# -- impostor pairing -----------------------------------------------------------------------
def impostor_mask(subject_a: Sequence[Any], subject_b: Sequence[Any],
                  gender: Optional[Mapping[Any, Any]] = None, pairing: str = "all") -> np.ndarray:
    """Which comparisons are impostor comparisons of the chosen pairing.

    Args:
        subject_a, subject_b: ``(N,)`` subject ids of the two images of each comparison.
        gender: subject id → gender label (any hashable; needed for ``"same-gender"``).
        pairing: ``"all"``: every comparison of two different subjects; ``"same-gender"``:
            only those whose subjects have the same gender (FATE MORPH demographic pairing).

    Returns:
        ``(N,)`` bool: ``True`` for the impostor comparisons to use; comparisons of a
        subject with itself (genuine) are always ``False``.

    Raises:
        ValueError: unequal lengths, an unknown pairing, or (``"same-gender"``) subjects
            with no recorded gender — the message counts and names some of them.
    """
    a = np.asarray([str(x) for x in subject_a], dtype=object)
    b = np.asarray([str(x) for x in subject_b], dtype=object)
    if a.shape != b.shape:
        raise ValueError(f"got {a.size} first and {b.size} second subject ids")
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown impostor pairing {pairing!r}; use one of {', '.join(PAIRINGS)}")
    different = a != b
    if pairing == "all":
        return np.asarray(different, dtype=bool)
    g = {str(k): str(v).strip().lower() for k, v in (gender or {}).items()
         if v is not None and str(v).strip() != ""}
    missing = sorted({s for s in np.concatenate([a[different], b[different]]) if s not in g})
    if missing:
        raise ValueError(
            f"same-gender impostor pairing: {len(missing)} subject(s) have no recorded gender "
            f"(e.g. {', '.join(missing[:5])}); record them or use --impostors all")
    same = np.array([g[x] == g[y] if d else False for x, y, d in zip(a, b, different)],
                    dtype=bool)
    return same
