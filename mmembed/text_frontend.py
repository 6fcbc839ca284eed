"""Text front end: the tokenizer and the prompts that wrap content before the backbone.

Every input becomes a `SequencePlan`: token ids before the visual tokens, how many visual tokens,
and token ids after them. Text-only inputs have no visual tokens. Prompts are built from token ids
(prefix + content + suffix), so truncation cuts the content and never the prompt's
"means in one word" tail that last-token pooling relies on.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

from .config import PromptConfig
from .tokenizer import TextTokenizer


@dataclass(frozen=True)
class SequencePlan:
    before: tuple[int, ...]  # token ids before the visual tokens (the whole sequence for text)
    num_visual: int = 0  # visual tokens inserted between `before` and `after`
    after: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.before) + self.num_visual + len(self.after)


class TextFrontend:
    """Tokenizes content and wraps it in the configured prompt."""

    def __init__(self, tokenizer: TextTokenizer, prompt: PromptConfig, max_length: int):
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.max_length = max_length
        self.pad_id: int = tokenizer.pad_id
        self._bos: tuple[int, ...] = (tokenizer.bos_id,) if prompt.add_bos and tokenizer.bos_id is not None else ()
        self._warned_truncation = False

    def ids(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer.encode_batch([text])[0]) if text else ()

    def _ids_many(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode_batch(texts)

    def _head(self, instruction: Optional[str]) -> tuple[int, ...]:
        if not instruction:
            return self._bos
        return self._bos + self.ids(self.prompt.instruction_template.format(instruction=instruction))

    def _fit(self, content: list[int], budget: int) -> tuple[int, ...]:
        if len(content) <= budget:
            return tuple(content)
        if not self._warned_truncation:
            warnings.warn(
                f"mmembed: a text longer than the context was TRUNCATED to {max(budget, 0)} content tokens "
                f"(max_length={self.max_length}, prompt included); pass shorter texts or chunk them yourself. "
                "This warning is shown once per model.",
                stacklevel=4,
            )
            self._warned_truncation = True
        return tuple(content[: max(budget, 0)])

    def text_plans(self, texts: Sequence[str], instruction: Optional[str] = None) -> list[SequencePlan]:
        head = self._head(instruction) + self.ids(self.prompt.text_prefix)
        tail = self.ids(self.prompt.text_suffix)
        budget = self.max_length - len(head) - len(tail)
        return [SequencePlan(head + self._fit(c, budget) + tail) for c in self._ids_many(texts)]

    def image_plans(self, count: int, num_visual: int, instruction: Optional[str] = None) -> list[SequencePlan]:
        before = self._head(instruction) + self.ids(self.prompt.image_prefix)
        after = self.ids(self.prompt.image_suffix)
        return [SequencePlan(before, num_visual, after)] * count

    def fused_plans(self, texts: Sequence[str], num_visual: int, instruction: Optional[str] = None) -> list[SequencePlan]:
        before = self._head(instruction) + self.ids(self.prompt.fused_prefix)
        joiner, tail = self.ids(self.prompt.fused_joiner), self.ids(self.prompt.fused_suffix)
        budget = self.max_length - len(before) - num_visual - len(joiner) - len(tail)
        return [SequencePlan(before, num_visual, joiner + self._fit(c, budget) + tail) for c in self._ids_many(texts)]
