"""`mmembed demo`: a collection of real pictures that ship in packages, searched in ten languages.

Pictures: Noto Color Emoji (Debian fonts-noto-color-emoji), rendered by the emoji dataset builder
with their CLDR names (unicode-cldr-core), or Open Clip Art drawings (openclipart-png). The
demo indexes `size` of them, runs one query per language, prints the hits and writes an HTML
page and a PNG grid. A model without a trained image projector cannot embed pictures: then the
demo says so and runs a cross-lingual TEXT search over the emoji names instead (the pictures are
still shown next to the names they illustrate).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from .collection import Collection
from .documents import Document, image_id
from .render import QueryResult, write_grid, write_html

Source = Literal["emoji", "clipart"]


@dataclass(frozen=True)
class DemoQuery:
    language: str
    text: str
    gloss: str  # English meaning
    emoji: str  # the emoji that answers it (kept in the demo set whatever its size)


QUERIES = (
    DemoQuery("en", "a red apple", "a red apple", "\U0001F34E"),
    DemoQuery("de", "ein kleiner Hund", "a small dog", "\U0001F415"),
    DemoQuery("fr", "une voiture rouge", "a red car", "\U0001F697"),
    DemoQuery("es", "una pizza con queso", "a pizza with cheese", "\U0001F355"),
    DemoQuery("zh", "一只猫", "a cat", "\U0001F408"),
    DemoQuery("ja", "宇宙へ飛ぶロケット", "a rocket flying to space", "\U0001F680"),
    DemoQuery("ar", "الشمس المشرقة", "the shining sun", "\u2600"),
    DemoQuery("hi", "गिटार बजाना", "playing the guitar", "\U0001F3B8"),
    DemoQuery("sw", "mti mkubwa", "a big tree", "\U0001F333"),
    DemoQuery("ru", "дом с садом", "a house with a garden", "\U0001F3E1"),
)
LANGS = tuple(sorted({q.language for q in QUERIES}))
FULL_RENDER_FROM = 100  # demo sizes from here on render all emoji (so every query's answer is present)


@dataclass
class Picture:
    concept: str
    image: Path
    names: dict[str, str] = field(default_factory=dict)  # language -> name


@dataclass
class DemoResult:
    mode: Literal["text-to-image", "cross-lingual text"]
    collection: Collection
    results: list[QueryResult]
    html: Path
    grid: Path
    seconds: float


def _emoji_concept(ch: str) -> str:
    return "emoji:" + "-".join(f"{ord(c):04x}" for c in ch if c != "\ufe0f")


def _order(concept: str) -> str:
    return hashlib.sha1(f"demo:{concept}".encode()).hexdigest()


def emoji_pictures(data_dir: Path, size: int, log: Callable[[str], None]) -> list[Picture]:
    """`size` emoji (the ones the queries look for, then a stable sample) with names per language."""
    from ..data.builders import build_dataset
    from ..data.manifest import iter_manifest, resolve_image

    # Rendering every emoji (~1,900, ~15 s) guarantees the queries' answers are there; quick runs
    # with a small size render only `size` emoji, picked by the builder's stable hash.
    limit = None if size >= FULL_RENDER_FROM else size
    card = data_dir / "card.json"
    options = json.loads(card.read_text()).get("options", {}) if card.is_file() else {}
    if options.get("langs") != list(LANGS) or options.get("limit") != limit:
        log(f"rendering {limit or 'all'} Noto Color Emoji with CLDR names in {', '.join(LANGS)} -> {data_dir}")
        build_dataset("emoji", data_dir, langs=",".join(LANGS), limit=limit)
    pictures: dict[str, Picture] = {}
    for split in ("train", "dev", "test"):
        manifest = data_dir / f"{split}.jsonl"
        for rec in iter_manifest(manifest) if manifest.is_file() else ():
            pic = pictures.setdefault(rec.concept, Picture(rec.concept, resolve_image(manifest, rec)))
            if rec.kind == "name":
                pic.names.setdefault(rec.lang, rec.caption)
    wanted = [_emoji_concept(q.emoji) for q in QUERIES]
    chosen = [c for c in wanted if c in pictures]
    rest = sorted((c for c in pictures if c not in chosen), key=_order)
    return [pictures[c] for c in (chosen + rest)[:size]]


def clipart_pictures(size: int) -> list[Picture]:
    from ..data.builders import sources

    root = sources.OPENCLIPART_PNG.require()
    files = sorted(root.rglob("*.png"), key=lambda p: _order(str(p.relative_to(root))))[:size]
    return [Picture(str(p.relative_to(root)), p, {"en": p.stem.replace("_", " ")}) for p in files]


def _image_docs(pictures: list[Picture], source: str) -> list[Document]:
    return [Document(id=image_id(p.image), kind="image", text=p.names.get("en", p.concept), image=str(p.image.resolve()),
                     source=str(p.image.resolve()), tags=(source,), meta={"concept": p.concept})
            for p in pictures]


def _name_docs(pictures: list[Picture]) -> list[Document]:
    return [Document(id=f"name:en:{p.concept}", kind="text", text=p.names["en"], image=str(p.image.resolve()),
                     language="en", tags=("emoji",), meta={"concept": p.concept})
            for p in pictures if "en" in p.names]


def run_demo(
    out: Path,
    model: Any = None,
    size: int = 300,
    source: Source = "emoji",
    k: int = 5,
    log: Callable[[str], None] = print,
    gloss: bool = True,
) -> DemoResult:
    from ..encoding import _require_images
    from ..registry import load
    from ..serialization import model_fingerprint

    start = time.perf_counter()
    out = Path(out)
    model = load(model) if model is None or isinstance(model, str) else model
    try:
        _require_images(model)
        mode = "text-to-image"
    except RuntimeError as why:
        log(f"NOTE: {why}\n=> running the CROSS-LINGUAL TEXT search demo instead: queries in {len(LANGS)} "
            "languages against the English names of the emoji (pictures shown for illustration).")
        mode = "cross-lingual text"
    if mode == "cross-lingual text" and source != "emoji":
        log("NOTE: the text demo uses the emoji names; --source clipart needs a model with image support.")
        source = "emoji"
    pictures = emoji_pictures(out / "emoji-data", size, log) if source == "emoji" else clipart_pictures(size)
    safe = model.name.replace("/", "_")
    # the fingerprint in the name: a changed model (retrained, label prior on/off) gets its own fresh collection
    # instead of being refused by the old one
    name = f"collection-{safe}-{model_fingerprint(model)}-{'images' if mode == 'text-to-image' else 'names'}.lance"
    collection = Collection(out / name, model=model)
    docs = _image_docs(pictures, source) if mode == "text-to-image" else _name_docs(pictures)
    t0 = time.perf_counter()
    stored = collection.existing_hashes([d.id for d in docs])
    todo = [d.with_hash() for d in docs]
    todo = [d for d in todo if stored.get(d.id) != d.content_hash]
    what = "pictures" if mode == "text-to-image" else "names"
    log(f"indexing {len(todo)} {what} ({len(docs) - len(todo)} already stored) with {model.name} ...")
    if todo:
        # vectors and (image rows) looks, so a later `search --image` ranks by the look too
        collection.upsert(todo, *collection.embed_for_storage(todo, progress=True))
    log(f"indexed in {time.perf_counter() - t0:.1f} s; the collection holds {len(collection)} rows")
    kind = "image" if mode == "text-to-image" else "text"
    langs = glossed_languages(log) if gloss else set()
    results = [QueryResult(q.text, collection.search(q.text, k=k, kind=kind,
                                                     query_lang=q.language if q.language in langs else None),
                           q.language, q.gloss) for q in QUERIES]
    title = f"mmembed demo: {mode} search over {len(docs)} {source} {what}"
    subtitle = f"model {model.name} (dim {collection.dim}); one query per language, top {k}"
    html = write_html(out / "demo.html", results, title, subtitle)
    grid = write_grid(out / "demo_grid.png", results)
    return DemoResult(mode, collection, results, html, grid, time.perf_counter() - start)


def glossed_languages(log: Callable[[str], None]) -> set[str]:
    """The demo's query languages whose dictionaries are installed (query glossing, mmembed/glossary.py)."""
    from ..glossary import SOURCES, GlossaryError, glossary_for

    langs, missing = set(), []
    for lang in sorted(set(LANGS) & set(SOURCES)):
        try:
            glossary_for(lang)
            langs.add(lang)
        except (GlossaryError, ImportError) as why:
            missing.append(f"{lang} ({why})")
    if missing:
        log("NOTE: these queries are not glossed: " + "; ".join(missing))
    return langs


def target_ranks(results: list[QueryResult]) -> dict[str, Optional[int]]:
    """For each query, the rank of the emoji it asks for among the hits (None: not in the top k)."""
    ranks: dict[str, Optional[int]] = {}
    by_text = {q.text: _emoji_concept(q.emoji) for q in QUERIES}
    for r in results:
        target = by_text.get(r.query)
        ranks[r.query] = next((h.rank for h in r.hits if h.document.meta.get("concept") == target), None)
    return ranks



def hit_label(hit) -> str:
    """The emoji itself before its name (clip art: the title)."""
    concept = str(hit.document.meta.get("concept", ""))
    if concept.startswith("emoji:"):
        return "".join(chr(int(h, 16)) for h in concept[6:].split("-")) + " " + hit.document.text
    return hit.document.text
