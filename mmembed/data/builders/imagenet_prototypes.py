"""ImageNet class prototypes: photo-domain concepts without photos.

Concept = one ImageNet-1k class, id `wordnet:<synset>`. Its anchor is not an image but one row of
`features.safetensors`: a pooled EfficientNet-Lite0 feature vector (1280,) that the packaged
ImageNet head classifies as that class (see `head_inversion`); a record points at it with a
`FeatureRef` (file, tensor "features", row). Captions: each WordNet lemma (kind="name") and the
gloss (kind="definition") in English, from timm's class files; for the ~130 classes whose lemma is
also a CLDR emoji name, that emoji's name in every CLDR locale (kind="name"; see `imagenet_names`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import annotation_locales, read_annotations
from mmembed.data.builders.concepts import Concept, lang_allowed, langs_option, parse_langs, select
from mmembed.data.builders.emoji_groups import read_emoji_groups
from mmembed.data.builders.head_inversion import (PENALTY, STEPS, InversionSettings, head_report, imagenet_prior,
                                                  invert_head)
from mmembed.data.builders.imagenet_names import ImageNetClass, match_emoji, read_imagenet_classes
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset
from mmembed.data.feature_table import write_feature_table
from mmembed.data.manifest import FeatureRef

NAME = "imagenet-prototypes"
DESCRIPTION = ("EfficientNet-Lite0 ImageNet-1k class prototypes (pooled features) with WordNet names "
               "and glosses, CLDR translations where the name is an emoji's")
LICENSE = ("Apache-2.0 (prototypes: EfficientNet-Lite0 weights); WordNet License (English names and "
           "glosses, via timm); Unicode-DFS-2016 (translated names: Unicode CLDR)")
FEATURES_FILE = "features.safetensors"
FEATURES_TENSOR = "features"  # (n, 1280) float32, row i = the class of row_ids[i]
ENGLISH = "en"


def concept_id(synset: str) -> str:
    return f"wordnet:{synset}"


def _packaged_head() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight (1000, c), bias (1000,), prior (c,)) of the packaged EfficientNet-Lite0."""
    from mmembed.config import ImageTowerConfig
    from mmembed.vision import create_image_tower

    tower = create_image_tower(ImageTowerConfig(timm_name="tf_efficientnet_lite0", weights="packaged"))
    if not isinstance(getattr(tower.bn2, "act", None), torch.nn.ReLU6):
        # the prior and the [0, 6] box both assume the pooled features are ReLU6 outputs
        raise RuntimeError(f"expected ReLU6 after the last BatchNorm of the tower, got {tower.bn2}")
    head = tower.get_classifier()
    prior = imagenet_prior(tower.bn2.weight.detach(), tower.bn2.bias.detach())
    return head.weight.detach(), head.bias.detach(), prior


def _translations(lang_set: Optional[frozenset[str]], classes: list[ImageNetClass]):
    """-> (locale -> {synset: [CLDR names]}, locales read, source label); empty when only English is asked."""
    if lang_set is not None and lang_set <= {ENGLISH}:
        return {}, [], ""  # English comes from WordNet: CLDR is not needed (nor required)
    common = sources.CLDR.require()
    english = {cp: a.name for cp, a in read_annotations(common, ENGLISH).items() if a.name}
    matches = match_emoji(classes, english, read_emoji_groups(common))
    locales = [loc for loc in annotation_locales(common) if lang_allowed(loc, lang_set)]
    names: dict[str, dict[str, list[str]]] = {}
    for loc in locales:
        ann = read_annotations(common, loc)
        names[loc] = {s: [ann[cp].name for cp in cps if cp in ann and ann[cp].name] for s, cps in matches.items()}
    info = sources.CLDR.info()
    return names, locales, f"{info.package} {info.version}"


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    steps: int = STEPS,
    penalty: float = PENALTY,
) -> Path:
    """Build the dataset into `out`. `limit` keeps that many classes (stable hash); `langs` keeps
    those caption languages ("en" = WordNet, others from CLDR); `steps`/`penalty`: the head inversion."""
    if steps < 1 or penalty < 0:
        raise ValueError(f"steps must be >= 1 and penalty >= 0, got steps={steps}, penalty={penalty}")
    timm_dir = sources.TIMM.require()
    sources.EFFICIENTNET_LITE0.require()  # the install hint, before create_image_tower's own error
    lang_set = parse_langs(langs)
    all_classes = read_imagenet_classes(timm_dir)
    translated, locales, cldr_source = _translations(lang_set, all_classes)
    if lang_set is not None and not lang_allowed(ENGLISH, lang_set) and not locales:
        raise ValueError(f"no language matches langs={sorted(lang_set)}: 'en' (WordNet) or a CLDR locale")
    classes = select(all_classes, lambda c: concept_id(c.synset), limit)

    weight, bias, prior = _packaged_head()
    index = torch.tensor([c.index for c in classes], dtype=torch.long)  # (n,) classifier rows
    settings = InversionSettings(steps=steps, penalty=penalty)
    prototypes = invert_head(weight, bias, index, prior, settings)  # (n, 1280)
    timm_info = sources.TIMM.info()
    timm_source = f"{timm_info.package} {timm_info.version}"

    concepts = []
    for row, c in enumerate(classes):
        concept = Concept(concept_id(c.synset), features=FeatureRef(FEATURES_FILE, FEATURES_TENSOR, row))
        if lang_allowed(ENGLISH, lang_set):
            for lemma in c.lemmas:
                concept.add(lemma, ENGLISH, "name", timm_source)
            concept.add(c.definition, ENGLISH, "definition", timm_source)
        for loc in locales:
            for name in translated[loc].get(c.synset, []):
                concept.add(name, loc, "name", cldr_source)
        concepts.append(concept)

    with staging_dir(out) as tmp:
        write_feature_table(tmp / FEATURES_FILE, {FEATURES_TENSOR: prototypes, "classifier_index": index,
                                                  "prior": prior.float()}, [c.synset for c in classes])
        (tmp / FEATURES_FILE).chmod(0o644)
        records = [rec for c in concepts for rec in c.records(LICENSE)]
        card = DatasetCard(
            dataset=NAME,
            description=DESCRIPTION,
            license=LICENSE,
            sources=[timm_info, sources.EFFICIENTNET_LITE0.info()] + ([sources.CLDR.info()] if locales else []),
            options={"limit": limit, "langs": langs_option(lang_set), "steps": steps, "penalty": penalty},
            notes=[
                f"Anchors are feature vectors, not images: {FEATURES_FILE} tensor '{FEATURES_TENSOR}' "
                "(classes, 1280) float32, row ids (synsets) in its metadata; 'classifier_index' = ImageNet "
                "class index; 'prior' = the start point f0. Records carry features={file, tensor, row}.",
                "Prototype = argmax over f in [0,6]^1280 of log p(class|f) - penalty*||f - f0||^2 by "
                "projected gradient ascent (float64) from f0 = E[ReLU6(z)], z ~ N(bn2.bias, bn2.weight^2): "
                "the expected pooled ImageNet feature by the tower's last BatchNorm statistics.",
                "English captions are WordNet 3.0 lemmas as ImageNet lists them: scientific names "
                "('Tinca tinca') and near-duplicates across classes ('maillot' names two) included.",
                "Translations only where a lemma equals a CLDR emoji's English name, unique among the "
                "classes, same animal/non-animal group, minus listed homonyms (imagenet_names.HOMONYMS).",
                "The eval tasks (mmembed eval) skip feature anchors: this dataset is for training.",
            ],
            stats={"classes": len(classes),
                   "classes_with_cldr_names": sum(any(translated[loc].get(c.synset) for loc in locales) for c in classes),
                   "cldr_locales": len(locales),
                   "prior_norm": round(float(prior.norm()), 3),
                   "prototypes": head_report(weight, bias, prototypes, index)},
        )
        write_dataset(tmp, records, card, langs=lang_set)
    return Path(out)
