"""The Morphing Attack Potential report folder written by ``morphlab map-score``.

:func:`write_map_report` takes the raw comparison scores (:class:`MapScores`) and writes:

``map.json``
    every number and setting: the systems (name, version, score), each system's operating
    point (threshold, policy, target and achieved FMR, FNMR, comparison counts, each rate
    with ``k``/``n`` and a Wilson 95 % interval; the rule-of-30 note), the MAP matrix
    (proportions, counts and a Wilson interval per cell) and per-system MinMax-MMPMR,
    ProdAvg-MMPMR, FMMPMR and RMMR — **conditional** (the morphs every system could
    embed) and **unconditional** (every morph; one in which a system finds no face counts
    as a failed attack for that system), with the failure-to-enrol (FTE) count and rate —
    overall and, when the set mixes generators (or output tags), per group; ``R`` and the
    distribution of attempts per subject; the subject bootstrap's percentile intervals
    when one was run; and every morph or probe left out, with the reason (``skipped``).
``scores.csv``
    one row per morph-vs-probe comparison: ``morph, group, pair_id, subject (a/b),
    subject_id, attempt, probe, system, score`` — MAP can be recomputed from it and the
    thresholds in ``map.json``.
``calibration.csv``
    the bona fide comparisons the thresholds come from: ``system, kind (genuine/impostor),
    probe, reference, score``.
``map.png`` (+ ``map_<group>.png``)
    the MAP heatmap(s).
``scores_<system>.png``
    per system: histograms of genuine, impostor and morph-vs-contributor similarities,
    with the threshold marked.
``report.md``, ``report.html``
    the summary embedding the figures and tables (ids escaped in both). It opens with
    the inputs: the attack set and its post-processing protocol (from the set's
    manifest chain), the probe and calibration folders and the systems, every path
    relative to the report folder; no absolute path appears in either file.

``map.json`` names the inputs twice: ``inputs`` (paths relative to the report folder,
plus the manifest's sha256 and the protocol) and ``settings`` (the command's settings,
every path in them relative to the report folder too, so that two labs' results compare).

Scores are similarities (higher = more similar); an attempt is accepted when
``score >= threshold`` (see :mod:`morphlab.metrics.map`). An attempt exists when the
subject has that many probe images (``MapScores.attempts``); an existing attempt whose
score is NaN (the probe or the morph could not be embedded by that system) counts as a
rejected attempt for that system only, so one failed probe never shrinks ``R`` for the
other systems or morphs.

The folder is written under :func:`morphlab.outdir.locked_folder`; files morphlab did
not write are never replaced, and a previous result only with ``overwrite``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from morphlab.io import atomic_write_text
from morphlab.metrics.intervals import rate, wilson_interval
from morphlab.metrics.map import (
    fmmpmr,
    map_matrix,
    map_rates,
    minmax_mmpmr,
    prodavg_mmpmr,
    rmmr,
)
from morphlab.metrics.thresholds import OperatingPoint
from morphlab.reports.document import (
    Document,
    Figure,
    Heading,
    Paragraph,
    Table,
    save_figure,
)
from morphlab.reports.provenance import (
    attack_set_facts,
    attack_set_rows,
    rel,
    relative_paths,
)

log = logging.getLogger(__name__)

SUBJECT_ROLES = ("a", "b")


@dataclass
class MapScores:
    """Everything the report is computed from.

    Attributes:
        systems: one dict per system (``RecognitionSystem.describe()`` plus ``"label"``).
        operating_points: one :class:`OperatingPoint` per system, same order.
        morphs: one dict per morph: ``file``, ``group`` (generator or generator/tag),
            ``pair_id``, ``subject_ids`` (list, one per subject).
        probes: ``probes[m][s]`` = probe file names of subject ``s`` of morph ``m``
            (attempt order).
        scores: ``(M, S, A, C)`` float64 similarities of morph vs probe, NaN where the
            attempt does not exist or could not be scored.
        calibration: per system label: ``{"genuine": [(probe, reference, score)…],
            "impostor": […]}``.
        settings: recorded verbatim in ``map.json`` (inputs, policy, backend, …);
            ``settings["calibration"]`` may be a dict with ``impostors`` and ``subjects``.
        counts: morphs read / used / skipped and other counts.
        skipped: ``[{"what": …, "reason": …}]`` — every morph or probe left out, and why.
        attempts: ``(M, S)`` int, the attempts that exist (the first ``attempts[m, s]``
            slots); default: the slots where any system has a score.
        embedded: ``(M, C)`` bool, the morph could be embedded by the system (default
            all); the conditional MAP uses the morphs every system embedded.
        bootstrap: the subject bootstrap's result (:mod:`morphlab.mapscore.bootstrap`).
        warnings: loud notes shown at the top of the report (e.g. calibration overlap).
    """

    systems: list[dict]
    operating_points: list[OperatingPoint]
    morphs: list[dict]
    probes: list[list[list[str]]]
    scores: np.ndarray
    calibration: dict[str, dict[str, list[tuple[str, str, float]]]]
    settings: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    attempts: Optional[np.ndarray] = None
    embedded: Optional[np.ndarray] = None
    bootstrap: Optional[dict] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [s["label"] for s in self.systems]

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([op.threshold for op in self.operating_points], dtype=np.float64)

    def groups(self) -> list[str]:
        return sorted({m["group"] for m in self.morphs})

    def valid(self) -> np.ndarray:
        """``(M, S, A, C)`` bool: the attempts that exist."""
        A = self.scores.shape[2]
        if self.attempts is None:
            exists = ~np.isnan(self.scores).all(axis=3)  # (M, S, A)
        else:
            exists = np.arange(A)[None, None, :] < np.asarray(self.attempts)[:, :, None]
        return np.broadcast_to(exists[..., None], self.scores.shape)

    def embedded_mask(self) -> np.ndarray:
        M, C = self.scores.shape[0], self.scores.shape[3]
        return np.ones((M, C), bool) if self.embedded is None else np.asarray(self.embedded, bool)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _num(x: Any) -> Any:
    """JSON-safe numbers: numpy scalars to Python, non-finite floats to None."""
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _mean_rate(total: float, n: int) -> dict:
    """A mean of per-morph values in [0, 1] with a Wilson interval on ``k = sum`` (not an
    integer count: the interval treats the mean as a proportion of ``n``)."""
    lo, hi = wilson_interval(min(max(total, 0.0), n), n) if n else (math.nan, math.nan)
    return {"k": _num(total), "n": int(n), "rate": _num(total / n) if n else None,
            "ci95": [_num(lo), _num(hi)], "ci_method": "wilson (k = sum of per-morph values)"}


def compute_metrics(scores: np.ndarray, valid: np.ndarray, thresholds: np.ndarray,
                    labels: Sequence[str], fnmrs: Sequence[Optional[float]]) -> dict:
    """MAP and the MMPMR family for one set of morphs, each rate with k/n and a 95 % interval.

    Args:
        scores: ``(M, S, A, C)`` similarities; NaN = not scored.
        valid: ``(M, S, A, C)`` bool, the attempts that exist (a NaN score of an existing
            attempt is a rejected attempt).
        thresholds: ``(C,)``; accept when ``score >= threshold``.
        labels: ``C`` system labels.
        fnmrs: per-system FNMR on the calibration genuine comparisons (None = unknown),
            for RMMR.

    Returns:
        ``{"n_morphs", "R", "map": {"values", "counts", "rates", "rows", "columns"},
        "per_system": {label: {"minmax_mmpmr", …, "intervals": {…}}}}``.
    """
    with np.errstate(invalid="ignore"):
        accept = valid & (np.asarray(scores, np.float64) >= np.asarray(thresholds)[None, None, None, :])
    M = int(scores.shape[0])
    mp, counts = map_matrix(accept, valid, return_counts=True)
    rates = map_rates(accept, valid)  # MAP cells and MinMax-MMPMR: k/n, Wilson 95 %
    mm, pa, fm = minmax_mmpmr(accept, valid), prodavg_mmpmr(accept, valid), fmmpmr(accept, valid)
    n_paired = valid.sum(axis=2).min(axis=1).sum(axis=0)  # (C,) FMMPMR's denominators
    per_system = {}
    for c, label in enumerate(labels):
        f = fnmrs[c]
        per_system[label] = {
            "minmax_mmpmr": _num(mm[c]),
            "prodavg_mmpmr": _num(pa[c]),
            "fmmpmr": _num(fm[c]),
            "rmmr": _num(rmmr(mm[c], f)) if f is not None else None,
            "intervals": {
                "minmax_mmpmr": rates.minmax_mmpmr[c].to_dict(),
                "prodavg_mmpmr": _mean_rate(float(pa[c]) * M, M),
                "fmmpmr": rate(round(fm[c] * n_paired[c]), int(n_paired[c])).to_dict(),
            },
        }
    return {
        "n_morphs": M,
        "R": int(mp.shape[0]),
        "map": {
            "values": [[_num(v) for v in row] for row in mp],
            "counts": [[int(v) for v in row] for row in counts],
            "rates": [[r.to_dict() for r in row] for row in rates.map],
            "rows": "r = 1..R: at least r verification attempts of each subject accepted",
            "columns": "c = 1..C: by at least c of the systems " + ", ".join(labels)
                       + " (the column index is a count, not a system)",
        },
        "per_system": per_system,
    }


def _metrics_both(data: "MapScores", idx: np.ndarray, fnmrs) -> dict:
    """Conditional metrics of the morphs ``idx`` plus their FTE and unconditional MAP."""
    labels, thr = data.labels, data.thresholds
    valid = data.valid()[idx]
    scores = data.scores[idx]
    emb = data.embedded_mask()[idx]
    cond = emb.all(axis=1)
    fte_any = ~cond
    if cond.any():
        res = compute_metrics(scores[cond], valid[cond], thr, labels, fnmrs)
    else:
        res = {"n_morphs": 0, "R": 0, "map": None, "per_system": {}}
    res["conditional"] = "morphs every system could embed (a face found)"
    res["fte"] = {
        "description": "failure to enrol: morphs in which a system finds no face",
        "any_system": rate(int(fte_any.sum()), int(idx.size)).to_dict(),
        "per_system": {lab: rate(int((~emb[:, c]).sum()), int(idx.size)).to_dict()
                       for c, lab in enumerate(labels)},
    }
    unc = compute_metrics(scores, valid, thr, labels, fnmrs)
    unc["description"] = ("every morph; a morph a system could not embed counts as a failed "
                          "attack for that system")
    res["unconditional"] = unc
    return res


def _attempts(data: "MapScores") -> dict:
    valid = data.valid()[..., 0]  # (M, S, A)
    per_slot = valid.sum(axis=2)  # (M, S)
    by_subject: dict[str, int] = {}
    for m, morph in enumerate(data.morphs):
        for s, sid in enumerate(morph["subject_ids"]):
            by_subject[str(sid)] = max(by_subject.get(str(sid), 0), int(per_slot[m, s]))
    hist: dict[str, int] = {}
    for v in by_subject.values():
        hist[str(v)] = hist.get(str(v), 0) + 1
    return {"R": int(per_slot.min()) if per_slot.size else 0,
            "max": int(per_slot.max()) if per_slot.size else 0,
            "subjects_by_attempts": dict(sorted(hist.items(), key=lambda kv: int(kv[0]))),
            "truncated_to": data.settings.get("attempts")}


def _operating(data: "MapScores") -> list[dict]:
    """Each system's operating point: FMR/FNMR as k/n + Wilson intervals, the FMR label
    ("FMR ≤ 1/N" when no impostor is accepted) and the rule-of-30 note."""
    out = []
    for op in data.operating_points:
        d = {k: (_num(v) if not isinstance(v, dict) else v) for k, v in op.as_dict().items()}
        for key in ("fmr_rate", "fnmr_rate"):
            if d.get(key) is None:
                d[key] = rate(0, 0).to_dict()
        d["fmr_label"] = f"FMR {op.fmr_label}" if op.fmr_label else "FMR unknown (no impostors)"
        need = op.min_impostors
        if need:
            n_subj = op.impostor_subjects
            d["rule_of_30"] = {
                "needed": need, "impostor_comparisons": op.n_impostor,
                "independent_subjects": n_subj, "met": bool(op.n_impostor >= need),
                "note": "" if op.n_impostor >= need else
                (f"only {op.n_impostor} impostor comparisons"
                 + (f" from {n_subj} independent subjects" if n_subj is not None else "")
                 + f"; the rule of 30 asks for {need} (30 / FMR {op.target_fmr:g}): the "
                 "threshold is not reliable at this FMR"),
            }
        out.append(d)
    return out


# ----------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------
def plot_map(mp: np.ndarray, title: str, n_morphs: int):
    """Heatmap of a MAP matrix (rows: attempts, columns: number of systems)."""
    from matplotlib.figure import Figure as MplFigure

    R, C = mp.shape
    fig = MplFigure(figsize=(1.4 + 1.1 * C, 1.2 + 0.55 * R))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(mp, vmin=0, vmax=1, cmap="Reds", aspect="auto")
    for r in range(R):
        for c in range(C):
            v = mp[r, c]
            ax.text(c, r, f"{100 * v:.1f}%", ha="center", va="center",
                    color="white" if v > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(C), [f"≥{c + 1}" for c in range(C)])
    ax.set_yticks(range(R), [f"≥{r + 1}" for r in range(R)])
    ax.set_xlabel("face recognition systems accepting")
    ax.set_ylabel("attempts accepted (each subject)")
    ax.set_title(f"{title} (n = {n_morphs} morphs)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.05, label="MAP")
    return fig


def plot_score_histograms(label: str, genuine: np.ndarray, impostor: np.ndarray,
                          morph: np.ndarray, op: OperatingPoint):
    """Genuine / impostor / morph-vs-contributor similarity histograms with the threshold."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(7, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    finite = [a[np.isfinite(a)] for a in (genuine, impostor, morph)]
    allv = np.concatenate([a for a in finite if a.size] or [np.zeros(1)])
    lo, hi = float(allv.min()), float(allv.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 51)
    styles = (("genuine (bona fide)", "tab:green"), ("impostor (bona fide)", "tab:gray"),
              ("morph vs contributor", "tab:red"))
    for a, (name, colour) in zip(finite, styles):
        if a.size:
            ax.hist(a, bins=bins, density=True, alpha=0.45, color=colour,
                    label=f"{name} (n = {a.size})")
    if math.isfinite(op.threshold):
        ax.axvline(op.threshold, color="black", ls="--", lw=1.2,
                   label=f"threshold {op.threshold:.4g}")
    ax.set_xlabel("similarity (higher = more similar)")
    ax.set_ylabel("density")
    ax.set_title(label, fontsize=10)
    ax.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------
# the folder
# ----------------------------------------------------------------------------------------
def _write_csv(path: Path, header: Sequence[str], rows) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _score_rows(data: MapScores):
    M, S, A, C = data.scores.shape
    for m, morph in enumerate(data.morphs):
        for s in range(S):
            for a, probe in enumerate(data.probes[m][s]):
                for c, label in enumerate(data.labels):
                    v = data.scores[m, s, a, c]
                    if np.isfinite(v):
                        yield (morph["file"], morph["group"], morph.get("pair_id", ""),
                               SUBJECT_ROLES[s] if s < 2 else str(s), morph["subject_ids"][s],
                               a + 1, probe, label, repr(float(v)))


def report_files(data: MapScores) -> list[str]:
    """The files :func:`write_map_report` writes for ``data`` (relative names)."""
    groups = data.groups()
    return (["map.json", "scores.csv", "calibration.csv", "map.png", "report.md", "report.html"]
            + ([f"map_{_safe(g)}.png" for g in groups] if len(groups) > 1 else [])
            + [f"scores_{_safe(lab)}.png" for lab in data.labels])


def write_map_report(data: MapScores, out_dir: str | Path, *, title: str = "Morphing Attack Potential",
                     overwrite: bool = False) -> dict:
    """Write the report folder (see the module docstring) and return the ``map.json`` dict.

    Holds the folder's lock while writing; refuses to replace files morphlab did not
    write (:class:`~morphlab.outdir.ForeignFileError`) and a previous result without
    ``overwrite`` (:class:`~morphlab.outdir.OutputExistsError`); with ``overwrite`` it
    first removes what morphlab wrote there before, and only that.
    """
    from morphlab.outdir import (
        check_outputs,
        locked_folder,
        owned_files,
        record_owned,
        remove_owned,
    )

    out = Path(out_dir)
    files = report_files(data)
    with locked_folder(out):
        check_outputs(out, sorted(set(files) | set(owned_files(out))), overwrite=overwrite)
        if overwrite:
            remove_owned(out)
        try:
            return _write(data, out, title)
        finally:
            record_owned(out, [f for f in files if (out / f).is_file()])


def _write(data: MapScores, out: Path, title: str) -> dict:
    labels = data.labels
    ops = _operating(data)
    fnmrs = [op.fnmr for op in data.operating_points]
    every = np.arange(len(data.morphs))
    overall = _metrics_both(data, every, fnmrs)
    overall["attempts"] = _attempts(data)
    groups = data.groups()
    per_group = {}
    if len(groups) > 1:
        for g in groups:
            idx = np.array([i for i, m in enumerate(data.morphs) if m["group"] == g])
            per_group[g] = _metrics_both(data, idx, fnmrs)

    _write_csv(out / "scores.csv",
               ("morph", "group", "pair_id", "subject", "subject_id", "attempt", "probe",
                "system", "score"), _score_rows(data))
    cal_rows = [(label, kind, p, r, repr(float(v)))
                for label in labels for kind in ("genuine", "impostor")
                for p, r, v in data.calibration.get(label, {}).get(kind, [])]
    _write_csv(out / "calibration.csv", ("system", "kind", "probe", "reference", "score"), cal_rows)

    figures = {"map": "map.png"}
    save_figure(plot_map(_matrix(overall), "MAP, all morphs", overall["n_morphs"]), out / "map.png")
    for g, res in per_group.items():
        name = f"map_{_safe(g)}.png"
        figures[f"map:{g}"] = name
        save_figure(plot_map(_matrix(res), f"MAP, {g}", res["n_morphs"]), out / name)
    for c, (label, op) in enumerate(zip(labels, data.operating_points)):
        cal = data.calibration.get(label, {})
        gen = np.array([v for _, _, v in cal.get("genuine", [])], dtype=float)
        imp = np.array([v for _, _, v in cal.get("impostor", [])], dtype=float)
        morph = data.scores[..., c].ravel()
        name = f"scores_{_safe(label)}.png"
        figures[f"scores:{label}"] = name
        save_figure(plot_score_histograms(label, gen, imp, morph[np.isfinite(morph)], op),
                    out / name)

    doc_json = {
        "format": "morphlab-map",
        "format_version": 2,
        "inputs": report_inputs(data, out),
        "score_direction": "similarity, higher = more similar; accepted when score >= threshold",
        "intervals": "every rate: k/n and a Wilson 95 % interval (ci95); 'bootstrap': subject "
                     "bootstrap percentile intervals when --bootstrap was given",
        "warnings": _relative_settings(list(data.warnings), out),
        "settings": _relative_settings(data.settings, out),
        "systems": [{**_relative_settings(s, out), "operating_point": op}
                    for s, op in zip(data.systems, ops)],
        "counts": data.counts,
        "skipped": data.skipped,
        "overall": overall,
        "per_group": per_group,
        "bootstrap": data.bootstrap,
        "files": {"scores": "scores.csv", "calibration": "calibration.csv",
                  "figures": figures, "report": ["report.md", "report.html"]},
    }
    atomic_write_text(out / "map.json", json.dumps(doc_json, indent=2, sort_keys=False) + "\n")
    def md(t: Any) -> str:
        return _md(relative_paths(t, out))

    def plain(t: Any) -> str:
        return _plain(relative_paths(t, out))

    atomic_write_text(out / "report.md",
                      _document(doc_json, data, figures, title, md).markdown(base=out))
    atomic_write_text(out / "report.html",
                      _document(doc_json, data, figures, title, plain).html(base=out))
    return doc_json


def _relative_settings(value: Any, out: Path) -> Any:
    """``value`` (settings: nested dicts, lists, strings) with every absolute path in its
    strings relative to the report folder ``out``."""
    if isinstance(value, dict):
        return {k: _relative_settings(v, out) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative_settings(v, out) for v in value]
    return relative_paths(value, out) if isinstance(value, str) else value


def report_inputs(data: MapScores, out: Path) -> dict:
    """The inputs of a MAP report, every path relative to the report folder ``out``.

    ``attack_set``: :func:`~morphlab.reports.provenance.attack_set_facts` (path, manifest
    sha256, generators, post-processing protocol); ``probes``, ``calibration``,
    ``scores``, ``frs_info``: folders/files when the settings name them; ``systems``:
    ``"label (name version)"`` per system.
    """
    st = data.settings
    res: dict[str, Any] = {"relative_to": "the report folder"}
    aset = st.get("attack_set")
    if isinstance(aset, str) and Path(aset).exists():
        res["attack_set"] = attack_set_facts(aset, out)
    for key in ("probes", "scores", "frs_info"):
        v = st.get(key)
        if isinstance(v, str) and v and not v.startswith("("):
            res[key] = rel(v, out)
    cal = st.get("calibration")
    if isinstance(cal, dict):
        res["calibration"] = (rel(cal["path"], out) if cal.get("path")
                              else relative_paths(cal.get("description", ""), out))
    elif cal:
        res["calibration"] = relative_paths(cal, out)
    res["systems"] = [
        " ".join(str(x) for x in (s.get("name", s.get("label")), s.get("version")) if x)
        + (f" (as {s['label']})" if s.get("label") not in (None, s.get("name")) else "")
        for s in data.systems]
    return res


def _input_rows(inputs: dict) -> list[list[str]]:
    rows = attack_set_rows(inputs["attack_set"]) if "attack_set" in inputs else []
    for key, name in (("probes", "probe folder"), ("calibration", "calibration images"),
                      ("scores", "score files"), ("frs_info", "frs-info file")):
        if key in inputs:
            rows.append([name, inputs[key]])
    rows.append(["face recognition systems", ", ".join(inputs["systems"])])
    return rows


def _matrix(res: dict) -> np.ndarray:
    m = res["map"]
    return np.array(m["values"], dtype=float) if m else np.zeros((1, 1))


# ----------------------------------------------------------------------------------------
# the document (Markdown and HTML built alike; ids escaped for each)
# ----------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def _plain(text: Any) -> str:
    """An id shown as is, control characters (NUL, newlines) as visible escapes."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(text))


def _md(text: Any) -> str:
    """An id for Markdown: control characters escaped, Markdown syntax backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _plain(text))


def format_rate(d: Optional[dict]) -> str:
    """``"41.7 % [19.3, 68.0] (5/12)"`` from a Rate dict."""
    if not d or not d.get("n"):
        return "n/a (0/0)"
    lo, hi = d["ci95"]
    k = d["k"]
    ks = f"{k:g}" if isinstance(k, float) else str(k)
    return f"{100 * d['rate']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] ({ks}/{d['n']})"


def _ci(iv: Optional[Sequence]) -> str:
    if not iv or iv[0] is None:
        return "–"
    return f"[{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]"


def _document(doc: dict, data: MapScores, figures: dict, title: str,
              esc: Callable[[Any], str]) -> Document:
    labels = data.labels
    L = [esc(x) for x in labels]
    overall, per_group, boot = doc["overall"], doc["per_group"], doc["bootstrap"]
    out = Document(title)
    for w in doc["warnings"]:
        out.add(Paragraph(f"WARNING: {esc(w)}"))
    out.add(Table(("input", "value"), [[esc(a), esc(b)] for a, b in _input_rows(doc["inputs"])],
                  caption="Inputs (paths relative to this report)"))
    c = data.counts
    cal = data.settings.get("calibration")
    cal_desc = cal.get("description", "") if isinstance(cal, dict) else str(cal or "")
    att = overall["attempts"]
    out.add(Paragraph(
        f"{len(data.morphs)} morphs scored against the probe images of both contributing "
        f"subjects (subject A, subject B) with {len(labels)} face recognition system(s): "
        f"{', '.join(L)}. Morphs read: {c.get('morphs_read', '?')}; left out: "
        f"{c.get('morphs_skipped', 0)}; failure to enrol (no face, any system): "
        f"{format_rate(overall['fte']['any_system'])}. MAP[r, c] is the proportion of morphs that at "
        "least c systems accept in at least r verification attempts of each subject "
        "(Ferrara et al., IWBF 2022). Every rate: k/n and a Wilson 95 % interval."
    ))
    out.add(Paragraph(
        f"Attempts: R = {att['R']} (rows of the MAP); subjects by number of attempts: "
        + ", ".join(f"{k}: {v}" for k, v in att["subjects_by_attempts"].items())
        + (f"; truncated to {att['truncated_to']} per subject" if att["truncated_to"] else "")
        + ". A probe a system could not embed is a rejected attempt for that system only."
    ))
    out.add(Heading("Thresholds"))
    if isinstance(cal, dict):
        out.add(Paragraph(
            f"Calibration: {esc(cal_desc)}; {cal.get('subjects', '?')} subjects, "
            f"{cal.get('images', '?')} images; impostors: {esc(cal.get('impostors', 'all'))}"
            + (" (only pairs of two subjects of the same gender)"
               if cal.get("impostors") == "same-gender" else " (every pair of different subjects)")
            + "."))
    rows = []
    for label, op in zip(L, doc["systems"]):
        op = op["operating_point"]
        policy = f"FMR {op['target_fmr']:g}" if op["policy"] == "fmr" else op["policy"]
        note = op.get("rule_of_30", {}).get("note", "")
        fmr_cell = format_rate(op["fmr_rate"]) + (f" = FMR ≤ 1/{op['n_impostor']}"
                                                  if op["n_false_matches"] == 0 else "")
        rows.append((label, policy, op["threshold"], fmr_cell, format_rate(op["fnmr_rate"]),
                     op["n_genuine"], op["n_impostor"], note))
    out.add(Table(("system", "policy", "threshold", "FMR", "FNMR", "genuine", "impostor", "note"),
                  rows, caption="Operating points on the bona fide calibration comparisons"))
    out.add(Heading("Morphing Attack Potential"))
    out.add(Figure(figures["map"], "MAP of all morphs (rows: attempts, columns: systems)"))
    if overall["map"]:
        out.add(_map_table(overall, f"MAP, conditional ({overall['n_morphs']} morphs every system "
                                    "could embed)", boot))
    out.add(_map_table(overall["unconditional"],
                       f"MAP, unconditional ({overall['unconditional']['n_morphs']} morphs; "
                       "no-face morphs count as failed attacks)", None))
    if overall["map"]:
        out.add(_rates_table(overall, labels, L, "Per system, conditional", boot))
    out.add(_rates_table(overall["unconditional"], labels, L, "Per system, unconditional", None))
    if per_group:
        out.add(Heading("Per generator"))
        rows = []
        for g, res in per_group.items():
            for label, shown in zip(labels, L):
                ps = res["per_system"].get(label)
                if ps is None:
                    continue
                iv = ps["intervals"]
                rows.append((esc(g), res["n_morphs"], shown, format_rate(iv["minmax_mmpmr"]),
                             format_rate(iv["prodavg_mmpmr"]), format_rate(iv["fmmpmr"]),
                             format_rate(res["map"]["rates"][0][0]), format_rate(res["map"]["rates"][0][-1]),
                             format_rate(res["fte"]["per_system"][label])))
        out.add(Table(("group", "morphs", "system", "MinMax-MMPMR", "ProdAvg-MMPMR", "FMMPMR",
                       "MAP[1,1]", f"MAP[1,{len(labels)}]", "FTE"), rows))
        for g in per_group:
            out.add(Figure(figures[f"map:{g}"], f"MAP, {esc(g)}"))
    if boot:
        out.add(Paragraph(
            f"Bootstrap: {boot['method']}; {boot['replicates']} replicates "
            f"({boot['replicates_defined']} defined), seed {boot['seed']}. Threshold intervals: "
            + "; ".join(f"{shown} [{_fmt(boot['per_system'][lab]['threshold'])}]"
                        for lab, shown in zip(labels, L)) + "."))
    out.add(Heading("Left out"))
    if data.skipped:
        out.add(Table(("what", "reason"), [(esc(s["what"]), esc(s["reason"])) for s in data.skipped],
                      caption=f"{len(data.skipped)} morphs or probes left out or counted as failed"))
    else:
        out.add(Paragraph("Nothing: every morph and probe was used."))
    out.add(Heading("Score distributions"))
    for label, shown in zip(labels, L):
        out.add(Figure(figures[f"scores:{label}"],
                       f"{shown}: bona fide genuine/impostor and morph-vs-contributor similarities"))
    out.add(Paragraph(
        "Metrics: MinMax-MMPMR and ProdAvg-MMPMR (Scherhag et al., BIOSIG 2017), FMMPMR "
        "(Venkatesh et al., IWBF 2020; attempt p pairs the p-th probe of each subject), RMMR = "
        "1 + MMPMR - (1 - FNMR) (Scherhag et al. 2017), MAP (Ferrara et al., IWBF 2022). "
        "ProdAvg-MMPMR is a mean, not a count: its interval treats it as a proportion of the "
        "morphs. Raw scores: scores.csv and calibration.csv; every number: map.json."
    ))
    return out


def _fmt(iv: Sequence) -> str:
    return ", ".join("–" if v is None else f"{v:.4g}" for v in iv)


def _map_table(res: dict, caption: str, boot: Optional[dict]) -> Table:
    rates = res["map"]["rates"]
    C = len(rates[0]) if rates else 0
    rows = []
    for r, row in enumerate(rates):
        cells = []
        for c, d in enumerate(row):
            cell = format_rate(d)
            if boot and r < len(boot["map"]):
                cell += f" boot {_ci(boot['map'][r][c])}"
            cells.append(cell)
        rows.append((f"≥ {r + 1} attempt(s)", *cells))
    return Table(("", *(f"≥ {c + 1} system(s)" for c in range(C))), rows, caption=caption)


def _rates_table(res: dict, labels: Sequence[str], shown: Sequence[str], caption: str,
                 boot: Optional[dict]) -> Table:
    rows = []
    for label, name in zip(labels, shown):
        ps = res["per_system"][label]
        iv = ps["intervals"]
        mm = format_rate(iv["minmax_mmpmr"])
        if boot:
            mm += f" boot {_ci(boot['per_system'][label]['minmax_mmpmr'])}"
        rows.append((name, mm, format_rate(iv["prodavg_mmpmr"]), format_rate(iv["fmmpmr"]),
                     "–" if ps["rmmr"] is None else f"{100 * ps['rmmr']:.1f} %"))
    return Table(("system", "MinMax-MMPMR", "ProdAvg-MMPMR", "FMMPMR", "RMMR (not a proportion)"),
                 rows, caption=caption)
