"""Tokenizers behind one small interface: text in, token ids out (no special tokens added).

Two implementations:
- `SentencePieceTokenizer`: Gemma's vocabulary as a SentencePiece BPE model rebuilt from the GGUF
  (pieces, scores and piece types). It loads in ~0.07 s where the equivalent 33 MB tokenizer.json
  takes 1.1-1.4 s holding the GIL, and encodes ~6x faster. On the 450,011 distinct texts of the
  emoji, clip-art and parallel datasets it gives the same ids as tokenizer.json for every one.
  One deliberate difference: control tokens typed inside user text ("<unused5>", "<eos>") are
  plain text here, never special ids.
- `HFTokenizer`: any Hugging Face tokenizer (hub ids, local folders, SmolLM2's byte-level BPE and
  the tiny byte-level test tokenizer).
The text front end adds BOS itself, so neither adds special tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol, Sequence


class TextTokenizer(Protocol):
    bos_id: Optional[int]
    pad_id: int
    vocab_size: int

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without BOS/EOS."""
        ...


class HFTokenizer:
    """A transformers tokenizer seen through `TextTokenizer`."""

    def __init__(self, tokenizer):
        if tokenizer.pad_token_id is None:  # decoder-only LMs often have none; pooling uses the mask
            tokenizer.pad_token = tokenizer.eos_token
        self.hf = tokenizer
        self.bos_id: Optional[int] = tokenizer.bos_token_id
        self.pad_id: int = tokenizer.pad_token_id
        self.vocab_size: int = len(tokenizer)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.hf(list(texts), add_special_tokens=False)["input_ids"] if texts else []


class SentencePieceTokenizer:
    """A SentencePiece model file (`tokenizer.model`) seen through `TextTokenizer`."""

    def __init__(self, model_file: Path):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self.bos_id: Optional[int] = self.sp.bos_id() if self.sp.bos_id() >= 0 else None
        self.pad_id: int = self.sp.pad_id() if self.sp.pad_id() >= 0 else self.sp.eos_id()
        self.vocab_size: int = self.sp.get_piece_size()

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.sp.encode(list(texts))


def byte_level_tokenizer() -> HFTokenizer:
    """A 259-token byte-level tokenizer built offline: any language, no vocab file, for tiny tests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for special in ("<pad>", "<bos>", "<eos>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return HFTokenizer(PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"))


def sentencepiece_proto_from_gguf(gguf_path: Path) -> bytes:
    """A serialized SentencePiece BPE model equivalent to a GGUF's 'llama' (SentencePiece) vocab.

    GGUF piece types use SentencePiece's own numbering (1 normal, 2 unknown, 3 control, 4 user
    defined, 5 unused, 6 byte), so they carry over unchanged.
    """
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as spm_pb

    fields = gguf.GGUFReader(str(gguf_path)).fields

    def scalar(key: str):
        field = fields.get(key)
        if field is None:
            return None
        value = field.parts[field.data[0]]
        return bytes(value).decode("utf-8") if field.types[0] == gguf.GGUFValueType.STRING else value[0].item()

    def array(key: str) -> list:
        field = fields[key]
        return [field.parts[i] for i in field.data]

    kind = scalar("tokenizer.ggml.model")
    if kind != "llama":
        raise ValueError(f"{gguf_path}: tokenizer.ggml.model is {kind!r}, not a SentencePiece ('llama') vocabulary")
    if scalar("tokenizer.ggml.add_space_prefix"):
        raise ValueError(f"{gguf_path}: add_space_prefix vocabularies are not supported")
    pieces = [bytes(p).decode("utf-8") for p in array("tokenizer.ggml.tokens")]
    scores = [float(p[0]) for p in array("tokenizer.ggml.scores")]
    types = [int(p[0]) for p in array("tokenizer.ggml.token_type")]

    proto = spm_pb.ModelProto()
    trainer = proto.trainer_spec
    trainer.model_type = spm_pb.TrainerSpec.BPE
    trainer.vocab_size = len(pieces)
    trainer.byte_fallback = True
    # Gemma's vocabulary has pieces made of spaces only and pieces spanning word boundaries, and its
    # tokenizer.json runs BPE over the whole text: no whitespace pre-split.
    trainer.split_by_whitespace = False
    trainer.allow_whitespace_only_pieces = True
    special_keys = {"unk": "unknown_token_id", "bos": "bos_token_id", "eos": "eos_token_id", "pad": "padding_token_id"}
    for name, key in special_keys.items():
        token_id = scalar(f"tokenizer.ggml.{key}")
        setattr(trainer, f"{name}_id", -1 if token_id is None else int(token_id))
        if token_id is not None:  # the processor finds its special ids by piece, not by id
            setattr(trainer, f"{name}_piece", pieces[int(token_id)])
    if trainer.unk_id >= 0:
        types[trainer.unk_id] = spm_pb.ModelProto.SentencePiece.UNKNOWN  # GGUF marks it control
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"  # no NFKC: the text reaches the vocabulary as typed
    normalizer.add_dummy_prefix = False
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True  # ' ' -> '▁', as the vocabulary spells it
    piece_type = spm_pb.ModelProto.SentencePiece
    for token_id, (piece, kind_id) in enumerate(zip(pieces, types)):
        score = scores[token_id]
        if kind_id == piece_type.USER_DEFINED and " " in piece:
            # tokenizer.json keeps the runs of spaces ('  ' .. 31 spaces) as ordinary BPE pieces
            # spelled with '▁' (the newline and tab runs stay matched on raw text), so they must be
            # mergeable here too.
            piece, kind_id = piece.replace(" ", "\u2581"), piece_type.NORMAL
        if kind_id == piece_type.NORMAL:
            # tokenizer.json ranks each merge by the id of the piece it makes; SentencePiece merges
            # the highest score first. A score falling with the id gives the same order (the GGUF
            # scores of normal pieces already do; the space runs' -1000 would not).
            score = -float(token_id)
        entry = proto.pieces.add()
        entry.piece, entry.score, entry.type = piece, score, kind_id
    return proto.SerializeToString()
