"""Debian photos dataset (EVAL ONLY): whole-scene photographs that ship in two Debian packages,
captioned by the CLDR names and keywords of hand-picked emoji.

- `scratch` (Scratch 1.4): the background library `Media/Backgrounds/{Nature,Outdoors,Sports}` holds
  about 60 photographs (480x360); 13 of them show something one emoji names honestly.
- `palapeli-data` (KDE's jigsaw game): its 5 puzzle photos (Wikimedia Commons), each with its
  author and license in the puzzle's .desktop file.

A second photo eval set beside `photos` (whose 10 photos and their history stay as they are):
18 more photos, none sharing an emoji with `photos`. Concept = one photo, id
`debian-photo:<stem>`; the machinery is `photo_set.py`'s.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.photo_set import CAPTION_LICENSE, Photo, PhotoSet, Source, build_photo_set

NAME = "debian-photos"
DESCRIPTION = ("EVAL ONLY: 18 real whole-scene photographs from the Debian packages scratch and "
               "palapeli-data with CLDR emoji names and keywords in ~130 locales (all test split)")
LICENSE = f"per photo: CC-BY-SA-3.0 (Scratch), public domain or GFDL (Palapeli); {CAPTION_LICENSE}"

PACKAGES: dict[str, Source] = {"scratch": sources.SCRATCH_MEDIA, "palapeli": sources.PALAPELI_COLLECTION}

_SCRATCH = "CC-BY-SA-3.0"
_MIT = "MIT Scratch 1.4 media library"
_COMMONS = "Wikimedia Commons via KDE Palapeli"

# Licenses/origins: /usr/share/doc/scratch/copyright (Files: Media/*) and each Palapeli puzzle's
# .desktop file (X-KDE-PluginInfo-Author / -License / -Website).
PHOTOS: tuple[Photo, ...] = (
    Photo("beach", "scratch", "Backgrounds/Nature/beach-malibu.jpg", ("🏖",), ("beach with umbrella",),
          _SCRATCH, f"{_MIT}: beach-malibu (sand, sea, coastline)", "no umbrella in the photo"),
    Photo("grand-canyon", "scratch", "Backgrounds/Nature/grand-canyon.jpg", ("🏞",), ("national park",),
          _SCRATCH, f"{_MIT}: grand-canyon (canyon seen from the rim, a tree)",
          "the emoji is a valley with a river; sw names it 'mbuga ya taifa ya wanyama' (wildlife park)"),
    Photo("garden-rock", "scratch", "Backgrounds/Nature/garden-rock.jpg", ("🪨",), ("rock",),
          _SCRATCH, f"{_MIT}: garden-rock (one boulder on a lawn)"),
    Photo("wave", "scratch", "Backgrounds/Nature/wave.jpg", ("🌊",), ("water wave",),
          _SCRATCH, f"{_MIT}: wave (a breaking ocean wave)"),
    Photo("tree", "scratch", "Backgrounds/Nature/tree.jpg", ("🌳",), ("deciduous tree",),
          _SCRATCH, f"{_MIT}: tree (the trunk of a tree in a mulch bed)",
          "only the trunk is in the frame, no crown"),
    Photo("gravel-desert", "scratch", "Backgrounds/Nature/gravel-desert.jpg", ("🏜",), ("desert",),
          _SCRATCH, f"{_MIT}: gravel-desert (dry plain with shrubs, mountains far off)",
          "a gravel desert, not the emoji's sand dunes and cactus"),
    Photo("night-city", "scratch", "Backgrounds/Outdoors/city-with-water.jpg", ("🌃",), ("night with stars",),
          _SCRATCH, f"{_MIT}: city-with-water (a city skyline over water at night, the moon)",
          "a moon, no stars visible"),
    Photo("city", "scratch", "Backgrounds/Outdoors/city-with-water2.jpg", ("🏙",), ("cityscape",),
          _SCRATCH, f"{_MIT}: city-with-water2 (a city skyline over water by day)"),
    Photo("highway", "scratch", "Backgrounds/Outdoors/route66.jpg", ("🛣",), ("motorway",),
          _SCRATCH, f"{_MIT}: route66 (an empty multi-lane road, a Route 66 sign)"),
    Photo("railway", "scratch", "Backgrounds/Outdoors/train-tracks1.jpg", ("🛤",), ("railway track",),
          _SCRATCH, f"{_MIT}: train-tracks1 (a railway track through a valley)"),
    Photo("wooden-house", "scratch", "Backgrounds/Outdoors/wooden-house.jpg", ("🏚",), ("derelict house",),
          _SCRATCH, f"{_MIT}: wooden-house (an old weathered wooden house)"),
    Photo("stadium", "scratch", "Backgrounds/Sports/baseball-field.jpg", ("🏟",), ("stadium",),
          _SCRATCH, f"{_MIT}: baseball-field (a baseball stadium, stands full)"),
    Photo("basketball", "scratch", "Backgrounds/Sports/basketball-court1-a.jpg", ("🏀",), ("basketball",),
          _SCRATCH, f"{_MIT}: basketball-court1-a (an outdoor hoop and court)",
          "a hoop and court, no ball (the keywords say hoop)"),
    Photo("castle", "palapeli", "castle-maintenon.jpg", ("🏰",), ("castle",), "GFDL",
          f"{_COMMONS}: Eric Pouhier, Château de Maintenon (commons Image:EPO_2432_wiki.jpg)"),
    Photo("bridge", "palapeli", "cincinnati-bridge.jpg", ("🌉",), ("bridge at night",), "public domain",
          f"{_COMMONS}: Derek Jensen, Roebling Suspension Bridge, Cincinnati, lit at night"),
    Photo("citrus", "palapeli", "citrus-fruits.jpg", ("🍊", "🍋"), ("tangerine", "lemon"), "public domain",
          f"{_COMMONS}: US Department of Agriculture, slices of oranges, lemons and limes",
          "slices, not whole fruit"),
    Photo("honeybee", "palapeli", "european-honey-bee.jpg", ("🐝",), ("honeybee",), "public domain",
          f"{_COMMONS}: John Severns, a European honey bee on an aster"),
    Photo("chameleon", "palapeli", "panther-chameleon-female.jpg", ("🦎",), ("lizard",), "GFDL",
          f"{_COMMONS}: B. Navez and others, a female panther chameleon on a branch",
          "a chameleon; CLDR has no chameleon emoji"),
)

# Photos in the packages that are left out, and why (a caption that does not describe the photo
# would measure the mapping, not the model). Drawings in the Scratch library are not listed.
EXCLUDED: dict[str, str] = {
    "scratch Backgrounds/Outdoors/castle.jpg": "Palais des Papes: 🏰 castle is taken by Palapeli's château",
    "scratch Backgrounds/Outdoors/brick-wall1.jpg, brick-wall2.jpg": "🧱 brick is the `photos` set's",
    "scratch Backgrounds/Nature/flower-bed.jpg": "black-eyed Susans: 🌼 blossom is the `photos` set's",
    "scratch Backgrounds/Nature/forest.jpg": "🌳 deciduous tree is tree.jpg's; 🌲 is an evergreen",
    "scratch Backgrounds/Nature/moon.jpg": "lunar surface with no disc: every moon emoji is a disc",
    "scratch Backgrounds/Sports/football-field.jpg, train-tracks2.jpg": "second photos of 🏟 / 🛤",
    "scratch (other photos: lake, hill, pool, kitchen, hallways, murals, houses, parking-ramp...)":
        "no emoji names them honestly",
}


def photo_set() -> PhotoSet:
    """The set as it is now (read at call time, so a test can swap PHOTOS or PACKAGES)."""
    return PhotoSet(NAME, "debian-photo", DESCRIPTION, LICENSE, PHOTOS, PACKAGES, EXCLUDED, notes=(
        "Scratch photos are 480x360 JPEGs; Palapeli photos 1024-1620 px wide. Written as RGB PNG.",))


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build the Debian photos dataset into `out` (every record in the test split). `limit` keeps
    that many photos (stable hash); `langs` keeps only those CLDR locales."""
    return build_photo_set(photo_set(), out, limit=limit, langs=langs)
