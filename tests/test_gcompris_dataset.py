"""The GCompris photos dataset: the Qt readers and the builder's rules on a small fake package written
in Qt's own formats, then the real package."""
from __future__ import annotations

import dataclasses
import io
import json
import re
import struct
import zlib
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from mmembed.data.builders import DATASETS, MissingSourceError, build_dataset, gcompris, sources
from mmembed.data.builders.qt_resources import QM_MAGIC, QtFormatError, read_qm, read_rcc
from mmembed.data.manifest import SPLITS, read_manifest
from mmembed.evaluation.data import find_datasets

ACT = "/gcompris/src/activities"


def write_rcc(path: Path, files: dict[str, bytes], compress: bool = False) -> None:
    """A version-2 Qt resource bundle, laid out as Qt's rcc writes it (children of a folder are
    consecutive nodes, breadth first)."""
    tree: dict = {}
    for name, data in files.items():
        node = tree
        *folders, leaf = name.strip("/").split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = data
    names, name_at, payload, nodes = bytearray(), {}, bytearray(), []

    def name_offset(name: str) -> int:
        if name not in name_at:
            name_at[name] = len(names)
            names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return name_at[name]

    queue = [("", tree)]
    for index, (name, obj) in enumerate(queue):  # the queue grows while we walk it
        if isinstance(obj, dict):
            first = len(queue)
            queue.extend(sorted(obj.items()))
            nodes.append(struct.pack(">IHII", name_offset(name) if index else 0, 2, len(obj), first) + bytes(8))
        else:
            blob, flags = (struct.pack(">I", len(obj)) + zlib.compress(obj), 1) if compress else (obj, 0)
            nodes.append(struct.pack(">IHHHI", name_offset(name), flags, 0, 0, len(payload)) + bytes(8))
            payload.extend(struct.pack(">I", len(blob)) + blob)
    tree_at = 20
    data_at = tree_at + sum(map(len, nodes))
    names_at = data_at + len(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"qres" + struct.pack(">IIII", 2, tree_at, data_at, names_at) + b"".join(nodes)
                     + bytes(payload) + bytes(names))


def write_qm(path: Path, messages: dict[tuple[str, str], str]) -> None:
    body = bytearray()
    for (context, source), translation in messages.items():
        t, s, c = translation.encode("utf-16-be"), source.encode(), context.encode()
        body += b"\x03" + struct.pack(">I", len(t)) + t + b"\x06" + struct.pack(">I", len(s)) + s
        body += b"\x07" + struct.pack(">I", len(c)) + c + b"\x05" + bytes(4) + b"\x01"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(QM_MAGIC + b"\x69" + struct.pack(">I", len(body)) + bytes(body))


def _photo(rgb) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), rgb).save(buf, format="WEBP")
    return buf.getvalue()


BOARD = '''QtObject {
    property var tab : [
        {
            "image": "qrc:%(act)s/%(name)s/resource/animals/question.svg",
            "title": qsTr("%(title)s"),
            "text": qsTr("The \\"%(title)s\\" lives far away."),
            "image2": "qrc:%(act)s/%(name)s/resource/animals/%(stem)s.webp",
            "x": 0.6
        },
        {
            "title": qsTr("No photo here"),
            "text": qsTr("Nothing")
        }
    ]
}'''


def _explore(root: Path, name: str, title: str, stem: str, rgb, license_block: str = "") -> None:
    base = f"{ACT}/{name}/resource"
    files = {f"{base}/board/board1.qml": (BOARD % {"act": ACT, "name": name, "title": title, "stem": stem}).encode(),
             f"{base}/animals/{stem}.webp": _photo(rgb)}
    if license_block:
        files[f"{base}/animals/README"] = license_block.encode()
    write_rcc(root / "rcc" / f"{name}.rcc", files, compress=name.endswith("animals"))


@pytest.fixture()
def fake_gcompris(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "gcompris-qt"
    _explore(root, "explore_world_animals", "Kangaroo", "kangaroo", (200, 120, 40),
             "Copyright: Jane Doe\nLicense: CC0-1.0\nSource: https://example.org/k.jpg\nFiles:\nkangaroo.webp\n\n"
             "Copyright: Someone\nLicense: CC-BY-SA 4.0\nFiles:\nquestion.svg\n")
    _explore(root, "explore_farm_animals", "Cat", "cat", (90, 90, 90))  # a `photos` eval object
    _explore(root, "explore_monuments", "Taj Mahal", "tajMahal", (240, 240, 230))
    cat = f"{ACT}/categorization/resource/images"
    write_rcc(root / "rcc" / "categorization.rcc", {
        f"{cat}/tools/hammer1.webp": _photo((150, 60, 60)), f"{cat}/tools/hammer2.webp": _photo((160, 70, 60)),
        f"{cat}/tools/gizmo.webp": _photo((0, 0, 255)),  # not in NAMES
        f"{cat}/monuments/eiffelTower.webp": _photo((1, 2, 3)),  # a folder the builder leaves out
        f"{cat}/tools/README": b"Copyright: Tool Maker\nLicense: Public Domain\nFiles:\nhammer1.webp\n",
    })
    lang = f"{ACT}/lang/resource"
    write_rcc(root / "rcc" / "lang.rcc", {
        f"{lang}/content-en.json": json.dumps({"hammer.ogg": "hammer", "kangaroo.ogg": "kangaroo"}).encode(),
        f"{lang}/content-hi.json": json.dumps({"hammer.ogg": "हथौड़ा", "kangaroo.ogg": "कंगारू"}).encode(),
        f"{lang}/content-zh_CN.json": json.dumps({"hammer.ogg": "锤子"}).encode(),
    })
    write_qm(root / "translations" / "gcompris_de.qm", {
        ("board1", "Kangaroo"): "Känguru", ("board1", 'The "Kangaroo" lives far away.'): "Das Känguru lebt weit weg.",
        ("board1", "Taj Mahal"): "Taj Mahal",  # the same name in German: an untranslated copy
        ("board1", "Cat"): "Katze",
    })
    write_qm(root / "translations" / "gcompris_en.qm", {("board1", "Cat"): "Cat"})
    monkeypatch.setattr(sources, "GCOMPRIS", dataclasses.replace(sources.GCOMPRIS, path=root))
    return root


def test_qt_readers_round_trip_and_name_a_bad_file(tmp_path):
    files = {"/a/b/one.txt": b"1", "/a/two.bin": bytes(range(256)), "/c/three": b"3" * 1000}
    for compress in (False, True):
        write_rcc(tmp_path / "x.rcc", files, compress=compress)
        assert read_rcc(tmp_path / "x.rcc") == files
    write_qm(tmp_path / "x.qm", {("ctx", "Hello"): "Hallo", ("other", "Bye"): "Tschüss"})
    assert read_qm(tmp_path / "x.qm") == {("ctx", "Hello"): "Hallo", ("other", "Bye"): "Tschüss"}
    (tmp_path / "bad.rcc").write_bytes(b"nope")
    with pytest.raises(QtFormatError, match=re.escape(f"{tmp_path / 'bad.rcc'}: not a Qt resource file")):
        read_rcc(tmp_path / "bad.rcc")
    with pytest.raises(QtFormatError, match="not a Qt translation file"):
        read_qm(tmp_path / "bad.rcc")
    (tmp_path / "cut.qm").write_bytes(QM_MAGIC + b"\x69" + struct.pack(">I", 10) + b"\x03\x00")
    with pytest.raises(QtFormatError, match="truncated"):
        read_qm(tmp_path / "cut.qm")


def test_readme_licenses_and_explore_entries():
    readme = (b"Copyright: A\nLicense: CC0-1.0\nSource: https://x\nFiles:\nx.webp y.webp\nz.webp\n\n"
              b"License: GPLv3\nFiles:\nsub/w.webp\n")
    lic = gcompris.read_licenses({"/r/README": readme})
    assert lic == {"/r/x.webp": "CC0-1.0 (A; https://x)", "/r/y.webp": "CC0-1.0 (A; https://x)",
                   "/r/z.webp": "CC0-1.0 (A; https://x)", "/r/sub/w.webp": "GPLv3"}
    entries = gcompris.explore_entries(BOARD % {"act": ACT, "name": "e", "title": "Yak", "stem": "yak"})
    assert entries == [{"title": "Yak", "text": 'The "Yak" lives far away.',
                        "image2": f"qrc:{ACT}/e/resource/animals/yak.webp"}]  # the entry without a photo is not


def test_fake_build_groups_photos_by_object_and_keeps_eval_objects_out_of_training(fake_gcompris, tmp_path):
    out = build_dataset("gcompris", tmp_path / "g")
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    records = {s: list(read_manifest(out / f"{s}.jsonl")) for s in SPLITS}
    by = defaultdict(dict)
    for s, rs in records.items():
        for r in rs:
            by[r.concept].setdefault((r.lang, r.kind), r.caption)
            assert r.split == s and (out / r.image).is_file()
    # the cat is a `photos` eval object: test only, whatever its hash says
    assert {r.split for rs in records.values() for r in rs if r.concept == "gcompris:cat"} == {"test"}
    assert gcompris.object_split("Cat") == "test" and gcompris.object_split("cup") == "test"
    # both hammer photos share one split; only train keeps the second
    hammer_split = gcompris.object_split("hammer")
    hammers = {r.concept for r in records[hammer_split] if r.concept.startswith("gcompris:hammer")}
    assert hammers == ({"gcompris:hammer", "gcompris:hammer~1"} if hammer_split == "train" else {"gcompris:hammer"})
    assert card["stats"]["extra_photos_dropped"] == (0 if hammer_split == "train" else 1)
    assert by["gcompris:hammer"] == {("en", "name"): "hammer", ("hi", "name"): "हथौड़ा", ("zh", "name"): "锤子"}
    assert by["gcompris:kangaroo"] == {
        ("en", "name"): "Kangaroo", ("de", "name"): "Känguru", ("hi", "name"): "कंगारू",
        ("en", "description"): 'The "Kangaroo" lives far away.', ("de", "description"): "Das Känguru lebt weit weg."}
    assert by["gcompris:taj-mahal"] == {("en", "name"): "Taj Mahal", ("en", "description"): 'The "Taj Mahal" lives far away.'}
    assert card["stats"]["untranslated_copies"] == {"de": 1}
    assert card["stats"]["skipped"] == {"categorization_unnamed": 1}
    assert not any("eiffel" in c for c in by)  # categorization/monuments is not read
    licenses = {r.concept: r.license for rs in records.values() for r in rs}
    assert licenses["gcompris:kangaroo"].startswith("CC0-1.0 (Jane Doe; https://example.org/k.jpg); GPL-3.0")
    assert licenses["gcompris:hammer"].startswith("Public Domain (Tool Maker)")
    assert licenses["gcompris:cat"].startswith(gcompris.PACKAGE_LICENSE)  # no README entry
    with Image.open(out / records["test"][0].image) as im:
        assert im.mode == "RGB" and max(im.size) == 224


def test_fake_build_langs_limit_and_errors(fake_gcompris, tmp_path):
    out = build_dataset("gcompris", tmp_path / "hi", langs="hi")
    assert {r.lang for s in SPLITS for r in read_manifest(out / f"{s}.jsonl")} == {"hi"}
    out = build_dataset("gcompris", tmp_path / "one", limit=1)
    assert json.loads((out / "card.json").read_text(encoding="utf-8"))["stats"]["objects"] == 1
    with pytest.raises(ValueError, match="no caption of any GCompris photo"):
        build_dataset("gcompris", tmp_path / "none", langs="xx")
    assert not (tmp_path / "none").exists()  # nothing half-written
    (fake_gcompris / "rcc" / "lang.rcc").write_bytes(b"broken")
    with pytest.raises(QtFormatError, match="lang.rcc: not a Qt resource file"):
        build_dataset("gcompris", tmp_path / "broken")
    assert not (tmp_path / "broken").exists()


def test_missing_package_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "GCOMPRIS", dataclasses.replace(sources.GCOMPRIS, path=tmp_path / "none"))
    with pytest.raises(MissingSourceError, match=re.escape("apt-get install gcompris-qt-data")):
        build_dataset("gcompris", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gcompris")
    langs = ["en", "de", "fr", "zh", "hi", "ru"]
    return build_dataset("gcompris", root / "a", langs=langs), build_dataset("gcompris", root / "b", langs=langs)


def test_real_package_builds_deterministically_without_eval_objects_in_training(real):
    a, b = real
    tree = lambda f: {p.relative_to(f).as_posix(): p.read_bytes() for p in sorted(f.rglob("*")) if p.is_file()}
    assert tree(a) == tree(b)
    card = json.loads((a / "card.json").read_text(encoding="utf-8"))
    assert card["sources"][0]["package"] == "gcompris-qt-data"
    assert card["stats"]["objects"] >= 100 and card["stats"]["photos"] >= 180
    assert card["stats"]["skipped"] == {}  # every categorization photo has a name in NAMES
    split_of = {}
    for s in SPLITS:
        for r in read_manifest(a / f"{s}.jsonl"):
            obj = r.concept.split("~")[0]
            assert split_of.setdefault(obj, s) == s  # every photo and caption of an object in one split
            if s != "test":
                assert not (r.lang == "en" and r.kind == "name" and r.caption.casefold() in gcompris.EVAL_OBJECTS)
    assert split_of["gcompris:cat"] == "test" and split_of["gcompris:cup"] == "test"
    per_lang = card["counts"]["per_language"]
    assert per_lang["de"]["test"] >= 10 and per_lang["hi"]["total"] >= 50 and per_lang["zh"]["total"] >= 50
    ds = {d.name: d for d in find_datasets(a, "test")}
    assert len(next(iter(ds.values())).concepts) == card["counts"]["concepts"]["test"]


def test_registered():
    assert "gcompris" in DATASETS and "photographs" in DATASETS["gcompris"].description
