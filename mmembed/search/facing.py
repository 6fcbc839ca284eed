"""What a text query is compared with in a collection, and its vectors for that.

A model whose texts borrow the pictures their words name (mmembed/neighbour_pictures.py) embeds a text compared with
images apart from one compared with texts (config.TextAgainst). In a collection that decides how a text query is
embedded (`TextFacing`):

- 'texts': a model that borrows nothing, a search of text rows alone (`kind="text"`), or a collection of texts alone:
  the plain vector;
- 'images': only image rows can answer (`kind="image"`, or a collection of pictures alone): the vector against images;
- 'both': a collection of texts and pictures: both vectors from one backbone pass (encoding.encode_text_both); the
  text rows are ranked by the plain one and the places images hold by the one against images (query.two_sided_order).
"""
from __future__ import annotations

from typing import Any, Callable, Literal, Optional

import numpy as np

TextFacing = Literal["texts", "images", "both"]


def text_facing(model, kind_counts: Optional[Callable[[], tuple[int, int]]], kind: Optional[str] = None) -> TextFacing:
    """`TextFacing` of a text query on a collection whose `kind_counts()` gives its (text rows, image rows) (None:
    nothing stored yet), filtered to `kind`. A model that borrows nothing gets 'texts' without counting."""
    from mmembed.neighbour_captions import texts_borrow_pictures

    if kind == "text" or kind_counts is None or not texts_borrow_pictures(model):
        return "texts"
    if kind == "image":
        return "images"
    texts, images = kind_counts()
    return "images" if not texts else ("both" if images else "texts")


def text_query_vectors(model, dim: int, query: str, facing: TextFacing, query_lang: Optional[str] = None,
                       gloss_weight: Optional[float] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """((dim,) the vector that ranks the rows, (dim,) the one for image rows when `facing` is 'both', else None) of
    one text query; with a `query_lang` each is moved toward the English gloss's vector of the same side
    (mmembed/glossary.py)."""
    if facing != "both":
        return _glossed(lambda texts: model.encode_text(texts, dim=dim, against=facing), query, query_lang,
                        gloss_weight), None
    from mmembed.encoding import encode_text_both

    sides: dict[str, np.ndarray] = {}

    def encode(texts: list[str]) -> np.ndarray:  # one pass for the query (and its gloss) on both sides
        sides["texts"], sides["images"] = encode_text_both(model, texts, dim=dim)
        return sides["texts"]

    vector = _glossed(encode, query, query_lang, gloss_weight)
    return vector, _glossed(lambda texts: sides["images"], query, query_lang, gloss_weight)  # the same texts


def _glossed(encode, query: Any, query_lang: Optional[str], gloss_weight: Optional[float]) -> np.ndarray:
    if query_lang is None and gloss_weight is None:
        return encode([query])[0]
    from mmembed.glossary import glossed_query

    return glossed_query(encode, query, query_lang, gloss_weight)
