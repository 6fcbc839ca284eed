"""`mmembed soup`: the uniform mean of runs of one base, with the label prior re-embedded when text changed."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import mmembed
from mmembed.cli import app
from mmembed.config import LabelPriorConfig, LoraConfig
from mmembed.model import MMEmbedModel
from mmembed.serialization import load_model, save_model
from mmembed.training.soup import SoupError, average_models

TEXTS = ["a red apple", "ein Hund", "猫"]


def _run(folder, seed: int, text_too: bool, lora_r: int = 4):
    """A stand-in for one fine-tuning run of the tiny base: its trained tensors moved by seeded noise
    (the projector always; the LoRA and head too when `text_too`)."""
    cfg = mmembed.get_config("tiny-random")
    cfg.lora = LoraConfig(r=lora_r, alpha=8)
    cfg.label_prior = LabelPriorConfig(weight=0.75, top_k=5)
    torch.manual_seed(0)  # one base: the LoRA's random A starts the same in every run
    model = MMEmbedModel(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("projector.") or (text_too and ("lora_" in name or name.startswith("head."))):
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    save_model(model, folder)
    return folder


def test_soup_is_the_mean_and_its_label_prior_follows_its_text_side(tmp_path):
    a, b = _run(tmp_path / "a", 1, text_too=True), _run(tmp_path / "b", 2, text_too=True)
    report = average_models([a, b], tmp_path / "soup")
    sa, sb, soup = (load_file(str(f / "model.safetensors")) for f in (a, b, tmp_path / "soup"))
    assert set(soup) == set(sa)
    for key in sa:
        if key != "label_prior.label_embeddings":
            torch.testing.assert_close(soup[key], (sa[key] + sb[key]) / 2)
    assert report.label_prior_refreshed
    assert any("lora_" in k for k in report.differ) and any(k.startswith("projector.") for k in report.differ)
    model = load_model(tmp_path / "soup")
    assert model.config.name == "soup" and "a, b" in model.config.description
    # the table is the soup's own text embeddings of the class names, not the mean of the inputs' tables
    expected = model.encode_text(["tench, Tinca tinca", "goldfish, Carassius auratus"], as_tensor=True)
    torch.testing.assert_close(model.label_prior.label_embeddings[:2], expected.to(torch.float32), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(soup["label_prior.label_embeddings"], (sa["label_prior.label_embeddings"] + sb["label_prior.label_embeddings"]) / 2)
    # and it encodes like any saved model
    assert model.encode_text(TEXTS).shape == (3, model.dim)


def test_soup_of_image_only_runs_keeps_text_and_label_table(tmp_path):
    a, b = _run(tmp_path / "a", 1, text_too=False), _run(tmp_path / "b", 2, text_too=False)
    # same base, same LoRA init: only the projector differs, as for seeds of a frozen-text-side recipe
    report = average_models([str(a), str(b)], tmp_path / "soup")
    assert not report.label_prior_refreshed
    assert report.differ and all(k.startswith("projector.") for k in report.differ)
    soup, sa = load_file(str(tmp_path / "soup" / "model.safetensors")), load_file(str(a / "model.safetensors"))
    torch.testing.assert_close(soup["label_prior.label_embeddings"], sa["label_prior.label_embeddings"])
    torch.testing.assert_close(load_model(tmp_path / "soup").encode_text(TEXTS), load_model(a).encode_text(TEXTS))


def test_soup_refuses_bad_inputs_and_overwrites_nothing(tmp_path):
    a, b = _run(tmp_path / "a", 1, text_too=True), _run(tmp_path / "b", 2, text_too=True)
    other_rank = _run(tmp_path / "r8", 3, text_too=True, lora_r=8)
    with pytest.raises(SoupError, match="at least two"):
        average_models([a], tmp_path / "s1")
    with pytest.raises(SoupError, match=r"r8 is not a run of the same model.*lora\.r \(4 vs 8\)"):
        average_models([a, other_rank], tmp_path / "s2")
    with pytest.raises(SoupError, match="nowhere: not a saved mmembed model"):
        average_models([a, tmp_path / "nowhere"], tmp_path / "s3")
    prompt_changed = tmp_path / "p"
    prompt_changed.mkdir()
    for f in ("model.safetensors", "config.json"):
        (prompt_changed / f).write_bytes((b / f).read_bytes())
    config = json.loads((prompt_changed / "config.json").read_text())
    config["prompt"]["text_suffix"] = "\" in one word:\""
    (prompt_changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(SoupError, match="prompt.text_suffix"):
        average_models([a, prompt_changed], tmp_path / "s4")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("keep me")
    with pytest.raises(SoupError, match="already exists"):
        average_models([a, b], taken)
    assert (taken / "notes.txt").read_text() == "keep me" and len(list(taken.iterdir())) == 1
    assert not any((tmp_path / f"s{i}").exists() for i in range(1, 5))


def test_soup_cli(tmp_path):
    a, b = _run(tmp_path / "a", 1, text_too=True), _run(tmp_path / "b", 2, text_too=True)
    result = CliRunner().invoke(app, ["soup", str(tmp_path / "soup"), str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "mean of 2 models" in result.output and "label prior was re-embedded" in result.output
    assert (tmp_path / "soup" / "config.json").is_file()
    result = CliRunner().invoke(app, ["soup", str(tmp_path / "soup"), str(a), str(b)])
    assert result.exit_code == 1 and "already exists" in result.output


def test_a_config_that_is_not_json_is_named(tmp_path):
    a = _run(tmp_path / "a", 1, text_too=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((a / "model.safetensors").read_bytes())
    (broken / "config.json").write_text("{\n\n")
    with pytest.raises(SoupError, match=r"broken/config.json: not a valid mmembed config \(Expecting"):
        average_models([a, broken], tmp_path / "soup")
    result = CliRunner().invoke(app, ["soup", str(tmp_path / "soup"), str(a), str(broken)])
    assert result.exit_code == 1 and "broken/config.json" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "soup").exists()


def _colour_manifest(root):
    from PIL import Image

    from mmembed.data.manifest import PairRecord, write_manifest

    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for name, rgb in {"red": (220, 20, 20), "blue": (20, 20, 220), "green": (20, 200, 20)}.items():
        Image.new("RGB", (24, 24), rgb).save(root / "images" / f"{name}.png")
        records.append(PairRecord(concept=f"color:{name}", caption=f"a {name} square", lang="en",
                                  image=f"images/{name}.png", kind="name"))
    write_manifest(root / "train.jsonl", records)
    return root / "train.jsonl"


def _soup_recipe(tmp_path, base, soup):
    from mmembed.training.config import SourceSpec, TrainConfig

    return TrainConfig(base=str(base), soup=[str(m) for m in soup], out=str(tmp_path / "run"), name="souped", steps=0,
                       batch_size=2, freeze_lora=True, freeze_text_side=True, seed=1,
                       sources=[SourceSpec(name="colours", path=str(_colour_manifest(tmp_path / "colours")))])


def test_a_recipe_with_a_soup_and_no_steps_exports_the_soup_itself(tmp_path):
    """`soup = [...]` in a recipe makes the soup of base and those models the starting point, so a shipped soup
    retrains in one command (`mmembed train RECIPE --export adapters/NAME`) to the tensors `mmembed soup` writes."""
    from mmembed.training.trainer import Trainer

    a, b = _run(tmp_path / "a", 1, text_too=True), _run(tmp_path / "b", 2, text_too=True)
    average_models([a, b], tmp_path / "soup")
    trainer = Trainer(_soup_recipe(tmp_path, a, [b]), progress=False)
    trainer.run()
    trainer.export(tmp_path / "exported")
    expected, exported = (load_file(str(f / "model.safetensors")) for f in (tmp_path / "soup", tmp_path / "exported"))
    assert set(exported) == set(expected)
    for key in expected:
        torch.testing.assert_close(exported[key], expected[key], atol=1e-6, rtol=1e-5)
    model = load_model(tmp_path / "exported")
    assert model.config.name == "souped" and "from the soup of" in model.config.description
    assert str(b) in model.config.description
    assert "the soup of" in (tmp_path / "exported" / "README.md").read_text()


def test_a_recipe_whose_soup_is_not_runs_of_its_base_stops_before_a_run_folder_is_written(tmp_path):
    from mmembed.training.trainer import Trainer

    a = _run(tmp_path / "a", 1, text_too=True)
    other_rank = _run(tmp_path / "r8", 3, text_too=True, lora_r=8)
    with pytest.raises(SoupError, match=r"r8 is not a run of the same model.*lora\.r \(4 vs 8\)"):
        Trainer(_soup_recipe(tmp_path, a, [other_rank]), progress=False)
    with pytest.raises(SoupError, match="nowhere: not a saved mmembed model"):
        Trainer(_soup_recipe(tmp_path, a, [tmp_path / "nowhere"]), progress=False)
    assert not (tmp_path / "run").exists()
