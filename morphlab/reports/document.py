"""One small document model rendered to both Markdown and HTML.

Every report of morphlab (attack set, MAP, detector evaluation, experiments) is built as a
:class:`Document` of blocks — headings, paragraphs, tables, figures — and written with
:meth:`Document.write`, which produces ``report.md`` and a self-contained-looking
``report.html`` (figures are referenced by relative path, so the folder can be moved).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from morphlab.io import atomic_write_text


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass
class Figure:
    path: str  # relative to the report folder
    caption: str = ""


@dataclass
class Code:
    text: str


@dataclass(frozen=True)
class Link:
    """A table cell that links to another file of the report (relative ``href``)."""

    text: str
    href: str


Block = Union[Heading, Paragraph, Table, Figure, Code]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Link):
        return f"[{v.text}]({v.href})"
    return str(v)


def _cell_html(v: Any) -> str:
    if isinstance(v, Link):
        return f'<a href="{html.escape(v.href)}">{html.escape(v.text)}</a>'
    return html.escape(_fmt(v))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:.7em;overflow-x:auto}
"""


@dataclass
class Document:
    """A report: a title and a list of blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> "Document":
        self.blocks.extend(blocks)
        return self

    # -- renderers ----------------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * b.level + " " + b.text, ""]
            elif isinstance(b, Paragraph):
                out += [b.text, ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"*{b.caption}*", ""]
                out.append("| " + " | ".join(map(str, b.columns)) + " |")
                out.append("|" + "|".join("---" for _ in b.columns) + "|")
                out += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in b.rows]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{b.caption}]({b.path})", ""]
                if b.caption:
                    out += [f"*{b.caption}*", ""]
            elif isinstance(b, Code):
                out += ["```", b.text.rstrip("\n"), "```", ""]
        return "\n".join(out)

    def html(self) -> str:
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        for b in self.blocks:
            if isinstance(b, Heading):
                lv = min(max(b.level, 1), 6)
                out.append(f"<h{lv}>{e(b.text)}</h{lv}>")
            elif isinstance(b, Paragraph):
                out.append(f"<p>{e(b.text)}</p>")
            elif isinstance(b, Table):
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                head = "".join(f"<th>{e(str(c))}</th>" for c in b.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{_cell_html(v)}</td>" for v in r) + "</tr>" for r in b.rows
                )
                out.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(b, Figure):
                cap = f"<figcaption>{e(b.caption)}</figcaption>" if b.caption else ""
                out.append(f'<figure><img src="{e(b.path)}" alt="{e(b.caption)}">{cap}</figure>')
            elif isinstance(b, Code):
                out.append(f"<pre><code>{e(b.text)}</code></pre>")
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.html`` atomically into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md, ht = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
        atomic_write_text(md, self.markdown())
        atomic_write_text(ht, self.html())
        return md, ht


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import io

    import matplotlib.pyplot as plt

    from morphlab.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
