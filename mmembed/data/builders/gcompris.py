"""GCompris photographs: 186 real photos (tools, fish, wild and farm animals, monuments, household
things) with names and descriptions that GCompris's translators put into ~45 languages.

Every other training image here is an emoji render, a drawing or a cut-out Tux Paint stamp on
white; these are whole-scene photographs (Wikimedia Commons and publicdomainpictures.net, license
per file in the activity's README), the domain of the `photos` eval set.

Source (Debian `gcompris-qt-data`): one Qt resource bundle per activity under `rcc/`, read with
`qt_resources.read_rcc`, and the `qsTr` translations in `translations/gcompris_<locale>.qm`.
- The explore activities (world animals, farm animals, monuments) list each photo (`image2`) with a
  `title` (kind "name") and a `text` (kind "description"), both translated through the catalogs.
- The categorization activity's photo folders (tools, renewable energy, fish, other objects) name
  a photo only by its file name; `NAMES` maps each file stem to an English name and, where the
  vocabulary activity (`lang`) has the word, its key there: that word is translated by people in
  ~45 `content-<locale>.json` files, which also add languages (ar, hi, zh) to explore titles.

Concept = one object (its English name), so every photo of "hammer" shares a split and no photo of
a test object is trained on. Dev and test keep one photo per object (more would make a text ->
image query's answer ambiguous); train keeps them all (`gcompris:<object>~<n>`). Objects that the
`photos` eval set shows (cat, cup) are forced into the test split: training on them would measure
memory on that set.
"""
from __future__ import annotations

import io
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.clipart import check_max_side, write_flat_image
from mmembed.data.builders.concepts import Concept, assign_split, lang_allowed, langs_option, parse_langs, select
from mmembed.data.builders.langcodes import to_cldr
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset
from mmembed.data.builders.photos import PHOTOS
from mmembed.data.builders.qt_resources import read_qm, read_rcc

NAME = "gcompris"
DESCRIPTION = ("GCompris photographs (tools, fish, animals, monuments, household objects) with names and "
               "descriptions translated by people into ~45 languages")
CAPTION_LICENSE = "GPL-3.0-or-later (captions: GCompris and its translators)"
PACKAGE_LICENSE = "GPL-3.0-or-later (gcompris-qt-data; no per-file entry)"
ENGLISH = "en"
PHOTO_SUFFIXES = (".webp", ".jpg", ".jpeg", ".png")

EXPLORE_ACTIVITIES = ("explore_world_animals", "explore_farm_animals", "explore_monuments")
CATEGORIZATION = "categorization"
CATEGORIZATION_FOLDERS = ("tools", "renewable", "fishes", "others")  # 'monuments' repeats explore_monuments
LANG_ACTIVITY = "lang"


@dataclass(frozen=True)
class ObjectName:
    english: str
    lang_word: Optional[str] = None  # key (without .ogg) in the lang activity's content-<locale>.json


# Categorization photos are named only by their file stem (trailing digits removed).
NAMES: dict[str, ObjectName] = {
    "scissors": ObjectName("scissors", "scissors"), "tweezer": ObjectName("tweezers"),
    "sickle": ObjectName("sickle"), "multimeter": ObjectName("multimeter"),
    "screwDriver": ObjectName("screwdriver", "screwdriver"), "cuttingTool": ObjectName("cutting tool"),
    "wrench": ObjectName("wrench", "wrench"), "plier": ObjectName("pliers", "pliers"),
    "sideCutter": ObjectName("side cutter"), "hammer": ObjectName("hammer", "hammer"),
    "spray": ObjectName("spray bottle"), "nailCutter": ObjectName("nail clipper"),
    "measuringTape": ObjectName("tape measure", "tape_measure"), "windmill": ObjectName("windmill"),
    "dam": ObjectName("dam", "dam"), "solar": ObjectName("solar panel"),
    "geothermal": ObjectName("geothermal power station"), "fish": ObjectName("fish", "fish"),
    "chair": ObjectName("chair", "chair"), "bulb": ObjectName("light bulb", "bulb"),
    "baseball": ObjectName("baseball"), "volleyball": ObjectName("volleyball"),
    "erasers": ObjectName("eraser", "eraser"), "blackslate": ObjectName("blackboard"),
    "spoons": ObjectName("spoons", "spoon"), "igloo": ObjectName("igloo"),
    "pillow": ObjectName("pillow", "pillow"), "pan": ObjectName("frying pan", "pan"),
    "plate": ObjectName("plate", "plate"), "buffetset": ObjectName("cutlery"),
    "weighingMachine": ObjectName("kitchen scale", "scale"), "cup": ObjectName("cup"),
    "knife": ObjectName("knife", "knife"), "bucket": ObjectName("bucket", "bucket"),
    "pencil": ObjectName("pencil", "pencil"),
}

# Objects the `photos` eval set shows: its emoji names, plus what a photo there shows beside them.
EVAL_OBJECTS = frozenset(name.casefold() for photo in PHOTOS for name in photo.english) | {"cup"}

_QSTR = r'qsTr\("((?:[^"\\]|\\.)*)"\)'
_FIELD = re.compile(rf'"(title|text|image2)"\s*:\s*(?:{_QSTR}|"([^"]*)")')


@dataclass(frozen=True)
class Photo:
    path: str  # resource path inside its bundle, e.g. /gcompris/src/activities/.../tiger.webp
    data: bytes
    license: str


@dataclass
class GObject:
    """One object: its photos (path order) and captions (lang, text, kind)."""

    english: str
    photos: list[Photo] = field(default_factory=list)
    captions: list[tuple[str, str, str]] = field(default_factory=list)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def read_licenses(files: dict[str, bytes]) -> dict[str, str]:
    """{resource path: 'License (Copyright; Source)'} from every README in one bundle: blocks of
    'Key: value' lines, 'Files:' followed by paths relative to the README's folder."""
    out: dict[str, str] = {}
    for path, blob in files.items():
        if PurePosixPath(path).name != "README":
            continue
        folder = PurePosixPath(path).parent
        for block in re.split(r"\n\s*\n", blob.decode("utf-8", errors="replace")):
            meta: dict[str, str] = {}
            listed: list[str] = []
            in_files = False
            for line in block.splitlines():
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("Copyright", "License", "Source", "Files"):
                    in_files = key.strip() == "Files"
                    meta[key.strip()] = value.strip()
                    listed += value.split() if in_files else []
                elif in_files:
                    listed += line.split()
            if "License" not in meta:
                continue
            credit = "; ".join(meta[k] for k in ("Copyright", "Source") if meta.get(k))
            for name in listed:
                out[str(folder / name)] = f"{meta['License']} ({credit})" if credit else meta["License"]
    return out


def explore_entries(qml: str) -> list[dict[str, str]]:
    """The `{...}` entries of an explore board: {'title', 'text', 'image2'} where present."""
    entries = []
    for block in re.split(r"\n\s*\},?\s*\n", qml):
        fields = {m.group(1): _unescape(m.group(2) if m.group(2) is not None else m.group(3))
                  for m in _FIELD.finditer(block)}
        if "image2" in fields and "title" in fields:
            entries.append(fields)
    return entries


class Translations:
    """The translators' words: qsTr catalogs per locale and the lang activity's vocabulary."""

    def __init__(self, root: Path, lang_files: dict[str, bytes], lang_set: Optional[frozenset[str]]):
        self.catalogs: dict[str, dict[tuple[str, str], str]] = {}
        self.by_source: dict[str, dict[str, str]] = {}
        for qm in sorted((root / "translations").glob("gcompris_*.qm")):
            locale = to_cldr(qm.stem.removeprefix("gcompris_"))
            if locale == ENGLISH or not lang_allowed(locale, lang_set):
                continue
            catalog = read_qm(qm)
            self.catalogs[locale] = catalog
            self.by_source[locale] = {source: text for (_, source), text in sorted(catalog.items())}
        self.words: dict[str, dict[str, str]] = {}  # locale -> {word key: word}
        for path, blob in sorted(lang_files.items()):
            m = re.search(r"/content-([^/]+)\.json$", path)
            if m:
                words = json.loads(blob.decode("utf-8"))
                self.words[to_cldr(m.group(1))] = {k.removesuffix(".ogg"): v for k, v in words.items()}
        english = self.words.get(ENGLISH, {})
        self.word_key = {word.casefold(): key for key, word in sorted(english.items())}

    def qstr(self, context: str, source: str) -> list[tuple[str, str]]:
        """(locale, translation) of one qsTr string; the board's own context first."""
        out = []
        for locale, catalog in self.catalogs.items():
            text = catalog.get((context, source)) or self.by_source[locale].get(source)
            if text:
                out.append((locale, text))
        return out

    def word(self, key: Optional[str]) -> list[tuple[str, str]]:
        if key is None:
            return []
        return [(locale, words[key]) for locale, words in sorted(self.words.items())
                if key in words and words[key].strip()]


def _add(objects: dict[str, GObject], english: str, photo: Photo, captions: list[tuple[str, str, str]]) -> None:
    obj = objects.setdefault(english.casefold(), GObject(english))
    obj.photos.append(photo)
    obj.captions.extend(c for c in captions if c not in obj.captions)


def collect(root: Path, lang_set: Optional[frozenset[str]]) -> tuple[dict[str, GObject], Counter]:
    """Every named photo of the explore and categorization activities, grouped by object."""
    bundles = {name: read_rcc(root / "rcc" / f"{name}.rcc")
               for name in (*EXPLORE_ACTIVITIES, CATEGORIZATION, LANG_ACTIVITY)}
    tr = Translations(root, bundles[LANG_ACTIVITY], lang_set)
    objects: dict[str, GObject] = {}
    skipped: Counter = Counter()
    for activity in EXPLORE_ACTIVITIES:
        files = bundles[activity]
        licenses = read_licenses(files)
        for path in sorted(p for p in files if re.search(r"/resource/board/[^/]+\.qml$", p)):
            context = PurePosixPath(path).stem
            for entry in explore_entries(files[path].decode("utf-8")):
                image = entry["image2"].removeprefix("qrc:")
                if image not in files:
                    skipped["explore_image_missing"] += 1
                    continue
                title, text = entry["title"], entry.get("text", "")
                caps = [(ENGLISH, title, "name")]
                caps += [(loc, t, "name") for loc, t in tr.qstr(context, title)]
                caps += [(loc, t, "name") for loc, t in tr.word(tr.word_key.get(title.casefold()))]
                if text:
                    caps += [(ENGLISH, text, "description")]
                    caps += [(loc, t, "description") for loc, t in tr.qstr(context, text)]
                _add(objects, title, Photo(image, files[image], licenses.get(image, PACKAGE_LICENSE)), caps)
    files = bundles[CATEGORIZATION]
    licenses = read_licenses(files)
    for path in sorted(files):
        parts = PurePosixPath(path)
        if parts.suffix.lower() not in PHOTO_SUFFIXES or parts.parent.name not in CATEGORIZATION_FOLDERS:
            continue
        name = NAMES.get(re.sub(r"\d+$", "", parts.stem))
        if name is None:
            skipped["categorization_unnamed"] += 1
            continue
        caps = [(ENGLISH, name.english, "name")] + [(loc, t, "name") for loc, t in tr.word(name.lang_word)]
        _add(objects, name.english, Photo(path, files[path], licenses.get(path, PACKAGE_LICENSE)), caps)
    return objects, skipped


def _slug(english: str) -> str:
    """'Château de Chambord' -> 'chateau-de-chambord' (accents dropped, not the letters)."""
    ascii_name = unicodedata.normalize("NFKD", english).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.casefold()).strip("-")


def object_split(english: str) -> str:
    return "test" if english.casefold() in EVAL_OBJECTS else assign_split(f"{NAME}:{_slug(english)}")


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    max_side: int = 224,
) -> Path:
    """Build the GCompris photos dataset into `out`: `limit` objects by a stable hash (all by
    default), captions in `langs` only (default: English plus every translation)."""
    root = sources.GCOMPRIS.require()
    check_max_side(max_side)
    lang_set = parse_langs(langs)
    info = sources.GCOMPRIS.info()
    source = f"{info.package} {info.version}"
    objects, skipped = collect(root, lang_set)
    chosen = select(objects.values(), lambda o: _slug(o.english), limit)
    untranslated: Counter = Counter()
    extra_photos_dropped = 0
    with staging_dir(out) as tmp:
        records = []
        for obj in chosen:
            split = object_split(obj.english)
            photos = obj.photos if split == "train" else obj.photos[:1]
            extra_photos_dropped += len(obj.photos) - len(photos)
            english = {text.casefold() for lang, text, _ in obj.captions if lang == ENGLISH}
            for n, photo in enumerate(photos):
                cid = f"{NAME}:{_slug(obj.english)}" + (f"~{n}" if n else "")
                rel = write_flat_image(io.BytesIO(photo.data), tmp, cid.split(":", 1)[1], max_side)
                concept = Concept(cid, image=rel, split=split)
                for lang, text, kind in obj.captions:
                    if lang != ENGLISH and not lang.startswith("en") and text.casefold() in english:
                        if n == 0:  # counted once per object, not per photo
                            untranslated[lang] += 1  # an untranslated copy, not this language
                        continue
                    if lang_allowed(lang, lang_set):
                        concept.add(text, lang, kind, source)
                records.extend(concept.records(f"{photo.license}; {CAPTION_LICENSE}"))
        if not records:
            raise ValueError(f"no caption of any GCompris photo is in langs={sorted(lang_set or [])}")
        card = DatasetCard(
            dataset=NAME, description=DESCRIPTION, license=f"per photo (see each record); {CAPTION_LICENSE}",
            sources=[info],
            options={"limit": limit, "langs": langs_option(lang_set), "max_side": max_side},
            notes=[
                "Whole-scene photographs from GCompris's explore and categorization activities; each "
                "record's license field carries its photo's license and credit from the activity's README.",
                "Explore photos: title (name) and text (description), translated through GCompris's "
                "qsTr catalogs. Categorization photos: a hand-written name per file stem (NAMES), "
                "translated where the lang activity has the word.",
                "Concept = object: all photos of one object share a split; dev and test keep the first "
                "photo of each object (stats.extra_photos_dropped), train keeps them all (id ~n).",
                f"Objects shown in the `photos` eval set are forced into test: {', '.join(sorted(EVAL_OBJECTS))}.",
                "A non-English caption equal to the English one is an untranslated copy and is dropped "
                "(stats.untranslated_copies); monument names that stay the same in a language go with them.",
            ],
            stats={"objects": len(chosen), "photos": sum(len(o.photos) for o in chosen),
                   "skipped": dict(sorted(skipped.items())), "extra_photos_dropped": extra_photos_dropped,
                   "untranslated_copies": dict(sorted(untranslated.items()))},
        )
        write_dataset(tmp, records, card, langs=lang_set)
    return Path(out)
