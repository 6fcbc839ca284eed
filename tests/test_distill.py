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
from mmembed.training.losses import distill_loss, embedding_distill_loss
from mmembed.training.pairs import TrainPair
from mmembed.training.step import grad_cache_step, plain_step
from mmembed.training.teacher import (TeacherError, TeacherMap, TeacherTable, build_teacher_table, fit_teacher_map,
                                      load_teacher_map, load_teacher_table, save_teacher_map, teacher_texts)
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


def test_fit_teacher_map_recovers_an_affine_relation():
    student = torch.randn(200, 10, generator=torch.Generator().manual_seed(20)) + 3.0  # off-centre, like real embeddings
    w = torch.randn(10, 6, generator=torch.Generator().manual_seed(21))
    teacher = student @ w + 5.0
    fitted = fit_teacher_map(student, teacher, ridge=1e-9)
    torch.testing.assert_close(fitted.weight, w, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fitted.student_mean, student.mean(0))
    torch.testing.assert_close(fitted.teacher_mean, teacher.mean(0))
    assert float(fitted.cosine(student, teacher).mean()) == pytest.approx(1.0, abs=1e-5)
    shrunk = fit_teacher_map(student, teacher, ridge=10.0)  # ridge pulls the map toward 0
    assert shrunk.weight.norm() < 0.5 * w.norm()
    with pytest.raises(TeacherError, match=r"need \(n, D\) and \(n, Dt\) rows of the same n >= 2 texts, got \(200, 10\) and \(199, 6\)"):
        fit_teacher_map(student, teacher[:199])


def test_the_teacher_map_file_round_trips_and_names_a_wrong_teacher(tmp_path):
    m = fit_teacher_map(torch.randn(20, 8), torch.randn(20, 4))
    save_teacher_map(m, "hash", tmp_path / "hash-map.safetensors")
    loaded = load_teacher_map(tmp_path / "hash-map.safetensors", "hash")
    for got, want in zip((loaded.weight, loaded.student_mean, loaded.teacher_mean), (m.weight, m.student_mean, m.teacher_mean)):
        torch.testing.assert_close(got, want)
    with pytest.raises(TeacherError, match=r"written for teacher 'hash' with weight shape \(8, 4\) .* this run distills from 'e5'"):
        load_teacher_map(tmp_path / "hash-map.safetensors", "e5")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(TeacherError, match=r"teacher map .*bad.safetensors: not readable"):
        load_teacher_map(tmp_path / "bad.safetensors", "hash")


def test_embedding_distill_loss_is_one_minus_the_mean_centered_cosine_of_the_distilled_texts():
    a, p = _unit(5, 8, seed=22), _unit(5, 8, seed=23)
    m = TeacherMap(torch.randn(8, 4, generator=torch.Generator().manual_seed(24)), _unit(8, seed=28), _unit(4, seed=29))
    mask = torch.tensor([True, True, False, True, True])
    # a teacher exactly where the map puts the student: nothing to learn
    exact = [(x - m.student_mean) @ m.weight + m.teacher_mean for x in (a, p)]
    assert float(embedding_distill_loss(a, p, *exact, mask, m)) == pytest.approx(0.0, abs=1e-6)
    ta, tp = _unit(5, 4, seed=25), _unit(5, 4, seed=26)
    keep = mask.nonzero().squeeze(1)
    cos = F.cosine_similarity((torch.cat([a[keep], p[keep]]) - m.student_mean) @ m.weight,
                              torch.cat([ta[keep], tp[keep]]) - m.teacher_mean, dim=-1)
    torch.testing.assert_close(embedding_distill_loss(a, p, ta, tp, mask, m), (1 - cos).mean())
    a2 = a.clone()
    a2[2] = _unit(8, seed=27)  # a row outside the mask changes nothing
    torch.testing.assert_close(embedding_distill_loss(a2, p, ta, tp, mask, m), (1 - cos).mean())
    none = embedding_distill_loss(a.requires_grad_(), p, ta, tp, torch.zeros(5, dtype=torch.bool), m)
    none.backward()
    assert float(none.detach()) == 0.0 and a.grad is not None


def _distill_ddp_worker(rank: int, world: int, port: int, tensors: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    t = torch.load(tensors, weights_only=True)
    half = len(t["a"]) // world
    sl = slice(rank * half, (rank + 1) * half)
    a, p = t["a"][sl].clone().requires_grad_(), t["p"][sl].clone().requires_grad_()
    loss = distill_loss(a, p, t["ta"][sl], t["tp"][sl], t["mask"][sl], t["scale"], T)
    loss.backward()  # every rank's loss is the global loss: all_gather's backward sums `world` copies
    torch.save({"loss": float(loss.detach()), "a": a.grad / world, "p": p.grad / world}, f"{result}.{rank}")
    del loss, a, p  # drop the autograd graph (it holds gloo work objects) before the group goes away
    gc.collect()
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
    (dict(teacher="e5", distill=True, distill_temperature=0.0), r"distill_temperature > 0; got 1.0, 0.0 and 0.0"),
    (dict(teacher="e5", distill=True, distill_weight=0.0), r"distill_weight and distill_embedding_weight must be >= 0 and not both 0"),
    (dict(teacher="e5", distill=True, distill_embedding_weight=-1.0), r"must be >= 0 and not both 0"),
    (dict(teacher=None, distill=False, distill_embedding_weight=1.0), r"distill_embedding_weight = 1.0 needs a teacher"),
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


def _grads_plain_plain_cached(first: Trainer, second: Trainer, batch) -> list[torch.Tensor]:
    """Flat gradients of one step on `batch`: `first` plain, `second` plain, `second` with grad cache (chunk 3)."""
    grads = []
    for tr, chunk in ((first, None), (second, None), (second, 3)):
        tr.optimizer.zero_grad(set_to_none=True)
        if chunk:
            grad_cache_step(tr.embedder, batch, tr._loss_for(batch), chunk)
        else:
            plain_step(tr.embedder, batch, tr._loss_for(batch))
        grads.append(torch.cat([p.grad.flatten() for p in tr.params if p.grad is not None]).clone())
    return grads


def test_the_teacher_term_changes_the_gradient_and_grad_cache_keeps_it(dataset, tmp_path, hash_teacher):
    plain = Trainer(_cfg(dataset, tmp_path / "a", lora_r=4), progress=False)
    taught = Trainer(_distill_cfg(dataset, tmp_path / "b"), progress=False)
    batch = taught.sampler.batch(0, 8)
    assert taught.teacher.rows(batch)[2].sum() >= 2  # the batch has distilled pairs
    grads = _grads_plain_plain_cached(plain, taught, batch)
    assert not torch.allclose(grads[0], grads[1])
    torch.testing.assert_close(grads[1], grads[2], rtol=1e-4, atol=1e-6)


def test_the_embedding_term_fits_its_map_once_logs_and_resumes_with_the_same_map(dataset, tmp_path, hash_teacher,
                                                                                   monkeypatch):
    fits = []
    real_fit = teacher_module.fit_teacher_map
    monkeypatch.setattr("mmembed.training.trainer.fit_teacher_map", lambda s, t: fits.append(len(s)) or real_fit(s, t))
    cfg = _distill_cfg(dataset, tmp_path / "run", steps=4, checkpoint_every=2, distill_weight=0.0,
                       distill_embedding_weight=1.0)
    first = Trainer(cfg, progress=False)
    texts = sorted(set(GERMAN) | set(GERMAN.values()))
    assert fits == [len(texts)] and first.teacher_map.weight.shape == (first.model.dim, 12)
    first.run(stop_after=2)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert all("distill" not in r and 0 <= r["distill_embedding"] <= 2 for r in steps)  # KL term off, map term on
    resumed = Trainer(cfg, resume=True, progress=False)
    assert fits == [len(texts)]  # read from the run folder, not refitted on the checkpoint
    torch.testing.assert_close(resumed.teacher_map.weight, first.teacher_map.weight)
    (tmp_path / "run" / "teacher" / "hash-map.safetensors").unlink()
    with pytest.raises(TeacherError, match=r"resuming from .*step_000002: the run's teacher map .*hash-map.safetensors is missing"):
        Trainer(cfg, resume=True, progress=False)


def test_the_embedding_term_moves_the_gradient_and_grad_cache_keeps_it(dataset, tmp_path, hash_teacher):
    kl_only = Trainer(_distill_cfg(dataset, tmp_path / "a"), progress=False)
    both = Trainer(_distill_cfg(dataset, tmp_path / "b", distill_embedding_weight=2.0), progress=False)
    batch = both.sampler.batch(0, 8)
    grads = _grads_plain_plain_cached(kl_only, both, batch)
    assert not torch.allclose(grads[0], grads[1])
    # the map is fitted on the tiny random model's nearly identical embeddings, so it amplifies their last
    # bits: compare at a tolerance relative to the gradient's size (plain vs chunked recomputation)
    torch.testing.assert_close(grads[1], grads[2], rtol=1e-3, atol=1e-4 * float(grads[1].abs().max()))


def test_a_distilled_source_with_image_anchors_stops_before_the_model_load(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path / "run", teacher="e5")
    cfg.sources[0].distill = True  # the colour swatches: image anchors
    with pytest.raises(ValueError, match=r"source 'img': distill = true needs text-text pairs .* 16 of its 16 pairs"):
        Trainer(cfg, progress=False)


def _ddp_distill_worker(rank: int, world: int, port: int, dataset: str, out: str, result: str, emb: float) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    teacher_module.TEACHERS["hash"] = HashTeacher
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    tr = Trainer(_distill_cfg(Path(dataset), Path(out), distill_embedding_weight=emb), progress=False)
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


@pytest.mark.parametrize("emb", [0.0, 1.0], ids=["kl", "kl+embedding"])
def test_two_rank_training_with_a_teacher_equals_single_process(dataset, tmp_path, free_port, hash_teacher, emb):
    """Rank 0 embeds the teacher's texts (and fits the map), rank 1 reads its files; contrastive + teacher
    loss and gradients of a 2-rank step equal one process on the same global batch."""
    import torch.multiprocessing as mp

    result = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_distill_worker, args=(2, free_port, str(dataset), str(tmp_path / "ddp"), result, emb), nprocs=2, join=True)
    ddp = torch.load(result, weights_only=True)
    single = Trainer(_distill_cfg(dataset, tmp_path / "single", distill_embedding_weight=emb), progress=False)
    single.optimizer.zero_grad(set_to_none=True)
    batch = single.sampler.batch(0, 8)
    loss = plain_step(single.embedder, batch, single._loss_for(batch))
    assert ddp["loss"] == pytest.approx(loss, rel=1e-5)
    for g1, g2 in zip(ddp["grads"], [p.grad for p in single.params]):
        # with the embedding term, the map fitted on the tiny model's nearly identical embeddings amplifies
        # their last bits (see the grad-cache test above): a tolerance relative to the gradient's size
        atol = 1e-4 * float(g2.abs().max()) if emb else 1e-6
        torch.testing.assert_close(g1, g2, rtol=1e-3 if emb else 1e-4, atol=atol)


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
