"""Photos dataset (EVAL ONLY): the real photographs that ship inside the scikit-image and
scikit-learn wheels, captioned by the CLDR names and keywords of hand-picked emoji.

Concept = one photo, id `photo:<stem>`, image `images/<stem>.png` (RGB, original size). The
machinery (mapping check, captions, test-only split) is `photo_set.py`'s, shared with
`debian-photos`; this module holds the table.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.photo_set import CAPTION_LICENSE, Photo, PhotoSet, build_photo_set
from mmembed.data.builders.sources import PypiSource

NAME = "photos"
DESCRIPTION = ("EVAL ONLY: ~10 real photographs from the scikit-image / scikit-learn wheels with CLDR "
               "emoji names and keywords in ~130 locales (all test split)")
LICENSE = f"per photo: CC0, public domain, CC-BY-2.0 or not stated (see each record); {CAPTION_LICENSE}"

# Which wheel ships a photo; `Photo.package` names one of these.
PACKAGES: dict[str, PypiSource] = {"skimage": sources.SKIMAGE, "sklearn": sources.SKLEARN}


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


def photo_set() -> PhotoSet:
    """The set as it is now (read at call time, so a test can swap PHOTOS or PACKAGES)."""
    return PhotoSet(NAME, "photo", DESCRIPTION, LICENSE, PHOTOS, PACKAGES, EXCLUDED, notes=(
        "Images keep their original size; grayscale photos (coins, camera, brick) are converted to RGB.",))


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build the photos dataset into `out` (every record in the test split). `limit` keeps that
    many photos (stable hash); `langs` keeps only those CLDR locales."""
    return build_photo_set(photo_set(), out, limit=limit, langs=langs)
