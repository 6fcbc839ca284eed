"""Plot labels in non-Latin scripts draw as glyphs (fallback fonts), and a missing font is one clear
warning, not boxes and silence. Needs the fonts of scripts/system-deps.sh."""
import warnings
from pathlib import Path

import pytest
from PIL import Image

from mmembed.evaluation import fonts
from mmembed.evaluation.plots import _short, label_fonts, write_plots
from mmembed.evaluation.runner import EncoderRun, EvalRun, SimilarityPreview, TaskResult

# CLDR 41's character label "animals_nature" in each language (main/LANG.xml)
LABELS = {"zh": "动物与自然", "ja": "動物と自然", "hi": "पशु और प्रकृति", "ar": "حيوانات وطبيعة",
          "ko": "동물 및 자연", "ta": "விலங்குகள் & இயற்கை", "th": "สัตว์หรือธรรมชาติ", "am": "እንስሳት እና ተፈጥሮ"}


def _run() -> EvalRun:
    run = EvalRun(encoders=[EncoderRun("m", {}, {})])
    run.results = [TaskResult("m", "zeroshot", "emoji", lang, {"acc": 0.5}, 4, 8) for lang in LABELS]
    texts = list(LABELS.values())
    run.previews = [SimilarityPreview("m", "zeroshot/emoji/xx", texts, texts,
                                      [[float(i == j) for j in range(len(texts))] for i in range(len(texts))])]
    return run


def test_fallback_fonts_are_installed():
    missing = fonts.missing_fonts()
    assert not missing, f"install {' '.join(sorted({f.package for f in missing}))} (scripts/system-deps.sh)"


def test_every_label_glyph_is_found_by_matplotlib_font_lookup():
    from matplotlib import font_manager, ft2font

    with label_fonts() as families:
        paths = font_manager.fontManager._find_fonts_by_props(font_manager.FontProperties(family=families))
    charmaps = [set(ft2font.FT2Font(str(p)).get_charmap()) for p in paths]
    for lang, text in LABELS.items():
        lost = [ch for ch in text if not ch.isspace() and not any(ord(ch) in cm for cm in charmaps)]
        assert not lost, f"{lang}: no font in {families} has {lost}"


def test_plots_render_labels_without_missing_glyph_warnings(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_plots(_run(), tmp_path)
    assert [str(w.message) for w in caught] == []  # matplotlib warns 'Glyph ... missing' per lost glyph
    for path in paths:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 100


def test_missing_font_is_one_warning_naming_the_package(tmp_path, monkeypatch):
    absent = fonts.FallbackFont(Path(tmp_path / "NotoSansDevanagari-Regular.ttf"), "fonts-noto-core", "Devanagari")
    monkeypatch.setattr(fonts, "FALLBACK_FONTS", (absent,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_plots(_run(), tmp_path / "out")
    assert [w.category for w in caught] == [fonts.MissingFontWarning]
    assert "apt-get install fonts-noto-core" in str(caught[0].message) and "Devanagari" in str(caught[0].message)
    assert all(p.is_file() for p in paths)  # still drawn, with boxes for the lost scripts


def test_font_families_register_each_file_once():
    with pytest.warns(fonts.MissingFontWarning, match="fonts-nope"):
        families = fonts.font_families([fonts.FALLBACK_FONTS[0],
                                        fonts.FallbackFont(Path("/nonexistent.ttf"), "fonts-nope", "Nope")])
    assert families == [fonts.PRIMARY_FAMILY, "Noto Sans Arabic"]
    assert fonts.font_families(fonts.FALLBACK_FONTS[:1]) == families


@pytest.mark.parametrize("label", ["இயற்கை மற்றும் விலங்குகள்", "प्रकृति और जानवरों का समूह", "a" * 30])
def test_short_labels_cut_between_syllables(label):
    import unicodedata

    out = _short(label, 18)
    assert out.endswith("…") and len(out) <= 18 and label.startswith(out[:-1])
    rest = label[len(out) - 1 :]  # what was cut off never starts with a mark of the last kept syllable
    assert not unicodedata.category(rest[0]).startswith("M") and out[-2] not in "\u094d\u0bcd\u200d"
    assert _short("short", 18) == "short"
