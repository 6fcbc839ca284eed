"""A user's own pairs (`mmembed train --pairs`): reading JSONL / CSV / image folders, bad rows named by
file:line, concepts shared by captions of one image, and one run per run folder (fresh / --resume / log)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmembed.cli import app
from mmembed.training import trainer as trainer_module
from mmembed.training.config import SourceSpec, TrainConfig
from mmembed.training.custom_pairs import load_custom_pairs
from mmembed.training.pairs import MixtureSampler, PairsError, group_pairs
from mmembed.training.run_folder import RunFolderError
from mmembed.training.trainer import Trainer

COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (240, 220, 0),
          "black": (0, 0, 0), "white": (255, 255, 255)}


def _images(folder: Path, n: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, rgb in list(COLORS.items())[:n]:
        Image.new("RGB", (16, 16), rgb).save(folder / f"{name}.png")
        out.append(folder / f"{name}.png")
    return out


def _reasons(problems) -> dict[int, str]:
    return {int(p.where.rsplit(":", 1)[1]): p.reason for p in problems}


def _no_model_load(monkeypatch) -> None:
    """Checks that must come before the (slow) model load fail the test if the model is loaded first."""
    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(trainer_module, "build_model", boom)
    monkeypatch.setattr(trainer_module, "load_model", boom)


# ---- 1: relative paths ----------------------------------------------------------------------------

def test_a_relative_image_folder_keeps_its_images(tmp_path, monkeypatch):
    _images(tmp_path / "my_images", 3)
    monkeypatch.chdir(tmp_path)
    pairs, problems = load_custom_pairs("my_images/")
    assert not problems and len(pairs) == 3
    assert {Path(p.image) for p in pairs} == {(tmp_path / "my_images" / f"{c}.png") for c in ("red", "green", "blue")}
    res = CliRunner().invoke(app, ["train", "--pairs", "my_images/", "--base", "tiny-random", "--freeze-text-side",
                                   "--steps", "1", "--batch-size", "2", "--out", "runs/x"])
    assert res.exit_code == 0, res.output
    assert "skipped" not in res.output


def test_a_jsonl_image_path_is_resolved_against_its_folder_and_the_message_shows_it(tmp_path, monkeypatch):
    _images(tmp_path / "imgs", 1)
    (tmp_path / "data").mkdir()
    rows = [{"image": "../imgs/red.png", "caption": "red"}, {"image": "imgs/red.png", "caption": "wrong base"},
            {"image": "../imgs", "caption": "a folder"}]
    (tmp_path / "data" / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    pairs, problems = load_custom_pairs("data/p.jsonl")
    assert [p.image for p in pairs] == [str(tmp_path / "imgs" / "red.png")]
    why = _reasons(problems)
    assert why[2] == f"image 'imgs/red.png' (resolved to {tmp_path / 'data' / 'imgs' / 'red.png'}) does not exist"
    assert why[3].endswith("is a folder, not an image file")


def test_an_unreadable_image_is_named_without_a_list_index(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "p.jsonl").write_text(json.dumps({"image": "bad.png", "caption": "x"}) + "\n")
    with pytest.raises(PairsError) as err:
        load_custom_pairs(tmp_path / "p.jsonl")
    assert "image 'bad.png' (resolved to " in str(err.value) and "not a readable image" in str(err.value)
    assert "image #0" not in str(err.value)


# ---- 3, 12: CSV fields and line numbers -------------------------------------------------------------

def test_csv_rows_with_more_or_fewer_fields_are_reported_at_their_real_line(tmp_path):
    _images(tmp_path, 3)
    (tmp_path / "p.csv").write_text(
        'image,caption\n'
        'red.png,cat, black and white\n'   # 2: one comma too many
        '\n'                                # 3: blank
        'green.png,"a caption\nover two lines"\n'  # 4-5
        'blue.png\n'                        # 6: too few
        'blue.png,"quoted, fine"\n'         # 7
        'nope.png,x\n')                     # 8
    pairs, problems = load_custom_pairs(tmp_path / "p.csv")
    assert [p.positive for p in pairs] == ["a caption\nover two lines", "quoted, fine"]
    why = _reasons(problems)
    assert why[2] == "3 fields, header has 2 (quote a field that holds the delimiter)"
    assert why[6] == "1 fields, header has 2" and "does not exist" in why[8] and set(why) == {2, 6, 8}
    with pytest.raises(PairsError, match=r"(?s)3 bad row\(s\) in .*p.csv:2: 3 fields, header has 2"):
        load_custom_pairs(tmp_path / "p.csv", on_error="reject")


# ---- 4: several captions of one image --------------------------------------------------------------

def test_captions_of_one_image_or_one_query_share_a_concept_and_never_meet_in_a_batch(tmp_path):
    _images(tmp_path, 4)
    rows = [{"image": "red.png", "caption": "red"}, {"image": "./red.png", "caption": "rot"},
            {"image": str(tmp_path / "red.png"), "caption": "rouge"}, {"image": "green.png", "caption": "green"},
            {"image": "blue.png", "caption": "blue"}, {"image": "yellow.png", "caption": "blue"},  # same caption
            {"query": "hello", "positive": "hallo"}, {"query": "hello", "positive": "bonjour"},
            {"query": "bye", "positive": "tschüss"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pairs, problems = load_custom_pairs(tmp_path / "p.jsonl")
    assert not problems
    concept = {p.positive: p.concept for p in pairs}
    assert concept["red"] == concept["rot"] == concept["rouge"] and concept["hallo"] == concept["bonjour"]
    assert concept["blue"].endswith(":5")  # blue.png and yellow.png share the caption "blue": one concept
    assert len(set(concept.values())) == 5
    sampler = MixtureSampler([group_pairs("pairs", pairs)], seed=0)
    for step in range(30):
        batch = sampler.batch(step, 5)  # every concept, each once
        assert len({p.concept for p in batch}) == len(batch) == 5


# ---- 5-8: types, Unicode, bytes, BOM --------------------------------------------------------------

def test_bad_values_unicode_and_bytes_are_bad_rows(tmp_path):
    _images(tmp_path, 1)
    lines = [b'{"query":"lone \\ud800 x","positive":"y"}', b'{"image": 1.5, "caption": "x"}',
             b'{"image": 2, "caption": "x"}', b'{"image": true, "caption": "x"}', b'{"image": [1], "caption": "x"}',
             b'{"image": {"a": 1}, "caption": "x"}', '{"query": "caf\u00e9", "positive": "ok"}'.encode("latin-1"),
             b'{"image": "red.png", "caption": "a", "text": "b"}', b'{"query": "q", "positive": 3}',
             b'{"image": "red.png", "caption": "fine"}']
    (tmp_path / "p.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")  # a BOM: row 1 still read
    pairs, problems = load_custom_pairs(tmp_path / "p.jsonl")
    assert [p.positive for p in pairs] == ["fine"]
    why = _reasons(problems)
    assert why[1] == "query text is not valid Unicode: lone surrogate at position 5 (U+D800)"
    assert why[2] == "image must be a path string, got float 1.5" and why[3].endswith("got int 2")
    assert why[4].endswith("got bool True") and why[5].endswith("got list [1]") and why[6].endswith("got dict {'a': 1}")
    assert why[7] == "not UTF-8 (byte 0xe9 at column 15); save the file as UTF-8"
    assert why[8].startswith("has both an image and a 'text' text") and why[9] == "positive must be a string, got int 3"
    with pytest.raises(PairsError, match="9 bad row"):
        load_custom_pairs(tmp_path / "p.jsonl", on_error="reject")


def test_a_surrogate_row_is_refused_before_training(tmp_path):
    """The lone surrogate used to pass and crash sentencepiece at step 1; now it is a bad row."""
    (tmp_path / "p.jsonl").write_bytes(b'{"query":"lone \\ud800 x","positive":"y"}\n{"query":"a","positive":"b"}\n'
                                       b'{"query":"c","positive":"d"}\n')
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "p.jsonl"), "--base", "tiny-random", "--steps", "1",
                                   "--batch-size", "2", "--out", str(tmp_path / "run"), "--freeze-lora"])
    assert res.exit_code == 0, res.output
    assert "p.jsonl:1: query text is not valid Unicode" in res.output


def test_latin1_csv_and_sidecar_name_the_file_and_line_and_a_bom_is_fine(tmp_path):
    _images(tmp_path / "imgs", 3)
    (tmp_path / "p.csv").write_bytes(b"\xef\xbb\xbfimage,caption\nimgs/red.png,caf\xe9\nimgs/green.png,gr\xc3\xbcn\n")
    pairs, problems = load_custom_pairs(tmp_path / "p.csv")
    assert [p.positive for p in pairs] == ["grün"]
    assert [(p.where, p.reason) for p in problems] == [
        (f"{tmp_path / 'p.csv'}:2", "not UTF-8 (byte 0xe9); save the file as UTF-8")]
    (tmp_path / "imgs" / "red.txt").write_bytes(b"caf\xe9")
    (tmp_path / "imgs" / "green.txt").write_bytes(b"\xef\xbb\xbfgreen swatch")
    (tmp_path / "imgs" / "blue.txt").write_text("  ")
    pairs, problems = load_custom_pairs(tmp_path / "imgs")
    assert [p.positive for p in pairs] == ["green swatch"]
    reasons = {Path(p.where).name: p.reason for p in problems}
    assert reasons["red.png"] == (f"caption file {tmp_path / 'imgs' / 'red.txt'}: not UTF-8 (byte 0xe9 at byte 4); "
                                  f"save the file as UTF-8")
    assert reasons["blue.png"] == f"caption file {tmp_path / 'imgs' / 'blue.txt'} is empty"
    (tmp_path / "h.csv").write_bytes(b"image,capti\xf3n\nimgs/red.png,x\n")
    with pytest.raises(PairsError, match=r"h.csv:1: header is not UTF-8"):
        load_custom_pairs(tmp_path / "h.csv")


# ---- 9: CSV headers -------------------------------------------------------------------------------

@pytest.mark.parametrize("header,sep", [("image;caption", ";"), ("image\tcaption", "\t"), ("Image,Caption", ","),
                                        (" image , caption ", ","), ("IMAGE_PATH;Text", ";")])
def test_csv_header_names_are_read_in_any_case_and_with_other_delimiters(tmp_path, header, sep):
    _images(tmp_path, 2)
    (tmp_path / "p.csv").write_text(f"{header}\nred.png{sep}a red one\ngreen.png{sep}a green one\n")
    pairs, problems = load_custom_pairs(tmp_path / "p.csv")
    assert not problems and [p.positive for p in pairs] == ["a red one", "a green one"]


@pytest.mark.parametrize("header,match", [
    ("red.png,a red one", r"p.csv:1: header has no image/caption/query column; found \['red.png', 'a red one'\]"),
    ("file_name,text", r"header columns \['text'\] make no pair .* found \['file_name', 'text'\]"),
    ("image,caption,Caption", r"header names \['caption'\] twice")])
def test_an_unknown_csv_header_is_refused_up_front(tmp_path, header, match):
    (tmp_path / "p.csv").write_text(f"{header}\nred.png,a red one\n")
    with pytest.raises(PairsError, match=match) as err:
        load_custom_pairs(tmp_path / "p.csv")
    assert "expected columns image+caption, or query+positive[+negative]" in str(err.value)


def test_when_no_row_is_usable_the_error_lists_them(tmp_path):
    (tmp_path / "p.csv").write_text("image,caption\n" + "".join(f"gone{i}.png,x{i}\n" for i in range(25)))
    with pytest.raises(PairsError) as err:
        load_custom_pairs(tmp_path / "p.csv")
    text = str(err.value)
    assert "has no usable pairs (25 bad rows):" in text and "p.csv:2: image 'gone0.png'" in text
    assert "p.csv:21: " in text and "p.csv:22: " not in text and "... and 5 more" in text


# ---- 10, 11: checked before the model loads ---------------------------------------------------------

def test_a_batch_larger_than_the_data_stops_before_the_model_loads(tmp_path, monkeypatch):
    _images(tmp_path / "imgs", 3)
    _no_model_load(monkeypatch)
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "imgs"), "--base", "tiny-random",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 1, res.output
    assert "error: batch_size 32 is larger than the 3 distinct concepts" in res.output
    assert "pass --batch-size 3 or less" in res.output and "Traceback" not in res.output


def test_export_into_a_foreign_folder_is_refused_before_training(tmp_path, monkeypatch):
    _images(tmp_path / "imgs", 3)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    _no_model_load(monkeypatch)
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "imgs"), "--base", "tiny-random", "--steps", "1",
                                   "--batch-size", "2", "--out", str(tmp_path / "run"), "--export", str(tmp_path / "exp")])
    assert res.exit_code == 1 and "error: cannot export to " in res.output and "not a saved mmembed model" in res.output
    assert not (tmp_path / "run").exists() and (tmp_path / "exp" / "notes.txt").read_text() == "mine"


def test_re_exporting_writes_a_new_model_card(tmp_path):
    _images(tmp_path / "imgs", 3)
    for run, steps in (("r1", "1"), ("r2", "2")):
        res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "imgs"), "--base", "tiny-random", "--steps", steps,
                                       "--batch-size", "2", "--freeze-lora", "--out", str(tmp_path / run),
                                       "--export", str(tmp_path / "exp")])
        assert res.exit_code == 0, res.output
        card = (tmp_path / "exp" / "README.md").read_text()
        assert f"{steps} of {steps} steps" in card and card.count("## Training") == 1
    (tmp_path / "exp" / "README.md").write_text("# my own card\n")  # a hand-written card is kept
    trainer = Trainer(_cfg(tmp_path / "imgs", tmp_path / "r3", steps=1), progress=False)
    trainer.export(tmp_path / "exp")
    assert (tmp_path / "exp" / "README.md").read_text() == "# my own card\n"


# ---- 2: one run per run folder ----------------------------------------------------------------------

def _cfg(pairs: Path, out: Path, **kw) -> TrainConfig:
    base = dict(base="tiny-random", out=str(out), name="t", steps=6, batch_size=2, lr=5e-3, warmup_steps=1,
                checkpoint_every=2, freeze_lora=True, sources=[SourceSpec(name="pairs", path=str(pairs), custom=True)])
    base.update(kw)
    return TrainConfig(**base)


def _logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]


def test_a_fresh_run_into_a_run_folder_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    _images(tmp_path / "imgs", 3)
    Trainer(_cfg(tmp_path / "imgs", tmp_path / "run", steps=2), progress=False).run()
    _no_model_load(monkeypatch)
    with pytest.raises(RunFolderError, match=r"run holds a run \(step 2\); pass --resume to continue it, "
                                             r"--overwrite to start over there, or a new --out"):
        Trainer(_cfg(tmp_path / "imgs", tmp_path / "run", steps=3), progress=False)
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "imgs"), "--base", "tiny-random",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and "holds a run (step 2)" in res.output
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "imgs"), "--base", "tiny-random",
                                   "--out", str(tmp_path / "run"), "--resume", "--overwrite"])
    assert res.exit_code == 1 and "pass one of them" in res.output


def test_overwrite_starts_over_in_a_run_folder(tmp_path):
    _images(tmp_path / "imgs", 3)
    Trainer(_cfg(tmp_path / "imgs", tmp_path / "run", steps=4), progress=False).run()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    Trainer(_cfg(tmp_path / "imgs", tmp_path / "run", steps=2), overwrite=True, progress=False).run()
    assert _logged_steps(tmp_path / "run") == [1, 2]  # the old run's log is gone, not appended to
    assert [p.name for p in sorted((tmp_path / "run" / "checkpoints").iterdir())] == ["step_000002"]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files are removed


def test_resume_refuses_another_runs_checkpoint_naming_what_differs(tmp_path, monkeypatch):
    _images(tmp_path / "imgs", 3)
    Trainer(_cfg(tmp_path / "imgs", tmp_path / "run"), progress=False).run(stop_after=2)
    _no_model_load(monkeypatch)
    with pytest.raises(RunFolderError, match=r"checkpoint of another run \(lr 0.005 in the checkpoint, 0.001 now; "
                                             r"steps 6 in the checkpoint, 120 now\)"):
        Trainer(_cfg(tmp_path / "imgs", tmp_path / "run", steps=120, lr=1e-3), resume=True, progress=False)
    (tmp_path / "imgs" / "red.txt").write_text("another caption")
    with pytest.raises(RunFolderError, match=r"source 'pairs': 3 pairs in the checkpoint's run, 3 now \(other pairs\)"):
        Trainer(_cfg(tmp_path / "imgs", tmp_path / "run"), resume=True, progress=False)


def test_resume_drops_the_log_records_past_the_checkpoint(tmp_path):
    _images(tmp_path / "imgs", 3)
    cfg = _cfg(tmp_path / "imgs", tmp_path / "run")
    Trainer(cfg, progress=False).run(stop_after=3)  # "killed" after step 3; the last checkpoint is step 2
    with open(tmp_path / "run" / "log.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')  # a record torn by the kill
    resumed = Trainer(cfg, resume=True, progress=False)
    assert resumed.step == 2 and _logged_steps(tmp_path / "run") == [1, 2]
    resumed.run()
    assert _logged_steps(tmp_path / "run") == [1, 2, 3, 4, 5, 6]
    assert [p.name for p in sorted((tmp_path / "run" / "checkpoints").iterdir())] == ["step_000004", "step_000006"]


def test_overwrite_deletes_nothing_until_the_inputs_are_good_and_nothing_that_is_not_a_run(tmp_path):
    _images(tmp_path / "imgs", 3)
    first = Trainer(_cfg(tmp_path / "imgs", tmp_path / "run", steps=2), progress=False)
    first.run()
    first.export(tmp_path / "run" / "final")
    before = sorted(p.relative_to(tmp_path / "run") for p in (tmp_path / "run").rglob("*"))
    with pytest.raises(Exception, match="does not exist"):  # a bad --pairs: the old run stays whole
        Trainer(_cfg(tmp_path / "gone.jsonl", tmp_path / "run"), overwrite=True, progress=False)
    assert sorted(p.relative_to(tmp_path / "run") for p in (tmp_path / "run").rglob("*")) == before
    (tmp_path / "run" / "final" / "NOTES.md").write_text("mine")
    with pytest.raises(RunFolderError, match=r"holds what is not an mmembed run's \(final/NOTES.md\); nothing was deleted"):
        Trainer(_cfg(tmp_path / "imgs", tmp_path / "run"), overwrite=True, progress=False)
    assert (tmp_path / "run" / "final" / "NOTES.md").is_file() and (tmp_path / "run" / "checkpoints").is_dir()
    other = tmp_path / "project"
    (other / "checkpoints" / "my_yolo").mkdir(parents=True)
    (other / "log.jsonl").write_text("my own notes\n")
    with pytest.raises(RunFolderError, match=r"checkpoints/my_yolo"):
        Trainer(_cfg(tmp_path / "imgs", other), overwrite=True, progress=False)
    assert (other / "checkpoints" / "my_yolo").is_dir() and (other / "log.jsonl").is_file()
