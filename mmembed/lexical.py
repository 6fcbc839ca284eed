"""A lexical channel beside the dense one: character n-grams of romanized text, fused with cosine scores.

Why: cross-lingual misses are mostly names written in another script (hi "नाइजीरिया" ranked "Nicaragua" first).
A name keeps its sound across scripts, and a romanization (anyascii: "naijiriya") keeps enough of it for
character n-grams to match "nigeria". Dense vectors carry meaning; this channel carries spelling.

    scorer = LexicalScorer(["Nigeria", "Nicaragua"])        # fitted on the documents (their IDF)
    lex = scorer.scores(["नाइजीरिया"])                         # (q, t) cosine of TF-IDF n-gram vectors, in [0, 1]
    order = fuse(dense, lex, weight=0.15)                    # (q, t) scores to rank by

`fuse` puts both channels on one scale per query (z-scores over the candidates: the dense cosines of different
encoders spread differently, so a fixed weight means the same thing for every encoder), then adds them. A query
that shares no n-gram with any candidate gets a zero lexical row and keeps its dense order.
The library work is scikit-learn's `TfidfVectorizer` (char n-grams within words) and anyascii's romanization.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

NGRAMS = (2, 3)  # character n-gram lengths, within word boundaries
DEFAULT_WEIGHT = 0.15  # best on the parallel dev split for this model and e5 alike (29b's card)
_SPACES = re.compile(r"\s+")


def _anyascii():
    try:
        from anyascii import anyascii
    except ImportError:
        raise ImportError("the lexical channel needs anyascii: pip install 'mmembed[search]' (or pip install anyascii)") from None
    return anyascii


def romanize(text: str) -> str:
    """Latin-letter, casefolded, single-spaced form of any script: 'Нигерия' -> 'nigeriya', '尼日利亚' -> 'niriliya'."""
    return _SPACES.sub(" ", _anyascii()(text).casefold()).strip()


class LexicalScorer:
    """TF-IDF vectors of the character n-grams of romanized texts; IDF from the documents it is fitted on."""

    def __init__(self, documents: Sequence[str], ngrams: tuple[int, int] = NGRAMS):
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
        except ImportError:
            raise ImportError("the lexical channel needs scikit-learn: pip install 'mmembed[search]'") from None
        docs = [romanize(d) for d in documents]
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams, sublinear_tf=True, lowercase=False)
        self.empty = not any(docs)
        # a vocabulary needs one non-empty document; with none, every score is 0
        self.doc_vectors = None if self.empty else self.vectorizer.fit_transform(docs)  # (t, vocab) sparse, unit rows
        self.n_docs = len(docs)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """(q, t) float32 cosine of each query's n-gram vector with each document's; 0 when none is shared."""
        if self.empty or not len(queries):
            return np.zeros((len(queries), self.n_docs), dtype=np.float32)
        q = self.vectorizer.transform([romanize(t) for t in queries])  # (q, vocab)
        return np.asarray((q @ self.doc_vectors.T).toarray(), dtype=np.float32)


def _zscore_rows(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=1, keepdims=True)
    return np.where(std > 0, (x - x.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0), 0.0)


def fuse(dense: np.ndarray, lexical: np.ndarray, weight: float = DEFAULT_WEIGHT) -> np.ndarray:
    """(q, t) z(dense) + weight * z(lexical), z taken over each query's candidates. Rank by it; it is not a cosine."""
    if dense.shape != lexical.shape:
        raise ValueError(f"dense scores {dense.shape} and lexical scores {lexical.shape} differ in shape")
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"lexical weight must be a finite number >= 0, got {weight!r}")
    return (_zscore_rows(dense.astype(np.float64)) + weight * _zscore_rows(lexical.astype(np.float64))).astype(np.float32)


def rerank(query: str, documents: Sequence[str], cosines: np.ndarray, weight: float = DEFAULT_WEIGHT) -> np.ndarray:
    """(n,) indices of `documents` (a query's dense candidates, with their (n,) `cosines`) in fused order, best
    first; ties keep the dense order. The IDF is the candidates' own."""
    lexical = LexicalScorer(documents).scores([query])  # (1, n)
    fused = fuse(np.asarray(cosines, dtype=np.float32).reshape(1, -1), lexical, weight)[0]
    return np.argsort(-fused, kind="stable")
