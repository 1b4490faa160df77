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

from morphlab.metrics.pad import STANDARD_APCER_LEVELS, d_eer, det_curve
from morphlab.reports.document import Document, Figure, Heading, Paragraph, Table, save_figure

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


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100.0 * v:.2f}%"


def write_pad_report(
    out_dir: str | Path,
    summary: Mapping[str, Any],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "Morphing attack detection report",
    info: Optional[Mapping[str, Any]] = None,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``metrics.json``, ``det.png``, ``report.md`` and ``report.html``.

    Args:
        out_dir: report folder (created).
        summary: :func:`morphlab.metrics.pad.pad_summary` output (pooled over species).
        curves: DET curves to draw, ``{label: (bona_fide_scores, attack_scores)}``.
        title: report title.
        info: facts shown in a table and stored in ``metrics.json`` under ``"info"``
            (detector, model folder, data, subject-disjointness…).
        notes: paragraphs added after the facts (warnings such as failed alignments).

    Returns:
        ``{"metrics": …, "det": …, "markdown": …, "html": …}`` paths.
    """
    from morphlab.io import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"metrics": dict(summary), "info": dict(info or {}), "notes": list(notes)}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    det = plot_det(curves, out / "det.png", title=title if len(title) < 50 else "DET curve")

    doc = Document(title)
    if info:
        doc.add(Table(["", ""], [[k, v] for k, v in info.items()], caption="Set-up"))
    for n in notes:
        doc.add(Paragraph(n))
    levels = [f"BPCER@APCER={x * 100:g}%" for x in STANDARD_APCER_LEVELS]
    doc.add(Heading("Pooled over attack species"),
            Paragraph("Scores: higher = more likely a morph; a score at or above the threshold "
                      "is classified as an attack (ISO/IEC 30107-3 names)."),
            Table(["n bona fide", "n attacks", "D-EER", *levels],
                  [[summary["n_bona_fide"], summary["n_attack"], _pct(summary["D-EER"]),
                    *(_pct(summary.get(k)) for k in levels)]]))
    if "threshold" in summary:
        doc.add(Paragraph(
            f"At the model's operating threshold {summary['threshold']:.4g}: APCER "
            f"{_pct(summary['APCER'])}, BPCER {_pct(summary['BPCER'])}"
            + (f", max APCER over species {_pct(summary['max APCER'])}."
               if "max APCER" in summary else ".")))
    per = summary.get("per species") or {}
    if per:
        at_t = summary.get("APCER per species", {})
        doc.add(Heading("Per attack species"),
                Table(["species", "n", "D-EER", *levels, "APCER @ threshold"],
                      [[s, v["n"], _pct(v["D-EER"]), *(_pct(v.get(k)) for k in levels),
                        _pct(at_t.get(s))] for s, v in per.items()]))
    doc.add(Heading("DET curves"), Figure(det.name, "DET curves (normal-deviate axes)"))
    md, html = doc.write(out)
    return {"metrics": out / "metrics.json", "det": det, "markdown": md, "html": html}
