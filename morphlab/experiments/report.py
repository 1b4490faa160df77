"""The consolidated report of an experiment (``report.md`` / ``report.html``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from morphlab import __version__

if TYPE_CHECKING:
    from morphlab.experiments.runner import _Run


def _deer_figure(matrix: Sequence[Sequence[Optional[float]]], species: Sequence[str], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    n = len(species)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * n, 1.2 + 0.9 * n))
    im = ax.imshow(m * 100, vmin=0, vmax=50, cmap="RdYlGn_r")
    for i in range(n):
        for j in range(n):
            txt = "–" if np.isnan(m[i, j]) else f"{m[i, j] * 100:.1f}%"
            ax.text(j, i, txt, ha="center", va="center", fontsize=9)
    ax.set_xticks(range(n), species, rotation=30, ha="right")
    ax.set_yticks(range(n), species)
    ax.set_xlabel("tested on")
    ax.set_ylabel("trained on")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="D-EER (%)")
    return fig


def _examples_figure(run: _Run):
    """First pair: bona fide A, the morphs, bona fide B — one row per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from morphlab.io import read_image
    from morphlab.postprocess import load_set

    rows = []
    for p in run.cfg.postprocess:
        bf = dict((s, path) for path, s in run.bona_fide.get(p.name, []))
        cells = []
        first = None
        for g in run.cfg.generators:
            recs = load_set(run.morph_sets[p.name, g.name])
            if first is None and recs:
                first = recs[0]["pair_id"]
            for r in recs:
                if r["pair_id"] == first:
                    cells.append((f"{g.name}/{r.get('tag')}", r["path"], r))
        if first is None:
            continue
        r0 = cells[0][2]
        a, b = str(r0["subject_a"]["id"]), str(r0["subject_b"]["id"])
        row = [(f"subject A ({a})", bf.get(a))] + [(t, path) for t, path, _ in cells] + \
              [(f"subject B ({b})", bf.get(b))]
        rows.append((p.name, row))
    if not rows:
        return None
    ncol = max(len(r) for _, r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.2 * ncol, 2.6 * len(rows)), squeeze=False)
    for i, (proto, row) in enumerate(rows):
        for j in range(ncol):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(row) and row[j][1]:
                ax.imshow(read_image(row[j][1]))
                ax.set_title(f"{row[j][0]}" + (f"\n[{proto}]" if j == 0 else ""), fontsize=8)
    fig.tight_layout()
    return fig


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def write_report(run: _Run) -> Path:
    """The consolidated report (``report.md`` / ``report.html``) in the output folder."""
    from morphlab.reports.document import Code, Document, Figure, Heading, Paragraph, Table, save_figure

    cfg, out, res = run.cfg, run.out, run.results
    reduced = "" if cfg.limit_pairs is None else f" (reduced run: at most {cfg.limit_pairs} pairs)"
    doc = Document(f"Experiment {cfg.name}{reduced}")
    if cfg.limit_pairs is not None:
        doc.add(Paragraph(
            f"Reduced run: at most {cfg.limit_pairs} pairs (limit_pairs {cfg.limit_pairs}, from "
            "--limit-pairs, MORPHLAB_LIMIT_PAIRS or the configuration). It checks that the "
            "pipeline runs; its rates rest on a handful of morphs and are not the study's "
            "figures. The full run (no limit) writes its own folder and is not touched."))
    if cfg.description:
        doc.add(Paragraph(cfg.description.strip()))
    ds, pr = res["dataset"], res["pairs"]
    limit = f" (limited to {cfg.limit_pairs} pairs)" if cfg.limit_pairs else ""
    doc.add(
        Heading("Data"),
        Table(["dataset", "loader", "subjects", "images", "enrolment images", "subjects with probes"],
              [[ds["root"], ds["loader"], ds["subjects"], ds["samples"], ds["enrolment"],
                ds["probe_subjects"]]]),
        Paragraph(f"Pairs: strategy {pr['strategy']}, seed {pr['seed']}, {pr['pairs']} pairs of "
                  f"{pr['subjects_used']} subjects{limit}; file pairs/pairs.csv."),
        Table(["generator", "registered as", "parameters", "morphs", "failed pairs"],
              [[g.name, g.generator, json.dumps(dict(g.params), sort_keys=True) or "{}",
                res[f"generate/{g.name}"]["morphs"], res[f"generate/{g.name}"]["failed"]]
               for g in cfg.generators], "Attack sets (folder generate/<generator>)"),
        Table(["protocol", "operators (applied alike to morphs and bona fide images)"],
              [[p.name, " → ".join(p.ops) or "(as generated)"] for p in cfg.postprocess],
              "Post-processing protocols"),
    )
    fig = _examples_figure(run)
    if fig is not None:
        save_figure(fig, out / "figures" / "examples.png")
        doc.add(Figure("figures/examples.png", "The first pair: bona fide images and morphs, per protocol"))

    maps = [(p, g) for p in run._protocols(cfg.map.protocols) for g in cfg.generators
            if f"map/{p.name}/{g.name}" in res] if cfg.map.enabled else []
    if maps:
        doc.add(Heading("Morphing Attack Potential"),
                Paragraph(f"Systems {', '.join(cfg.map.systems)}, thresholds at FMR "
                          f"{cfg.map.target_fmr:g}; probes: the dataset's probe images "
                          "(unprocessed). MinMax-MMPMR / ProdAvg-MMPMR per system; MAP[1,1]: "
                          "share of morphs accepted for both subjects by at least one system at "
                          "the first attempt."))
        systems = res[f"map/{maps[0][0].name}/{maps[0][1].name}"]["systems"]
        rows = []
        for p, g in maps:
            r = res[f"map/{p.name}/{g.name}"]
            overall = {"n_morphs": r["n_morphs"], "per_system": r["per_system"]}
            groups = {f"{g.name}/{k.split('/', 1)[-1]}": v for k, v in r["per_group"].items()}
            groups[f"{g.name} (all)" if groups else g.name] = overall  # per tag, then all
            for label, v in groups.items():
                rows.append([p.name, label, v["n_morphs"], *[
                    f"{_pct(v['per_system'][s]['minmax_mmpmr'])} / "
                    f"{_pct(v['per_system'][s]['prodavg_mmpmr'])}" for s in systems]])
        doc.add(Table(["protocol", "attack", "morphs", *systems], rows,
                      "MinMax-MMPMR / ProdAvg-MMPMR"))
        for p, g in maps:
            doc.add(Figure(f"map/{p.name}/{g.name}/map.png",
                           f"MAP, {g.name}, protocol {p.name} (full report: map/{p.name}/{g.name}/report.html)"))

    dets = [(p, d) for p in run._protocols(cfg.detection.protocols) for d in cfg.detection.detectors
            if f"detect/{p.name}/{d.name}" in res] if cfg.detection.enabled else []
    if dets:
        doc.add(Heading("Detection: train on one attack species, test on each"),
                Paragraph(f"Subject-disjoint split (test fraction {cfg.detection.test_fraction:g}); "
                          "bona fide images: the enrolment images of the pair subjects, processed "
                          "like the morphs. Rows: the species trained on; columns: tested on."))
        for p, d in dets:
            r = res[f"detect/{p.name}/{d.name}"]
            doc.add(Table(["trained on \\ tested on", *r["species"]],
                          [[tr, *[_pct(v) for v in row]] for tr, row in zip(r["species"], r["deer"])],
                          f"D-EER, {d.name}, protocol {p.name} ({r['train_subjects']} training / "
                          f"{r['test_subjects']} test identities)"),
                    Figure(r["figure"], f"D-EER matrix, {d.name}, protocol {p.name}"))

    doc.add(Heading("Stages"),
            Table(["stage", "status", "seconds"],
                  [[s.name, s.status, round(s.seconds, 2)] for s in run.stages.runs],
                  "This run (cached: key unchanged, result reused)"),
            Heading("Configuration"), Code(cfg.to_yaml()),
            Paragraph(f"morphlab {__version__}; re-run: morphlab run <this configuration>."))
    md, _ = doc.write(out)
    return md
