"""Dataset builders on the real packaged sources, kept small with limit/langs (whole file < 60 s)."""
from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from mmembed.data.builders import DATASETS, MissingSourceError, build_dataset, sources
from mmembed.data.builders import cldr_terms, clipart, emoji, emoji_groups, gettext_ui, iso_names
from mmembed.data.builders.cldr import city_from_zone_id, read_annotations, read_character_labels, read_terms
from mmembed.data.builders.cldr_lexicon import build_lexicon, singular
from mmembed.data.builders.concepts import Concept, assign_split, select
from mmembed.data.builders.django_po import PLACEHOLDER, sentence_concept_id
from mmembed.data.builders.langcodes import in_own_script, to_cldr
from mmembed.data.manifest import SPLITS, read_manifest

TEN = ["en", "de", "fr", "es", "zh", "ja", "ar", "hi", "sw", "ru"]
SMALL = {
    "emoji": {"limit": 24, "langs": TEN},
    "clipart": {"limit": 40, "langs": TEN},
    "parallel": {"limit": 80, "langs": TEN},
    "cldr-terms": {"limit": 80, "langs": TEN},
    "iso-names": {"limit": 80, "langs": TEN},
    "gettext-ui": {"limit": 80, "langs": TEN},
    "openmoji": {"limit": 30, "langs": TEN},
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each dataset built twice, into two folders, with the same options."""
    out = {}
    for name, options in SMALL.items():
        a = build_dataset(name, tmp_path_factory.mktemp(name) / "a", **options)
        b = build_dataset(name, tmp_path_factory.mktemp(name) / "b", **options)
        out[name] = (a, b)
    return out


def _records(folder: Path) -> dict[str, list]:
    return {split: read_manifest(folder / f"{split}.jsonl") for split in SPLITS}


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(SMALL))
def test_manifests_load_and_match_card(built, name):
    folder = built[name][0]
    records = _records(folder)
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert sum(map(len, records.values())) > 0
    for split, recs in records.items():
        assert card["counts"]["records"][split] == len(recs)
        assert all(r.split == split for r in recs)
    assert card["dataset"] == name
    assert all(s["version"] != "unknown" for s in card["sources"]), card["sources"]
    assert card["options"]["limit"] == SMALL[name]["limit"]


@pytest.mark.parametrize("name", list(SMALL))
def test_splits_are_disjoint_by_concept(built, name):
    records = _records(built[name][0])
    concepts = {split: {r.concept for r in recs} for split, recs in records.items()}
    assert not concepts["train"] & concepts["dev"]
    assert not concepts["train"] & concepts["test"]
    assert not concepts["dev"] & concepts["test"]
    for split, ids in concepts.items():
        assert all(assign_split(c) == split for c in ids)


@pytest.mark.parametrize("name", list(SMALL))
def test_rebuild_is_byte_identical(built, name):
    a, b = built[name]
    tree_a, tree_b = _tree(a), _tree(b)
    assert sorted(tree_a) == sorted(tree_b)
    assert tree_a == tree_b


def test_emoji_covers_the_ten_languages_with_names_and_keywords(built):
    records = [r for recs in _records(built["emoji"][0]).values() for r in recs]
    langs = Counter(r.lang for r in records)
    assert set(TEN) <= set(langs), langs
    kinds = Counter(r.kind for r in records)
    assert kinds["name"] > 0 and kinds["keyword"] > 0
    by_concept = Counter(r.concept for r in records)
    assert len(by_concept) == SMALL["emoji"]["limit"]


def test_emoji_group_names_are_one_category_per_concept_and_language(built):
    records = [r for recs in _records(built["emoji"][0]).values() for r in recs]
    categories = [r for r in records if r.kind == "category"]
    assert {r.lang for r in categories} == set(TEN)  # each of the ten names the emoji groups
    assert max(Counter((r.concept, r.lang) for r in categories).values()) == 1
    english = set(read_character_labels(sources.CLDR.require(), "en").values())
    assert {r.caption for r in categories if r.lang == "en"} <= english
    named = {(r.concept, r.lang) for r in records if r.kind in ("name", "keyword")}
    assert {(r.concept, r.lang) for r in categories} <= named  # never a concept's only caption
    card = json.loads((built["emoji"][0] / "card.json").read_text(encoding="utf-8"))
    assert card["stats"]["emoji_with_group"] == len({r.concept for r in categories})


def test_emoji_groups_keep_every_concept_in_its_split_and_every_caption(tmp_path, monkeypatch):
    """The group captions are additions: same concepts, same splits, the same texts (a keyword
    equal to a group name is now that category record)."""
    options = {"limit": 30, "langs": ["en", "ja", "ar"]}
    with_groups = build_dataset("emoji", tmp_path / "new", **options)
    monkeypatch.setattr(emoji, "read_emoji_groups", lambda common: {})
    without = build_dataset("emoji", tmp_path / "old", **options)
    new = [r for recs in _records(with_groups).values() for r in recs]
    old = [r for recs in _records(without).values() for r in recs]
    assert {r.concept: r.split for r in new} == {r.concept: r.split for r in old}
    assert {(r.concept, r.lang, r.caption) for r in old} <= {(r.concept, r.lang, r.caption) for r in new}
    assert {r.kind for r in new} - {r.kind for r in old} == {"category"}


def test_emoji_group_file_parsing(tmp_path):
    assert emoji_groups.parse_unicode_set("[a-c{xy}d]") == ["a", "b", "c", "xy", "d"]
    with pytest.raises(ValueError, match="unsupported UnicodeSet syntax"):
        emoji_groups.parse_unicode_set(r"[\u0041]")
    assert emoji_groups.group_type("Smileys & People") == "smileys_people"
    (tmp_path / "properties").mkdir()
    labels = tmp_path / "properties" / "labels.txt"
    # '#' is a keycap inside the set and a comment after it; U+FE0F is dropped as in annotations
    labels.write_text("# header\n[{#\ufe0f\u20e3}😀-😂] ;\tSmileys & People ;\tface # note\n"
                      "[{🇩🇪}] ; Flags ; country-flag\n", encoding="utf-8")
    assert emoji_groups.read_emoji_groups(tmp_path) == {
        "#\u20e3": "smileys_people", "😀": "smileys_people", "😁": "smileys_people",
        "😂": "smileys_people", "🇩🇪": "flags"}
    labels.write_text("[a] ; Flags ; x\n[a] ; Objects ; y\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"labels.txt:2: 'a' is in both flags and objects"):
        emoji_groups.read_emoji_groups(tmp_path)


def test_emoji_group_names_come_from_cldr_character_labels():
    common = sources.CLDR.require()
    groups = emoji_groups.read_emoji_groups(common)
    assert groups["🐶"] == "animals_nature" and groups["🇩🇪"] == "flags" and groups["#⃣"] == "symbols"
    assert len(set(groups.values())) == 8
    names = emoji_groups.group_names(common, ["de", "ja", "es_419", "en_GB"], set(groups.values()))
    assert names["de"]["animals_nature"] == "Flora und Fauna" and names["ja"]["flags"] == "旗"
    assert 0 < len(names["es_419"]) < 8  # a regional file names only what differs from es
    assert "en_GB" not in names
    with pytest.raises(ValueError, match="no character label for emoji group.*'not_a_group'"):
        emoji_groups.group_names(common, ["de"], {"flags", "not_a_group"})


def test_parallel_has_sentences_and_names_anchored_in_english(built):
    records = [r for recs in _records(built["parallel"][0]).values() for r in recs]
    assert {r.kind for r in records} <= {"sentence", "name"}
    assert all(r.text and r.text_lang == "en" and r.image is None for r in records)
    assert all(r.caption.casefold() != r.text.casefold() for r in records)
    assert not any(PLACEHOLDER.search(r.text) for r in records if r.kind == "sentence")


@pytest.mark.parametrize("name,max_side", [("emoji", 160), ("clipart", 224)])
def test_images_are_rgb_and_readable(built, name, max_side):
    folder = built[name][0]
    images = {r.image for recs in _records(folder).values() for r in recs}
    assert images
    for rel in images:
        with Image.open(folder / rel) as im:
            im.load()
            assert im.mode == "RGB"
            assert max(im.size) <= max_side
            if name == "emoji":
                assert im.size == (160, 160)
                assert im.getextrema() != ((255, 255),) * 3  # not blank white


@pytest.mark.parametrize("name,attr,hint", [
    ("emoji", "NOTO_EMOJI", "apt-get install fonts-noto-color-emoji"),
    ("emoji", "CLDR", "apt-get install unicode-cldr-core"),
    ("emoji-styles", "SYMBOLA", "apt-get install fonts-symbola"),
    ("emoji-styles", "NOTO_EMOJI", "apt-get install fonts-noto-color-emoji"),
    ("clipart", "OPENCLIPART_PNG", "apt-get install openclipart-png"),
    ("clipart", "OPENCLIPART_SVG", "apt-get install openclipart-svg"),
    ("clipart", "NOTO_EMOJI", "apt-get install fonts-noto-color-emoji"),
    ("parallel", "CLDR", "apt-get install unicode-cldr-core"),
    ("cldr-terms", "CLDR", "apt-get install unicode-cldr-core"),
    ("iso-names", "CLDR", "apt-get install unicode-cldr-core"),
])
def test_missing_debian_source_names_the_package(tmp_path, monkeypatch, name, attr, hint):
    missing = dataclasses.replace(getattr(sources, attr), path=tmp_path / "not-installed")
    monkeypatch.setattr(sources, attr, missing)
    with pytest.raises(MissingSourceError, match=re.escape(hint)):
        build_dataset(name, tmp_path / "out", limit=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("attr,hint", [("DJANGO", "pip install Django"), ("PYCOUNTRY", "pip install pycountry")])
def test_missing_pypi_source_names_the_package(tmp_path, monkeypatch, attr, hint):
    missing = dataclasses.replace(getattr(sources, attr), module="mmembed_no_such_module")
    monkeypatch.setattr(sources, attr, missing)
    with pytest.raises(MissingSourceError, match=re.escape(hint)):
        build_dataset("parallel", tmp_path / "out", limit=1)
    assert not (tmp_path / "out").exists()


def test_interrupted_build_leaves_no_dataset(tmp_path, monkeypatch):
    calls = []
    real_render = emoji.EmojiRenderer.render

    def render_then_crash(self, cp):
        calls.append(cp)
        if len(calls) > 3:
            raise KeyboardInterrupt("simulated interruption mid-build")
        return real_render(self, cp)

    monkeypatch.setattr(emoji.EmojiRenderer, "render", render_then_crash)
    out = tmp_path / "emoji"
    with pytest.raises(KeyboardInterrupt):
        build_dataset("emoji", out, limit=10, langs="en")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temp folder beside it is gone too


def test_failed_rebuild_keeps_previous_dataset_and_rebuild_replaces_it(tmp_path, monkeypatch):
    out = tmp_path / "emoji"
    build_dataset("emoji", out, limit=2, langs="en")
    before = _tree(out)
    monkeypatch.setattr(emoji, "write_dataset", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        build_dataset("emoji", out, limit=3, langs="en")
    assert _tree(out) == before
    monkeypatch.undo()
    build_dataset("emoji", out, limit=3, langs="en")
    assert len({r.concept for r in read_manifest(out / "train.jsonl") + read_manifest(out / "dev.jsonl")
                + read_manifest(out / "test.jsonl")}) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji"]


def test_unknown_dataset_or_option_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        build_dataset("nope", tmp_path / "x")
    with pytest.raises(ValueError, match="has no option colour"):
        build_dataset("emoji", tmp_path / "x", colour=True)
    with pytest.raises(ValueError, match="option size='big'"):
        build_dataset("emoji", tmp_path / "x", size="big")
    with pytest.raises(ValueError, match="option skin_tones=1"):
        build_dataset("emoji", tmp_path / "x", skin_tones=1)
    assert not (tmp_path / "x").exists()
    assert set(DATASETS) == {"emoji", "emoji-styles", "clipart", "parallel", "cldr-terms", "iso-names", "gettext-ui", "gettext-ood",
                             "imagenet-prototypes", "photos", "debian-photos", "tuxpaint", "gcompris", "freedict", "openmoji"}


def test_split_assignment_is_stable_and_about_80_10_10():
    ids = [f"concept:{i}" for i in range(20000)]
    counts = Counter(map(assign_split, ids))
    assert 0.78 < counts["train"] / len(ids) < 0.82
    assert 0.09 < counts["dev"] / len(ids) < 0.11
    assert assign_split("emoji:1f600") == assign_split("emoji:1f600")
    assert select(["c", "a", "b"], lambda x: x, None) == ["a", "b", "c"]
    assert select(ids, lambda x: x, 5) == select(list(reversed(ids)), lambda x: x, 5)


def test_cldr_reader_skips_inheritance_markers_empty_and_unconfirmed(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "xx.xml").write_text(
        """<ldml><annotations>
        <annotation cp="A">alpha | ↑↑↑ |  | beta</annotation>
        <annotation cp="A" type="tts">↑↑↑</annotation>
        <annotation cp="B" type="tts"> </annotation>
        <annotation cp="C" type="tts" draft="unconfirmed">gamma</annotation>
        <annotation cp="D" type="tts">delta  name</annotation>
        </annotations></ldml>""", encoding="utf-8")
    anns = read_annotations(tmp_path, "xx")
    assert sorted(anns) == ["A", "D"]
    assert anns["A"].name is None and anns["A"].keywords == ("alpha", "beta")
    assert anns["D"].name == "delta name"


def test_cldr_term_reader_keeps_full_names_only(tmp_path):
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "xx.xml").write_text(
        """<ldml><localeDisplayNames><scripts><script type="Deva">Devanagari</script>
        <script type="Latn" alt="variant">Roman</script></scripts>
        <types><type key="calendar" type="islamic">Islamic Calendar</type></types></localeDisplayNames>
        <dates><calendars><calendar type="gregorian"><months><monthContext type="format">
        <monthWidth type="abbreviated"><month type="3">Mar</month></monthWidth>
        <monthWidth type="wide"><month type="3">March</month></monthWidth></monthContext></months></calendar></calendars>
        <fields><field type="year"><displayName>year</displayName></field>
        <field type="year-short"><displayName>yr.</displayName></field></fields>
        <timeZoneNames><zone type="Asia/Tokyo"><exemplarCity>Tokio</exemplarCity></zone>
        <zone type="Etc/Unknown"><exemplarCity>Unknown City</exemplarCity></zone>
        <metazone type="Japan"><long><generic>Japan Time</generic><standard>Japan Standard Time</standard></long>
        <short><generic>JT</generic></short></metazone></timeZoneNames></dates>
        <numbers><currencies><currency type="JPY"><displayName>Japanese Yen</displayName>
        <displayName count="one">Japanese yen</displayName></currency>
        <currency type="XXX"><displayName draft="unconfirmed">Nothing</displayName></currency></currencies></numbers>
        <units><unitLength type="long"><unit type="length-meter"><displayName>meters</displayName></unit></unitLength>
        <unitLength type="short"><unit type="length-meter"><displayName>m</displayName></unit></unitLength></units>
        </ldml>""", encoding="utf-8")
    assert {t.key: t.name for t in read_terms(tmp_path, "xx")} == {
        "currency:JPY": "Japanese Yen", "script:Deva": "Devanagari", "unit:length-meter": "meters",
        "month:3": "March", "field:year": "year", "type:calendar:islamic": "Islamic Calendar",
        "city:Asia/Tokyo": "Tokio", "timezone:Japan:generic": "Japan Time",
        "timezone:Japan:standard": "Japan Standard Time"}
    assert city_from_zone_id("America/Los_Angeles") == "Los Angeles"


def test_cldr_terms_never_name_a_held_out_parallel_language_or_territory(built):
    """A term whose English name contains, or sits inside, a dev/test name of `parallel` is not built."""
    held_out = cldr_terms.held_out_names(sources.CLDR.require(), sources.PYCOUNTRY.require())
    assert cldr_terms.leaks("Thai Digits", {" thai "}) and cldr_terms.leaks("Vatican", {" vatican city "})
    assert not cldr_terms.leaks("Thailand Time", {" thai "})  # whole words only
    records = [r for recs in _records(built["cldr-terms"][0]).values() for r in recs]
    assert records and {r.text_lang for r in records} == {"en"} and all(r.image is None for r in records)
    assert all(r.concept.startswith("term:") and not cldr_terms.leaks(r.text, held_out) for r in records)
    english = cldr_terms.english_names(sources.CLDR.require(), ["Asia/Tokyo"])
    yen_held_out = assign_split("language:ja") != "train"  # " japanese " (" japan " is not in "japanese yen")
    assert cldr_terms.leaks(english["currency:JPY"], held_out) == yen_held_out
    assert english["city:Asia/Tokyo"] == "Tokyo" and english["month:1"] == "January"


def test_iso_names_never_name_a_held_out_parallel_language_or_territory(tmp_path):
    """The full build: no ISO 639-3 language whose CLDR code is a `parallel` dev/test concept, no name
    that contains or sits inside a held-out name; the rest is there, with its translations."""
    import pycountry

    folder = build_dataset("iso-names", tmp_path / "iso", langs=["hi", "de"])
    records = [r for recs in _records(folder).values() for r in recs]
    held_out = cldr_terms.held_out_names(sources.CLDR.require(), sources.PYCOUNTRY.require())
    assert all(not cldr_terms.leaks(r.text, held_out) for r in records)
    concepts = {r.concept for r in records}
    held_codes = iso_names.held_out_language_codes()
    held_langs = [x for x in pycountry.languages if getattr(x, "alpha_2", None) in held_codes]
    kept_langs = [x for x in pycountry.languages if hasattr(x, "alpha_2") and x.alpha_3 not in held_codes
                  and x.alpha_2 not in held_codes and f"iso639-3:{x.alpha_3}" in concepts]
    assert held_langs and kept_langs  # both kinds exist among the 184 two-letter languages
    assert all(f"iso639-3:{x.alpha_3}" not in concepts for x in held_langs)
    assert all(assign_split(f"language:{x.alpha_2}") == "train" for x in kept_langs)
    by_kind = {k: [r for r in records if r.kind == k] for k in ("language", "subdivision")}
    assert len(by_kind["language"]) > 5000 and len(by_kind["subdivision"]) > 4000
    assert {r.lang for r in records} == {"hi", "de"}
    assert all(r.text_lang == "en" and r.image is None and r.caption.casefold() != r.text.casefold()
               for r in records)
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert card["stats"]["dropped"]["held-out language code"] > 0


def test_cldr_lexicon_matches_names_and_unique_keywords():
    lexicon = build_lexicon(sources.CLDR.require(), ["en", "de", "ja"])
    cat = lexicon.match("Cats")
    assert cat is not None and cat.via == "name" and cat.word == "cat"
    assert lexicon.names[cat.cp]["de"] == "Katze"
    assert lexicon.match("fruit") is None  # a keyword of many emoji names none of them
    assert lexicon.match("paren") is not None  # CLDR names ')' too ...
    drawable = build_lexicon(sources.CLDR.require(), ["en"], keep=emoji.EmojiRenderer(sources.NOTO_EMOJI.require()).has_glyph)
    assert drawable.match("paren") is None  # ... which the emoji font cannot draw
    assert drawable.match("cat") == cat
    assert singular("butterflies") == singular("butterfly") == "butterfly"
    assert singular("glass") == "glass"


def test_clipart_keyword_matches_only_count_from_titles():
    lexicon = build_lexicon(sources.CLDR.require(), ["en", "de"])
    word = next(w for w, cp in sorted(lexicon.by_keyword.items()) if cp in lexicon.names)
    matched: Counter = Counter()
    from_keyword = Concept("clipart:x", image="x.png")
    clipart._cldr_captions(from_keyword, [(word, "keyword")], lexicon, "cldr", matched)
    assert from_keyword.captions == []
    from_title = Concept("clipart:y", image="y.png")
    clipart._cldr_captions(from_title, [(word, "title")], lexicon, "cldr", matched)
    assert {c.lang for c in from_title.captions} >= {"en"}
    assert all(c.kind == "cldr_name" and repr(singular(word)) in c.source for c in from_title.captions)


def test_clipart_filename_caption_drops_author_and_numbers():
    assert clipart.filename_caption("pesca_architetto_frances_01", "Architetto Francesco Rollandin") == "pesca"
    assert clipart.filename_caption("aiga_baggage_check_in1", None) == "aiga baggage check in"
    assert clipart.clean_title("Clipart by Nicu Buculei - pear") == "pear"


def test_locale_codes_follow_cldr():
    assert to_cldr("zh_Hans") == "zh" and to_cldr("zh_CN") == "zh"
    assert to_cldr("sr@latin") == "sr_Latn" and to_cldr("de") == "de"
    assert PLACEHOLDER.search("Delete %(name)s?") and PLACEHOLDER.search("Page {page}")
    assert not PLACEHOLDER.search("Enter a valid date, 100% sure.")


@pytest.mark.parametrize("text, lang, expected", [
    ("ஓர் ஆப்பிள்", "ta", True), ("´Õ ¾À¡ø¦ÀðÊ", "ta", False),  # TSCII read as Latin-1
    ("बिज्जू", "hi", True), ("Jack-o’-lantern", "mk", False), ("tqhk,vn", "fa", False),
    ("一只獾", "zh", True), ("りんご", "ja", True), ("DVD プレーヤー", "ja", True),
    ("A badger", "de", True), ("A badger", "sw", True),  # Latin-script languages are not checked
    ("123 / 2", "ru", True),  # no letters: nothing to say
])
def test_in_own_script(text, lang, expected):
    assert in_own_script(text, lang) is expected


def test_cli_list_and_build(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mmembed.data.cli import data_app, parse_option

    root = typer.Typer()
    root.add_typer(data_app, name="data")
    runner = CliRunner()
    listed = runner.invoke(root, ["data", "list"])
    assert listed.exit_code == 0 and all(n in listed.output for n in DATASETS)
    out = tmp_path / "e"
    result = runner.invoke(root, ["data", "build", "emoji", "--out", str(out), "--limit", "3",
                                  "--langs", "en,sw", "--set", "size=64"])
    assert result.exit_code == 0, result.output
    assert "3 concepts, 2 languages" in result.output
    assert Image.open(next((out / "images").iterdir())).size == (64, 64)
    bad = runner.invoke(root, ["data", "build", "emoji", "--out", str(out), "--set", "nope=1"])
    assert bad.exit_code == 2
    assert parse_option("max_per_category=none") == ("max_per_category", None)
    assert parse_option("skin_tones=true") == ("skin_tones", True)


def test_system_deps_script_installs_exactly_the_builders_packages():
    script = (ROOT / "scripts" / "system-deps.sh").read_text(encoding="utf-8")
    listed = re.search(r"^PACKAGES=\(([^)]*)\)", script, re.M)
    assert listed is not None
    from mmembed import glossary  # and the dictionaries of query glossing
    from mmembed.evaluation import fonts  # the plots' fallback fonts are installed there too

    packages = listed.group(1).split()
    assert len(packages) == len(set(packages))
    assert set(packages) == set(sources.DEBIAN_PACKAGES + fonts.DEBIAN_PACKAGES + glossary.DEBIAN_PACKAGES)
    assert "DEBIAN_FRONTEND=noninteractive" in script
    assert script.index('"${APT[@]}" update') < script.index('"${APT[@]}" install')  # package lists refreshed first
    # the npm source, pinned as the builder's install hint pins it
    assert f"OPENMOJI={sources.OPENMOJI.package}@{sources.OPENMOJI.version}\n" in script
    import subprocess

    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "system-deps.sh")]).returncode == 0


def test_gettext_ui_sentences_share_parallel_splits_and_hold_no_held_out_name(built):
    """A UI sentence's concept is the one `parallel` gives the same English sentence (so its split is
    the same in both), no English text names a `parallel` dev/test language or territory, and the
    keyboard mnemonics of the catalogs are gone."""
    records = [r for recs in _records(built["gettext-ui"][0]).values() for r in recs]
    held_out = cldr_terms.held_out_names(sources.CLDR.require(), sources.PYCOUNTRY.require())
    assert records and {r.kind for r in records} == {"sentence"} and {r.text_lang for r in records} == {"en"}
    assert {"hi", "ar", "de", "zh"} <= {r.lang for r in records} <= set(TEN)
    for r in records:
        assert r.concept == sentence_concept_id(r.text) and r.split == assign_split(r.concept)
        assert not cldr_terms.leaks(r.text, held_out) and len(r.text.split()) >= 4
        assert not PLACEHOLDER.search(r.text) and not PLACEHOLDER.search(r.caption)
        assert "(_" not in r.caption and not r.caption.startswith("_") and not r.text.startswith("_")
        assert r.source.split()[0] in {c.package for c in sources.GETTEXT_UI} and r.source.endswith(".mo)")


def test_gettext_ui_cleaning():
    assert gettext_ui.clean_ui("_Open the selected file") == "Open the selected file"
    assert gettext_ui.clean_ui("打开所选文件(_O)") == "打开所选文件"
    assert gettext_ui.clean_ui("Show <b>all</b> hidden files:") == "Show all hidden files"
    assert gettext_ui.clean_ui("GTK_ICON_SIZE_MENU is not a size") == "GTK_ICON_SIZE_MENU is not a size"


def test_gettext_ui_missing_catalog_names_its_package(tmp_path, monkeypatch):
    first, *rest = sources.GETTEXT_UI
    monkeypatch.setattr(sources, "GETTEXT_UI", (dataclasses.replace(first, path=tmp_path / "de" / "x" / "gtk20.mo"), *rest))
    with pytest.raises(MissingSourceError, match=re.escape(f"apt-get install {first.package}")):
        build_dataset("gettext-ui", tmp_path / "out", limit=1)
    assert not (tmp_path / "out").exists()


def _fake_ood_catalogs(root: Path) -> tuple:
    """A stand-in evaluation-only package with German, Hindi and British English catalogs of one domain."""
    import polib

    entries = [("Refresh the list of available packages now", {"de": "Liste der verfügbaren Pakete jetzt auffrischen",
                                                               "hi": "उपलब्ध पैकेजों की सूची अभी ताज़ा करें"}),
               ("command -- the (optional) command to explain!", {"de": "BEFEHL", "hi": "आदेश"}),  # glib20's, recased
               ("enter a valid email address", {"de": "Gültige E-Mail-Adresse eingeben", "hi": "ईमेल"}),  # Django's
               ("_Open", {"de": "Ö_ffnen", "hi": "खोलें"}),  # short
               ("Installing %s now, please wait", {"de": "Installiere %s", "hi": "%s"})]  # placeholder
    for lang in ("de", "hi", "en_GB"):
        mo = polib.POFile()
        mo.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
        for english, translations in entries:
            mo.append(polib.POEntry(msgid=english, msgstr=translations.get(lang, english)))
        folder = root / lang / "LC_MESSAGES"
        folder.mkdir(parents=True)
        mo.save_as_mofile(str(folder / "fakekit.mo"))
    return (sources.GettextCatalog("fakekit", root / "de" / "LC_MESSAGES" / "fakekit.mo", "fakekit catalogs", "GPL-2+",
                                   domain="fakekit", in_system_deps=False),)


def test_gettext_ood_is_all_test_and_drops_sentences_a_training_source_holds(tmp_path, monkeypatch):
    """The out-of-domain sentence test: every record in TEST, English locales skipped, Django's rules applied, and
    a sentence whose English is in a gettext-ui or Django catalog (case and punctuation aside) dropped."""
    monkeypatch.setattr(sources, "GETTEXT_OOD", _fake_ood_catalogs(tmp_path / "locale"))
    out = build_dataset("gettext-ood", tmp_path / "out")
    records = _records(out)
    assert records["train"] == [] and records["dev"] == []
    test = records["test"]
    assert {(r.text, r.lang) for r in test} == {("Refresh the list of available packages now", "de"),
                                                ("Refresh the list of available packages now", "hi")}
    assert all(r.split == "test" and r.concept == sentence_concept_id(r.text) and r.kind == "sentence" for r in test)
    assert {r.source for r in test} == {"fakekit unknown (fakekit.mo)"}
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert card["stats"]["skipped"] == {"English sentence in a training source": 4, "placeholder": 2, "short": 2}
    assert card["counts"]["concepts"]["test"] == 1
    assert DATASETS["gettext-ood"].description.startswith("EVAL ONLY")  # `mmembed data list` says it trains nothing


def test_gettext_ood_names_the_package_to_install_and_not_the_setup_script(tmp_path, monkeypatch):
    fake = _fake_ood_catalogs(tmp_path / "locale")
    monkeypatch.setattr(sources, "GETTEXT_OOD", (dataclasses.replace(fake[0], path=tmp_path / "nowhere.mo"),))
    with pytest.raises(MissingSourceError, match=r"install it with `apt-get install fakekit`$"):
        build_dataset("gettext-ood", tmp_path / "out")
    assert not (tmp_path / "out").exists()
