"""Distillation from a text teacher: the loss on tensors, the teacher's vector table, the trainer and CLI
paths (a deterministic stand-in teacher), 2 ranks on gloo, and the real multilingual-e5-small teacher."""
from __future__ import annotations

import gc
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmembed.training.teacher as teacher_module
from mmembed.training.config import SourceSpec, TrainConfig
from mmembed.training.losses import distill_loss
from mmembed.training.pairs import TrainPair
from mmembed.training.step import grad_cache_step, plain_step
from mmembed.training.teacher import (TeacherError, TeacherTable, build_teacher_table, load_teacher_table,
                                      teacher_texts)
from mmembed.training.trainer import Trainer, shutdown_distributed
from test_training import GERMAN, _cfg, dataset  # noqa: F401  (dataset: the tiny colour-swatch fixture)

T = 0.05  # teacher temperature in these tests


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


class HashTeacher:
    """A deterministic stand-in: a translation shares its English word's vector (plus a little of its own),
    every other text gets its own hashed direction. Counts the texts it embedded."""

    name = "hash"
    embedded: list[str] = []
    ENGLISH = {v: k for k, v in GERMAN.items()}

    def embed(self, texts):
        HashTeacher.embedded += list(texts)
        rows = []
        for t in texts:
            key = self.ENGLISH.get(t, t)
            g = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
            own = np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
            v = g.standard_normal(12) + 0.3 * own.standard_normal(12)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)


@pytest.fixture
def hash_teacher(monkeypatch):
    monkeypatch.setitem(teacher_module.TEACHERS, "hash", HashTeacher)
    HashTeacher.embedded = []
    return HashTeacher


# ---- the loss -------------------------------------------------------------------------------------
def test_distill_loss_is_zero_when_the_student_scores_like_the_teacher():
    a = _unit(6, 12, seed=1)
    p = F.normalize(a + 0.3 * _unit(6, 12, seed=2), dim=-1)  # a teacher that pairs them right
    mask = torch.ones(6, dtype=torch.bool)
    same_scale = torch.tensor(math.log(1 / T))  # student logits = teacher logits exactly
    assert float(distill_loss(a, p, a, p, mask, same_scale, T)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(a, p.roll(1, 0), a, p, mask, same_scale, T)) > 0.1


def test_distill_loss_equals_the_kl_of_the_two_softmaxes():
    a, p, ta, tp = _unit(5, 8, seed=3), _unit(5, 8, seed=4), _unit(5, 6, seed=5), _unit(5, 6, seed=6)
    scale = torch.tensor(math.log(20.0))
    s, t = 20.0 * a @ p.T, ta @ tp.T / T
    kl = lambda s, t: (F.softmax(t, -1) * (F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum(-1).mean()
    expected = (kl(s, t) + kl(s.T, t.T)) / 2
    got = distill_loss(a, p, ta, tp, torch.ones(5, dtype=torch.bool), scale, T, only_where_teacher_is_right=False)
    torch.testing.assert_close(got, expected)


def test_queries_the_teacher_ranks_wrongly_are_left_to_the_contrastive_term():
    """Gated (the default): only queries whose teacher's top candidate is their own positive are distilled."""
    ta = _unit(4, 6, seed=40)
    tp = ta.clone()
    tp[[1, 2]] = tp[[2, 1]]  # the teacher pairs anchors 1 and 2 with each other's positives: wrong both ways
    a, p = _unit(4, 8, seed=41), _unit(4, 8, seed=42)
    scale, mask = torch.tensor(math.log(20.0)), torch.ones(4, dtype=torch.bool)
    s, t = 20.0 * a @ p.T, ta @ tp.T / T
    kl = lambda s, t: (F.softmax(t, -1) * (F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum(-1)
    right = [0, 3]
    expected = (kl(s, t)[right].mean() + kl(s.T, t.T)[right].mean()) / 2
    torch.testing.assert_close(distill_loss(a, p, ta, tp, mask, scale, T), expected)
    assert not torch.isclose(distill_loss(a, p, ta, tp, mask, scale, T, only_where_teacher_is_right=False), expected)


def test_rows_without_teacher_vectors_take_no_part():
    a, p, ta, tp = _unit(6, 8, seed=7), _unit(6, 8, seed=8), _unit(6, 4, seed=9), _unit(6, 4, seed=10)
    mask = torch.tensor([True, False, True, True, False, True])
    scale = torch.tensor(math.log(15.0))
    full = distill_loss(a, p, ta, tp, mask, scale, T)
    keep = mask.nonzero().squeeze(1)
    subset = distill_loss(a[keep], p[keep], ta[keep], tp[keep], torch.ones(4, dtype=torch.bool), scale, T)
    torch.testing.assert_close(full, subset)
    a2 = a.clone()
    a2[1] = _unit(8, seed=11)  # a masked-out row changes: nothing else does
    torch.testing.assert_close(distill_loss(a2, p, ta, tp, mask, scale, T), full)


def test_fewer_than_two_distilled_rows_give_zero_with_a_gradient_path():
    a, p = _unit(4, 8, seed=12).requires_grad_(), _unit(4, 8, seed=13).requires_grad_()
    loss = distill_loss(a, p, _unit(4, 4), _unit(4, 4), torch.tensor([False, True, False, False]),
                        torch.tensor(2.0), T)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(a.grad, torch.zeros_like(a))


def test_the_loss_is_computed_in_fp32_under_bf16_autocast():
    """Training runs under bf16 autocast where bf16 is native; a KL of near-equal distributions would be
    rounded to bf16's 3 digits (0.6171875 for 0.6166...), so the term is computed in fp32."""
    a = _unit(16, 12, seed=50)
    p, ta = F.normalize(a + 0.4 * _unit(16, 12, seed=51), dim=-1), F.normalize(a + 0.4 * _unit(16, 12, seed=52), dim=-1)
    args = (a, p, ta, F.normalize(ta + 0.2 * _unit(16, 12, seed=53), dim=-1), torch.ones(16, dtype=torch.bool),
            torch.tensor(math.log(15.0)), T)
    exact = distill_loss(*args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = distill_loss(*args)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, exact, rtol=1e-6, atol=1e-7)


def test_the_temperature_is_not_trained_by_the_distillation_term():
    scale = torch.tensor(math.log(10.0), requires_grad=True)
    a, p = _unit(4, 8, seed=14).requires_grad_(), _unit(4, 8, seed=15)
    distill_loss(a, p, _unit(4, 4, seed=16), _unit(4, 4, seed=17), torch.ones(4, dtype=torch.bool), scale, T).backward()
    assert scale.grad is None and a.grad.abs().sum() > 0


def _distill_ddp_worker(rank: int, world: int, port: int, tensors: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    t = torch.load(tensors, weights_only=True)
    half = len(t["a"]) // world
    sl = slice(rank * half, (rank + 1) * half)
    a, p = t["a"][sl].clone().requires_grad_(), t["p"][sl].clone().requires_grad_()
    loss = distill_loss(a, p, t["ta"][sl], t["tp"][sl], t["mask"][sl], t["scale"], T)
    loss.backward()  # every rank's loss is the global loss: all_gather's backward sums `world` copies
    torch.save({"loss": float(loss), "a": a.grad / world, "p": p.grad / world}, f"{result}.{rank}")
    shutdown_distributed()


def test_two_rank_distill_loss_equals_single_process(tmp_path, free_port):
    """Rows of both ranks are gathered (student with gradients, teacher and mask without); one rank's rows
    are mostly masked out: loss and gradients still equal the single-process loss on the global batch."""
    import torch.multiprocessing as mp

    a, p, ta, tp = _unit(8, 16, seed=20), _unit(8, 16, seed=21), _unit(8, 6, seed=22), _unit(8, 6, seed=23)
    mask = torch.tensor([True, True, False, True, False, False, True, False])
    scale = torch.tensor(math.log(12.0))
    torch.save({"a": a, "p": p, "ta": ta, "tp": tp, "mask": mask, "scale": scale}, tmp_path / "t.pt")
    result = str(tmp_path / "r")
    mp.spawn(_distill_ddp_worker, args=(2, free_port, str(tmp_path / "t.pt"), result), nprocs=2, join=True)
    r0, r1 = (torch.load(f"{result}.{r}", weights_only=True) for r in (0, 1))
    ga, gp = a.clone().requires_grad_(), p.clone().requires_grad_()
    single = distill_loss(ga, gp, ta, tp, mask, scale, T)
    single.backward()
    for r in (r0, r1):
        assert r["loss"] == pytest.approx(float(single.detach()), rel=1e-5)
    torch.testing.assert_close(torch.cat([r0["a"], r1["a"]]), ga.grad)
    torch.testing.assert_close(torch.cat([r0["p"], r1["p"]]), gp.grad)


# ---- the teacher's table --------------------------------------------------------------------------
def test_table_rows_give_vectors_where_both_sides_have_one():
    table = TeacherTable("hash", ("Germany", "Deutschland", "Japan"), _unit(3, 4, seed=30))
    pairs = [TrainPair("Deutschland", text="Germany"), TrainPair("Japon", text="Japan"),
             TrainPair("ein Bild", image="/x.png")]
    ta, tp, mask = table.rows(pairs)
    assert mask.tolist() == [True, False, False]
    torch.testing.assert_close(ta[0], table.vectors[0])
    torch.testing.assert_close(tp[0], table.vectors[1])
    assert torch.equal(ta[1:], torch.zeros(2, 4))
    assert teacher_texts(pairs) == ["Deutschland", "Germany", "Japan", "Japon", "ein Bild"]


def test_teacher_vectors_are_written_once_and_reused_on_resume(tmp_path, hash_teacher):
    path = tmp_path / "teacher" / "hash.safetensors"
    built = build_teacher_table("hash", ["rot", "red", "blue"], path)
    assert hash_teacher.embedded == ["rot", "red", "blue"] and path.is_file()
    loaded = load_teacher_table(path)
    assert loaded.texts == ("rot", "red", "blue") and loaded.teacher == "hash"
    torch.testing.assert_close(loaded.vectors, built.vectors)
    assert float(loaded.vectors[0] @ loaded.vectors[1]) > 0.8  # the stand-in's translation pair
    build_teacher_table("hash", ["red", "rot"], path, resume=True)  # covered: nothing embedded again
    assert len(hash_teacher.embedded) == 3
    build_teacher_table("hash", ["red", "green"], path, resume=True)  # 'green' is new: embedded again
    assert hash_teacher.embedded[3:] == ["red", "green"]
    assert [p.name for p in path.parent.iterdir()] == ["hash.safetensors"]  # no temp file left


def test_a_failing_teacher_leaves_no_file(tmp_path, monkeypatch):
    class Broken:
        name = "broken"

        def embed(self, texts):
            return np.full((len(texts) - 1, 4), 1.0, dtype=np.float32)  # one row short

    monkeypatch.setitem(teacher_module.TEACHERS, "broken", Broken)
    with pytest.raises(TeacherError, match=r"teacher 'broken' gave \(1, 4\) for 2 texts"):
        build_teacher_table("broken", ["a", "b"], tmp_path / "t" / "broken.safetensors")
    assert not (tmp_path / "t").exists() or list((tmp_path / "t").iterdir()) == []


def test_a_damaged_teacher_file_is_named(tmp_path):
    bad = tmp_path / "e5.safetensors"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(TeacherError, match=r"teacher vectors .*e5.safetensors: not readable"):
        load_teacher_table(bad)


@pytest.mark.parametrize("change,match", [
    (dict(teacher=None, distill=True), r"sources \['txt'\] have distill = true but no teacher is set"),
    (dict(teacher="nope", distill=True), r"unknown teacher 'nope'; known: \[.*'e5'"),
    (dict(teacher="e5", distill=False), r"teacher = 'e5' but no source has distill = true"),
    (dict(teacher="e5", distill=True, distill_temperature=0.0), r"distill_weight and distill_temperature must be > 0"),
    (dict(teacher="e5", distill=True, loss="siglip"), r"distillation needs loss = 'clip'"),
])
def test_bad_distillation_settings_are_named(change, match):
    change = dict(change)
    source = {"name": "txt", "path": "data/build/parallel/train.jsonl", "distill": change.pop("distill")}
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({"sources": [source], **change}, where="recipe.toml")


# ---- training -----------------------------------------------------------------------------------
def _distill_cfg(dataset: Path, out: Path, **kw) -> TrainConfig:
    """The tiny run with LoRA (so the text side trains and the teacher's term has something to move)."""
    kw.setdefault("lora_r", 4)
    cfg = _cfg(dataset, out, teacher="hash", distill_temperature=T, **kw)
    cfg.sources[1].distill = True  # the en-de word pairs; the image source is not distilled
    return cfg


def test_training_with_a_teacher_logs_its_term_and_resumes_without_re_embedding(dataset, tmp_path, hash_teacher):
    cfg = _distill_cfg(dataset, tmp_path / "run", steps=4, checkpoint_every=2)
    Trainer(cfg, progress=False).run(stop_after=2)
    assert sorted(hash_teacher.embedded) == sorted(set(GERMAN) | set(GERMAN.values()))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    terms = [r["distill"] for r in log if "loss" in r]  # 0 at a step with fewer than 2 distilled pairs
    assert len(terms) == 2 and min(terms) >= 0 and max(terms) > 0
    embedded = len(hash_teacher.embedded)
    resumed = Trainer(cfg, resume=True, progress=False)
    assert resumed.step == 2 and len(hash_teacher.embedded) == embedded  # the run folder's vectors are reused
    resumed.run()
    assert resumed.step == 4


def test_the_teacher_term_changes_the_gradient_and_grad_cache_keeps_it(dataset, tmp_path, hash_teacher):
    plain = Trainer(_cfg(dataset, tmp_path / "a", lora_r=4), progress=False)
    taught = Trainer(_distill_cfg(dataset, tmp_path / "b"), progress=False)
    batch = taught.sampler.batch(0, 8)
    assert taught.teacher.rows(batch)[2].sum() >= 2  # the batch has distilled pairs
    grads = []
    for tr, chunk in ((plain, None), (taught, None), (taught, 3)):
        tr.optimizer.zero_grad(set_to_none=True)
        if chunk:
            grad_cache_step(tr.embedder, batch, tr._loss_for(batch), chunk)
        else:
            plain_step(tr.embedder, batch, tr._loss_for(batch))
        grads.append(torch.cat([p.grad.flatten() for p in tr.params if p.grad is not None]).clone())
    assert not torch.allclose(grads[0], grads[1])
    torch.testing.assert_close(grads[1], grads[2], rtol=1e-4, atol=1e-6)


def test_a_distilled_source_with_image_anchors_stops_before_the_model_load(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path / "run", teacher="e5")
    cfg.sources[0].distill = True  # the colour swatches: image anchors
    with pytest.raises(ValueError, match=r"source 'img': distill = true needs text-text pairs .* 16 of its 16 pairs"):
        Trainer(cfg, progress=False)


def _ddp_distill_worker(rank: int, world: int, port: int, dataset: str, out: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    teacher_module.TEACHERS["hash"] = HashTeacher
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    tr = Trainer(_distill_cfg(Path(dataset), Path(out)), progress=False)
    tr.optimizer.zero_grad(set_to_none=True)
    micro = tr._local_batches(0)[0]
    loss = plain_step(tr.embedder, micro, tr._loss_for(micro))
    for p in tr.params:
        torch.distributed.all_reduce(p.grad)
        p.grad /= world
    if rank == 0:
        torch.save({"loss": loss, "grads": [p.grad for p in tr.params]}, result)
    del tr
    gc.collect()
    shutdown_distributed()


def test_two_rank_training_with_a_teacher_equals_single_process(dataset, tmp_path, free_port, hash_teacher):
    """Rank 0 embeds the teacher's texts, rank 1 reads its file; contrastive + teacher loss and gradients of
    a 2-rank step equal one process on the same global batch."""
    import torch.multiprocessing as mp

    result = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_distill_worker, args=(2, free_port, str(dataset), str(tmp_path / "ddp"), result), nprocs=2, join=True)
    ddp = torch.load(result, weights_only=True)
    single = Trainer(_distill_cfg(dataset, tmp_path / "single"), progress=False)
    single.optimizer.zero_grad(set_to_none=True)
    batch = single.sampler.batch(0, 8)
    loss = plain_step(single.embedder, batch, single._loss_for(batch))
    assert ddp["loss"] == pytest.approx(loss, rel=1e-5)
    for g1, g2 in zip(ddp["grads"], [p.grad for p in single.params]):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_train_cli_pairs_with_a_teacher(tmp_path, hash_teacher):
    from typer.testing import CliRunner

    from mmembed.cli import app

    rows = [{"query": en, "positive": de} for en, de in GERMAN.items()]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "pairs.jsonl"), "--base", "tiny-random",
                                   "--out", str(out), "--steps", "2", "--batch-size", "4", "--teacher", "hash"])
    assert res.exit_code == 0, res.output
    assert (out / "teacher" / "hash.safetensors").is_file()
    assert all("distill" in json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line)
    res = CliRunner().invoke(app, ["train", "--pairs", str(tmp_path / "pairs.jsonl"), "--base", "tiny-random",
                                   "--out", str(tmp_path / "r2"), "--teacher", "nope"])
    assert res.exit_code == 1 and "unknown teacher 'nope'" in res.output


@pytest.mark.integration
def test_the_e5_teacher_puts_translations_together():
    from mmembed.training.teacher import E5Teacher

    v = E5Teacher().embed(["Germany", "Deutschland", "जर्मनी", "Japan", "Kenya"])
    assert v.shape == (5, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    sims = v @ v.T
    assert sims[0, 1] > max(sims[0, 3], sims[0, 4]) and sims[0, 2] > max(sims[0, 3], sims[0, 4])
