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
    with pytest.raises(TaskError, match="known tasks: t2i, i2t, zeroshot, bitext, t2t"):
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
