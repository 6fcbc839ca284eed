"""scripts/teacher_word_translation.py on a tiny dictionary: e5 (the packaged weights) ranks the English pool
for each word, and P@1 / P@5 count the dictionary's translations."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from mmembed.data.manifest import PairRecord, write_manifest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "teacher_word_translation.py"


def _script():
    spec = importlib.util.spec_from_file_location("teacher_word_translation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest(tmp_path: Path) -> Path:
    # German words the teacher knows well; a Swahili one; an image record the script must pass over
    pairs = [("house", "Haus", "de"), ("water", "Wasser", "de"), ("dog", "Hund", "de"), ("book", "kitabu", "sw")]
    records = [PairRecord(f"word:{en}", other, lang, text=en, text_lang="en", kind="word") for en, other, lang in pairs]
    records.append(PairRecord("emoji:1f600", "grinning face", "en", image="images/1f600.png"))
    path = tmp_path / "train.jsonl"
    write_manifest(path, records)
    return path


def test_word_translation_counts_the_dictionarys_translations(tmp_path, monkeypatch, capsys):
    manifest = _manifest(tmp_path)
    monkeypatch.setattr(sys, "argv", ["x", "--lang", "de", "--manifest", str(manifest), "--examples", "Hund"])
    _script().main()
    out = capsys.readouterr().out
    assert "de: 3 words, pool of 4 English words" in out
    p1, p5 = map(float, re.search(r"P@1 ([\d.]+)  P@5 ([\d.]+)", out).groups())
    assert p5 == 100.0  # the pool has 4 words: every translation is in the top 5
    assert p1 >= 2 / 3 * 100  # e5 translates Haus, Wasser, Hund
    assert re.search(r"^Hund -> dog, ", out, re.MULTILINE)


def test_word_translation_refuses_a_language_the_manifest_lacks(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x", "--lang", "hi", "--manifest", str(_manifest(tmp_path))])
    with pytest.raises(SystemExit, match="no records in language 'hi'"):
        _script().main()
