"""Detector evaluation reports: DET curves on normal-deviate axes, metrics JSON, Markdown/HTML.

A DET curve plots BPCER against APCER, both warped by the standard normal quantile
function (``scipy.stats.norm.ppf``) so that normally distributed scores give straight
lines (Martin et al., 1997; ISO/IEC 30107-3). Rates of exactly 0 or 1 have no finite
deviate and are drawn at the edge of the axes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from morphlab.metrics.intervals import Rate
from morphlab.metrics.pad import D_EER_RULE, d_eer, det_curve
from morphlab.reports.document import (
    Document,
    Figure,
    Heading,
    Paragraph,
    Table,
    save_figure,
)

#: Tick positions of the DET axes (rates).
DET_TICKS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95)
_LIMITS = (0.0005, 0.99)


def _deviate(p: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(np.clip(p, _LIMITS[0], _LIMITS[1]))


def plot_det(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    title: str = "DET curve",
) -> Path:
    """Draw DET curves and save them as PNG.

    Args:
        curves: ``{label: (bona_fide_scores, attack_scores)}``, scores with higher = more
            likely an attack; each legend entry gets the curve's D-EER. Operating points
            are joined as a staircase (``steps-post`` in increasing-threshold order).
        path: output PNG file.
        title: figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for label, (bf, at) in curves.items():
        c = det_curve(bf, at)
        eer = d_eer(bf, at)[0]
        ax.plot(_deviate(c.apcer), _deviate(c.bpcer), drawstyle="steps-post", lw=1.6,
                label=f"{label} (D-EER {100 * eer:.1f}%)")
    ticks = _deviate(np.array(DET_TICKS))
    labels = [f"{t * 100:g}" for t in DET_TICKS]
    lo, hi = _deviate(np.array(_LIMITS))
    ax.plot([lo, hi], [lo, hi], color="0.75", lw=0.8, ls="--", label="APCER = BPCER")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(ticks)
        axis.set_ticklabels(labels)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("APCER (%)")
    ax.set_ylabel("BPCER (%)")
    ax.set_title(title)
    ax.grid(True, color="0.9")
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def plot_score_histograms(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    threshold: Optional[float] = None,
    threshold_label: str = "model threshold",
    deer_threshold: Optional[float] = None,
) -> Path:
    """Bona fide vs attack score histograms, one panel per attack species, thresholds marked.

    Args:
        curves: ``{label: (bona_fide_scores, attack_scores)}`` as for :func:`plot_det`;
            with more than one entry the pooled ``"all attacks"`` one is left out (one
            panel per species, each against all bona fide scores).
        path: output PNG.
        threshold: the model's operating threshold (solid line), if any.
        threshold_label: its legend text (say where it comes from).
        deer_threshold: the D-EER threshold of these test scores (dashed line), if any.

    Scores: higher = more likely a morph; ``score >= threshold`` is classified an attack.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {k: v for k, v in curves.items() if not (len(curves) > 1 and k == "all attacks")}
    n = max(1, len(panels))
    fig, axes = plt.subplots(n, 1, figsize=(6.4, 2.3 + 1.9 * n), squeeze=False, sharex=True)
    finite = [np.asarray(x, dtype=float) for pair in panels.values() for x in pair]
    allv = np.concatenate([x[np.isfinite(x)] for x in finite] + [np.zeros(0)])
    marks = [t for t in (threshold, deer_threshold) if t is not None and np.isfinite(t)]
    allv = np.concatenate([allv, np.asarray(marks, dtype=float)]) if marks else allv
    lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 41)  # the same bins in every panel
    for ax, (label, (bf, at)) in zip(axes[:, 0], panels.items()):
        b = np.asarray(bf, dtype=float)
        a = np.asarray(at, dtype=float)
        b, a = b[np.isfinite(b)], a[np.isfinite(a)]
        if b.size:
            ax.hist(b, bins=bins, alpha=0.5, color="tab:green", label=f"bona fide (n = {b.size})")
        if a.size:
            ax.hist(a, bins=bins, alpha=0.5, color="tab:red", label=f"{label} (n = {a.size})")
        if threshold is not None and np.isfinite(threshold):
            ax.axvline(threshold, color="black", lw=1.4, label=f"{threshold_label} {threshold:.4g}")
        if deer_threshold is not None and np.isfinite(deer_threshold):
            ax.axvline(deer_threshold, color="0.4", lw=1.1, ls="--",
                       label=f"D-EER threshold of these test scores (pooled) {deer_threshold:.4g}")
        ax.set_ylabel("presentations")
        ax.set_title(f"bona fide vs {label}", fontsize=9)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("detector score (higher = more likely a morph)")
    fig.tight_layout()
    return save_figure(fig, path)


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100.0 * v:.2f}%"


def _rate_text(iv: Optional[Mapping[str, Any]], value: Optional[float] = None) -> str:
    """``"41.7 % [19.3, 68.0] (5/12)"`` from a ``Rate.to_dict()``; the bare value without one."""
    if not iv:
        return _pct(value)
    lo, hi = (iv.get("ci95") or [None, None])[:2]
    r = Rate(int(iv["k"]), int(iv["n"]),
             *(float("nan") if x is None else float(x) for x in (iv.get("rate"), lo, hi)))
    return r.format()


def _thr(t: Any) -> str:
    return "–" if t is None else f"{float(t):.4g}"


def _levels(summary: Mapping[str, Any], prefix: str) -> list[str]:
    """The level keys of a figure (``"BPCER@APCER=10%"`` …) in the summary's order."""
    return [k for k in summary if k.startswith(prefix) and not k.endswith("(pooled)")]


def _headline_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    iv = summary.get("intervals") or {}
    thr = summary.get("thresholds") or {}
    rows: list[list[Any]] = [["D-EER", _pct(summary["D-EER"]), _thr(summary.get("D-EER threshold")),
                              "interpolated, see the rule below"]]
    if "D-EER APCER" in summary:
        rows += [["APCER at the D-EER threshold", _rate_text(iv.get("D-EER APCER"),
                                                               summary["D-EER APCER"]),
                  _thr(summary.get("D-EER threshold")), "pooled"],
                 ["BPCER at the D-EER threshold", _rate_text(iv.get("D-EER BPCER"),
                                                               summary["D-EER BPCER"]),
                  _thr(summary.get("D-EER threshold")), ""]]
    for k in _levels(summary, "APCER@BPCER="):
        rows.append([f"{k} (FATE MORPH headline)", _rate_text(iv.get(k), summary[k]),
                     _thr(thr.get(k)), "pooled over species"])
        mk = f"max {k}"
        if mk in summary:
            rows.append([f"max {k} over species", _rate_text(iv.get(mk), summary[mk]),
                         _thr(thr.get(k)), f"worst species: {iv.get(mk, {}).get('species', '?')}"])
    basis = summary.get("BPCER@APCER basis", "pooled")
    headline = ("headline: at the max APCER over species (ISO/IEC 30107-3)"
                if basis.startswith("max") else "pooled (one attack species)")
    for k in _levels(summary, "BPCER@APCER="):
        rows.append([k, _rate_text(iv.get(k), summary[k]), _thr(thr.get(k)), headline])
        pk = f"{k} (pooled)"
        if pk in summary:
            rows.append([pk, _rate_text(iv.get(pk), summary[pk]), _thr(thr.get(pk)),
                         "pooled APCER over all attacks"])
    return rows


def write_pad_report(
    out_dir: str | Path,
    summary: Mapping[str, Any],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "Morphing attack detection report",
    info: Optional[Mapping[str, Any]] = None,
    notes: Sequence[str] = (),
    threshold_origin: Optional[str] = None,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``det.png``, ``histograms.png``, ``report.md`` and ``report.html``.

    Every rate is printed with its count, sample size and Wilson 95 % interval (from the
    summary's ``"intervals"``), the BPCER@APCER headline (max APCER over species) beside
    the pooled figure, FATE MORPH's APCER@BPCER, the D-EER interpolation rule, and the
    summary's sample-size notes.

    Args:
        out_dir: report folder (created).
        summary: :func:`morphlab.metrics.pad.pad_summary` output.
        curves: DET curves to draw, ``{label: (bona_fide_scores, attack_scores)}``.
        title: report title.
        info: facts shown in a table and stored in ``metrics.json`` under ``"info"``
            (detector, model folder, data, subject-disjointness…).
        notes: paragraphs added after the facts (warnings such as failed alignments).
        threshold_origin: where ``summary["threshold"]`` (the model's operating
            threshold) comes from, e.g. "D-EER point of its own training scores"; stated
            beside every rate at that threshold ("not recorded" when None).

    Paths in the text are written relative to ``out_dir``
    (:mod:`morphlab.reports.provenance`).

    Returns:
        ``{"metrics": …, "det": …, "markdown": …, "html": …}`` paths.
    """
    from morphlab.io import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"metrics": dict(summary), "info": dict(info or {}), "notes": list(notes)}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    det = plot_det(curves, out / "det.png", title=title if len(title) < 50 else "DET curve")
    origin = threshold_origin or ("origin not recorded (Detector.fit sets the D-EER point of "
                                  "the training scores)")
    trained = "training scores" in origin.lower() and not origin.lower().startswith("calibrated")
    hist = plot_score_histograms(
        curves, out / "histograms.png", threshold=summary.get("threshold"),
        threshold_label="model threshold" + (" (fitted on training scores)" if trained else ""),
        deer_threshold=summary.get("D-EER threshold"))

    iv = summary.get("intervals") or {}
    doc = Document(title)
    if info:
        doc.add(Table(["", ""], [[k, v] for k, v in info.items()], caption="Set-up"))
    for n in notes:
        doc.add(Paragraph(n))
    doc.add(Heading("Headline figures"),
            Paragraph(f"{summary['n_bona_fide']} bona fide and {summary['n_attack']} attack "
                      "presentations. Scores: higher = more likely a morph; a score at or above "
                      "the threshold is classified as an attack (ISO/IEC 30107-3 names). Rates: "
                      "value [Wilson 95 % interval] (errors/presentations); the intervals are "
                      "those of the error counts at each threshold and leave out the variation "
                      "of a threshold chosen on these same scores."),
            Table(["figure", "value [95 % CI] (k/n)", "threshold", "basis"],
                  _headline_rows(summary)))
    doc.add(Paragraph(summary.get("D-EER rule", D_EER_RULE)))
    if "threshold" in summary:
        rows = [["APCER", _rate_text(iv.get("APCER"), summary["APCER"]), "pooled"],
                ["BPCER", _rate_text(iv.get("BPCER"), summary["BPCER"]), ""]]
        if "max APCER" in summary:
            rows.append(["max APCER over species", _rate_text(iv.get("max APCER"),
                                                              summary["max APCER"]),
                         f"worst species: {iv.get('max APCER', {}).get('species', '?')}"])
        doc.add(Heading("At the model's operating threshold"),
                Paragraph(f"Threshold {summary['threshold']:.4g}: {origin}. "
                          + ("It was fitted on the training scores, not on these test scores: "
                             "the APCER and BPCER below are what that threshold gives on new "
                             "data, and are not comparable with the test D-EER above, whose "
                             "threshold is chosen on the test scores themselves."
                             if trained else
                             "The D-EER above is threshold-free (its threshold is chosen on "
                             "these test scores); the rates below are at this fixed threshold.")),
                Table(["figure", "value [95 % CI] (k/n)", "note"], rows,
                      caption=f"threshold {summary['threshold']:.4g} ({origin})"))
    per = summary.get("per species") or {}
    if per:
        at_t = summary.get("APCER per species", {})
        at_iv = iv.get("APCER per species", {})
        bl = _levels(summary, "BPCER@APCER=")
        al = _levels(summary, "APCER@BPCER=")
        doc.add(Heading("Per attack species"),
                Table(["species", "n attacks", "D-EER", *bl, *al,
                       *([f"APCER @ model threshold {summary['threshold']:.4g}"
                          + (" (fitted on training scores)" if trained else "")] if at_t else [])],
                      [[s, v["n"], _pct(v["D-EER"]),
                        *(_rate_text((v.get("intervals") or {}).get(k), v.get(k)) for k in bl + al),
                        *([_rate_text(at_iv.get(s), at_t.get(s))] if at_t else [])]
                       for s, v in per.items()],
                      caption=f"against all {summary['n_bona_fide']} bona fide presentations"))
    if summary.get("notes"):
        doc.add(Heading("Sample size"), *(Paragraph(n) for n in summary["notes"]))
    doc.add(Heading("DET curves"), Figure(det.name, "DET curves (normal-deviate axes)"))
    doc.add(Heading("Score distributions"),
            Figure(hist.name, "Bona fide vs attack scores per attack species; solid line: the "
                              f"model's threshold ({origin}); dashed: the D-EER threshold of "
                              "these test scores"))
    md, html = doc.write(out)
    return {"metrics": out / "metrics.json", "det": det, "histograms": hist, "markdown": md,
            "html": html}
