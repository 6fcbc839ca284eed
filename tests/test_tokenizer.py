"""The SentencePiece model rebuilt from Gemma's GGUF tokenizes exactly like the converted tokenizer.json."""
from __future__ import annotations

import pytest

import json

from mmembed.assets import PACKAGED_BACKBONES, SENTENCEPIECE_FILE, packaged_backbone_dir
from mmembed.backbone import fast_tokenizer, packaged_tokenizer
from mmembed.tokenizer import HFTokenizer, SentencePieceTokenizer, byte_level_tokenizer, sentencepiece_proto_from_tokenizer_json

pytestmark = pytest.mark.integration

# Every script the datasets cover, plus the whitespace, emoji and length cases where a BPE port
# most easily differs (runs of spaces, tabs/newlines, ZWJ sequences, combining marks, byte fallback).
TEXTS = [
    "The weather is nice today.", "Das Wetter ist heute schön.", "今天天气很好。", "الطقس جميل اليوم.",
    "आज मौसम अच्छा है।", "Hali ya hewa ni nzuri leo.", "Погода сегодня хорошая.", "今日はいい天気です。",
    "오늘 날씨가 좋네요.", "வானிலை நன்றாக உள்ளது", "ሰላም ነው", "Ελληνικά κείμενα", "עברית טקסט",
    "  two  spaces ", "tab\tand\nnewline\n\n", "   ", "emoji 👩‍👩‍👧 ok 🇰🇪", "é vs e\u0301",
    "\u0000 nul and \U0010FFFF private", "x" * 3000, "a" + " " * 40 + "b", "Save and add another",
    "Ce champ est obligatoire.", "%(count)s objets supprimés", "<start_of_image>", "[multimodal] tag",
    *(" " * n + "x" + " " * n + "y z" for n in range(1, 70)), " \t \n  \n\t\t  end", "\u3000全角\u00a0nbsp",
]


@pytest.fixture(scope="module")
def gemma_tokenizers():
    folder = packaged_backbone_dir("gemma3-270m")
    return SentencePieceTokenizer(folder / SENTENCEPIECE_FILE), HFTokenizer(fast_tokenizer(folder))


def test_sentencepiece_matches_tokenizer_json(gemma_tokenizers):
    spm, hf = gemma_tokenizers
    assert spm.encode_batch(TEXTS) == hf.encode_batch(TEXTS)
    assert (spm.bos_id, spm.pad_id, spm.vocab_size) == (hf.bos_id, hf.pad_id, hf.vocab_size) == (2, 0, 262144)
    assert spm.encode_batch([]) == []


def test_control_tokens_in_user_text_stay_plain_text(gemma_tokenizers):
    """The one deliberate difference: '<eos>' typed in a caption is text, never the special id."""
    spm, hf = gemma_tokenizers
    ids = spm.encode_batch(["stop <eos> here <unused5>"])[0]
    assert 1 not in ids and 2 not in ids and len(ids) > 4
    assert 1 in hf.encode_batch(["stop <eos> here"])[0]  # tokenizer.json parses it as a special token


def test_gemma_loads_the_sentencepiece_tokenizer():
    assert isinstance(packaged_tokenizer("gemma3-270m"), SentencePieceTokenizer)


def test_sentencepiece_model_is_rebuilt_deterministically():
    folder = packaged_backbone_dir("gemma3-270m")
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    specials = {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>"}
    assert sentencepiece_proto_from_tokenizer_json(data, specials, "gemma") == (folder / SENTENCEPIECE_FILE).read_bytes()


def test_non_sentencepiece_vocab_is_rejected_by_name():
    """SmolLM2's vocabulary is a byte-level BPE: it keeps tokenizer.json, and the converter says why."""
    spec = PACKAGED_BACKBONES["smollm2-135m"]
    folder = packaged_backbone_dir("smollm2-135m")
    assert not spec.sentencepiece and not (folder / SENTENCEPIECE_FILE).exists()
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match=r"smollm2/tokenizer.json: not a SentencePiece-style BPE.*pre_tokenizer 'ByteLevel'"):
        sentencepiece_proto_from_tokenizer_json(data, {}, "smollm2/tokenizer.json")
    assert isinstance(packaged_tokenizer("smollm2-135m"), HFTokenizer)


def test_byte_level_test_tokenizer_interface():
    tok = byte_level_tokenizer()
    ab, empty, accented = tok.encode_batch(["ab", "", "é"])
    assert len(ab) == 2 and ab[0] != ab[1] and empty == [] and len(accented) == 2  # one id per UTF-8 byte
    assert tok.pad_id is not None and tok.bos_id is not None and tok.vocab_size == 259
