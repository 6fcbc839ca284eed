"""Zero-shot labelling: rank a list of labels (texts, in any language) for each image.

    model.classify(["cat.png", "car.png"], ["Katze", "Hund", "Auto"], top_k=2)
    -> [[LabelScore("Katze", 0.61), LabelScore("Hund", 0.55)], [LabelScore("Auto", 0.66), ...]]

Images are embedded as QUERIES (config.ImageRole): their labels are what gets ranked, so a model may give them more
of its feature read-out than the documents of a search index (the shipped model does: 1.5 against 0.25). Labels are
embedded as the model embeds any text; the shipped models were trained on bare names ("dog", "Hund"), so a template
("a photo of a {}") is optional and off by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .encoding import EncodeInputError, check_texts, is_int

if TYPE_CHECKING:
    from .model import MMEmbedModel


@dataclass(frozen=True)
class LabelScore:
    label: str  # one of the labels given
    score: float  # cosine between the image (as a query) and the label's embedding


def _check_labels(labels, template: Optional[str]) -> list[str]:
    if isinstance(labels, str):
        raise EncodeInputError(f"labels must be a list of strings, got one string {labels!r:.60}; wrap it in a list")
    labels = check_texts(labels, "label")
    if not labels:
        raise EncodeInputError("labels is empty: give at least one label to rank")
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if not label.strip():
            raise EncodeInputError(f"label #{i} is empty or blank")
        if label in seen:
            raise EncodeInputError(f"label #{i} {label!r} repeats label #{seen[label]}: give each label once")
        seen[label] = i
    if template is not None and (not isinstance(template, str) or template.count("{}") != 1):
        raise EncodeInputError(f"template must be a str with one '{{}}' where the label goes, got {template!r}")
    return labels


def classify(model: "MMEmbedModel", images: Sequence, labels: Sequence[str], *, top_k: int = 1,
             template: Optional[str] = None, batch_size: int = 32, progress: Optional[bool] = None) -> list[list[LabelScore]]:
    """Per image (in input order), its `top_k` labels, best first (ties keep the labels' order)."""
    labels = _check_labels(labels, template)
    if not is_int(top_k) or not 1 <= top_k <= len(labels):
        raise EncodeInputError(f"top_k must be an int in 1..{len(labels)} (the number of labels), got {top_k!r}")
    texts = [template.replace("{}", label) for label in labels] if template else labels
    label_emb = model.encode_text(texts, batch_size=batch_size, progress=progress, against="images")  # (L, D)
    image_emb = model.encode_image(images, batch_size=batch_size, progress=progress, role="query")  # (n, D)
    scores = image_emb @ label_emb.T  # (n, L) cosines: rows are unit vectors
    best = np.argsort(-scores, axis=1, kind="stable")[:, : int(top_k)]  # (n, top_k)
    return [[LabelScore(labels[j], float(scores[i, j])) for j in row] for i, row in enumerate(best)]
