"""Tiny evaluation datasets written by the tests: drawn shapes with captions in 3 languages and a
few parallel sentences, in the manifest format the builders write (DIR/{train,test}.jsonl)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from mmembed.data.manifest import PairRecord, write_manifest

COLORS = {"red": ("rot", "rouge", (220, 30, 30)), "blue": ("blau", "bleu", (30, 60, 220)),
          "green": ("grün", "vert", (30, 170, 60)), "black": ("schwarz", "noir", (10, 10, 10))}
SHAPES = {"circle": ("Kreis", "cercle"), "square": ("Quadrat", "carré")}
SENTENCES = [
    ("The cat sleeps on the sofa.", "Die Katze schläft auf dem Sofa.", "Le chat dort sur le canapé."),
    ("Open the window, please.", "Öffne bitte das Fenster.", "Ouvre la fenêtre, s'il te plaît."),
    ("We are going to the market.", "Wir gehen auf den Markt.", "Nous allons au marché."),
    ("The train is late today.", "Der Zug ist heute spät.", "Le train est en retard aujourd'hui."),
    ("I like green tea.", "Ich mag grünen Tee.", "J'aime le thé vert."),
    ("Where is the station?", "Wo ist der Bahnhof?", "Où est la gare ?"),
]


def _draw(path: Path, shape: str, rgb: tuple[int, int, int]) -> None:
    img = Image.new("RGB", (48, 48), "white")
    box = (8, 8, 40, 40)
    (ImageDraw.Draw(img).ellipse if shape == "circle" else ImageDraw.Draw(img).rectangle)(box, fill=rgb)
    img.save(path)


def shape_records(root: Path, split: str) -> list[PairRecord]:
    (root / "images").mkdir(parents=True, exist_ok=True)
    out = []
    for color, (de_c, fr_c, rgb) in COLORS.items():
        for shape, (de_s, fr_s) in SHAPES.items():
            rel = f"images/{color}_{shape}.png"
            _draw(root / rel, shape, rgb)
            concept = f"shape:{color}-{shape}"
            for lang, name, category in (("en", f"{color} {shape}", shape), ("de", f"{de_c}es {de_s}", de_s),
                                         ("fr", f"{fr_s} {fr_c}", fr_s)):
                out.append(PairRecord(concept=concept, caption=name, lang=lang, image=rel, kind="name", split=split))
                out.append(PairRecord(concept=concept, caption=category, lang=lang, image=rel, kind="category", split=split))
    return out


def parallel_records(split: str) -> list[PairRecord]:
    out = []
    for i, (en, de, fr) in enumerate(SENTENCES):
        for lang, text in (("de", de), ("fr", fr)):
            out.append(PairRecord(concept=f"sent:{i}", caption=text, lang=lang, text=en, text_lang="en",
                                  kind="sentence", split=split))
    return out


def make_eval_data(root: Path) -> Path:
    """root/shapes/{train,test}.jsonl + images, root/parallel/test.jsonl; returns root."""
    shapes = root / "shapes"
    write_manifest(shapes / "test.jsonl", shape_records(shapes, "test"))
    write_manifest(shapes / "train.jsonl", shape_records(shapes, "train"))
    write_manifest(root / "parallel" / "test.jsonl", parallel_records("test"))
    return root


def write_lines(path: Path, rows) -> Path:
    """A manifest written as given (dicts as JSON lines, str as raw lines): for malformed-input tests."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def make_color_data(root: Path, per_concept: int = 1, concepts=("red", "green", "blue", "black"),
                    langs=("en", "de")) -> Path:
    """root/test.jsonl: solid-colour 32x32 PNGs, `per_concept` distinct images per colour (shades),
    each with an English and German name: the audit's fixture."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for color in concepts:
        de, _, rgb = COLORS[color]
        for i in range(per_concept):
            rel = f"img/{color}{i or ''}.png"
            Image.new("RGB", (32, 32), tuple(max(0, c - 40 * i) for c in rgb)).save(root / rel)
            for lang, caption in (("en", color), ("de", de)):
                if lang in langs:
                    rows.append({"concept": color, "caption": caption, "lang": lang, "image": rel, "kind": "name",
                                 "split": "test"})
    write_lines(root / "test.jsonl", rows)
    return root
