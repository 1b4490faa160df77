"""The Morphing Attack Potential report folder written by ``morphlab map-score``.

:func:`write_map_report` takes the raw comparison scores (:class:`MapScores`) and writes:

``map.json``
    every number and setting: the systems (name, version, score), each system's operating
    point (threshold, policy, target and achieved FMR, FNMR, comparison counts), the MAP
    matrix (proportions and counts) and per-system MinMax-MMPMR, ProdAvg-MMPMR, FMMPMR and
    RMMR — overall and, when the set mixes generators (or output tags), per group — plus
    the counts of morphs used and skipped with the reasons.
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
    the summary embedding the figures and tables.

Scores are similarities (higher = more similar); an attempt is accepted when
``score >= threshold`` (see :mod:`morphlab.metrics.map`).
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
from typing import Any, Optional, Sequence

import numpy as np

from morphlab.io import atomic_write_text
from morphlab.metrics.map import acceptance, fmmpmr, map_matrix, minmax_mmpmr, prodavg_mmpmr, rmmr
from morphlab.metrics.thresholds import OperatingPoint
from morphlab.reports.document import Document, Figure, Heading, Paragraph, Table, save_figure

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
            attempt does not exist (fewer probes, or a probe whose face was not found).
        calibration: per system label: ``{"genuine": [(probe, reference, score)…],
            "impostor": […]}``.
        settings: recorded verbatim in ``map.json`` (inputs, policy, backend, …).
        counts: morphs read / used / skipped and other counts.
        skipped: ``[{"what": …, "reason": …}]`` — every morph or probe left out, and why.
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

    @property
    def labels(self) -> list[str]:
        return [s["label"] for s in self.systems]

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([op.threshold for op in self.operating_points], dtype=np.float64)

    def groups(self) -> list[str]:
        return sorted({m["group"] for m in self.morphs})


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


def compute_metrics(scores: np.ndarray, thresholds: np.ndarray, labels: Sequence[str],
                    fnmrs: Sequence[Optional[float]]) -> dict:
    """MAP and the MMPMR family for one set of morphs (see :mod:`morphlab.metrics.map`).

    Args:
        scores: ``(M, S, A, C)`` similarities, NaN = no attempt.
        thresholds: ``(C,)``; accept when ``score >= threshold``.
        labels: ``C`` system labels.
        fnmrs: per-system FNMR on the calibration genuine comparisons (None = unknown),
            for RMMR.

    Returns:
        ``{"n_morphs", "map": {"values", "counts", "rows", "columns"}, "per_system": {…}}``.
    """
    accept, valid = acceptance(scores, thresholds)
    mp, counts = map_matrix(accept, valid, return_counts=True)
    mm, pa, fm = minmax_mmpmr(accept, valid), prodavg_mmpmr(accept, valid), fmmpmr(accept, valid)
    per_system = {}
    for c, label in enumerate(labels):
        f = fnmrs[c]
        per_system[label] = {
            "minmax_mmpmr": _num(mm[c]),
            "prodavg_mmpmr": _num(pa[c]),
            "fmmpmr": _num(fm[c]),
            "rmmr": _num(rmmr(mm[c], f)) if f is not None else None,
        }
    return {
        "n_morphs": int(scores.shape[0]),
        "map": {
            "values": [[_num(v) for v in row] for row in mp],
            "counts": [[int(v) for v in row] for row in counts],
            "rows": "r = 1..R: at least r verification attempts of each subject accepted",
            "columns": "c = 1..C: by at least c of the systems " + ", ".join(labels)
                       + " (the column index is a count, not a system)",
        },
        "per_system": per_system,
    }


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


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def write_map_report(data: MapScores, out_dir: str | Path, *, title: str = "Morphing Attack Potential"
                     ) -> dict:
    """Write the report folder (see the module docstring) and return the ``map.json`` dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, thr = data.labels, data.thresholds
    fnmrs = [op.fnmr for op in data.operating_points]
    overall = compute_metrics(data.scores, thr, labels, fnmrs)
    groups = data.groups()
    per_group = {}
    if len(groups) > 1:
        for g in groups:
            idx = [i for i, m in enumerate(data.morphs) if m["group"] == g]
            per_group[g] = compute_metrics(data.scores[idx], thr, labels, fnmrs)

    # raw scores
    _write_csv(out / "scores.csv",
               ("morph", "group", "pair_id", "subject", "subject_id", "attempt", "probe",
                "system", "score"), _score_rows(data))
    cal_rows = [(label, kind, p, r, repr(float(v)))
                for label in labels for kind in ("genuine", "impostor")
                for p, r, v in data.calibration.get(label, {}).get(kind, [])]
    _write_csv(out / "calibration.csv", ("system", "kind", "probe", "reference", "score"), cal_rows)

    # figures
    figures = {"map": "map.png"}
    save_figure(plot_map(np.array(overall["map"]["values"], dtype=float),
                         "MAP, all morphs", overall["n_morphs"]), out / "map.png")
    for g, res in per_group.items():
        name = f"map_{_safe(g)}.png"
        figures[f"map:{g}"] = name
        save_figure(plot_map(np.array(res["map"]["values"], dtype=float), f"MAP, {g}",
                             res["n_morphs"]), out / name)
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
        "format_version": 1,
        "score_direction": "similarity, higher = more similar; accepted when score >= threshold",
        "settings": data.settings,
        "systems": [
            {**s, "operating_point": {k: _num(v) for k, v in op.as_dict().items()}}
            for s, op in zip(data.systems, data.operating_points)
        ],
        "counts": data.counts,
        "skipped": data.skipped,
        "overall": overall,
        "per_group": per_group,
        "files": {"scores": "scores.csv", "calibration": "calibration.csv",
                  "figures": figures, "report": ["report.md", "report.html"]},
    }
    atomic_write_text(out / "map.json", json.dumps(doc_json, indent=2, sort_keys=False) + "\n")
    _document(data, overall, per_group, figures, title).write(out)
    return doc_json


def _document(data: MapScores, overall: dict, per_group: dict, figures: dict, title: str
              ) -> Document:
    labels = data.labels
    doc = Document(title)
    c = data.counts
    doc.add(Paragraph(
        f"{overall['n_morphs']} morphs scored against the probe images of both contributing "
        f"subjects (subject A, subject B) with {len(labels)} face recognition system(s): "
        f"{', '.join(labels)}. Morphs read: {c.get('morphs_read', '?')}; skipped: "
        f"{c.get('morphs_skipped', 0)} (see map.json). MAP[r, c] is the proportion of morphs "
        "that at least c systems accept in at least r verification attempts of each subject "
        "(Ferrara et al., IWBF 2022)."
    ))
    doc.add(Heading("Thresholds"))
    rows = []
    for label, op in zip(labels, data.operating_points):
        policy = (f"FMR {op.target_fmr:g}" if op.policy == "fmr" else op.policy)
        rows.append((label, policy, op.threshold, _pct(op.fmr), _pct(op.fnmr), op.n_genuine,
                     op.n_impostor, "too few impostors" if op.too_few_impostors else ""))
    doc.add(Table(("system", "policy", "threshold", "FMR", "FNMR", "genuine", "impostor", "note"),
                  rows, caption="Operating points on the bona fide calibration comparisons"))
    doc.add(Heading("Morphing Attack Potential"))
    doc.add(Figure(figures["map"], "MAP of all morphs (rows: attempts, columns: systems)"))
    doc.add(_map_table(overall, "MAP, all morphs"))
    doc.add(_rates_table(overall, labels, "Per system, all morphs"))
    if per_group:
        doc.add(Heading("Per generator"))
        rows = []
        for g, res in per_group.items():
            mp = res["map"]["values"]
            for label in labels:
                ps = res["per_system"][label]
                rows.append((g, res["n_morphs"], label, _pct(ps["minmax_mmpmr"]),
                             _pct(ps["prodavg_mmpmr"]), _pct(ps["fmmpmr"]),
                             _pct(mp[0][0]), _pct(mp[0][-1])))
        doc.add(Table(("group", "morphs", "system", "MinMax-MMPMR", "ProdAvg-MMPMR", "FMMPMR",
                       "MAP[1,1]", f"MAP[1,{len(labels)}]"), rows))
        for g in per_group:
            doc.add(Figure(figures[f"map:{g}"], f"MAP, {g}"))
    doc.add(Heading("Score distributions"))
    for label in labels:
        doc.add(Figure(figures[f"scores:{label}"],
                       f"{label}: bona fide genuine/impostor and morph-vs-contributor similarities"))
    doc.add(Paragraph(
        "Metrics: MinMax-MMPMR and ProdAvg-MMPMR (Scherhag et al., BIOSIG 2017), FMMPMR "
        "(Venkatesh et al., IWBF 2020; attempt p pairs the p-th probe of each subject), RMMR = "
        "1 + MMPMR - (1 - FNMR) (Scherhag et al. 2017), MAP (Ferrara et al., IWBF 2022). "
        "Raw scores: scores.csv and calibration.csv; every number: map.json."
    ))
    return doc


def _map_table(res: dict, caption: str) -> Table:
    mp = res["map"]["values"]
    C = len(mp[0]) if mp else 0
    rows = [(f"≥ {r + 1} attempt(s)", *(_pct(v) for v in row)) for r, row in enumerate(mp)]
    return Table(("", *(f"≥ {c + 1} system(s)" for c in range(C))), rows, caption=caption)


def _rates_table(res: dict, labels: Sequence[str], caption: str) -> Table:
    rows = []
    for label in labels:
        ps = res["per_system"][label]
        rows.append((label, _pct(ps["minmax_mmpmr"]), _pct(ps["prodavg_mmpmr"]),
                     _pct(ps["fmmpmr"]), _pct(ps["rmmr"])))
    return Table(("system", "MinMax-MMPMR", "ProdAvg-MMPMR", "FMMPMR", "RMMR"), rows,
                 caption=caption)
