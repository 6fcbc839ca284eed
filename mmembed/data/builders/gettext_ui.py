"""More parallel UI sentences: the gettext catalogs (.mo) that Debian system and desktop packages
ship in /usr/share/locale (GTK 2, GLib, GDK-Pixbuf, PAM, APT...).

A training source beside `parallel`, whose test set is left as it is. `parallel` has about 800
training pairs a language, of them 58 Django sentences in Hindi and 120 in Arabic; these catalogs
add about 1,950 Hindi and 1,500 Arabic sentences of the same kind (UI strings). Hindi and Arabic
are where multilingual-e5-small leads the shipped model most on `parallel` (issue 4), though
there its misses are mostly names, which this set does not hold. Swahili gains nothing: these
packages hardly translate into it.

Entries are kept and skipped by Django's rules (`django_po.skip_reason`: >= 4 English words, no
format placeholders, no plurals). Keyboard mnemonics are removed ("_Open", "打开(_O)"). The concept
of a sentence is `django_po.sentence_concept_id(english)`, the id `parallel` gives the same
sentence, so a sentence held out there is held out here too; and, as in `iso-names`, an entry whose
English contains a `parallel` dev/test language or territory name is dropped (`cldr_terms.leaks`).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr_terms import held_out_names, leaks
from mmembed.data.builders.concepts import Concept, lang_allowed, parse_langs, select
from mmembed.data.builders.django_po import MIN_WORDS, clean, sentence_concept_id, skip_reason
from mmembed.data.builders.langcodes import to_cldr
from mmembed.data.builders.output import write_text_dataset

NAME = "gettext-ui"
DESCRIPTION = "English <-> translation pairs: UI sentences from the gettext catalogs of Debian packages"
LICENSE = "per catalog (LGPL-2+ / LGPL-2.1+ / GPL-2+ / BSD-3-Clause; data/gettext-ui.md lists each)"
_MNEMONIC = re.compile(r"\s*\(_[^\s()]\)|(?<![\w_])_(?=\w)")  # "打开(_O)" -> "打开"; "_Open" -> "Open"


def clean_ui(text: str) -> str:
    return clean(_MNEMONIC.sub("", text)).rstrip(":")


def catalog_paths(source: sources.GettextCatalog, langs: Optional[frozenset[str]]) -> list[tuple[str, Path]]:
    """(CLDR locale, .mo path) of every locale that ships the catalog, sorted by locale folder."""
    out = []
    for path in sorted(source.locale_dir.glob(f"*/LC_MESSAGES/{source.domain}.mo")):
        lang = to_cldr(path.parent.parent.name)
        if lang != "en" and not lang.startswith("en_") and lang_allowed(lang, langs):
            out.append((lang, path))
    return out


def read_catalog(path: Path, skipped: Counter) -> Iterator[tuple[str, str]]:
    """(English, translation) pairs of one .mo catalog that pass Django's rules."""
    import polib

    try:
        mo = polib.mofile(str(path))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable .mo catalog ({err})") from None
    for entry in mo:
        reason = skip_reason(entry, clean=clean_ui)
        if reason:
            skipped[reason] += 1
            continue
        yield clean_ui(entry.msgid), clean_ui(entry.msgstr)


def catalog_concepts(catalogs: Iterable[sources.GettextCatalog], langs: Optional[frozenset[str]],
                     versions: dict[str, str], skipped: Counter, refuse: Callable[[str], Optional[str]],
                     split: Optional[str] = None) -> list[Concept]:
    """One concept per distinct English sentence of `catalogs`, with every catalog's translation of it; `versions`:
    package -> installed version (read once, for the records' `source` and the card). `refuse(english)` gives the
    reason a sentence is dropped, or None (asked once per sentence); a drop is counted per entry in `skipped`.
    `split`: every concept's split (None: the hash of its id)."""
    by_english: dict[str, Concept] = {}
    refused: dict[str, Optional[str]] = {}
    for catalog in catalogs:
        source = f"{catalog.package} {versions[catalog.package]} ({catalog.domain}.mo)"
        for lang, path in catalog_paths(catalog, langs):
            for english, translated in read_catalog(path, skipped):
                concept = by_english.get(english)
                if concept is None:
                    if english not in refused:  # asked once per sentence, not once per catalog and locale
                        refused[english] = refuse(english)
                    if refused[english]:
                        skipped[refused[english]] += 1
                        continue
                    concept = by_english[english] = Concept(sentence_concept_id(english), text=english,
                                                             text_lang="en", split=split)
                concept.add(translated, lang, "sentence", source)
    return list(by_english.values())


def ui_concepts(langs: Optional[frozenset[str]], held_names: set[str], versions: dict[str, str],
                skipped: Counter) -> list[Concept]:
    """gettext-ui's concepts: a sentence naming a `parallel` dev/test language or territory is dropped."""
    def refuse(english: str) -> Optional[str]:
        return "name of a held-out language or territory" if leaks(english, held_names) else None

    return catalog_concepts(sources.GETTEXT_UI, langs, versions, skipped, refuse)


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build gettext-ui into `out`: `limit` sentences chosen by a stable hash, translations in
    `langs` only (the English anchors are always there)."""
    for catalog in sources.GETTEXT_UI:
        catalog.require()
    common = sources.CLDR.require()  # for the held-out names of `parallel` (the leak check)
    pycountry_dir = sources.PYCOUNTRY.require()
    lang_set = parse_langs(langs)
    packages = {c.package: c.info() for c in sources.GETTEXT_UI}  # one package can ship two catalogs (GTK)
    infos = [*packages.values(), sources.CLDR.info(), sources.PYCOUNTRY.info()]

    skipped: Counter = Counter()
    versions = {package: info.version for package, info in packages.items()}
    concepts = ui_concepts(lang_set, held_out_names(common, pycountry_dir), versions, skipped)
    kept = select(concepts, lambda c: c.id, limit)
    records = [r for c in kept for r in c.records(LICENSE)]

    return write_text_dataset(
        out, records, name=NAME, description=DESCRIPTION, license=LICENSE, sources=infos, limit=limit, langs=lang_set,
        notes=[
            f"Catalogs: {', '.join(f'{c.domain}.mo ({c.package})' for c in sources.GETTEXT_UI)}, "
            "read from /usr/share/locale; English locales are skipped.",
            f"Entries of >= {MIN_WORDS} English words; plural and untranslated entries and entries "
            "with format placeholders are SKIPPED, not stripped (Django's rules, `django_po`). "
            "Keyboard mnemonics ('_Open', '(_O)') and HTML tags are removed.",
            "The concept of a sentence is the one `parallel` gives it, so its split is the same there "
            "and here; entries naming a `parallel` dev/test language or territory are dropped.",
            "UI strings: terse, technical (GTK widget property blurbs are 42% of the records, 47% of "
            "Hindi's), and a catalog can translate only part of a package. Swahili: none.",
            "CLDR and pycountry are read only for the held-out names of `parallel` (the leak check).",
        ],
        stats={"skipped": dict(sorted(skipped.items())), "sentences": len(kept)},
    )
