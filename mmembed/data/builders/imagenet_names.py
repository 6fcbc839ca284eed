"""ImageNet-1k class names: WordNet synsets, lemmas and glosses from timm's offline class files,
and translations of the names that are also CLDR emoji names.

timm/data/_info/ ships `imagenet_synsets.txt` (the 1000 synsets in classifier order),
`imagenet_synset_to_lemma.txt` ("tench, Tinca tinca") and `imagenet_synset_to_definition.txt`
(the WordNet gloss). No installed package ships WordNet in other languages (no nltk/OMW, no
wn); the one human-translated source for some of these names is Unicode CLDR: ~130 ImageNet
lemmas are exactly the English short name of an emoji (lion, pizza, ambulance...), and CLDR names
that emoji in ~130 locales. A match is kept only when it is the same sense: see `match_emoji`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

INFO_DIR = Path("data") / "_info"  # under the timm package folder
NUM_CLASSES = 1000
# Classifier rows 0..397 are animals (ImageNet orders synsets by WordNet id; n01440764 tench ..
# n02655020 blowfish); rows 398.. are artefacts, food, plants, scenes.
LAST_ANIMAL_INDEX = 397
ANIMAL_GROUP = "animals_nature"  # CLDR's emoji group of animals (and plants)
# Same English word, other sense: found by reading all ~135 exact lemma/emoji-name matches.
# (synset, lemma) -> why the emoji's translations would be wrong for this class.
HOMONYMS: Mapping[tuple[str, str], str] = {
    ("n01608432", "kite"): "the bird; the emoji is the toy",
    ("n02268443", "sewing needle"): "a lemma of dragonfly; the emoji is the needle",
    ("n02917067", "bullet"): "bullet train; the CLDR name is the punctuation mark •",
    ("n03535780", "horizontal bar"): "the gym bar; the CLDR name is the punctuation mark ―",
    ("n03929660", "pick"): "a plectrum; the emoji is a pickaxe",
    ("n13133613", "ear"): "an ear of corn; the emoji is the body part",
}


@dataclass(frozen=True)
class ImageNetClass:
    index: int  # classifier row
    synset: str  # WordNet id, e.g. n01440764
    lemmas: tuple[str, ...]  # "tench", "Tinca tinca"
    definition: str


def _read_tsv(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(f"timm class-name file {path} is missing (reinstall timm)")
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}:{lineno}: expected 'SYNSET<TAB>TEXT', got {line[:60]!r}")
        out[key.strip()] = value.strip()
    return out


def read_imagenet_classes(timm_dir: Path) -> list[ImageNetClass]:
    """The 1000 classes in classifier order, from the timm package folder."""
    info = timm_dir / INFO_DIR
    synset_file = info / "imagenet_synsets.txt"
    if not synset_file.is_file():
        raise FileNotFoundError(f"timm class-name file {synset_file} is missing (reinstall timm)")
    synsets = synset_file.read_text(encoding="utf-8").split()
    if len(synsets) != NUM_CLASSES or len(set(synsets)) != NUM_CLASSES:
        raise ValueError(f"{synset_file}: expected {NUM_CLASSES} distinct synsets, got {len(synsets)}")
    lemmas = _read_tsv(info / "imagenet_synset_to_lemma.txt")
    glosses = _read_tsv(info / "imagenet_synset_to_definition.txt")
    out = []
    for i, s in enumerate(synsets):
        if s not in lemmas or s not in glosses:
            raise ValueError(f"{info}: synset {s} (class {i}) has no lemma or no definition")
        names = tuple(dict.fromkeys(n.strip() for n in lemmas[s].split(",") if n.strip()))
        out.append(ImageNetClass(i, s, names, glosses[s]))
    return out


def match_emoji(classes: list[ImageNetClass], english_names: Mapping[str, str],
                groups: Mapping[str, str]) -> dict[str, list[str]]:
    """synset -> emoji code points whose CLDR English short name equals one of its lemmas.

    `english_names`: emoji cp -> English name; `groups`: cp -> CLDR group type. A lemma must be
    unique among the 1000 classes ("panda" names two), must not be a listed homonym, and an
    emoji with a known group must agree on animal vs not (drops "mouse" the device -> the animal).
    """
    by_name: dict[str, list[str]] = {}
    for cp, name in sorted(english_names.items()):
        by_name.setdefault(name.casefold(), []).append(cp)
    lemma_count = Counter(n.casefold() for c in classes for n in c.lemmas)
    out: dict[str, list[str]] = {}
    for c in classes:
        for lemma in c.lemmas:
            key = lemma.casefold()
            if lemma_count[key] > 1 or (c.synset, lemma) in HOMONYMS:
                continue
            for cp in by_name.get(key, []):
                group: Optional[str] = groups.get(cp)
                if group is not None and (group == ANIMAL_GROUP) != (c.index <= LAST_ANIMAL_INDEX):
                    continue
                out.setdefault(c.synset, []).append(cp)
    return out
