"""Training on tiny models: losses, GradCache, custom pairs, resume after kill -9, 2-rank DDP."""
from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmembed
from mmembed.config import ImageCenteringConfig
from mmembed.data.manifest import PairRecord, write_manifest
from mmembed.model import MMEmbedModel
from mmembed.serialization import trained_state_dict
from mmembed.training.config import SourceSpec, TrainConfig
from mmembed.training.embedder import PairEmbedder
from mmembed.training.losses import LossConfig, contrastive_loss
from mmembed.training.custom_pairs import load_custom_pairs
from mmembed.training.pairs import PairsError
from mmembed.training.step import grad_cache_step, plain_step
from mmembed.training.trainer import Trainer, shutdown_distributed

COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (240, 220, 0),
          "black": (0, 0, 0), "white": (255, 255, 255), "purple": (128, 0, 128), "orange": (255, 140, 0)}
GERMAN = {"red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb", "black": "schwarz", "white": "weiß",
          "purple": "lila", "orange": "orange"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny real-format dataset: colour swatches with en/de captions + en-de text pairs."""
    root = tmp_path_factory.mktemp("colors")
    (root / "images").mkdir()
    recs = []
    for name, rgb in COLORS.items():
        Image.new("RGB", (24, 24), rgb).save(root / "images" / f"{name}.png")
        for lang, cap in (("en", f"a {name} square"), ("de", f"ein {GERMAN[name]}es Quadrat")):
            recs.append(PairRecord(concept=f"color:{name}", caption=cap, lang=lang, image=f"images/{name}.png", kind="name"))
        recs.append(PairRecord(concept=f"word:{name}", caption=GERMAN[name], lang="de", text=name, text_lang="en", kind="sentence"))
    write_manifest(root / "train.jsonl", recs)
    return root


def _cfg(dataset: Path, out: Path, **kw) -> TrainConfig:
    base = dict(base="tiny-random", out=str(out), name="tiny-trained", steps=6, batch_size=8, lr=5e-3, warmup_steps=1,
                checkpoint_every=2, seed=3,
                sources=[SourceSpec(name="img", path=str(dataset / "train.jsonl"), kinds=["name"], weight=0.6),
                         SourceSpec(name="txt", path=str(dataset / "train.jsonl"), kinds=["sentence"], weight=0.4)])
    base.update(kw)
    return TrainConfig(**base)


def test_losses_take_tensors():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=-1)
    p = torch.nn.functional.normalize(a + 0.01 * torch.randn(6, 16, generator=g), dim=-1)
    scale = torch.tensor(np.log(10.0))
    aligned = contrastive_loss(a, p, scale)
    shuffled = contrastive_loss(a, p.roll(1, 0), scale)
    assert aligned < shuffled
    n = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=-1)
    assert contrastive_loss(a, p, scale, negatives=n) > aligned  # negatives only make it harder
    sig = contrastive_loss(a, p, scale, logit_bias=torch.tensor(-1.0), cfg=LossConfig(kind="siglip"))
    assert torch.isfinite(sig)
    mat = contrastive_loss(a, p, scale, cfg=LossConfig(matryoshka_dims=(4, 8)))
    assert torch.isfinite(mat) and not torch.isclose(mat, aligned)


def _manual_infonce(a, p, n, scale):
    """Reference: a->p ranks against all positives and all hard negatives; p->a against all anchors."""
    labels = torch.arange(len(a))
    la = scale.exp() * a @ torch.cat([p, n]).T
    lp = scale.exp() * p @ a.T
    return (torch.nn.functional.cross_entropy(la, labels) + torch.nn.functional.cross_entropy(lp, labels)) / 2


def test_hard_negatives_are_optional_per_pair():
    """k hard negatives for a batch of b pairs (0 <= k <= b): extra candidates for every anchor."""
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=-1) for _ in range(3))
    scale = torch.tensor(np.log(10.0))
    for k in (1, 2, 6):
        torch.testing.assert_close(contrastive_loss(a, p, scale, negatives=n[:k]), _manual_infonce(a, p, n[:k], scale))
    torch.testing.assert_close(contrastive_loss(a, p, scale, negatives=n[:0]), contrastive_loss(a, p, scale))


def _loss_ddp_worker(rank: int, world: int, port: int, tensors: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    t = torch.load(tensors, weights_only=True)
    half = len(t["a"]) // world
    a = t["a"][rank * half : (rank + 1) * half].clone().requires_grad_()
    p = t["p"][rank * half : (rank + 1) * half].clone().requires_grad_()
    n = t["n"].clone().requires_grad_() if rank == 0 else None  # only rank 0's pairs have hard negatives
    loss = contrastive_loss(a, p, t["scale"], negatives=n, cfg=LossConfig(matryoshka_dims=(8,)))
    loss.backward()  # every rank's loss is the global loss, so all_gather's backward sums `world` copies of the gradient
    grads = {k: None if v is None else v.grad / world for k, v in (("a", a), ("p", p), ("n", n))}
    torch.save({"loss": float(loss.detach()), **grads}, f"{result}.{rank}")
    del loss, a, p, n  # drop the autograd graph (it holds gloo work objects) before the group goes away:
    gc.collect()  # otherwise a rank can abort at exit ("terminate called without an active exception")
    shutdown_distributed()


def test_two_rank_loss_with_hard_negatives_on_one_rank_only(tmp_path, free_port):
    """Ranks with different numbers of hard negatives (here 3 and 0) gather them with gradients:
    loss and gradients equal the single-process loss on the global batch."""
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(2)
    a, p = (torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1) for _ in range(2))
    n = torch.nn.functional.normalize(torch.randn(3, 16, generator=g), dim=-1)
    scale = torch.tensor(np.log(10.0))
    torch.save({"a": a, "p": p, "n": n, "scale": scale}, tmp_path / "t.pt")
    result = str(tmp_path / "r")
    mp.spawn(_loss_ddp_worker, args=(2, free_port, str(tmp_path / "t.pt"), result), nprocs=2, join=True)
    r0, r1 = (torch.load(f"{result}.{r}", weights_only=True) for r in (0, 1))
    ga, gp, gn = (x.clone().requires_grad_() for x in (a, p, n))
    single = contrastive_loss(ga, gp, scale, negatives=gn, cfg=LossConfig(matryoshka_dims=(8,)))
    single.backward()
    assert r0["loss"] == pytest.approx(float(single.detach()), rel=1e-5) and r1["loss"] == pytest.approx(float(single.detach()), rel=1e-5)
    torch.testing.assert_close(torch.cat([r0["a"], r1["a"]]), ga.grad)
    torch.testing.assert_close(torch.cat([r0["p"], r1["p"]]), gp.grad)
    torch.testing.assert_close(r0["n"], gn.grad)
    assert r1["n"] is None


@pytest.mark.parametrize("with_negative", ["none", "some", "all"])
def test_grad_cache_matches_plain_step(dataset, tmp_path, with_negative):
    import dataclasses

    cfg = _cfg(dataset, tmp_path / "r")
    tr = Trainer(cfg, progress=False)
    batch = tr.sampler.batch(0, 8)
    every = {"none": 0, "some": 4, "all": 1}[with_negative]  # "some": chunks of 3 hold 1, 1 and 0 negatives
    batch = [dataclasses.replace(b, negative=f"kein {i}") if every and i % every == 0 else b for i, b in enumerate(batch)]
    grads = []
    for step in (lambda: plain_step(tr.embedder, batch, tr._loss),
                 lambda: grad_cache_step(tr.embedder, batch, tr._loss, chunk=3)):
        tr.optimizer.zero_grad(set_to_none=True)
        loss = step()
        grads.append((loss, [p.grad.clone() for p in tr.params]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for g1, g2 in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_embed_chunk_changes_speed_not_results(dataset, tmp_path):
    """Sequences per backbone forward (embed_chunk) is a speed knob: loss and gradients stay the same."""
    results = []
    for chunk in (2, 64):
        tr = Trainer(_cfg(dataset, tmp_path / f"c{chunk}", lora_r=4, lora_targets=["q_proj", "down_proj"], embed_chunk=chunk,
                             autocast_bf16="off"),  # exact comparison: bf16 autocast (on by default on a GPU) rounds
                     progress=False)
        assert tr.embedder.chunk == chunk
        batch = tr.sampler.batch(0, 8)
        tr.optimizer.zero_grad(set_to_none=True)
        loss = plain_step(tr.embedder, batch, tr._loss)
        results.append((loss, {n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None}))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert results[0][1].keys() == results[1][1].keys()
    lora = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in results[0][1] if "lora_" in n}
    assert lora == {"q_proj", "down_proj"}  # exactly the modules asked for
    for n in results[0][1]:
        torch.testing.assert_close(results[0][1][n], results[1][1][n], rtol=1e-4, atol=1e-6)


def test_freeze_lora_trains_only_the_head_side(dataset, tmp_path):
    """A base with LoRA, freeze_lora=true: LoRA stays bit-identical, texts are cached, the projector moves."""
    first = Trainer(_cfg(dataset, tmp_path / "a", lora_r=4, steps=1), progress=False)
    first.run()
    first.export(tmp_path / "with-lora")
    tr = Trainer(_cfg(dataset, tmp_path / "b", base=str(tmp_path / "with-lora"), freeze_lora=True, steps=3), progress=False)
    lora = {n: p.detach().clone() for n, p in tr.model.named_parameters() if "lora_" in n}
    projector = [p.detach().clone() for p in tr.model.projector.parameters()]
    assert lora and not any(p.requires_grad for n, p in tr.model.named_parameters() if "lora_" in n)
    assert tr.embedder.cache_texts  # the whole text side is frozen: pooled states computed once
    tr.run()
    for n, p in tr.model.named_parameters():
        if n in lora:
            assert torch.equal(p.detach(), lora[n]), n
    assert any(not torch.equal(p.detach(), q) for p, q in zip(tr.model.projector.parameters(), projector))
    with pytest.raises(ValueError, match="freeze_lora"):
        Trainer(_cfg(dataset, tmp_path / "c", base=str(tmp_path / "with-lora"), freeze_lora=True, lora_r=4), progress=False)


def test_freeze_text_side_keeps_every_text_embedding(dataset, tmp_path):
    """freeze_text_side: LoRA, pooler and head stay bit-identical, so texts embed exactly as in the base;
    the projector moves, so images do."""
    first = Trainer(_cfg(dataset, tmp_path / "a", lora_r=4, steps=1), progress=False)
    first.run()
    first.export(tmp_path / "with-lora")
    tr = Trainer(_cfg(dataset, tmp_path / "b", base=str(tmp_path / "with-lora"), freeze_lora=True,
                      freeze_text_side=True, steps=3), progress=False)
    texts = ["a red apple", "ein roter Apfel"]
    images = sorted((dataset / "images").glob("*.png"))[:2]
    text_before, image_before = tr.model.encode_text(texts), tr.model.encode_image(images)
    trains = {n.split(".")[0] for n, p in tr.model.named_parameters() if p.requires_grad}
    assert trains == {"projector", "logit_scale"}
    tr.run()
    text_after, image_after = tr.model.encode_text(texts), tr.model.encode_image(images)
    np.testing.assert_array_equal(text_after, text_before)
    assert not np.allclose(image_after, image_before)
    with pytest.raises(ValueError, match="freeze_text_side = true needs freeze_lora = true"):
        TrainConfig.from_dict({"freeze_text_side": True, "sources": [{"name": "s", "path": "x.jsonl"}]})
    cfg = mmembed.get_config("tiny-random")
    cfg.image_tower = None
    MMEmbedModel(cfg).save(tmp_path / "text-only")
    with pytest.raises(ValueError, match="has no image tower"):
        Trainer(_cfg(dataset, tmp_path / "c", base=str(tmp_path / "text-only"), freeze_lora=True, freeze_text_side=True),
                progress=False)


def test_lora_train_layers_trains_only_the_last_layers(dataset, tmp_path):
    """lora_train_layers = 1: the LoRA of the last layer moves, every other layer's stays as the base has it."""
    first = Trainer(_cfg(dataset, tmp_path / "a", lora_r=4, steps=1), progress=False)
    first.run()
    first.export(tmp_path / "with-lora")
    tr = Trainer(_cfg(dataset, tmp_path / "b", base=str(tmp_path / "with-lora"), lora_train_layers=1, steps=3), progress=False)
    last = int(tr.model.backbone.config.num_hidden_layers) - 1
    lora = {n: p.detach().clone() for n, p in tr.model.named_parameters() if "lora_" in n}
    trains = {n for n, p in tr.model.named_parameters() if "lora_" in n and p.requires_grad}
    assert trains and all(f".layers.{last}." in n for n in trains)
    assert len(trains) < len(lora)
    tr.run()
    moved = {n for n, p in tr.model.named_parameters() if n in lora and not torch.equal(p.detach(), lora[n])}
    assert moved and moved <= trains
    for kw, match in ((dict(lora_train_layers=99), r"the backbone has \d+ layers"),
                      (dict(lora_train_layers=1, base="tiny-random"), "has no LoRA")):
        with pytest.raises(ValueError, match=match):
            Trainer(_cfg(dataset, tmp_path / "c", **({"base": str(tmp_path / "with-lora")} | kw)), progress=False)
    with pytest.raises(ValueError, match="needs freeze_lora = false"):
        TrainConfig.from_dict({"lora_train_layers": 1, "freeze_lora": True, "sources": [{"name": "s", "path": "x.jsonl"}]})


def test_unfreeze_tower_blocks_trains_and_saves_only_the_last_blocks(dataset, tmp_path):
    """unfreeze_tower_blocks = 1: the tower's last block moves with the projector, every other tower weight stays
    the package's; the adapter holds that block's weights only and loads back to the same image embeddings."""
    tr = Trainer(_cfg(dataset, tmp_path / "a", unfreeze_tower_blocks=1, steps=3), progress=False)
    n = len(tr.model.image_tower.blocks)
    last = f"blocks.{n - 1}."
    before = {k: v.clone() for k, v in tr.model.image_tower.state_dict().items()}
    assert not tr.embedder.cache_images  # the tower's features change every step: none are cached
    tr.run()
    after = tr.model.image_tower.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(last) for k in moved), moved
    tr.export(tmp_path / "out")
    saved = [k for k in trained_state_dict(tr.model) if k.startswith("image_tower.")]
    assert saved and all(k.startswith(f"image_tower.{last}") for k in saved)
    images = sorted((dataset / "images").glob("*.png"))[:3]
    loaded = mmembed.load(str(tmp_path / "out"))
    assert loaded.config.image_tower.trained_blocks == 1
    np.testing.assert_allclose(loaded.encode_image(images), tr.model.encode_image(images), atol=1e-5)
    with pytest.raises(ValueError, match=f"has {n} blocks"):
        Trainer(_cfg(dataset, tmp_path / "b", unfreeze_tower_blocks=n + 1), progress=False)
    with pytest.raises(ValueError, match="unfreeze_tower_blocks must be >= 0"):
        _cfg(dataset, tmp_path / "b", unfreeze_tower_blocks=-1)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    config["image_tower"]["trained_blocks"] = n + 5  # a hand-edited config that does not fit the tower
    (tmp_path / "out" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"trained_blocks = {n + 5}, but image tower .* has {n} blocks"):
        mmembed.load(str(tmp_path / "out"))


def test_image_centering_is_fitted_on_the_run_images_and_kept_by_a_text_only_run(dataset, tmp_path):
    """[image_centering]: export fits the mean on this run's training images (the exported model centers its
    image embeddings with it); a text-only run on that base keeps the base's mean (no images to refit on)."""
    cfg = _cfg(dataset, tmp_path / "a", steps=2, image_centering=ImageCenteringConfig(weight=0.5, fit_images=4))
    tr = Trainer(cfg, progress=False)
    tr.run()
    tr.export(tmp_path / "out")
    loaded = mmembed.load(str(tmp_path / "out"))
    mean = loaded.image_centering.mean.clone()
    assert loaded.config.image_centering == ImageCenteringConfig(weight=0.5, fit_images=4) and mean.norm() > 0.1
    images = sorted((dataset / "images").glob("*.png"))[:3]
    centered = loaded.encode_image(images)
    loaded.image_centering = None
    raw = loaded.encode_image(images)
    expected = raw - 0.5 * mean.numpy()
    np.testing.assert_allclose(centered, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    text_only = _cfg(dataset, tmp_path / "b", steps=1, base=str(tmp_path / "out"),
                     sources=[SourceSpec(name="txt", path=str(dataset / "train.jsonl"), kinds=["sentence"])])
    tr = Trainer(text_only, progress=False)
    tr.run()
    tr.export(tmp_path / "out2")
    torch.testing.assert_close(mmembed.load(str(tmp_path / "out2")).image_centering.mean, mean)
    parsed = TrainConfig.from_dict({**_toml_dict(cfg), "image_centering": {"weight": 0.25}}, where="r.toml")
    assert parsed.image_centering == ImageCenteringConfig(weight=0.25)
    with pytest.raises(ValueError, match=r"r.toml \[image_centering\].*unknown"):
        TrainConfig.from_dict({**_toml_dict(cfg), "image_centering": {"wieght": 0.25}}, where="r.toml")


def _toml_dict(cfg: TrainConfig) -> dict:
    """What a recipe file holding `cfg` parses to (sources as tables)."""
    data = {k: v for k, v in cfg.to_dict().items() if v is not None and k not in ("image_centering", "label_prior")}
    data["sources"] = [{k: v for k, v in s.__dict__.items() if v is not None} for s in cfg.sources]
    data["dev"] = []
    return data


def test_one_lang_per_batch_draws_one_language_per_step(dataset):
    """A one_lang_per_batch source gives each step's share in a single language; over steps all appear."""
    from mmembed.training.pairs import MixtureSampler, group_pairs, pairs_from_manifest

    pairs = pairs_from_manifest(dataset / "train.jsonl", kinds=["name"])
    for flag in (True, False):
        sampler = MixtureSampler([group_pairs("img", pairs)], seed=0, one_lang=["img"] if flag else [])
        per_step = [{p.lang for p in sampler.batch(step, 6)} for step in range(20)]
        if flag:
            assert all(len(langs) == 1 for langs in per_step)
            assert set().union(*per_step) == {"en", "de"}
        else:
            assert any(len(langs) == 2 for langs in per_step)  # the default mixes languages within a batch
    with pytest.raises(PairsError, match="unknown sources"):
        MixtureSampler([group_pairs("img", pairs)], seed=0, one_lang=["nope"])


def test_one_language_sources_share_the_step_language():
    """Two one_lang_per_batch sources draw ONE language per step (their pairs are each other's negatives);
    a source that lacks it draws its own, and a language only one source has still comes up."""
    from mmembed.training.pairs import MixtureSampler, TrainPair, group_pairs

    def source(name, langs, n=8):
        return group_pairs(name, [TrainPair(positive=f"{name}{i}-{lang}", text=f"{name}{i}", concept=f"{name}:{i}",
                                            lang=lang) for i in range(n) for lang in langs])

    a, b = source("a", ["de", "hi"]), source("b", ["de", "hi", "sw"])
    sampler = MixtureSampler([a, b], seed=3, one_lang=["a", "b"])
    per_step = [[(p.concept[0], p.lang) for p in sampler.batch(step, 8)] for step in range(40)]
    mixed = [pairs for pairs in per_step if {src for src, _ in pairs} == {"a", "b"}]
    b_lang = [{lang for src, lang in pairs if src == "b"}.pop() for pairs in mixed]
    shared = [pairs for pairs, lang in zip(mixed, b_lang) if lang != "sw"]  # 'a' has no sw
    assert len(shared) >= 10 and all(len({lang for _, lang in pairs}) == 1 for pairs in shared)
    assert {lang for pairs in per_step for _, lang in pairs} == {"de", "hi", "sw"}


def test_partners_join_the_batch_in_the_same_language():
    """hard_negatives_as = "batch": a drawn pair brings a confusable concept (its mined negative's pair) in
    the same language, so the confusion is an in-batch negative both ways; no concept twice, size kept."""
    from mmembed.training.pairs import MixtureSampler, TrainPair, group_pairs, partners_from_negatives

    langs = ["de", "hi"]
    mined = [TrainPair(positive=f"c{i}-{lang}", text=f"c{i}", concept=f"c{i}", lang=lang,
                       negative=f"c{i ^ 1}-{lang}" if lang == "de" else None)  # c0<->c1, c2<->c3, ... in German only
             for i in range(16) for lang in langs]
    pairs, partners = partners_from_negatives(mined)
    assert all(p.negative is None for p in pairs) and partners[("c4", "de")] == ["c5"] and ("c4", "hi") not in partners
    src = group_pairs("s", pairs)
    sampler = MixtureSampler([src], seed=0, one_lang=["s"], partners={"s": partners})
    for step in range(10):
        batch = sampler.batch(step, 6)
        concepts = [p.concept for p in batch]
        assert len(batch) == 6 and len(set(concepts)) == 6 and len({p.lang for p in batch}) == 1
        if batch[0].lang == "de":  # every German pair came with its partner
            assert all(f"c{int(c[1:]) ^ 1}" in concepts for c in concepts)
    plain = MixtureSampler([src], seed=0, one_lang=["s"])  # without partners, pairs come alone
    plain_batches = [[p.concept for p in plain.batch(step, 6)] for step in range(10)]
    assert any(f"c{int(c[1:]) ^ 1}" not in b for b in plain_batches for c in b)
    with pytest.raises(PairsError, match="unknown sources"):
        MixtureSampler([src], seed=0, partners={"nope": {}})


def _color_ranks(model, dataset: Path) -> np.ndarray:
    """Rank (0 = best) of each colour's image for the query 'a <colour> square'."""
    imgs = model.encode_image([str(dataset / "images" / f"{c}.png") for c in COLORS])
    caps = model.encode_text([f"a {c} square" for c in COLORS])
    sim = caps @ imgs.T
    return (sim > np.diag(sim)[:, None]).sum(1)


def test_training_reduces_loss_and_aligns(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path / "r", steps=40, checkpoint_every=40, lr=1e-2, lora_r=4)  # LoRA: the text side trains too
    tr = Trainer(cfg, progress=False)
    before = _color_ranks(tr.model.eval(), dataset)
    tr._train_mode()
    first = tr.train_step(0)
    tr.step = 1
    tr.run()
    log = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    last = np.mean([r["loss"] for r in log if "loss" in r][-5:])
    assert last < first * 0.7, (first, last)
    after = _color_ranks(tr.model.eval(), dataset)
    assert after.mean() < before.mean(), (before, after)
    assert (after == 0).mean() >= 0.25  # top-1 at least twice chance (1/8) on a random tiny backbone


def test_every_step_gives_freed_memory_back(dataset, tmp_path, monkeypatch):
    """glibc keeps freed activations fragmented in its arenas, so RSS ratchets up over a long CPU run (the
    18-layer stage 28a was OOM-killed at 24 GB); each step ends with malloc_trim (mmembed/training/memory.py)."""
    from mmembed.training import memory
    from mmembed.training import trainer as trainer_module

    glibc = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None
    assert memory.release_freed_memory() is glibc  # a no-op returning False where the C library has no malloc_trim
    calls = []
    monkeypatch.setattr(trainer_module, "release_freed_memory", lambda: calls.append(1) or True)
    Trainer(_cfg(dataset, tmp_path / "m", steps=3, checkpoint_every=3), progress=False).run()
    assert len(calls) == 3


def _assert_resumed_like_uninterrupted(full: dict, resumed: dict, init: dict) -> None:
    """The resumed run ends where the uninterrupted one does, up to float noise.

    Not bit-exact: the frozen caches (caption states, tower features) are rebuilt on resume, and a state
    computed in a different batch differs in its last bits (batched GEMM; how many depends on the CPU's
    kernels), which Adam then carries along. So the yardstick is the run itself: no tensor may be further
    off than 2% of the largest distance training moved any tensor. A real resume bug (schedule restarted,
    optimizer moments lost, a step skipped or repeated) is off by a sizeable part of a step (10-50% here).
    """
    assert full.keys() == resumed.keys()
    moved = max(float((full[k] - init[k]).abs().max()) for k in full)
    for k in full:
        off = float((full[k] - resumed[k]).abs().max())
        assert off <= 0.02 * moved, f"{k}: the resumed run is {off:.2e} away; training moved weights up to {moved:.2e}"


def test_checkpoint_resume_equals_uninterrupted(dataset, tmp_path):
    init = trained_state_dict(Trainer(_cfg(dataset, tmp_path / "init"), progress=False).model)
    full = Trainer(_cfg(dataset, tmp_path / "a"), progress=False)
    full.run()
    part = Trainer(_cfg(dataset, tmp_path / "b"), progress=False)
    part.run(stop_after=4)  # "crash" after the step-4 checkpoint
    at_step_4 = trained_state_dict(part.model)
    resumed = Trainer(_cfg(dataset, tmp_path / "b"), resume=True, progress=False)
    assert resumed.step == 4
    torch.testing.assert_close(trained_state_dict(resumed.model), at_step_4, rtol=0, atol=0)  # the checkpoint is exact
    resumed.run()
    final = trained_state_dict(full.model)
    _assert_resumed_like_uninterrupted(final, trained_state_dict(resumed.model), init)
    # the yardstick is strict enough: the last two steps alone move the weights far more than resuming does
    assert max(float((final[k] - at_step_4[k]).abs().max()) for k in final) > \
        0.1 * max(float((final[k] - init[k]).abs().max()) for k in final)


def _write_toml(cfg: TrainConfig, path: Path) -> None:
    lines = [f'{k} = {json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ("sources", "dev") and v is not None]
    for s in cfg.sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in s.__dict__.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")


def test_kill_dash_9_then_resume(dataset, tmp_path):
    """A real process killed with SIGKILL mid-run, resumed from its last checkpoint, ends where an
    uninterrupted run ends."""
    steps = 30
    init = trained_state_dict(Trainer(_cfg(dataset, tmp_path / "init", steps=steps), progress=False).model)
    ref = Trainer(_cfg(dataset, tmp_path / "ref", steps=steps, checkpoint_every=3), progress=False)
    ref.run()
    cfg = _cfg(dataset, tmp_path / "killed", steps=steps, checkpoint_every=3)
    toml = tmp_path / "run.toml"
    _write_toml(cfg, toml)
    cmd = [sys.executable, "-m", "mmembed.cli", "train", str(toml)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    # any checkpoint: with keep_checkpoints = 2, step_000003..9 exist for only ~0.3 s (steps 4-12) before pruning,
    # a window a busy machine's polling can miss; the first checkpoint onward stays matched until the run ends
    while time.time() < deadline and not any(ckpts.glob("step_*")) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(ckpts.glob("step_*"))
    assert done and done[-1].name != f"step_{steps:06d}", "the run finished before it could be killed"
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    from mmembed.serialization import load_model

    final = load_model(tmp_path / "killed" / "final")
    _assert_resumed_like_uninterrupted(trained_state_dict(ref.model), trained_state_dict(final), init)
    logged = [json.loads(line)["step"] for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, steps + 1))  # the steps trained again after the kill are logged once


def test_custom_pairs_report_bad_rows(tmp_path):
    img = tmp_path / "ok.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(img)
    (tmp_path / "broken.png").write_text("not an image")
    rows = [
        {"image": "ok.png", "caption": "a dark pixel square"},
        {"image": "missing.png", "caption": "gone"},
        {"image": "broken.png", "caption": "broken"},
        {"query": "what is red", "positive": "red is a colour", "negative": "blue is a colour"},
        {"query": "empty", "positive": "   "},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    pairs, problems = load_custom_pairs(path)
    assert len(pairs) == 2
    where = {p.where.rsplit(":", 1)[1]: p.reason for p in problems}
    assert set(where) == {"2", "3", "5", "6"}
    assert "does not exist" in where["2"] and "not a readable image" in where["3"]
    assert "empty" in where["5"] and "JSON" in where["6"]
    with pytest.raises(PairsError, match="4 bad row"):
        load_custom_pairs(path, on_error="reject")
    csv = tmp_path / "pairs.csv"
    csv.write_text("image,caption\nok.png,a square\nmissing.png,x\n")
    pairs, problems = load_custom_pairs(csv)
    assert len(pairs) == 1 and problems[0].where.endswith(":3")


def test_train_cli_on_custom_pairs_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from mmembed.cli import app

    for name, rgb in list(COLORS.items())[:6]:
        Image.new("RGB", (16, 16), rgb).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(f"a {name} swatch")
    (tmp_path / "bad.png").write_text("nope")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path), "--base", "tiny-random", "--out", str(out),
                                   "--steps", "3", "--batch-size", "4", "--export", str(tmp_path / "exported")])
    assert res.exit_code == 0, res.output
    assert "bad.png" in res.output and "skipped" in res.output
    import mmembed

    model = mmembed.load(str(tmp_path / "exported"))
    assert model.encode_image([tmp_path / "red.png"]).shape == (1, model.dim)
    assert "trained by `mmembed train`" in model.config.description  # not the untrained base's words


def test_cli_pairs_default_base_is_the_default_model(tmp_path, monkeypatch):
    """Without --base, fine-tuning starts from what mmembed.load() gives (the shipped model), not an older stage."""
    from typer.testing import CliRunner

    import mmembed.registry
    from mmembed.cli import app

    monkeypatch.setattr(mmembed.registry, "default_model_name", lambda: "tiny-random")  # fast stand-in
    for name, rgb in list(COLORS.items())[:4]:
        Image.new("RGB", (16, 16), rgb).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(f"a {name} swatch")
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path), "--out", str(tmp_path / "run"),
                                   "--steps", "2", "--batch-size", "4", "--freeze-lora"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert cfg["name"] == "tiny-random-custom" and "from 'tiny-random'" in cfg["description"]


def test_cli_freeze_text_side_moves_only_the_images(dataset, tmp_path):
    """`--freeze-text-side` on custom image pairs: the fine-tuned model embeds texts exactly as its base does."""
    from typer.testing import CliRunner

    from mmembed.cli import app

    for name, rgb in list(COLORS.items())[:4]:
        Image.new("RGB", (16, 16), rgb).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(f"a {name} swatch")
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path), "--base", "tiny-random", "--out", str(tmp_path / "run"),
                                   "--steps", "2", "--batch-size", "4", "--lr", "0.05", "--freeze-text-side"])
    assert res.exit_code == 0, res.output
    base, tuned = mmembed.load("tiny-random"), mmembed.load(str(tmp_path / "run" / "final"))
    texts, images = ["a red swatch", "ein blaues Quadrat"], [tmp_path / "red.png", tmp_path / "blue.png"]
    np.testing.assert_array_equal(tuned.encode_text(texts), base.encode_text(texts))
    assert not np.allclose(tuned.encode_image(images), base.encode_image(images))
    with pytest.raises(ValueError, match="freeze_text_side = true needs freeze_lora = true"):  # a config built in code
        Trainer(_cfg(dataset, tmp_path / "c", freeze_text_side=True), progress=False)


def _ddp_worker(rank: int, world: int, port: int, dataset: str, out: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    tr = Trainer(_cfg(Path(dataset), Path(out)), progress=False)
    tr.optimizer.zero_grad(set_to_none=True)
    loss = plain_step(tr.embedder, tr._local_batches(0)[0], tr._loss)
    for p in tr.params:
        torch.distributed.all_reduce(p.grad)
        p.grad /= world
    if rank == 0:
        torch.save({"loss": loss, "grads": [p.grad for p in tr.params]}, result)
    del tr  # drop the autograd graph (it holds gloo work objects) before the group goes away
    gc.collect()
    shutdown_distributed()


def test_two_rank_loss_equals_single_process(dataset, tmp_path, free_port):
    import torch.multiprocessing as mp

    result = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, free_port, str(dataset), str(tmp_path / "ddp"), result), nprocs=2, join=True)
    ddp = torch.load(result, weights_only=True)
    single = Trainer(_cfg(dataset, tmp_path / "single"), progress=False)
    single.optimizer.zero_grad(set_to_none=True)
    loss = plain_step(single.embedder, single.sampler.batch(0, 8), single._loss)
    assert ddp["loss"] == pytest.approx(loss, rel=1e-5)
    for g1, g2 in zip(ddp["grads"], [p.grad for p in single.params]):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def _failing_rank0_worker(rank: int, world: int, port: int, dataset: str, out: str, result: str, job: str) -> None:
    """A torchrun-like rank whose rank-0 `job` at step 2 fails as a full disk would: the checkpoint write, or
    the dev evaluation (e.g. reading a dev image)."""
    import mmembed.training.run_folder as run_folder_module
    import mmembed.training.trainer as trainer_module
    from conftest import record_what_this_rank_raises
    from mmembed.training.config import DevSpec

    calls = []

    def fails_the_second_time(real):
        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
            return real(*args, **kwargs)
        return wrapped

    if job == "checkpoint":
        run_folder_module.save_model = fails_the_second_time(run_folder_module.save_model)  # the checkpoint's
    else:
        trainer_module.dev_metrics = fails_the_second_time(trainer_module.dev_metrics)
    dev = [DevSpec(name="colors", path=str(Path(dataset) / "train.jsonl"), langs=["en"], kinds=["name"])]
    cfg = _cfg(Path(dataset), Path(out), steps=4, checkpoint_every=1, eval_every=1, dev=dev if job == "dev" else [])
    # the Trainer is built after the group is joined, as under torchrun
    record_what_this_rank_raises(rank, world, port, result, lambda: Trainer(cfg, progress=False).run())


@pytest.mark.parametrize("job,what", [("checkpoint", "writing the checkpoint of step 2 under "),
                                      ("dev", "evaluating on the dev sets at step 2: ")])
def test_a_rank_0_failure_at_a_step_end_stops_every_rank_with_its_cause(dataset, tmp_path, free_port, job, what):
    """Only rank 0 evaluates on dev and writes checkpoints. When that fails, every rank stops at that step with
    rank 0's cause (before, rank 1 died at the next all_reduce of gloo's 'Connection closed by peer'), and
    the last good checkpoint is left whole for --resume: no half-written step folder, no temp folder."""
    import torch.multiprocessing as mp

    result = str(tmp_path / "raised")
    out = tmp_path / "run"
    mp.spawn(_failing_rank0_worker, args=(2, free_port, str(dataset), str(out), result, job), nprocs=2, join=True)
    assert (tmp_path / "raised.0").read_text() == "OSError: [Errno 28] No space left on device"
    rank1 = (tmp_path / "raised.1").read_text()
    assert rank1.startswith(f"RuntimeError: rank 0 failed while {what}")
    assert rank1.endswith("OSError: [Errno 28] No space left on device")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000001"]
    resumed = Trainer(_cfg(dataset, out, steps=4, checkpoint_every=1), resume=True, progress=False)
    assert resumed.step == 1


RECIPES = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_committed_recipe_parses_and_names_real_inputs(recipe):
    """Every shipped recipe must retrain in one command: it parses, its base is a registered model or a
    committed adapter (and so is every model of its soup), and every source/dev set is a split of a dataset `mmembed data build` makes."""
    from mmembed.data.builders import DATASETS
    from mmembed.registry import list_models

    root = recipe.parent.parent
    cfg = TrainConfig.from_toml(recipe)
    assert cfg.base in list_models() or (root / cfg.base / "config.json").is_file(), cfg.base
    for model in cfg.soup:  # a soup's other models are committed too
        assert (root / model / "config.json").is_file(), model
    assert cfg.name == recipe.stem  # `--export adapters/NAME` and the recipe file share the name
    for specs, split in ((cfg.sources, "train.jsonl"), (cfg.dev, "dev.jsonl")):  # test splits never train or select
        for spec in specs:
            parts = Path(spec.path).parts
            assert parts[:2] == ("data", "build") and parts[2] in DATASETS and parts[3] == split, spec.path


@pytest.mark.parametrize("dev,match", [
    (dict(kinds=["description"]), r"dev set 'colors' .* has no records of kinds \['description'\]; it has kinds \['name', 'sentence'\]"),
    (dict(langs=["sw"]), r"dev set 'colors' .* has no captions in langs \['sw'\].* \['de', 'en'\]"),
    (dict(path="nope/dev.jsonl"), r"dev set 'colors' \(nope/dev.jsonl\): no such file"),
])
def test_a_bad_dev_set_stops_training_before_step_one(dataset, tmp_path, dev, match):
    """Dev sets are scored every eval_every steps; a wrong kind, language or path must not wait
    until then (a real run lost 40 steps that way) and must leave no checkpoint behind."""
    from mmembed.training.config import DevSpec

    spec = DevSpec(**(dict(name="colors", path=str(dataset / "train.jsonl")) | dev))
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        Trainer(_cfg(dataset, tmp_path / "r", dev=[spec]), progress=False)
    assert not (tmp_path / "r").exists()


def test_label_prior_is_filled_from_the_trained_text_path_at_export(dataset, tmp_path):
    from mmembed import load
    from mmembed.config import LabelPriorConfig
    from mmembed.label_prior import imagenet_class_names

    cfg = _cfg(dataset, tmp_path / "r", steps=2, label_prior=LabelPriorConfig(weight=0.5, top_k=3))
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    model = load(str(trainer.export(tmp_path / "exported")))
    assert model.config.label_prior == LabelPriorConfig(weight=0.5, top_k=3)
    names = imagenet_class_names()
    np.testing.assert_allclose(model.label_prior.label_embeddings[:4].numpy(), model.encode_text(names[:4]), atol=1e-5)
    # the TOML table is typed: a misspelt key is named
    with pytest.raises(ValueError, match=r"\[label_prior\]: unknown fields \['wieght'\]"):
        TrainConfig.from_dict({"sources": [{"name": "a", "path": "x.jsonl"}], "label_prior": {"wieght": 1.0}})
    assert TrainConfig.from_dict({"sources": [{"name": "a", "path": "x.jsonl"}], "label_prior": {"weight": 0.25}}).label_prior == \
        LabelPriorConfig(weight=0.25)


def test_label_prior_in_loss_gives_training_anchors_the_embeddings_users_get(dataset, tmp_path):
    from mmembed.config import LabelPriorConfig
    from mmembed.label_prior import refresh_label_embeddings
    from mmembed.training.embedder import LabelPriorInLossError

    prior = LabelPriorConfig(weight=0.75, top_k=5)
    trainer = Trainer(_cfg(dataset, tmp_path / "r", steps=2, label_prior=prior, label_prior_in_loss=True), progress=False)
    model = trainer.model
    with torch.no_grad():  # a random classifier is unsure of everything (a near-zero prior): make it sure
        model.image_tower.get_classifier().weight.mul_(200.0)
        model.image_tower.get_classifier().bias[7] += 30.0  # of class 7 above all
    model.eval()
    refresh_label_embeddings(model)
    batch = [p for p in trainer.sampler.batch(0, 16) if p.image is not None][:4]
    assert batch
    with torch.no_grad():
        anchors = trainer.embedder.pairs(batch)[0].numpy()
        plain = PairEmbedder(model).pairs(batch)[0].numpy()
    users = model.encode_image([p.image for p in batch])
    np.testing.assert_allclose(anchors, users, atol=1e-5)  # what the loss sees is what encode_image gives
    assert np.abs(plain - users).max() > 1e-2  # and the prior did move them
    trainer._train_mode()
    assert trainer.run()["step"] == 2  # trains end to end (the class-name table through the head)
    # what it cannot give is refused by name, before any step
    with pytest.raises(LabelPriorInLossError, match="has no label prior"):
        Trainer(_cfg(dataset, tmp_path / "no-prior", label_prior_in_loss=True), progress=False)
    with pytest.raises(LabelPriorInLossError, match="needs freeze_lora"):
        Trainer(_cfg(dataset, tmp_path / "lora", lora_r=4, label_prior=prior, label_prior_in_loss=True), progress=False)


def test_cli_pairs_label_prior_in_loss(tmp_path):
    from typer.testing import CliRunner

    import mmembed
    from mmembed.cli import app
    from mmembed.config import LabelPriorConfig
    from mmembed.model import MMEmbedModel
    from mmembed.serialization import save_model

    for name, rgb in list(COLORS.items())[:4]:
        Image.new("RGB", (16, 16), rgb).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(f"a {name} swatch")
    cfg = mmembed.get_config("tiny-random")
    cfg.label_prior = LabelPriorConfig()
    save_model(MMEmbedModel(cfg), tmp_path / "base-with-prior")
    args = ["train", "--pairs", str(tmp_path), "--steps", "2", "--batch-size", "4", "--freeze-lora", "--label-prior-in-loss"]
    res = CliRunner().invoke(app, args + ["--base", str(tmp_path / "base-with-prior"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "final" / "config.json").read_text())["label_prior"] is not None
    res = CliRunner().invoke(app, args + ["--base", "tiny-random", "--out", str(tmp_path / "no-prior")])
    assert res.exit_code == 1 and "has no label prior: start from a base that has one" in " ".join(res.output.split())


def test_attention_override_trains_under_that_mask_and_round_trips(dataset, tmp_path):
    """attention = "bidirectional" on a causal base: the run trains with it, the exported model loads back with it
    and the same text embeddings, and those differ from the same weights under the causal mask; a typo is refused."""
    assert mmembed.load("tiny-random").config.backbone.attention == "causal"
    tr = Trainer(_cfg(dataset, tmp_path / "a", attention="bidirectional", steps=2), progress=False)
    assert tr.model.config.backbone.attention == "bidirectional"
    tr.run()
    tr.export(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["backbone"]["attention"] == "bidirectional"
    loaded = mmembed.load(str(tmp_path / "out"))
    texts = ["a red apple", "ein roter Apfel und eine Birne"]
    bidirectional = loaded.encode_text(texts)
    np.testing.assert_allclose(bidirectional, tr.model.encode_text(texts), atol=1e-5)
    loaded.config.backbone.attention = "causal"
    assert np.abs(loaded.encode_text(texts) - bidirectional).max() > 1e-3
    with pytest.raises(ValueError, match="recipe.toml: attention must be one of causal, bidirectional, got 'bidirectinal'"):
        TrainConfig.from_dict({"base": "tiny-random", "attention": "bidirectinal", "sources": [
            {"name": "txt", "path": str(dataset / "train.jsonl")}]}, where="recipe.toml")


def test_num_visual_tokens_resizes_the_base_projector_and_round_trips(dataset, tmp_path):
    """num_visual_tokens = 1 on a 4-token base: the projector MLP starts as the base's, images become one token,
    the exported model loads back with one token and the same image embeddings; a non-square count is refused."""
    base = mmembed.load("tiny-random")
    tr = Trainer(_cfg(dataset, tmp_path / "a", num_visual_tokens=1, steps=2), progress=False)
    assert tr.model.num_visual_tokens == 1 and tr.model.projector.position.shape[0] == 1
    torch.testing.assert_close(tr.model.projector.position.detach()[0], base.projector.position.detach().mean(0))
    tr.run()
    tr.export(tmp_path / "out")
    loaded = mmembed.load(str(tmp_path / "out"))
    assert loaded.num_visual_tokens == 1
    images = sorted((dataset / "images").glob("*.png"))[:3]
    np.testing.assert_allclose(loaded.encode_image(images), tr.model.encode_image(images), atol=1e-5)
    with pytest.raises(ValueError, match="perfect square"):
        _cfg(dataset, tmp_path / "b", num_visual_tokens=6)
    text_only = TrainConfig.from_dict({"base": "tiny-random", "num_visual_tokens": 4, "sources": [
        {"name": "txt", "path": str(dataset / "train.jsonl")}]}, where="recipe.toml")
    assert text_only.num_visual_tokens == 4


@pytest.mark.parametrize("field,value,match", [
    ("loss", "sigmoid", r"loss must be one of clip, siglip, got 'sigmoid'"),  # was silently InfoNCE
    ("grad_cache_chunk", 0, r"grad_cache_chunk must be >= 1"),
    ("batch_size", 1, r"batch_size must be >= 2"),
])
def test_config_names_a_bad_loss_chunk_or_batch(dataset, tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        _cfg(dataset, tmp_path / "r", **{field: value})
    with pytest.raises(ValueError, match=r"r.toml: " + match):  # from a recipe: the file is named
        TrainConfig.from_dict({**_toml_dict(_cfg(dataset, tmp_path / "r")), field: value}, where="r.toml")


def test_siglip_refuses_hard_negatives_before_loading_the_model(dataset, tmp_path):
    """The sigmoid loss has no column for a pair's own negative: said at config time, with no run folder."""
    mined = {**_toml_dict(_cfg(dataset, tmp_path / "r")), "loss": "siglip"}
    mined["sources"] = [{"name": "txt", "path": str(dataset / "train.jsonl"), "kinds": ["sentence"], "hard_negatives_top_k": 2}]
    with pytest.raises(ValueError, match=r"source 'txt': hard_negatives_top_k .* loss = 'siglip' cannot use them"):
        TrainConfig.from_dict(mined, where="r.toml")
    triplets = tmp_path / "triplets.jsonl"
    triplets.write_text("\n".join(json.dumps({"query": f"q{i}", "positive": f"p{i}", "negative": f"n{i}"}) for i in range(4)))
    cfg = _cfg(dataset, tmp_path / "t", loss="siglip", sources=[SourceSpec(name="mine", path=str(triplets), custom=True)])
    with pytest.raises(ValueError, match=r"source 'mine': 4 pairs carry a hard negative, which loss = 'siglip' cannot use"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "t").exists()


def test_cli_pairs_with_siglip_and_grad_cache(tmp_path):
    """`--loss siglip --grad-cache-chunk 2` on custom pairs trains with the sigmoid loss (its bias moves) in
    cached-gradient chunks; a misspelt --loss stops before training and names the choices."""
    from typer.testing import CliRunner

    from mmembed.cli import app

    for name, rgb in list(COLORS.items())[:4]:
        Image.new("RGB", (16, 16), rgb).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(f"a {name} swatch")
    run = tmp_path / "run"
    args = ["train", "--pairs", str(tmp_path), "--base", "tiny-random", "--out", str(run), "--steps", "2", "--batch-size", "4"]
    res = CliRunner().invoke(app, [*args, "--loss", "sigmoid"])
    assert res.exit_code == 1 and "loss must be one of clip, siglip, got 'sigmoid'" in res.output, res.output
    assert not run.exists()
    res = CliRunner().invoke(app, [*args, "--loss", "siglip", "--grad-cache-chunk", "2", "--lr", "0.05"])
    assert res.exit_code == 0, res.output
    state = json.loads(sorted(run.glob("checkpoints/*/trainer_state.json"))[-1].read_text())
    assert state["config"]["loss"] == "siglip" and state["config"]["grad_cache_chunk"] == 2
    base, tuned = mmembed.load("tiny-random"), mmembed.load(str(run / "final"))
    assert tuned.logit_bias.item() != base.logit_bias.item()  # trained only by the sigmoid loss


def test_a_float16_recipe_exports_float16_while_its_checkpoints_stay_exact(dataset, tmp_path):
    """storage_dtype = "float16" halves the exported tensors; the checkpoints a resume reads keep float32, and
    the model after export gives the vectors of the folder it wrote."""
    from safetensors.torch import load_file

    trainer = Trainer(_cfg(dataset, tmp_path / "run", steps=2, checkpoint_every=2, lora_r=4,
                           storage_dtype="float16"), progress=False)
    trainer.run()
    ckpt = load_file(str(tmp_path / "run" / "checkpoints" / "step_000002" / "model" / "model.safetensors"))
    assert {t.dtype for t in ckpt.values() if t.is_floating_point()} == {torch.float32}
    assert torch.equal(ckpt["projector.mlp.0.weight"], trained_state_dict(trainer.model)["projector.mlp.0.weight"])
    trainer.export(tmp_path / "export")
    exported = load_file(str(tmp_path / "export" / "model.safetensors"))
    assert {t.dtype for t in exported.values() if t.is_floating_point()} == {torch.float16}
    assert any("lora_" in k for k in exported)
    loaded = mmembed.load(str(tmp_path / "export"))
    texts, image = ["ein rotes Quadrat", "a blue square"], [str(dataset / "images" / "red.png")]
    np.testing.assert_array_equal(trainer.model.encode_text(texts), loaded.encode_text(texts))
    np.testing.assert_array_equal(trainer.model.encode_image(image), loaded.encode_image(image))
