"""`mmembed eval` end to end on tiny data with the tiny random model and baselines."""
import json

import pytest
from eval_fixtures import make_eval_data
from PIL import Image
from typer.testing import CliRunner

import mmembed
from mmembed.cli import app
from mmembed.evaluation.baselines import openclip_scratch
from mmembed.evaluation.baselines.openclip_scratch import ScratchClipConfig, train_openclip_scratch

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_eval_data(tmp_path_factory.mktemp("evaldata"))


def _eval(*args):
    return runner.invoke(app, ["eval", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    seen = []

    def small_scratch_clip(manifests, **kw):  # the real training code, on a small config and tokenizer
        seen.extend(manifests)
        cfg = ScratchClipConfig(width=64, layers=1, heads=2, embed_dim=32)
        return train_openclip_scratch(manifests, **{**kw, "tokenizer": "bytes", "cfg": cfg})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openclip_scratch, "train_openclip_scratch", small_scratch_clip)
        res = _eval("--model", "tiny-random", "--data", data, "--out", out, "--baselines", "e5,openclip-scratch",
                    "--openclip-steps", 2, "--seed", 3)
    assert res.exit_code == 0, res.output
    assert seen == [data / "shapes" / "train.jsonl"]  # trained on the train split beside the evaluated test split
    return res, out


def test_table_json_and_plots(full_run):
    res, out = full_run
    assert "t2i: text -> image retrieval" in res.output and "mean over languages" in res.output
    payload = json.loads((out / "results.json").read_text())
    assert [e["name"] for e in payload["encoders"]] == ["tiny-random", "e5", "openclip-scratch"]
    rows = {(r["encoder"], r["task"], r["dataset"], r["group"]): r for r in payload["results"]}
    assert set(rows["tiny-random", "t2i", "shapes", "de"]["metrics"]) == {"R@1", "R@5", "R@10", "MRR"}
    assert rows["tiny-random", "t2i", "shapes", "de"]["n_targets"] == 8
    assert rows["e5", "t2i", "shapes", "de"]["status"].startswith("skipped: e5 does not embed image")
    assert rows["e5", "bitext", "parallel", "de->en"]["metrics"]["acc"] == 1.0  # e5 knows German
    assert 0.0 <= rows["openclip-scratch", "zeroshot", "shapes", "fr"]["metrics"]["acc"] <= 1.0
    assert payload["encoders"][2]["training"]["steps"] == 2
    for name in ("t2i", "i2t", "zeroshot", "bitext", "t2t"):
        with Image.open(out / f"{name}_by_language.png") as img:
            assert img.format == "PNG" and img.width > 100
    with Image.open(out / "similarity_heatmap.png") as img:
        img.verify()
    assert "timings" in json.loads((out / "run.json").read_text())


def test_model_is_compared_with_each_baseline_on_the_same_queries(full_run, data, tmp_path):
    res, out = full_run
    payload = json.loads((out / "results.json").read_text())
    assert "minus each other encoder" in res.output
    assert not any("query_ranks" in r for r in payload["results"])  # per-query data stays out of the file
    diffs = {(d["task"], d["dataset"], d["metric"], d["reference"]): d for d in payload["comparisons"]}
    assert {d["encoder"] for d in diffs.values()} == {"tiny-random"}  # the first encoder is the one judged
    means = {(s["encoder"], s["task"], s["dataset"]): s["mean"] for s in payload["summary"]}
    for task, dataset, metric, reference in (("bitext", "parallel", "acc", "e5"), ("t2i", "shapes", "R@10", "openclip-scratch")):
        d = diffs[task, dataset, metric, reference]
        # the point estimate is exactly the difference of the summary's means; the interval holds it
        assert d["difference"] == pytest.approx(means["tiny-random", task, dataset][metric] - means[reference, task, dataset][metric], abs=1e-5)
        assert d["low"] <= d["difference"] <= d["high"] and d["draws"] == 1000
        assert d["verdict"] in ("ahead", "behind", "level")
    assert diffs["bitext", "parallel", "acc", "e5"]["verdict"] == "behind"  # random weights vs a real model
    assert ("t2i", "shapes", "R@1", "e5") not in diffs  # e5 embeds no images
    # a model given as a folder is judged under the name it reports (its config's), not the path
    mmembed.load("tiny-random").save(tmp_path / "mine")
    folder = _eval("--model", tmp_path / "mine", "--baselines", "e5", "--data", data / "parallel", "--tasks", "bitext",
                   "--no-plots", "--out", tmp_path / "folder")
    assert folder.exit_code == 0, folder.output
    (d,) = json.loads((tmp_path / "folder" / "results.json").read_text())["comparisons"]
    assert (d["encoder"], d["reference"], d["verdict"]) == ("tiny-random", "e5", "behind")
    off = _eval("--model", "tiny-random", "--baselines", "e5", "--data", data / "parallel", "--tasks", "bitext",
                "--no-plots", "--bootstrap", 0, "--out", tmp_path / "off")
    assert off.exit_code == 0 and "minus each other encoder" not in off.output
    assert json.loads((tmp_path / "off" / "results.json").read_text())["comparisons"] == []
    bad = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--bootstrap", "-1"])
    assert bad.exit_code == 2 and "--bootstrap must be 0 (no comparison) or at least 100 draws" in bad.output


def test_same_seed_same_results_file(data, tmp_path):
    args = ("--model", "tiny-random", "--data", data / "shapes", "--tasks", "t2i,zeroshot", "--limit", 6, "--no-plots")
    a, b = tmp_path / "a", tmp_path / "b"
    assert _eval(*args, "--out", a).exit_code == 0
    assert _eval(*args, "--out", b).exit_code == 0
    assert (a / "results.json").read_bytes() == (b / "results.json").read_bytes()
    payload = json.loads((a / "results.json").read_text())
    assert payload["datasets"][0]["concepts"] == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (("--model", "no-such-model"), "unknown model 'no-such-model'; models: "),
        (("--model", "tiny-random", "--baselines", "clip"), "unknown baseline 'clip'; known baselines: e5, imagenet-labels"),
        (("--model", "tiny-random", "--tasks", "t2i,vqa"), "unknown task(s) 'vqa'; known tasks: t2i"),
        (("--model", "tiny-random", "--tasks", ","), "no task given"),
        (("--baselines", ""), "no model given"),
    ],
)
def test_bad_names_list_what_exists(data, tmp_path, args, message):
    res = runner.invoke(app, ["eval", "--data", str(data), "--out", str(tmp_path), *args])
    assert res.exit_code == 2
    assert message in res.output
    assert not (tmp_path / "results.json").exists()


def test_empty_task_set_and_bad_manifest_are_errors(data, tmp_path):
    res = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(data / "parallel"), "--tasks", "t2i"])
    assert res.exit_code == 2 and "task set is empty" in res.output
    res = runner.invoke(app, ["eval", "--baselines", "openclip-scratch", "--data", str(data / "parallel"), "--tasks", "bitext"])
    assert res.exit_code == 2 and "openclip-scratch trains on train.jsonl" in res.output
    bad = tmp_path / "mine.jsonl"
    bad.write_text('{"concept": "a", "caption": "x", "lang": "en", "image": "gone.png"}\n')
    res = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(bad)])
    assert res.exit_code == 2 and "mine.jsonl:1: image 'gone.png' does not exist" in res.output


def test_label_prior_is_on_by_default_and_can_be_switched_off(data, tmp_path):
    """--no-label-prior scores an mmembed model without its label prior; results say which was used."""
    import mmembed
    from mmembed.config import LabelPriorConfig
    from mmembed.label_prior import refresh_label_embeddings
    from mmembed.model import MMEmbedModel

    cfg = mmembed.get_config("tiny-random")
    cfg.label_prior = LabelPriorConfig(weight=0.5, top_k=3)
    model = MMEmbedModel(cfg)
    refresh_label_embeddings(model)
    model.save(tmp_path / "with-prior")
    for flags, expected in (((), {"weight": 0.5, "top_k": 3}), (("--no-label-prior",), None)):
        out = tmp_path / ("off" if flags else "on")
        res = _eval("--model", tmp_path / "with-prior", "--data", data, "--out", out, "--tasks", "t2i", "--no-plots", *flags)
        assert res.exit_code == 0, res.output
        payload = json.loads((out / "results.json").read_text())
        assert payload["encoders"][0]["label_prior"] == expected
        assert payload["settings"]["label_prior"] is (expected is not None)


def test_pool_scores_two_sets_as_one_and_bad_pools_are_refused(data, tmp_path):
    import shutil

    root = tmp_path / "sets"
    shutil.copytree(data / "shapes", root / "shapes")
    shutil.copytree(data / "shapes", root / "shapes2")
    base = ("--model", "tiny-random", "--data", root / "shapes", "--data", root / "shapes2", "--tasks", "t2i",
            "--no-plots", "--bootstrap", 0)
    res = _eval(*base, "--pool", "both=shapes,shapes2", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {(r["dataset"], r["group"]): r for r in payload["results"]}
    for (ds, group), r in rows.items():
        if ds == "both":
            parts = [rows["shapes", group], rows["shapes2", group]]
            assert r["n_queries"] == sum(p["n_queries"] for p in parts)
            assert r["metrics"]["R@1"] == pytest.approx(
                sum(p["metrics"]["R@1"] * p["n_queries"] for p in parts) / r["n_queries"], abs=1e-5)
    assert any(ds == "both" for ds, _ in rows) and payload["settings"]["pools"] == {"both": ["shapes", "shapes2"]}
    for pool, message in [("both=shapes", "two or more datasets"), ("shapes=shapes,shapes2", "already a dataset"),
                          ("x=shapes,nope", "nope not among the datasets loaded (shapes, shapes2)")]:
        bad = runner.invoke(app, ["eval", *map(str, base), "--pool", pool, "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.output, bad.output
        assert not (tmp_path / "bad" / "results.json").exists()


def test_lexical_weight_fuses_spelling_into_text_to_text_tasks_only(data, tmp_path):
    """--lexical-weight ranks bitext / t2t by cosine fused with romanized n-grams; image tasks keep cosine."""
    args = ("--model", "tiny-random", "--data", data, "--tasks", "bitext,t2i", "--no-plots", "--bootstrap", 0)
    assert _eval(*args, "--out", tmp_path / "plain").exit_code == 0
    assert _eval(*args, "--out", tmp_path / "lex", "--lexical-weight", 5).exit_code == 0
    plain, lex = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("plain", "lex"))
    assert plain["settings"]["lexical_weight"] == 0.0 and lex["settings"]["lexical_weight"] == 5.0

    def metric(payload, task):
        return {r["group"]: r["metrics"] for r in payload["results"] if r["task"] == task}

    assert metric(lex, "t2i") == metric(plain, "t2i")
    # random weights know no language, but "Sofa", "Markt", "Tee", "train" are spelled alike
    mean = {name: sum(m["acc"] for m in metric(p, "bitext").values()) for name, p in (("plain", plain), ("lex", lex))}
    assert mean["lex"] > mean["plain"]
    res = runner.invoke(app, ["eval", *map(str, args), "--out", str(tmp_path / "bad"), "--lexical-weight", "-1"])
    assert res.exit_code == 2 and "--lexical-weight must be a finite number >= 0" in res.output
    assert not (tmp_path / "bad").exists()


# ---- users' own manifests and options (audit) -------------------------------------------------

@pytest.fixture(scope="module")
def colors(tmp_path_factory):
    from eval_fixtures import make_color_data

    return make_color_data(tmp_path_factory.mktemp("colors", numbered=False))


def _refused(*args):
    """Run eval; it must stop with one 'error:' line, exit 2, before any model loads."""
    res = runner.invoke(app, ["eval", "-m", "tiny-random", "--no-plots", *map(str, args)])
    assert res.exit_code == 2, res.output
    assert "eval:" not in res.output and "Traceback" not in res.output  # nothing ran
    return res.output


def test_every_image_of_a_concept_is_scored_end_to_end(tmp_path):
    from eval_fixtures import make_color_data

    data = make_color_data(tmp_path / "d", per_concept=3, concepts=("red", "green"))
    res = _eval("-m", "tiny-random", "--no-plots", "-t", "t2i,i2t", "-d", data, "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    payload = json.loads((tmp_path / "o" / "results.json").read_text())
    rows = {(r["task"], r["group"]): r for r in payload["results"]}
    assert (rows["t2i", "en"]["n_queries"], rows["t2i", "en"]["n_targets"]) == (2, 6)
    assert (rows["i2t", "de"]["n_queries"], rows["i2t", "de"]["n_targets"]) == (6, 2)


def test_out_is_checked_before_any_model_loads(colors, tmp_path):
    (tmp_path / "outfile").write_text("hi\n")
    assert "outfile is a file, not a folder" in _refused("-d", colors, "--out", tmp_path / "outfile")
    assert "outfile is not a folder, so no folder can be made in it" in _refused("-d", colors, "--out", tmp_path / "outfile" / "res")
    (tmp_path / "half" / "run.json").mkdir(parents=True)
    assert "run.json is a folder; this command writes its run.json there" in _refused("-d", colors, "--out", tmp_path / "half")
    assert not (tmp_path / "half" / "results.json").exists()


def test_a_new_run_replaces_only_its_own_files(colors, tmp_path):
    out = tmp_path / "o"
    res = _eval("-m", "tiny-random", "-t", "t2i,i2t", "-d", colors, "--bootstrap", 0, "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / "i2t_by_language.png").is_file() and (out / "similarity_heatmap.png").is_file()
    (out / "notes.txt").write_text("mine\n")
    res = _eval("-m", "tiny-random", "-t", "t2i", "-d", colors, "--no-plots", "--out", out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "results.json", "run.json"]
    assert json.loads((out / "results.json").read_text())["settings"]["tasks"] == ["t2i"]


@pytest.mark.parametrize("args, message", [
    (("--bootstrap", 1), "--bootstrap must be 0 (no comparison) or at least 100 draws"),
    (("--batch-size", 0), "--batch-size must be >= 1, got 0"),
    (("--batch-size", -5), "--batch-size must be >= 1, got -5"),
    (("--seed", -1, "--limit", 2), "--seed must be >= 0, got -1"),
    (("--langs", "en,xx"), "--langs: xx not present in colors (present: de, en)"),
    (("--langs", "xx"), "--langs: xx not present in colors (present: de, en)"),
    (("--langs", ",,"), "--langs ',,' names no language"),
    (("--pool", "x=colors,colors"), "--pool 'x=colors,colors': colors named twice"),
])
def test_bad_options_are_refused_up_front(colors, args, message):
    assert message in _refused("-d", colors, *args)


def test_broken_image_and_binary_data_are_refused_up_front(colors, tmp_path):
    import shutil

    data = tmp_path / "colors"
    shutil.copytree(colors, data)
    (data / "img" / "blue.png").write_bytes(b"")
    out = _refused("-d", data)
    assert f"{data / 'test.jsonl'}:5: image 'img/blue.png' is not a readable image file" in out
    assert "red.png is not a JSONL manifest" in _refused("-d", colors / "img" / "red.png")


def test_models_lists_whole_names_when_piped():
    from mmembed.registry import default_model_name

    res = runner.invoke(app, ["models"], env={"COLUMNS": "40"})
    assert res.exit_code == 0 and "…" not in res.output
    names = [line for line in res.output.splitlines() if not line.startswith(" ")]
    assert f"{default_model_name()} (default)" in names and "tiny-random" in names


def test_appearance_weight_is_recorded_and_applies_to_i2i(tmp_path):
    """--appearance-weight: what i2i ranks mmembed models' images by (recorded in settings and in the encoder's
    facts); weight 1 ranks by the tower features alone, as the image-features baseline does; a bad value exits 2."""
    from eval_fixtures import make_color_data

    data = make_color_data(tmp_path / "colours", per_concept=3)
    args = ("--model", "tiny-random", "--data", data, "--tasks", "i2i", "--no-plots", "--bootstrap", 0)
    assert _eval(*args, "--out", tmp_path / "default").exit_code == 0
    assert _eval(*args, "--out", tmp_path / "looks", "--appearance-weight", 1, "-b", "image-features").exit_code == 0
    default, looks = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("default", "looks"))
    assert default["settings"]["appearance_weight"] == 0.5 and looks["settings"]["appearance_weight"] == 1.0
    assert [e.get("appearance_weight") for e in looks["encoders"]] == [1.0, None]
    tiny, features = ({r["encoder"]: r["metrics"] for r in looks["results"]}[n] for n in ("tiny-random", "image-features"))
    assert tiny.keys() == features.keys() and 0 <= tiny["R@1"] <= 1  # the tiny tower is random, the baseline packaged
    res = runner.invoke(app, ["eval", *map(str, args), "--out", str(tmp_path / "bad"), "--appearance-weight", "1.5"])
    assert res.exit_code == 2 and "--appearance-weight: appearance_weight must be a number in [0, 1]" in res.output
    assert not (tmp_path / "bad").exists()
