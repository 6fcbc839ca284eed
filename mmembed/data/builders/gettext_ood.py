"""An out-of-domain sentence TEST set: UI sentences of packages no training source reads (PackageKit,
AppStream, software-properties), each with its translations.

`gettext-ui`'s test sentences share catalogs, translators and templates with its train split, so a
model trained on that split is partly tested in-domain there. These catalogs come from other projects
and other translation teams. Every record is in the TEST split (nothing here trains or selects), and a
sentence whose English a training source holds (any gettext-ui catalog, any Django catalog of
`parallel`, compared after the same cleaning, case and punctuation aside) is dropped, so no test
sentence was seen in training in any split or language.

Entries are kept and skipped by the rules of gettext-ui (`django_po.skip_reason`: >= 4 English words,
no placeholders, no plurals; mnemonics and markup removed). Not installed by setup (two of the packages
bring daemons): the builder names the package to install.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.concepts import parse_langs, select
from mmembed.data.builders.django_po import catalogs as django_catalogs
from mmembed.data.builders.django_po import clean
from mmembed.data.builders.gettext_ui import catalog_concepts, catalog_paths, clean_ui
from mmembed.data.builders.output import write_text_dataset

NAME = "gettext-ood"
DESCRIPTION = "EVAL ONLY: English <-> translation pairs, UI sentences of packages no training source reads (all test)"
LICENSE = "per catalog (GPL-2+ and LGPL-2.1+ / GPL-2+; data/gettext-ood.md lists each)"
TRAINED = "English sentence in a training source"  # the reason such a sentence is dropped
_NOT_WORD = re.compile(r"[\W_]+")


def comparable(english: str) -> str:
    """The form two English sentences are compared in: case, punctuation and spacing aside."""
    return " ".join(_NOT_WORD.sub(" ", english.casefold()).split())


def training_english(django_dir: Path) -> set[str]:
    """`comparable` forms of every English msgid the training sources hold: every gettext-ui catalog in every
    locale (a .mo holds only translated entries) and Django's catalogs (a .po holds every msgid: one locale)."""
    import polib

    seen: set[str] = set()
    for catalog in sources.GETTEXT_UI:
        for _, path in catalog_paths(catalog, None):
            seen.update(comparable(clean_ui(entry.msgid)) for entry in polib.mofile(str(path)))
    for path in django_catalogs(django_dir):
        if path.parent.parent.name == "de":  # every Django catalog ships a German .po with all its msgids
            seen.update(comparable(clean(entry.msgid)) for entry in polib.pofile(str(path)))
    return seen


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build gettext-ood into `out`: `limit` sentences chosen by a stable hash, translations in `langs` only
    (the English anchors are always there). Every record is in test.jsonl."""
    for catalog in (*sources.GETTEXT_OOD, *sources.GETTEXT_UI):
        catalog.require()
    django_dir = sources.DJANGO.require()
    lang_set = parse_langs(langs)
    infos = [*(c.info() for c in sources.GETTEXT_OOD), sources.DJANGO.info()]
    skipped: Counter = Counter()
    trained = training_english(django_dir)
    versions = {info.package: info.version for info in infos}
    concepts = catalog_concepts(sources.GETTEXT_OOD, lang_set, versions, skipped, split="test",
                                refuse=lambda english: TRAINED if comparable(english) in trained else None)
    kept = select(concepts, lambda c: c.id, limit)
    records = [r for c in kept for r in c.records(LICENSE)]
    return write_text_dataset(
        out, records, name=NAME, description=DESCRIPTION, license=LICENSE, sources=infos, limit=limit, langs=lang_set,
        notes=[
            f"Catalogs: {', '.join(f'{c.domain}.mo ({c.package})' for c in sources.GETTEXT_OOD)}, read from "
            "/usr/share/locale; English locales are skipped. Every record is in the TEST split.",
            "Dropped: sentences whose English (case and punctuation aside) is in any gettext-ui catalog or any "
            "Django catalog, the sentence sources of training; counted in stats.skipped.",
            "Entries kept and cleaned as in gettext-ui (>= 4 English words, no placeholders or plurals).",
            "Few Hindi and Arabic sentences (PackageKit has Hindi, AppStream a little Arabic), no Swahili.",
        ],
        stats={"skipped": dict(sorted(skipped.items())), "sentences": len(kept)},
    )
