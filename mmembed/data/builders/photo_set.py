"""Eval-only photo sets: real photographs that ship inside a package, each captioned by the CLDR
names and keywords of emoji picked for it by hand.

Shared by `photos` (scikit-image / scikit-learn sample photos) and `debian-photos` (Scratch and
Palapeli photographs). A set is a typed table of `Photo` rows; each row names the emoji whose CLDR
short names (kind="name") and keywords (kind="keyword") in every annotation locale are its
captions, and the English names it expects: a build whose CLDR disagrees (a typo in a code point,
a renamed emoji) stops instead of captioning a photo with the wrong emoji. Every record goes to
the test split: a few dozen photos are far too few to train on, and a photo must never leak into
training through the hash split.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import Annotation, annotation_locales, read_annotations
from mmembed.data.builders.concepts import Concept, lang_allowed, langs_option, parse_langs, select
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset
from mmembed.data.builders.sources import DebianSource, MissingSourceError, PypiSource

CAPTION_LICENSE = "Unicode-DFS-2016 (captions: Unicode CLDR)"
SPLIT = "test"
ENGLISH = "en"
Source = Union[PypiSource, DebianSource]


@dataclass(frozen=True)
class Photo:
    """One photo and the emoji whose CLDR names describe it honestly."""

    stem: str  # concept id suffix and output file name
    package: str  # key of the set's `packages`
    path: str  # file inside the package folder
    emoji: tuple[str, ...]  # CLDR code points (U+FE0F removed)
    english: tuple[str, ...]  # CLDR 'en' short names of `emoji`, checked at build time
    license: str  # of the photo, as the package documents it
    origin: str  # who took it / where it comes from
    caveat: str = ""  # where the captions fit the photo only loosely


@dataclass(frozen=True)
class PhotoSet:
    """What one eval-only photo dataset is: its table, where the photos come from, its card text."""

    name: str  # dataset name; concept ids are `<id_prefix>:<stem>`
    id_prefix: str
    description: str
    license: str
    photos: tuple[Photo, ...]
    packages: dict[str, Source]  # Photo.package -> the source whose folder holds Photo.path
    excluded: dict[str, str]  # photos in the packages that are left out, and why
    notes: tuple[str, ...] = ()  # card notes besides the ones every photo set has

    def concept_id(self, photo: Photo) -> str:
        return f"{self.id_prefix}:{photo.stem}"


def photo_file(photo: Photo, folders: dict[str, Path], packages: dict[str, Source]) -> Path:
    path = folders[photo.package] / photo.path
    if not path.is_file():
        info = packages[photo.package].info()
        raise MissingSourceError(
            f"{path} not found in the installed {info.package} {info.version}; "
            f"install a version that ships it with `{packages[photo.package].install_hint}`")
    return path


def check_mapping(photos: Sequence[Photo], english: dict[str, Annotation]) -> None:
    """Stop when CLDR's English name of a mapped emoji is not the one the table expects, or when two
    photos share an emoji (two right answers for one caption would make R@1 ambiguous)."""
    owner: dict[str, str] = {}
    for photo in photos:
        if len(photo.emoji) != len(photo.english):
            raise ValueError(f"photo {photo.stem!r}: {len(photo.emoji)} emoji but {len(photo.english)} names")
        for cp, expected in zip(photo.emoji, photo.english):
            if cp in owner:
                raise ValueError(f"photo {photo.stem!r}: emoji {cp!r} already captions photo {owner[cp]!r}")
            owner[cp] = photo.stem
            ann = english.get(cp)
            found = ann.name if ann else None
            if found != expected:
                raise ValueError(f"photo {photo.stem!r}: CLDR names emoji {cp!r} {found!r}, the table "
                                 f"expects {expected!r} (fix the photo table)")


def _concept(concept_id: str, photo: Photo, image: str, per_locale: dict[str, dict[str, Annotation]],
             source: str) -> Concept:
    concept = Concept(concept_id, image=image)
    for locale in sorted(per_locale):
        anns = [per_locale[locale][cp] for cp in photo.emoji if cp in per_locale[locale]]
        # every name before any keyword: a keyword repeating a name is then dropped as a duplicate
        for ann in anns:
            if ann.name:
                concept.add(ann.name, locale, "name", source)
        for ann in anns:
            for word in ann.keywords:
                concept.add(word, locale, "keyword", source)
    return concept


def _save_rgb_png(src: Path, dst: Path) -> tuple[str, tuple[int, int]]:
    """Copy `src` as an RGB PNG (grayscale photos become 3 equal channels); -> (source mode, size)."""
    from PIL import Image

    with Image.open(src) as im:
        mode = im.mode
        rgb = im.convert("RGB")
    rgb.save(dst, format="PNG")
    return mode, rgb.size


def build_photo_set(
    photo_set: PhotoSet,
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build `photo_set` into `out` (every record in the test split). `limit` keeps that many photos
    (stable hash); `langs` keeps only those CLDR locales."""
    photos = select(photo_set.photos, photo_set.concept_id, limit)
    packages = photo_set.packages
    folders = {key: packages[key].require() for key in sorted({p.package for p in photos})}
    files = {p.stem: photo_file(p, folders, packages) for p in photos}
    common = sources.CLDR.require()
    check_mapping(photo_set.photos, read_annotations(common, ENGLISH))  # the whole table, whatever the limit
    lang_set = parse_langs(langs)
    locales = [loc for loc in annotation_locales(common) if lang_allowed(loc, lang_set)]
    if not locales:
        raise ValueError(f"no CLDR annotation locale matches langs={sorted(lang_set or [])}")
    per_locale = {loc: read_annotations(common, loc) for loc in locales}
    cldr_info = sources.CLDR.info()
    source = f"{cldr_info.package} {cldr_info.version}"

    with staging_dir(out) as tmp:
        (tmp / "images").mkdir()
        records, image_info = [], {}
        for photo in photos:
            rel = f"images/{photo.stem}.png"
            mode, size = _save_rgb_png(files[photo.stem], tmp / rel)
            image_info[photo.stem] = {"file": f"{photo.package}/{photo.path}", "source_mode": mode,
                                      "size": list(size), "license": photo.license, "origin": photo.origin,
                                      "emoji": list(photo.emoji), "en_names": list(photo.english),
                                      "caveat": photo.caveat}
            license = f"{photo.license} (photo: {photo.origin}); {CAPTION_LICENSE}"
            concept = _concept(photo_set.concept_id(photo), photo, rel, per_locale, source)
            # eval only: every record in the test split, whatever the concept-id hash says
            records += [dataclasses.replace(r, split=SPLIT) for r in concept.records(license)]
        n = len(photo_set.photos)
        card = DatasetCard(
            dataset=photo_set.name,
            description=photo_set.description,
            license=photo_set.license,
            sources=[packages[k].info() for k in folders] + [cldr_info],
            options={"limit": limit, "langs": langs_option(lang_set)},
            notes=[
                "EVAL ONLY: every record is in the test split; train.jsonl and dev.jsonl are empty.",
                f"Tiny set: t2i/i2t rank ~{n} candidates, so chance R@1 is ~{100 / n:.0f}% and one photo "
                f"moves a language's R@1 by ~{100 / n:.0f} points.",
                "Captions are CLDR emoji names/keywords chosen per photo by hand (the builder module's PHOTOS "
                "table); see stats.photos[*].caveat for loose fits. No two photos share an emoji.",
                "Keywords are each locale's own list (not translations); a keyword equal to a name "
                "is dropped. Locales without an annotation for a photo's emoji have no record.",
                *photo_set.notes,
            ],
            stats={"photos": image_info, "excluded": photo_set.excluded, "locales": len(locales)},
        )
        write_dataset(tmp, records, card, langs=lang_set)
    return Path(out)
