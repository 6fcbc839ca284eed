"""Emoji groups ('Smileys & People', 'Animals & Nature', ...) and their names in CLDR's locales.

CLDR ships both halves, and nothing here is translated by us:
- common/properties/labels.txt gives each emoji its group, in English, plus a subgroup
  ('animal-mammal') that no locale file names; CLDR marks the file "not up to date", so emoji
  newer than the file have no group;
- main/LOCALE.xml names the groups as character labels whose type is the group name in snake
  case ('Animals & Nature' -> animals_nature, 'Flags' -> flags); the mapping is checked against
  root.xml, so a group CLDR does not name is an error, not a silent gap.
These group names are the class names of the zero-shot task on emoji (kind="category").
"""
from __future__ import annotations

import re
from pathlib import Path

from mmembed.data.builders.cldr import read_character_labels

LABELS_FILE = Path("properties") / "labels.txt"
_VS16 = "\ufe0f"  # emoji presentation selector: CLDR's annotation cps drop it, so we do too


def group_type(group: str) -> str:
    """'Smileys & People' -> 'smileys_people': the characterLabel type of a labels.txt group."""
    return re.sub(r"\W+", "_", group.strip().lower()).strip("_")


def parse_unicode_set(text: str) -> list[str]:
    """'[a-c{xy}d]' -> ['a', 'b', 'c', 'xy', 'd']: the part of UnicodeSet syntax labels.txt uses
    (single characters, ranges, {strings}). Anything else (escapes, properties) is an error."""
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"not a UnicodeSet: {text!r}")
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "{":
            end = body.index("}", i)
            out.append(body[i + 1:end])
            i = end + 1
        elif ch in "[]\\$:^&":
            raise ValueError(f"unsupported UnicodeSet syntax {ch!r} in {text!r}")
        elif i + 2 < len(body) and body[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(ch), ord(body[i + 2]) + 1))
            i += 3
        else:
            out.append(ch)
            i += 1
    return out


def read_emoji_groups(common: Path) -> dict[str, str]:
    """cp (U+FE0F removed, as in the annotations) -> group type, from labels.txt.

    An emoji listed under two groups would make its class ambiguous: that is an error.
    """
    path = common / LABELS_FILE
    groups: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # '#' is also a keycap inside a set: a trailing comment can only follow the last ';'
        fields = line.split(";")
        fields = [f.strip() for f in fields[:-1] + [fields[-1].split("#", 1)[0]]]
        if len(fields) < 2 or not fields[1]:
            raise ValueError(f"{path}:{n}: expected 'SET ; group ; subgroup'")
        try:
            members = parse_unicode_set(fields[0])
        except ValueError as err:
            raise ValueError(f"{path}:{n}: {err}") from None
        group = group_type(fields[1])
        for member in members:
            cp = member.replace(_VS16, "")
            if groups.setdefault(cp, group) != group:
                raise ValueError(f"{path}:{n}: {cp!r} is in both {groups[cp]} and {group}")
    return groups


def group_names(common: Path, locales: list[str], groups: set[str]) -> dict[str, dict[str, str]]:
    """locale -> {group type: the locale's own name of it}, for the groups each locale names.

    Raises if root.xml does not name every group: labels.txt and the label types then disagree.
    """
    unnamed = groups - set(read_character_labels(common, "root"))
    if unnamed:
        raise ValueError(f"CLDR names no character label for emoji group(s) {sorted(unnamed)}")
    out = {}
    for locale in locales:
        names = {g: name for g, name in read_character_labels(common, locale).items() if g in groups}
        if names:
            out[locale] = names
    return out
