"""Task construction from manifests (no model): queries, targets, correctness; bad input."""
import json

import pytest
from eval_fixtures import make_eval_data

from mmembed.evaluation.data import EvalDataError, find_datasets, load_eval_data
from mmembed.evaluation.metrics import relevance_from_keys
from mmembed.evaluation.tasks import TaskError, build_tasks, parse_task_names


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_eval_data(tmp_path_factory.mktemp("evaldata"))


def _by_id(tasks):
    return {t.id: t for t in tasks}


def test_folder_of_datasets_is_found(data):
    assert [d.name for d in find_datasets(data)] == ["parallel", "shapes"]
    assert [d.name for d in find_datasets(data / "shapes")] == ["shapes"]
    assert [d.name for d in find_datasets(data / "shapes" / "train.jsonl")] == ["train"]


def test_t2i_and_i2t_use_names_and_the_whole_gallery(data):
    tasks, notes = build_tasks(["t2i", "i2t"], find_datasets(data / "shapes"))
    assert notes == []
    t = _by_id(tasks)
    t2i = t["t2i/shapes/de"]
    assert t2i.queries.modality == "text" and t2i.targets.modality == "image"
    assert len(t2i.queries) == 8 and len(t2i.targets) == 8
    assert "Kreis" not in t2i.queries.items  # the category caption is not the concept's query
    assert "rotes Kreis" in t2i.queries.items
    rel = relevance_from_keys(t2i.queries.keys, t2i.targets.keys)
    assert rel.sum(axis=1).tolist() == [1] * 8  # exactly its own image
    assert t["i2t/shapes/fr"].queries.modality == "image"
    assert sorted(t) == ["i2t/shapes/de", "i2t/shapes/en", "i2t/shapes/fr", "t2i/shapes/de", "t2i/shapes/en", "t2i/shapes/fr"]


def test_zeroshot_classes_come_from_category_captions(data):
    tasks, _ = build_tasks(["zeroshot"], find_datasets(data / "shapes"), frozenset({"de"}))
    (task,) = tasks
    assert sorted(task.targets.items) == ["Kreis", "Quadrat"]
    rel = relevance_from_keys(task.queries.keys, task.targets.keys)
    assert rel.sum() == 8 and rel.sum(axis=0).tolist() == [4, 4]  # 4 circles, 4 squares


def test_zeroshot_on_emoji_has_class_names_in_several_scripts(tmp_path):
    """The emoji builder's group names (CLDR) are the classes: one task per language, the same
    images, one correct class each; t2i still queries with the emoji's name."""
    from mmembed.data.builders import build_dataset

    folder = build_dataset("emoji", tmp_path / "emoji", limit=60, langs="en,zh,ja,hi,ar")
    (ds,) = find_datasets(folder, split="train")
    tasks, _ = build_tasks(["zeroshot", "t2i"], [ds])
    t = _by_id(tasks)
    assert {f"zeroshot/emoji/{lang}" for lang in ("en", "zh", "ja", "hi", "ar")} <= set(t)
    assert set(t["zeroshot/emoji/en"].targets.items) <= {"smiley or person", "animal or nature", "food & drink",
                                                         "travel or place", "activity", "object", "symbol", "flags"}
    assert set(t["zeroshot/emoji/ja"].targets.items) <= {"スマイリーと人々", "動物と自然", "食事と飲み物", "旅行と場所",
                                                          "アクティビティ", "物", "記号", "旗"}
    for lang in ("zh", "hi", "ar"):
        task = t[f"zeroshot/emoji/{lang}"]
        assert 2 <= len(task.targets) <= 8 and not any(item.isascii() for item in task.targets.items)
        assert relevance_from_keys(task.queries.keys, task.targets.keys).sum(axis=1).tolist() == [1] * len(task.queries)
    assert not set(t["t2i/emoji/ja"].queries.items) & set(t["zeroshot/emoji/ja"].targets.items)


def test_zeroshot_needs_category_captions(tmp_path):
    from eval_fixtures import shape_records

    from mmembed.data.manifest import write_manifest

    write_manifest(tmp_path / "test.jsonl", [r for r in shape_records(tmp_path, "test") if r.kind != "category"])
    with pytest.raises(TaskError, match="no captions of kind category or class"):
        build_tasks(["zeroshot"], find_datasets(tmp_path))


def test_bitext_both_directions_per_pair(data):
    tasks, _ = build_tasks(["bitext"], find_datasets(data / "parallel"))
    t = _by_id(tasks)
    assert sorted(t) == ["bitext/parallel/de->en", "bitext/parallel/en->de", "bitext/parallel/en->fr", "bitext/parallel/fr->en"]
    fwd, bwd = t["bitext/parallel/de->en"], t["bitext/parallel/en->de"]
    assert fwd.queries.items == bwd.targets.items and fwd.targets.items == bwd.queries.items
    assert "Wo ist der Bahnhof?" in fwd.queries.items and "Where is the station?" in fwd.targets.items
    assert relevance_from_keys(fwd.queries.keys, fwd.targets.keys).tolist() == [[i == j for j in range(6)] for i in range(6)]


def test_t2t_on_images_goes_to_english_captions(data):
    tasks, _ = build_tasks(["t2t"], find_datasets(data / "shapes"), frozenset({"fr", "en"}))
    (task,) = tasks  # en -> en is not a cross-lingual task
    assert task.group == "fr->en" and "red circle" in task.targets.items


def test_langs_filter_and_limit_are_deterministic(data):
    a = load_eval_data([data / "shapes"], "test", limit=3, seed=1)[0]
    b = load_eval_data([data / "shapes"], "test", limit=3, seed=1)[0]
    assert a.concepts == b.concepts and len(a.concepts) == 3
    others = {tuple(load_eval_data([data / "shapes"], "test", limit=3, seed=s)[0].concepts) for s in range(6)}
    assert len(others) > 1  # the seed does choose


def test_unknown_and_empty_task_names():
    with pytest.raises(TaskError, match="known tasks: t2i, i2t, zeroshot, i2i, bitext, t2t"):
        parse_task_names("t2i,retrieval")
    with pytest.raises(TaskError, match="no task given"):
        parse_task_names(" , ")


def test_empty_task_set_is_an_error(data):
    with pytest.raises(TaskError, match="empty.*no image records"):
        build_tasks(["t2i"], find_datasets(data / "parallel"))
    with pytest.raises(TaskError, match="among --langs ja"):
        build_tasks(["bitext"], find_datasets(data / "parallel"), frozenset({"ja"}))


def test_missing_image_names_the_line(tmp_path):
    lines = [{"concept": "a", "caption": "apple", "lang": "en", "image": "a.png", "split": "test"}]
    (tmp_path / "test.jsonl").write_text("\n" + "\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(EvalDataError, match=r"test.jsonl:2: image 'a.png' does not exist"):
        find_datasets(tmp_path)


def test_malformed_line_names_the_line(tmp_path):
    good = json.dumps({"concept": "a", "caption": "apple", "lang": "en", "text": "Apfel", "split": "test"})
    (tmp_path / "mine.jsonl").write_text(good + "\n" + good + "\n{oops\n")
    with pytest.raises(EvalDataError, match=r"mine.jsonl:3: not valid JSON"):
        find_datasets(tmp_path / "mine.jsonl")


def test_missing_data_and_split(tmp_path):
    with pytest.raises(EvalDataError, match="does not exist"):
        find_datasets(tmp_path / "nope")
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(EvalDataError, match="no test.jsonl.*it has train.jsonl"):
        find_datasets(tmp_path)
    with pytest.raises(EvalDataError, match="split must be one of"):
        find_datasets(tmp_path, split="val")


# ---- users' own manifests: several images per concept, field types, encodings, broken images ----------

def test_every_image_of_a_concept_is_scored(tmp_path):
    """2 concepts x 3 images: all 6 are in the t2i gallery (any of a concept's images answers its caption),
    all 6 are i2t queries, and a concept's images are one unit for the bootstrap."""
    from eval_fixtures import make_color_data

    (ds,) = find_datasets(make_color_data(tmp_path, per_concept=3, concepts=("red", "green")))
    t = _by_id(build_tasks(["t2i", "i2t"], [ds])[0])
    t2i, i2t = t[f"t2i/{ds.name}/en"], t[f"i2t/{ds.name}/de"]
    assert len(t2i.queries) == 2 and len(t2i.targets) == 6 == len(set(t2i.targets.items))
    assert relevance_from_keys(t2i.queries.keys, t2i.targets.keys).sum(axis=1).tolist() == [3, 3]
    assert len(i2t.queries) == 6 and len(i2t.targets) == 2
    assert relevance_from_keys(i2t.queries.keys, i2t.targets.keys).sum(axis=1).tolist() == [1] * 6
    assert sorted(set(i2t.queries.units)) == ["concept:green", "concept:red"]


def test_i2i_queries_each_concepts_other_images_against_every_first_image(tmp_path):
    """3 concepts x 3 images: the first image of each concept is the gallery (3), the other 6 query it; a concept's
    queries find exactly its own reference. A set with one image per concept has no i2i task, and says why."""
    from eval_fixtures import make_color_data

    (ds,) = find_datasets(make_color_data(tmp_path / "three", per_concept=3, concepts=("red", "green", "blue")))
    (task,) = build_tasks(["i2i"], [ds])[0]
    assert task.id == f"i2i/{ds.name}/all"
    assert task.queries.modality == task.targets.modality == "image"
    assert (task.queries.role, task.targets.role) == ("query", "document")  # as a collection search embeds them
    assert len(task.targets) == 3 and len(task.queries) == 6
    assert not set(task.queries.items) & set(task.targets.items)
    assert sorted(item.rsplit("/", 1)[-1] for item in task.targets.items) == ["blue.png", "green.png", "red.png"]
    assert relevance_from_keys(task.queries.keys, task.targets.keys).sum(axis=1).tolist() == [1] * 6
    (single,) = find_datasets(make_color_data(tmp_path / "one", per_concept=1))
    with pytest.raises(TaskError, match="no concept has two or more images"):
        build_tasks(["i2i"], [single])


def test_zeroshot_scores_every_image_and_resamples_concepts(tmp_path):
    from eval_fixtures import make_color_data, write_lines

    root = make_color_data(tmp_path, per_concept=2)
    rows = [json.loads(x) for x in (root / "test.jsonl").read_text().splitlines()]
    cats = [{**r, "kind": "category", "caption": "warm" if r["concept"] == "red" else "cool"} for r in rows]
    write_lines(root / "test.jsonl", rows + cats)
    (ds,) = find_datasets(root)
    task = _by_id(build_tasks(["zeroshot"], [ds])[0])[f"zeroshot/{ds.name}/en"]
    assert len(task.queries) == 8 and len(set(task.queries.units)) == 4
    assert relevance_from_keys(task.queries.keys, task.targets.keys).sum(axis=1).tolist() == [1] * 8


@pytest.mark.parametrize("fields, message", [
    ({"caption": 5}, "caption must be a non-empty string, got number 5"),
    ({"caption": ["a", "b"]}, "caption must be a non-empty string, got list"),
    ({"lang": 7}, "lang must be a non-empty string, got number 7"),
    ({"lang": ""}, "lang must be a non-empty string"),
    ({"concept": 9}, "concept must be a non-empty string, got number 9"),
    ({"image": 42}, "image must be a string, got number 42"),
    ({"kind": None}, "kind must be a string, got null"),
])
def test_field_types_are_checked_with_file_and_line(tmp_path, fields, message):
    from eval_fixtures import make_color_data, write_lines

    from mmembed.data.manifest import ManifestError, read_manifest

    root = make_color_data(tmp_path)
    good = json.loads((root / "test.jsonl").read_text().splitlines()[0])
    write_lines(root / "test.jsonl", [good, {**good, **fields}])
    with pytest.raises(EvalDataError, match=rf"test.jsonl:2: {message}"):
        find_datasets(root)
    with pytest.raises(ManifestError, match=rf"test.jsonl:2: {message}"):  # what mine-negatives and training catch
        read_manifest(root / "test.jsonl")


def test_encodings(tmp_path):
    from eval_fixtures import make_color_data

    root = make_color_data(tmp_path)
    text = (root / "test.jsonl").read_text(encoding="utf-8")
    (root / "test.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())  # a BOM is fine
    assert len(find_datasets(root)[0].records) == 8
    (root / "test.jsonl").write_bytes(text.encode("latin-1"))  # grün
    with pytest.raises(EvalDataError, match=r"test.jsonl:4: not UTF-8 \(byte 0xfc at column \d+\)"):
        find_datasets(root)
    (root / "test.jsonl").write_bytes(text.encode("utf-16"))
    with pytest.raises(EvalDataError, match=r"test.jsonl: not UTF-8 \(it starts with a UTF-16"):
        find_datasets(root)
    with pytest.raises(EvalDataError, match=r"red.png is not a JSONL manifest"):
        find_datasets(root / "img" / "red.png")


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b""), "is not a readable image file"),
    (lambda p: p.write_bytes(b"not an image at all"), "is not a readable image file"),
    (lambda p: p.write_bytes(p.read_bytes()[:60]), "is a damaged or truncated image"),
    (lambda p: (p.unlink(), p.mkdir()), "is a folder, not an image file"),
])
def test_broken_images_are_found_when_loading(tmp_path, damage, message):
    from eval_fixtures import make_color_data

    root = make_color_data(tmp_path)
    damage(root / "img" / "blue.png")
    with pytest.raises(EvalDataError, match=rf"test.jsonl:5: image 'img/blue.png' {message}"):
        find_datasets(root)


def test_truncated_jpeg_is_found(tmp_path):
    from eval_fixtures import write_lines
    from PIL import Image

    Image.effect_noise((256, 256), 60).convert("RGB").save(tmp_path / "a.jpg", quality=90)
    (tmp_path / "b.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:2000])
    write_lines(tmp_path / "test.jsonl", [{"concept": c, "caption": c, "lang": "en", "image": f"{c}.jpg"} for c in "ab"])
    with pytest.raises(EvalDataError, match=r"test.jsonl:2: image 'b.jpg' is a damaged or truncated image"):
        find_datasets(tmp_path)


def test_two_files_with_one_name_and_english_only_t2t(tmp_path):
    from eval_fixtures import make_color_data

    a, b = make_color_data(tmp_path / "a", langs=("en",)), make_color_data(tmp_path / "b", langs=("en",))
    with pytest.raises(EvalDataError, match=r"two datasets are named 'test' \(.*a/test.jsonl, .*b/test.jsonl\): "
                                            r"a dataset folder is named after the folder, a .jsonl file"):
        load_eval_data([a / "test.jsonl", b / "test.jsonl"], "test", None, 0)
    with pytest.raises(TaskError, match="only the pivot language en is present"):
        build_tasks(["t2t"], find_datasets(a))
