"""Contact sheets: rows of labelled thumbnails (e.g. subject A | morph | subject B)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from morphlab.io import check_image, read_image, write_image

ImageLike = Union[np.ndarray, str, Path]


_REDUCED = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4,
            2: cv2.IMREAD_REDUCED_COLOR_2}


def _read_for_thumb(path: str | Path, height: int) -> np.ndarray:
    """RGB image from a file, decoded at the smallest JPEG scale still ``height`` high
    (4x faster for a 1350-pixel FRLL photo); :func:`read_image` when OpenCV cannot."""
    from PIL import Image

    flag = cv2.IMREAD_COLOR
    try:
        with Image.open(path) as im:
            w, h = im.size
            jpeg = im.format == "JPEG"
        if jpeg:
            flag = next((f for k, f in _REDUCED.items() if min(w, h) // k >= height), flag)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # read_image: clear error
        return read_image(path)
    bgr = cv2.imread(str(path), flag)
    if bgr is None or bgr.ndim != 3:
        return read_image(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _thumb(img: ImageLike, height: int) -> np.ndarray:
    arr = _read_for_thumb(img, height) if isinstance(img, (str, Path)) else img
    check_image(arr, "contact sheet tile")
    h, w = arr.shape[:2]
    width = max(1, round(w * height / h))
    return cv2.resize(arr, (width, height), interpolation=cv2.INTER_AREA)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    bar_h = max(18, tile.shape[0] // 12)
    bar = np.full((bar_h, tile.shape[1], 3), 255, np.uint8)
    scale = bar_h / 30.0
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    while tw > tile.shape[1] - 4 and scale > 0.25:
        scale *= 0.9
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = (max(2, (tile.shape[1] - tw) // 2), (bar_h + th) // 2)
    cv2.putText(bar, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return np.vstack([tile, bar])


def contact_sheet(
    rows: Sequence[Sequence[tuple[ImageLike, str]]],
    *,
    height: int = 200,
    gap: int = 6,
) -> np.ndarray:
    """Compose rows of ``(image, label)`` tiles into one RGB uint8 image.

    Args:
        rows: each row is a sequence of ``(image or path, label)``; rows may differ in length.
        height: thumbnail height in pixels (aspect kept).
        gap: white gap between tiles and rows.
    """
    if not rows:
        raise ValueError("contact_sheet: no rows to draw")
    rendered = []
    for row in rows:
        tiles = [_label(_thumb(img, height), label) for img, label in row]
        parts = []
        for i, t in enumerate(tiles):
            if i:
                parts.append(np.full((t.shape[0], gap, 3), 255, np.uint8))
            parts.append(t)
        rendered.append(np.hstack(parts))
    width = max(r.shape[1] for r in rendered)
    out = []
    for i, r in enumerate(rendered):
        if i:
            out.append(np.full((gap, width, 3), 255, np.uint8))
        pad = np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)
        out.append(np.hstack([r, pad]))
    return np.vstack(out)


def write_contact_sheet(path: str | Path, rows, **kw) -> Path:
    """Draw :func:`contact_sheet` and write it atomically (format from the suffix)."""
    write_image(path, contact_sheet(rows, **kw))
    return Path(path)


# ----------------------------------------------------------------------------------------
# the contact page of an attack set: subject A | morph(s) | subject B, one row per pair
# ----------------------------------------------------------------------------------------
#: The contact page ``generate`` writes into every attack set.
CONTACT_PAGE = "contact.html"
#: Thumbnail height of the contact page (pixels).
THUMB_HEIGHT = 256


def thumbnail_uri(img: ImageLike, height: int = THUMB_HEIGHT, quality: int = 85) -> str:
    """A ``data:image/jpeg;base64,…`` thumbnail ``height`` pixels high (same bytes for
    the same image: the page is deterministic)."""
    import base64

    tile = _thumb(img, height)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(tile, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _variant(rec: dict) -> str:
    return str(rec.get("params", {}).get("variant") or rec.get("tag") or rec.get("generator", "?"))


def contact_rows(records: Sequence[dict], folder: str | Path, *, base: str | Path,
                 height: int = THUMB_HEIGHT, link_contributors: bool = True,
                 thumbs: Optional[Mapping[str, str]] = None) -> list:
    """One row of :class:`~morphlab.reports.document.Tile` per pair of a set's manifest.

    Args:
        records: the set's manifest lines (``"status": "failed"`` ones give a row saying so).
        folder: the set's folder (the lines' ``file`` is relative to it).
        base: the folder of the page (every link is relative to it).
        height: thumbnail height; thumbnails are embedded as ``data:`` URIs.
        link_contributors: link subject A / subject B thumbnails to their images (a path
            relative to ``base``); off, the tooltip shows the dataset-relative path only
            (a page whose bytes must not depend on where the folders lie).
        thumbs: :func:`thumbnail_uri` of morphs already in memory, by the sha256 of their
            file (a lossless file: the same thumbnail as decoding it would give); the
            others are decoded from their files.
    """
    import logging
    from collections import OrderedDict

    from morphlab.reports.document import Tile
    from morphlab.reports.provenance import rel

    folder = Path(folder)
    cache: dict[str, str] = {}

    def thumb(path: Path) -> str:
        key = str(path)
        if key not in cache:
            try:
                cache[key] = thumbnail_uri(path, height)
            except (OSError, ValueError, cv2.error) as exc:  # unreadable: a text-only tile
                logging.getLogger(__name__).info("contact page: no thumbnail of %s (%s)", path, exc)
                cache[key] = ""
        return cache[key]

    def contributor(sub: Any, role: str) -> Tile:
        if not isinstance(sub, dict):
            return Tile(f"{role} (?)")
        path = sub.get("path")
        label = f"{role} ({sub.get('id', '?')})"
        if not path:
            return Tile(label, title=str(sub.get("relpath") or ""))
        src = thumb(Path(path))
        href = rel(path, base) if (link_contributors and src) else ""
        return Tile(label, src, href, str(sub.get("relpath") or ""))

    by_pair: OrderedDict[str, list[dict]] = OrderedDict()
    for r in records:
        by_pair.setdefault(str(r.get("pair_id")), []).append(r)
    rows = []
    for pid, recs in by_pair.items():
        first = recs[0]
        row = [contributor(first.get("subject_a"), "subject A")]
        for r in recs:
            if r.get("status", "ok") != "ok":
                row.append(Tile(f"pair {pid} failed: {r.get('error', '?')}"))
                continue
            path = folder / str(r["file"])
            src = (thumbs or {}).get(str(r.get("sha256"))) if height == THUMB_HEIGHT else None
            src = src or thumb(path)
            row.append(Tile(f"{r.get('generator', '?')} {_variant(r)}", src,
                            rel(path, base) if src else "", str(r["file"])))
        row.append(contributor(first.get("subject_b"), "subject B"))
        rows.append(row)
    return rows


def write_contact_page(manifest: str | Path, out_html: str | Path, *, title: str = "",
                       height: int = THUMB_HEIGHT, link_contributors: bool = True,
                       thumbs: Optional[Mapping[str, str]] = None) -> Path:
    """Write the contact page of the set whose ``manifest.jsonl`` is ``manifest``.

    One row per pair (subject A | its morph(s) | subject B, failed pairs included, in
    manifest order); embedded ``height``-pixel JPEG thumbnails, each linking to the
    full-size image by a path relative to the page. The page names its manifest and the
    manifest's sha256, and holds nothing that depends on time, so the same set gives the
    same bytes.
    """
    from morphlab.io import atomic_write_text, sha256_file
    from morphlab.reports.document import Document, Paragraph, Thumbnails
    from morphlab.reports.provenance import manifest_lines, rel

    manifest = Path(manifest)
    out_html = Path(out_html)
    base = out_html.parent
    records = manifest_lines(manifest)
    rows = contact_rows(records, manifest.parent, base=base, height=height,
                        link_contributors=link_contributors, thumbs=thumbs)
    n_ok = sum(1 for r in records if r.get("status", "ok") == "ok")
    doc = Document(title or f"Contact sheet: {manifest.parent.name}")
    doc.add(
        Paragraph(f"{len(rows)} pairs, {n_ok} morphs: subject A | morph(s) | subject B. "
                  "Click a thumbnail for the full-size image."
                  + ("" if link_contributors else
                     " Contributor images are named by their path inside the dataset "
                     "folder (hover; run.json records the folder).")),
        Thumbnails(rows, height=height),
        Paragraph(f"Made from {rel(manifest, base)} (sha256 {sha256_file(manifest)})."),
    )
    atomic_write_text(out_html, doc.html(base=base))
    return out_html


def contact_page_current(manifest: str | Path, out_html: str | Path) -> bool:
    """True if ``out_html`` is a contact page morphlab wrote from ``manifest`` as it is now."""
    from morphlab.io import sha256_file
    from morphlab.outdir import is_owned

    out_html = Path(out_html)
    if not is_owned(out_html.parent, out_html.name):
        return False
    try:
        return f"(sha256 {sha256_file(manifest)})" in out_html.read_text(encoding="utf-8")
    except OSError:
        return False
