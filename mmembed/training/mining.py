"""Hard-negative mining for text-text pairs (ANCE-style, Xiong et al. 2021).

The model being tuned scores each pair's anchor text (e.g. an English name) against every caption
in the pair's language; a caption of ANOTHER concept among the top `top_k` becomes the pair's hard
negative. So training sees the confusions a bitext test punishes ('Germany' -> 'Hungría'), not
only the random in-batch negatives.

False negatives are skipped: two concept ids can name the same thing (CLDR's territory 'Sweden'
and pycountry's country 'Sweden'; Arabic 'السويد' and 'السّويد', which differ by a diacritic only).
A candidate whose caption or anchor text equals the pair's after `normalized` is never a negative.
"""
from __future__ import annotations

import dataclasses
import os
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import torch

from ..data.manifest import ManifestError, PairRecord, read_manifest, write_manifest
from ..paths import check_output_file

SCAN = 16  # candidates looked at beyond top_k, so skipped false negatives do not leave a pair without one


class MiningError(ValueError):
    """The mining input cannot be used; the message names the file and what is wrong."""


class TextEncoder(Protocol):
    def encode_text(self, texts: Sequence[str], **kwargs) -> torch.Tensor: ...


@dataclass(frozen=True)
class MiningReport:
    out: Path
    rows: dict[str, int]  # text-anchored rows written, per language
    mined: dict[str, int]  # of those, rows that got a hard negative
    top1: dict[str, float]  # anchor -> caption top-1 accuracy under the mining model, per language


def normalized(text: str) -> str:
    """Casefolded, without combining marks (accents, Arabic shadda) or repeated spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(kept.casefold().split())


def _embed(model: TextEncoder, texts: Sequence[str], batch_size: int, progress: Optional[bool]) -> torch.Tensor:
    emb = model.encode_text(list(texts), batch_size=batch_size, progress=progress, as_tensor=True)
    return torch.nn.functional.normalize(emb.float(), dim=-1)


def _mine_language(rows: list[PairRecord], anchors: torch.Tensor, captions: torch.Tensor, top_k: int,
                   rng: random.Random) -> tuple[list[PairRecord], int]:
    """`anchors` (n, d) and `captions` (n, d): row i's anchor text and caption. -> rows with negatives, top-1 hits."""
    cap_key = [normalized(r.caption) for r in rows]
    text_key = [normalized(r.text) for r in rows]
    out, hits = [], 0
    width = min(len(rows), top_k + SCAN)
    for start in range(0, len(rows), 1024):  # (chunk, n) similarities at a time: user manifests can be large
        order = (anchors[start : start + 1024] @ captions.T).topk(width, dim=1).indices
        for offset, ranked in enumerate(order.tolist()):
            i = start + offset
            wrong = [j for j in ranked if rows[j].concept != rows[i].concept
                     and cap_key[j] != cap_key[i] and text_key[j] != text_key[i]]
            hits += not wrong or wrong[0] != ranked[0]  # the best caption is this pair's own (or a duplicate)
            pick = wrong[: top_k]
            negative = rows[rng.choice(pick)].caption if pick else None
            out.append(dataclasses.replace(rows[i], negative=negative))
    return out, hits


def check_output(manifest: str | Path, out: str | Path) -> None:
    """Refuse an `out` that is a folder, or that is `manifest` itself (the same file by path, symlink or
    hard link): the mined rows are only those of the mined languages, so writing them over the input
    would lose the rest of it."""
    out = Path(out)
    try:
        check_output_file("--out", out)
    except ValueError as err:
        raise MiningError(str(err)) from None
    same = Path(manifest).resolve() == out.resolve()
    if not same and out.exists():
        try:
            same = os.path.samefile(manifest, out)
        except OSError:  # the input is missing: reading it says so
            pass
    if same:
        raise MiningError(f"--out {out} is the input manifest {manifest}; write the mined rows to a new file "
                          "(they hold only the mined languages, so the input would lose the rest)")


def _read(manifest: str | Path) -> list[PairRecord]:
    """The manifest's records; any problem reading it is a MiningError naming the file."""
    try:
        return read_manifest(manifest)
    except (ManifestError, FileNotFoundError) as err:  # these name the file (and line)
        raise MiningError(str(err)) from None
    except (OSError, ValueError, TypeError) as err:  # a reader check without the path: add it
        raise MiningError(f"{manifest}: cannot read it as a manifest: {err}") from None


def mine_hard_negatives(
    model: TextEncoder,
    manifest: str | Path,
    out: str | Path,
    *,
    langs: Sequence[str],
    top_k: int = 3,
    seed: int = 0,
    batch_size: int = 64,
    progress: Optional[bool] = None,
) -> MiningReport:
    """Write the text-anchored rows of `manifest` in `langs` to `out`, each with a mined hard negative
    (drawn uniformly from the top_k wrong captions in its language; seeded). The write is atomic;
    `out` must not be `manifest` nor a folder (`check_output`)."""
    if top_k < 1:
        raise MiningError(f"top_k must be >= 1, got {top_k}")
    if not langs:
        raise MiningError("give at least one language to mine")
    check_output(manifest, out)
    records = _read(manifest)
    by_lang: dict[str, list[PairRecord]] = {lang: [] for lang in langs}
    for r in records:
        if r.text is not None and r.lang in by_lang:
            if not isinstance(r.text, str) or not isinstance(r.caption, str):
                raise MiningError(f"{manifest}: the row of concept {r.concept!r} in {r.lang} has a text "
                                  f"{r.text!r} and caption {r.caption!r}; both must be strings")
            by_lang[r.lang].append(r)
    empty = [lang for lang, rows in by_lang.items() if len(rows) < 2]
    if empty:
        raise MiningError(f"{manifest}: fewer than 2 text-anchored rows (text + caption) in language(s) "
                          f"{', '.join(empty)}: nothing to mine negatives from")
    texts = sorted({r.text for rows in by_lang.values() for r in rows})
    text_emb = _embed(model, texts, batch_size, progress)  # (n_texts, d)
    text_row = {t: i for i, t in enumerate(texts)}
    rng = random.Random(seed)
    written: list[PairRecord] = []
    counts, mined, top1 = {}, {}, {}
    for lang, rows in by_lang.items():
        captions = _embed(model, [r.caption for r in rows], batch_size, progress)  # (n, d)
        anchors = text_emb[[text_row[r.text] for r in rows]]  # (n, d)
        with_neg, hits = _mine_language(rows, anchors, captions, top_k, rng)
        written += with_neg
        counts[lang], mined[lang] = len(rows), sum(r.negative is not None for r in with_neg)
        top1[lang] = hits / len(rows)
    write_manifest(out, written)
    return MiningReport(Path(out), counts, mined, top1)
