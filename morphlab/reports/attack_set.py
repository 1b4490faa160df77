"""Report on an attack set: contact sheet (subject A | morphs | subject B) and a summary.

The report names the set (path relative to the report folder, manifest sha256) and its
post-processing protocol (:mod:`morphlab.reports.provenance`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from morphlab.reports.contact import (
    THUMB_HEIGHT,
    write_contact_page,
    write_contact_sheet,
)
from morphlab.reports.document import (
    Code,
    Document,
    Figure,
    Heading,
    Link,
    Paragraph,
    Table,
)
from morphlab.reports.provenance import attack_set_facts, attack_set_rows


def write_attack_report(
    manifest: str | Path, out_dir: str | Path, *, max_rows: int = 12, title: str | None = None
) -> Path:
    """Summarise ``manifest.jsonl`` of an attack set into ``out_dir``.

    Writes ``contact_sheet.jpg`` (the first ``max_rows`` pairs: subject A, each morph of
    the pair, subject B; 256-pixel tiles), ``contact.html`` (every pair, each thumbnail
    linking to its full-size image by a relative path) and ``report.md`` /
    ``report.html`` (the set and its protocol, counts per generator and variant, failures
    with their reasons, the generation parameters).

    Returns:
        The path of ``report.html``.
    """
    from morphlab.generators.runner import load_manifest

    manifest = Path(manifest)
    if manifest.is_dir():
        manifest = manifest / "manifest.jsonl"
    out_dir = Path(out_dir)
    entries = load_manifest(manifest)
    ok = [e for e in entries if e.get("status") == "ok"]
    failed = [e for e in entries if e.get("status") != "ok"]

    by_pair: dict[str, list[dict]] = defaultdict(list)
    for e in ok:
        by_pair[str(e["pair_id"])].append(e)
    rows = []
    for pid in sorted(by_pair)[:max_rows]:
        es = sorted(by_pair[pid], key=lambda e: (e["generator"], e["file"]))
        a, b = es[0]["subject_a"], es[0]["subject_b"]
        row = [(Path(a["path"]), f"subject A ({a['id']})")]
        for e in es:
            variant = e.get("params", {}).get("variant") or e.get("tag") or e["generator"]
            row.append((manifest.parent / e["file"], f"morph: {e['generator']} {variant}"))
        row.append((Path(b["path"]), f"subject B ({b['id']})"))
        rows.append(row)

    doc = Document(title or f"Attack set: {manifest.parent.name}")
    counts = Counter(
        (e["generator"], str(e.get("params", {}).get("variant", "-"))) for e in ok
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    facts = attack_set_facts(manifest, out_dir)
    write_contact_page(manifest, out_dir / "contact.html",
                       title=f"Contact sheet: {manifest.parent.name}")
    doc.add(
        Table(["input", "value"], attack_set_rows(facts), caption="Inputs (paths relative to "
              "this report)"),
        Paragraph(f"{len(ok)} morphs from {len(by_pair)} pairs; {len(failed)} failed pair(s)."),
        Table(["open", ""], [[Link("contact.html", "contact.html"),
                              "every pair, thumbnails linking to the full-size images"]]),
        Table(
            ["generator", "variant", "morphs"],
            [[g, v, n] for (g, v), n in sorted(counts.items())],
            caption="Morphs per generator and variant",
        ),
    )
    if rows:
        write_contact_sheet(out_dir / "contact_sheet.jpg", rows, height=THUMB_HEIGHT)
        doc.add(
            Heading("Contact sheet"),
            Figure(
                "contact_sheet.jpg",
                f"Subject A | morph(s) | subject B, first {len(rows)} of {len(by_pair)} pairs",
            ),
        )
    if failed:
        doc.add(
            Heading("Failures"),
            Table(
                ["pair", "subject A", "subject B", "error"],
                [
                    [
                        e.get("pair_id"),
                        e.get("subject_a", {}).get("id"),
                        e.get("subject_b", {}).get("id"),
                        e.get("error", "?"),
                    ]
                    for e in failed
                ],
            ),
        )
    if ok:
        gens = {}
        for e in ok:
            gens.setdefault(e["generator"], (e.get("generator_version"), e.get("params", {})))
        doc.add(Heading("Parameters"))
        for g, (ver, params) in sorted(gens.items()):
            doc.add(Paragraph(f"{g} {ver}"), Code(json.dumps(params, indent=2, sort_keys=True)))
    _, html = doc.write(out_dir)
    return html
