"""One small document model rendered to both Markdown and HTML.

Every report of morphlab (attack set, MAP, detector evaluation, experiments) is built as a
:class:`Document` of blocks — headings, paragraphs, tables, figures — and written with
:meth:`Document.write`, which produces ``report.md`` and a self-contained-looking
``report.html`` (figures are referenced by relative path, so the folder can be moved).

All text is plain text in both renderers: the HTML one escapes it with
:func:`html.escape`, the Markdown one with :func:`md_escape` (Markdown syntax such as
``|``, backticks, ``*``, ``_``, ``<``, ``[`` backslash-escaped, control characters such
as NUL and newlines shown as ``\\x00``/``\\n``), so an id from a user's file can
neither break a table row nor inject links or markup.

Given the report's folder (``base``; :meth:`Document.write` passes its ``out_dir``), both
renderers rewrite every absolute path in the text relative to it
(:func:`morphlab.reports.provenance.relative_paths`): a report names files by paths
relative to itself, never by absolute machine paths.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from morphlab.io import atomic_write_text
from morphlab.reports.provenance import relative_paths


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


@dataclass(frozen=True)
class Tile:
    """One thumbnail of a :class:`Thumbnails` row.

    Attributes:
        label: caption under the image (plain text).
        src: the image shown: a relative path or a ``data:`` URI; empty for a text-only
            tile (e.g. a failed pair).
        href: what the thumbnail links to (relative path of the full-size image), or "".
        title: tooltip (e.g. the dataset-relative path of a contributor image).
    """

    label: str
    src: str = ""
    href: str = ""
    title: str = ""


@dataclass
class Thumbnails:
    """Rows of thumbnails (a contact sheet), each optionally linking to its full image."""

    rows: Sequence[Sequence[Tile]]
    caption: str = ""
    height: int = 256


Block = Union[Heading, Paragraph, Table, Figure, Code, Thumbnails]


#: Characters that always get a backslash in :func:`md_escape`: emphasis, code, raw HTML
#: and strike-through syntax (``|`` too inside table cells).
MD_SPECIAL = frozenset("\\`*_<~")
#: ASCII punctuation: a backslash before any of these is an escape (CommonMark), kept.
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def md_escape(text: Any, *, cell: bool = False) -> str:
    """``text`` as literal Markdown text (what :func:`html.escape` is for HTML).

    Control characters become visible escapes (``\\n``, ``\\x00``) so that a cell
    stays on its table row; :data:`MD_SPECIAL` characters get a backslash, and ``|``
    too when ``cell`` (a table cell); a ``]`` followed by ``(``, ``[`` or ``:`` is
    escaped (so no link, image or link definition can form), and so are a leading ``#``
    (heading) or ``>`` (quote). What cannot form markup stays readable: the interval
    brackets of ``"41.7 % [19.3, 68.0]"``, a ``>=`` inside a sentence. Idempotent: a
    backslash already escaping a punctuation character is kept, so text escaped once
    (e.g. by a report that escapes its own ids) is unchanged.
    """
    t = _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(text))
    lead = len(t) - len(t.lstrip())
    out = []
    i = 0
    while i < len(t):
        c = t[i]
        if c == "\\" and i + 1 < len(t) and t[i + 1] in _PUNCT:
            out.append(t[i : i + 2])
            i += 2
            continue
        nxt = t[i + 1] if i + 1 < len(t) else ""
        special = (c in MD_SPECIAL or (cell and c == "|")
                   or (c == "]" and nxt in ("(", "[", ":"))
                   or (i == lead and c in "#>"))
        out.append("\\" + c if special else c)
        i += 1
    return "".join(out)


def md_url(href: str) -> str:
    """A relative link target for Markdown: spaces, parentheses, ``<>`` percent-encoded."""
    from urllib.parse import quote

    return quote(str(href), safe="/#?&=;,:@!$'*+~%")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Link):
        return v.text
    return str(v)


def _cell_md(v: Any, base: Any = None) -> str:
    if isinstance(v, Link):
        return f"[{md_escape(relative_paths(v.text, base), cell=True)}]({md_url(v.href)})"
    return md_escape(relative_paths(_fmt(v), base), cell=True)


def _tile_md(t: Tile, e: Any) -> str:
    label = e(t.label, cell=True)
    if not t.src:
        return label
    img = f"![{label}]({md_url(t.src) if not t.src.startswith('data:') else t.src})"
    return (f"[{img}]({md_url(t.href)})" if t.href else img) + f"<br>{label}"


def _tile_html(t: Tile, e: Any, height: int) -> str:
    label = f"<div>{e(t.label)}</div>"
    if not t.src:
        return f"<td>{label}</td>"
    title = f' title="{e(t.title)}"' if t.title else ""
    img = f'<img src="{html.escape(t.src)}" alt="{e(t.label)}" height="{int(height)}"{title}>'
    if t.href:
        img = f'<a href="{html.escape(t.href)}">{img}</a>'
    return f"<td>{img}{label}</td>"


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def _cell_html(v: Any, base: Any = None) -> str:
    if isinstance(v, Link):
        return (f'<a href="{html.escape(v.href)}">'
                f'{html.escape(relative_paths(v.text, base))}</a>')
    return html.escape(relative_paths(_fmt(v), base))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:.7em;overflow-x:auto}
table.thumbs td{text-align:center;vertical-align:top;font-size:.85em}table.thumbs img{max-width:none}
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
    def markdown(self, base: str | Path | None = None) -> str:
        """The Markdown text; absolute paths relative to the folder ``base`` when given."""

        def e(text: Any, *, cell: bool = False) -> str:
            return md_escape(relative_paths(text, base), cell=cell)

        out = [f"# {e(self.title)}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * min(max(b.level, 1), 6) + " " + e(b.text), ""]
            elif isinstance(b, Paragraph):
                out += ["  \n".join(e(line) for line in str(b.text).split("\n")), ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"*{e(b.caption)}*", ""]
                out.append("| " + " | ".join(e(c, cell=True) for c in b.columns) + " |")
                out.append("|" + "|".join("---" for _ in b.columns) + "|")
                out += ["| " + " | ".join(_cell_md(v, base) for v in r) + " |" for r in b.rows]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{e(b.caption)}]({md_url(b.path)})", ""]
                if b.caption:
                    out += [f"*{e(b.caption)}*", ""]
            elif isinstance(b, Thumbnails):
                if b.caption:
                    out += [f"*{e(b.caption)}*", ""]
                width = max((len(r) for r in b.rows), default=0)
                out.append("| " + " | ".join(" " for _ in range(width)) + " |")
                out.append("|" + "|".join("---" for _ in range(width)) + "|")
                for r in b.rows:
                    cells = [_tile_md(t, e) for t in r] + [""] * (width - len(r))
                    out.append("| " + " | ".join(cells) + " |")
                out.append("")
            elif isinstance(b, Code):
                text = relative_paths(b.text, base).rstrip("\n")
                out += [_fence(text), text, _fence(text), ""]
        return "\n".join(out)

    def html(self, base: str | Path | None = None) -> str:
        """The HTML page; absolute paths relative to the folder ``base`` when given."""

        def e(text: Any) -> str:
            return html.escape(relative_paths(text, base))

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
                    "<tr>" + "".join(f"<td>{_cell_html(v, base)}</td>" for v in r) + "</tr>" for r in b.rows
                )
                out.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(b, Figure):
                cap = f"<figcaption>{e(b.caption)}</figcaption>" if b.caption else ""
                out.append(f'<figure><img src="{e(b.path)}" alt="{e(b.caption)}">{cap}</figure>')
            elif isinstance(b, Thumbnails):
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                body = "".join("<tr>" + "".join(_tile_html(t, e, b.height) for t in r) + "</tr>"
                               for r in b.rows)
                out.append(f'<table class="thumbs">{cap}<tbody>{body}</tbody></table>')
            elif isinstance(b, Code):
                out.append(f"<pre><code>{e(b.text)}</code></pre>")
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.html`` atomically into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md, ht = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
        atomic_write_text(md, self.markdown(base=out_dir))
        atomic_write_text(ht, self.html(base=out_dir))
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
