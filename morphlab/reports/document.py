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
"""

from __future__ import annotations

import html
import re
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


def _cell_md(v: Any) -> str:
    if isinstance(v, Link):
        return f"[{md_escape(v.text, cell=True)}]({md_url(v.href)})"
    return md_escape(_fmt(v), cell=True)


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


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
        e = md_escape
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
                out += ["| " + " | ".join(_cell_md(v) for v in r) + " |" for r in b.rows]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{e(b.caption)}]({md_url(b.path)})", ""]
                if b.caption:
                    out += [f"*{e(b.caption)}*", ""]
            elif isinstance(b, Code):
                text = b.text.rstrip("\n")
                out += [_fence(text), text, _fence(text), ""]
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
