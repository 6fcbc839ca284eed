"""Showing search results to a person: a self-contained HTML page and a PNG thumbnail grid.

Thumbnails are embedded as data URLs, so the page can be mailed or opened anywhere. Row labels
of the PNG are drawn with DejaVu Sans when it covers every character of the query (no CJK or
Devanagari fonts ship by default); otherwise the English gloss is shown. The HTML always shows
the query as typed.
"""
from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from ..paths import write_atomically, write_text_atomically
from .documents import Hit

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class QueryResult:
    query: str  # as typed, any language (or a description of an image query)
    hits: list[Hit]
    language: str = ""
    gloss: str = ""  # English meaning, for labels in scripts the PNG font cannot draw


def thumbnail(path: Optional[str], size: int = 96):
    """A size x size RGB thumbnail of an image file, or None when there is none or it is unreadable."""
    from PIL import Image

    from ..images import ImageInputError, open_image

    if not path or not Path(path).is_file():
        return None
    try:
        img = open_image(path)
    except ImageInputError:
        return None
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def data_url(img) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;background:#fafafa}
h1{font-size:1.4em}.q{margin:1.5em 0 .4em;font-size:1.1em}.lang{color:#888;font-size:.8em;margin-left:.5em}
.row{display:flex;gap:10px;flex-wrap:wrap}.hit{width:130px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;text-align:center}
.hit img{width:96px;height:96px;object-fit:contain}.cap{font-size:.8em;overflow-wrap:anywhere}.score{color:#666;font-size:.75em}"""


def html_page(results: Sequence[QueryResult], title: str, subtitle: str = "", thumb: int = 96) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{_CSS}</style>",
             f"</head><body><h1>{esc(title)}</h1><p>{esc(subtitle)}</p>"]
    for r in results:
        gloss = f" ({esc(r.gloss)})" if r.gloss else ""
        parts.append(f"<div class='q'>{esc(r.query)}<span class='lang'>{esc(r.language)}{gloss}</span></div><div class='row'>")
        for h in r.hits:
            img = thumbnail(h.document.image, thumb)
            pic = f"<img src='{data_url(img)}' alt=''>" if img is not None else ""
            parts.append(f"<div class='hit'>{pic}<div class='cap'>{esc(h.document.text[:80])}</div>"
                         f"<div class='score'>#{h.rank} &middot; {h.score:.3f} &middot; {esc(h.document.kind)}</div></div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(path: str | os.PathLike, results: Sequence[QueryResult], title: str, subtitle: str = "") -> Path:
    return write_text_atomically(path, html_page(results, title, subtitle))


@lru_cache(maxsize=1)
def _font_chars() -> frozenset[int]:
    try:
        from fontTools.ttLib import TTFont

        return frozenset(TTFont(str(FONT)).getBestCmap())
    except Exception:  # noqa: BLE001 - no font or no fontTools: ASCII labels only
        return frozenset(range(32, 127))


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(FONT), size) if FONT.is_file() else ImageFont.load_default()


def drawable(text: str) -> bool:
    """True when the label font can draw `text` correctly (right-to-left scripts need shaping)."""
    from PIL import features

    chars = _font_chars()
    rtl_ok = features.check("raqm")
    return all(ord(c) in chars and (rtl_ok or ord(c) < 0x0590) for c in text)


def label_of(r: QueryResult) -> str:
    text = r.query if drawable(r.query) else (r.gloss or "(query)")
    return f"{r.language}: {text}" if r.language else text


def grid_png(results: Sequence[QueryResult], thumb: int = 96, label_width: int = 240):
    """One row per query: its label, then its hits' thumbnails (or captions) with scores."""
    from PIL import Image, ImageDraw

    cols = max((len(r.hits) for r in results), default=1) or 1
    cell_h = thumb + 22
    img = Image.new("RGB", (label_width + cols * (thumb + 8) + 8, max(1, len(results)) * cell_h + 8), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(15), _font(11)
    for row, r in enumerate(results):
        y = 4 + row * cell_h
        draw.text((8, y + thumb // 2 - 8), label_of(r)[:28], fill="black", font=font)
        for col, h in enumerate(r.hits):
            x = label_width + col * (thumb + 8)
            pic = thumbnail(h.document.image, thumb)
            if pic is not None:
                img.paste(pic, (x, y))
            else:
                draw.rectangle((x, y, x + thumb, y + thumb), outline=(200, 200, 200))
                caption = h.document.text if drawable(h.document.text) else h.document.id
                draw.multiline_text((x + 4, y + 4), _wrap(caption, 12), fill="black", font=small)
            draw.text((x, y + thumb + 4), f"{h.score:.3f}", fill=(90, 90, 90), font=small)
    return img


def _wrap(text: str, width: int, lines: int = 6) -> str:
    words, out, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            out.append(line)
            line = ""
        line = (line + " " + w).strip()
    out.append(line)
    return "\n".join(out[:lines])


def write_grid(path: str | os.PathLike, results: Sequence[QueryResult], thumb: int = 96) -> Path:
    grid = grid_png(results, thumb)
    return write_atomically(path, lambda tmp: grid.save(tmp, format="PNG"))
