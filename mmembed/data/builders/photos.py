"""Photos dataset (EVAL ONLY): the real photographs that ship inside the scikit-image and
scikit-learn wheels, captioned by the CLDR names and keywords of hand-picked emoji.

Every other image set here is emoji renders or clip art; this is the only evidence about photos.
Concept = one photo, id `photo:<stem>`, image `images/<stem>.png` (RGB, original size). Each photo
maps EXPLICITLY (the `PHOTOS` table) to one or more CLDR emoji whose short names (kind="name")
and keywords (kind="keyword") in every CLDR annotation locale are its captions. The table holds
the expected English names too: a build whose CLDR disagrees (a typo in a code point, a renamed
emoji) stops instead of captioning a photo with the wrong emoji.

All records go to the test split: ~10 concepts are far too few to train on, and a photo must
never leak into training through the hash split.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import Annotation, annotation_locales, read_annotations
from mmembed.data.builders.concepts import Concept, lang_allowed, parse_langs, select
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset
from mmembed.data.builders.sources import MissingSourceError, PypiSource

NAME = "photos"
DESCRIPTION = ("EVAL ONLY: ~10 real photographs from the scikit-image / scikit-learn wheels with CLDR "
               "emoji names and keywords in ~130 locales (all test split)")
CAPTION_LICENSE = "Unicode-DFS-2016 (captions: Unicode CLDR)"
LICENSE = f"per photo: CC0, public domain, CC-BY-2.0 or not stated (see each record); {CAPTION_LICENSE}"
SPLIT = "test"
ENGLISH = "en"

# Which wheel ships a photo; `Photo.package` names one of these.
PACKAGES: dict[str, PypiSource] = {"skimage": sources.SKIMAGE, "sklearn": sources.SKLEARN}


@dataclass(frozen=True)
class Photo:
    """One photo and the emoji whose CLDR names describe it honestly."""

    stem: str  # concept id suffix and output file name
    package: str  # key of PACKAGES
    path: str  # file inside the package folder
    emoji: tuple[str, ...]  # CLDR code points (U+FE0F removed)
    english: tuple[str, ...]  # CLDR 'en' short names of `emoji`, checked at build time
    license: str  # of the photo, as the package documents it
    origin: str  # who took it / where it comes from
    caveat: str = ""  # where the captions fit the photo only loosely


# Licenses/origins: skimage.data docstrings (_fetchers.py) and sklearn/datasets/images/README.txt.
PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "skimage", "data/astronaut.png", ("🧑\u200d🚀", "👩\u200d🚀"),
          ("astronaut", "woman astronaut"), "public domain",
          "NASA Great Images: astronaut Eileen Collins (portrait in orange suit, flag, shuttle model)"),
    Photo("chelsea", "skimage", "data/chelsea.png", ("🐈", "🐱"), ("cat", "cat face"), "CC0",
          "Stefan van der Walt: Chelsea the cat (head and face close up)"),
    Photo("coffee", "skimage", "data/coffee.png", ("☕",), ("hot beverage",), "CC0",
          "Rachel Michetti, courtesy of Pikolo Espresso Bar: cup of coffee on a saucer"),
    Photo("rocket", "skimage", "data/rocket.jpg", ("🚀",), ("rocket",), "public domain",
          "SpaceX: Falcon 9 carrying DSCOVR on the launch pad at night",
          "the rocket is small in the frame, between launch towers"),
    Photo("coins", "skimage", "data/coins.png", ("🪙",), ("coin",), "no known copyright restrictions",
          "Brooklyn Museum Collection: Greek coins from Pompeii", "grayscale photo (converted to RGB)"),
    Photo("motorcycle", "skimage", "data/motorcycle_left.png", ("🏍",), ("motorcycle",),
          "not stated by scikit-image",
          "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014), left view, 4x down-sampled",
          "license not stated in scikit-image's docstring: eval-only use, do not redistribute"),
    Photo("camera", "skimage", "data/camera.png", ("📷",), ("camera",), "CC0",
          "Lav Varshney: a man looking through a camera on a tripod",
          "grayscale; the man is as prominent as the camera, which is a film/video camera"),
    Photo("hubble-deep-field", "skimage", "data/hubble_deep_field.jpg", ("🌌",), ("milky way",),
          "public domain", "NASA / HubbleSite: Hubble eXtreme Deep Field",
          "shows distant galaxies, not the Milky Way itself; the keywords (en space, de Galaxie) fit better"),
    Photo("brick", "skimage", "data/brick.png", ("🧱",), ("brick",), "CC0",
          "CC0Textures Bricks25: a brick wall, perspective-corrected and cropped",
          "grayscale texture crop (converted to RGB)"),
    Photo("flower", "sklearn", "datasets/images/flower.jpg", ("🌼",), ("blossom",), "CC-BY-2.0",
          "vultilion on Flickr (photos/vultilion/6056698931): an orange dahlia",
          "the emoji is a yellow blossom: de names it 'gelbe Blüte' (yellow blossom); sklearn's "
          "README credits danielbuechele but links vultilion's photo"),
)

# Photos in the wheels that are left out, and why: a caption that does not describe the photo
# would measure the mapping, not the model.
EXCLUDED: dict[str, str] = {
    "sklearn datasets/images/china.jpg": "Summer Palace tower (Beijing): CLDR has no pagoda or Chinese "
                                         "temple emoji (🏯 is 'Japanese castle', 🛕 'hindu temple')",
    "skimage data/moon.png": "grayscale crop of the lunar surface: no disc, so no moon emoji fits",
    "skimage data/grass.png": "grass texture: no grass emoji (🌿 herb, 🌱 seedling are plants)",
    "skimage data/gravel.png": "gravel texture: 🪨 'rock' is one boulder",
    "skimage data/retina.jpg": "fundus photo: 👁 'eye' is the outside of an eye",
    "skimage data/horse.png": "a silhouette drawing, not a photo",
    "skimage data/motorcycle_right.png": "the other stereo view of the same motorcycle",
}


def concept_id(photo: Photo) -> str:
    return f"photo:{photo.stem}"


def _photo_file(photo: Photo, folders: dict[str, Path]) -> Path:
    path = folders[photo.package] / photo.path
    if not path.is_file():
        source = PACKAGES[photo.package]
        raise MissingSourceError(
            f"{path} not found in the installed {source.distribution} {source.info().version}; "
            f"install a version that ships it with `{source.install_hint}`")
    return path


def _check_mapping(photos: Sequence[Photo], english: dict[str, Annotation]) -> None:
    """Stop when CLDR's English name of a mapped emoji is not the one the table expects."""
    for photo in photos:
        if len(photo.emoji) != len(photo.english):
            raise ValueError(f"photo {photo.stem!r}: {len(photo.emoji)} emoji but {len(photo.english)} names")
        for cp, expected in zip(photo.emoji, photo.english):
            ann = english.get(cp)
            found = ann.name if ann else None
            if found != expected:
                raise ValueError(f"photo {photo.stem!r}: CLDR names emoji {cp!r} {found!r}, the table "
                                 f"expects {expected!r} (fix PHOTOS in {__name__})")


def _concept(photo: Photo, image: str, per_locale: dict[str, dict[str, Annotation]], source: str) -> Concept:
    concept = Concept(concept_id(photo), image=image)
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


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build the photos dataset into `out` (every record in the test split). `limit` keeps that
    many photos (stable hash); `langs` keeps only those CLDR locales."""
    photos = select(PHOTOS, concept_id, limit)
    folders = {key: PACKAGES[key].require() for key in sorted({p.package for p in photos})}
    files = {p.stem: _photo_file(p, folders) for p in photos}
    common = sources.CLDR.require()
    _check_mapping(PHOTOS, read_annotations(common, ENGLISH))  # the whole table, whatever the limit
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
            # eval only: every record in the test split, whatever the concept-id hash says
            records += [dataclasses.replace(r, split=SPLIT)
                        for r in _concept(photo, rel, per_locale, source).records(license)]
        card = DatasetCard(
            dataset=NAME,
            description=DESCRIPTION,
            license=LICENSE,
            sources=[PACKAGES[k].info() for k in folders] + [cldr_info],
            options={"limit": limit, "langs": sorted(lang_set) if lang_set else None},
            notes=[
                "EVAL ONLY: every record is in the test split; train.jsonl and dev.jsonl are empty.",
                "Tiny set: t2i/i2t rank ~10 candidates, so chance R@1 is ~10% and one photo moves "
                "R@1 by ~10 points.",
                "Captions are CLDR emoji names/keywords chosen per photo by hand (PHOTOS in "
                "mmembed/data/builders/photos.py); see stats.photos[*].caveat for loose fits.",
                "Keywords are each locale's own list (not translations); a keyword equal to a name "
                "is dropped. Locales without an annotation for a photo's emoji have no record.",
                "Images keep their original size; grayscale photos (coins, camera, brick) are "
                "converted to RGB.",
            ],
            stats={"photos": image_info, "excluded": EXCLUDED, "locales": len(locales)},
        )
        write_dataset(tmp, records, card)
    return Path(out)
