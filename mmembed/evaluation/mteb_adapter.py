"""An mmembed model behind the `mteb` encoder protocol, so users with MTEB data can run it.

    import mteb
    from mmembed.evaluation.mteb_adapter import MTEBEncoder
    enc = MTEBEncoder(mmembed.load("gemma3-270m-mm"), query_instruction="Retrieve the matching passage")
    mteb.evaluate(enc, mteb.get_tasks(tasks=["Tatoeba"]))

`encode` accepts both protocol generations: mteb>=2 passes a DataLoader of batches
({"text": [...]} or {"image": [...]}) with task_metadata / hf_split / hf_subset; mteb 1.x passed a
list of sentences with task_name. The role (`prompt_type` = query / document) maps to
`instruction=`; per-task instructions override the query one. mteb itself is imported only for
`mteb_model_meta`, so the adapter works (list of sentences in, array out) without mteb installed.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import numpy as np


def _role(prompt_type: Any) -> Optional[str]:
    value = getattr(prompt_type, "value", prompt_type)  # mteb.types.PromptType is a str enum
    if value not in (None, "query", "document"):
        raise ValueError(f"prompt_type must be 'query', 'document' or None, got {prompt_type!r}")
    return value


def _flatten_text(text: Any) -> str:
    # mteb can hand a conversation (list of turns) as one query
    return "\n".join(map(str, text)) if isinstance(text, (list, tuple)) else str(text)


def _collect(inputs: Any) -> tuple[str, list]:
    """('text', [str...]) or ('image', [PIL...]) from a list of sentences or an iterable of batches."""
    if isinstance(inputs, str):
        return "text", [inputs]
    items = list(inputs) if not isinstance(inputs, (list, tuple)) else inputs
    if all(isinstance(x, str) for x in items):
        return "text", list(items)
    kind, out = None, []
    for i, batch in enumerate(items):
        if not isinstance(batch, Mapping):
            raise TypeError(f"encode: item #{i} is {type(batch).__name__}; expected str or a batch dict with 'text'/'image'")
        key = "image" if "image" in batch and batch["image"] is not None else "text"
        if key not in batch:
            raise TypeError(f"encode: batch #{i} has keys {sorted(batch)}; expected 'text' or 'image'")
        if kind not in (None, key):
            raise TypeError("encode: batches mix text and images; mmembed fused inputs go through model.encode()")
        kind = key
        out.extend(batch[key] if key == "image" else [_flatten_text(t) for t in batch[key]])
    return kind or "text", out


class MTEBEncoder:
    """Wraps an MMEmbedModel; satisfies mteb's EncoderProtocol (encode, similarity, model meta)."""

    def __init__(
        self,
        model,
        *,
        query_instruction: Optional[str] = None,
        document_instruction: Optional[str] = None,
        task_instructions: Optional[Mapping[str, str]] = None,
        batch_size: int = 32,
    ):
        self.model = model
        self.instructions = {"query": query_instruction, "document": document_instruction, None: None}
        self.task_instructions = dict(task_instructions or {})
        self.batch_size = batch_size

    def instruction_for(self, task_name: Optional[str], prompt_type: Any) -> Optional[str]:
        role = _role(prompt_type)
        if role != "document" and task_name in self.task_instructions:
            return self.task_instructions[task_name]
        return self.instructions[role]

    def encode(
        self,
        inputs: Iterable[Any],
        *,
        task_metadata: Any = None,
        hf_split: Optional[str] = None,
        hf_subset: Optional[str] = None,
        prompt_type: Any = None,
        task_name: Optional[str] = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """(n, dim) float32 unit rows for sentences (or mteb batches), in order."""
        name = task_name or getattr(task_metadata, "name", None)
        instruction = self.instruction_for(name, prompt_type)
        batch_size = int(kwargs.get("batch_size", self.batch_size))
        kind, items = _collect(inputs)
        if kind == "image":
            # an image the task ranks texts for (prompt_type query) is a query image (config.ImageRole)
            role = "query" if _role(prompt_type) == "query" else "document"
            return self.model.encode_image(items, batch_size=batch_size, instruction=instruction, role=role)
        return self.model.encode_text(items, batch_size=batch_size, instruction=instruction)

    @staticmethod
    def similarity(embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """(n1, n2) cosine: embeddings are unit rows, so a dot product."""
        a, b = np.atleast_2d(np.asarray(embeddings1, np.float32)), np.atleast_2d(np.asarray(embeddings2, np.float32))
        return a @ b.T

    @staticmethod
    def similarity_pairwise(embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """(n,) cosine of row i with row i."""
        a, b = np.atleast_2d(np.asarray(embeddings1, np.float32)), np.atleast_2d(np.asarray(embeddings2, np.float32))
        return (a * b).sum(axis=-1)

    @property
    def mteb_model_meta(self):
        from mteb.models.model_meta import ModelMeta

        import mmembed

        cfg = self.model.config
        sees = self.model.image_tower is not None and cfg.image_trained
        return ModelMeta(
            loader=None, name=f"mmembed/{self.model.name}", revision=mmembed.__version__, release_date=None,
            languages=None, n_parameters=sum(p.numel() for p in self.model.parameters()), memory_usage_mb=None,
            max_tokens=cfg.backbone.max_length, embed_dim=self.model.dim, license=None, open_weights=None,
            public_training_code=None, public_training_data=None, framework=["PyTorch"],
            similarity_fn_name="cosine", use_instructions=True, training_datasets=None,
            modalities=["image", "text"] if sees else ["text"],
        )
