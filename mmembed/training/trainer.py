"""The training loop: sample -> embed -> contrastive loss -> step; checkpoints, resume, dev eval.

Checkpoints are folders written atomically (temp + rename): the trained parts (safetensors via
`save_model`), the optimizer state (torch.save, loaded with weights_only=True), the step and what run
they belong to (run_folder.py: one run folder holds one run; --resume continues only that run).
Batches are drawn from a generator seeded by (seed, step), so a run killed with -9 and resumed
reaches the same state as an uninterrupted run. Under torchrun every rank embeds its slice of the
global batch; open_clip's loss gathers features with gradients, and gradients are averaged.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Optional

import torch

from ..image_centering import fit_image_centering
from ..label_prior import refresh_label_embeddings
from ..serialization import load_model, round_to_storage, save_model
from . import run_folder
from .config import TrainConfig
from .devset import dev_metrics, load_dev_set
from .embedder import PairEmbedder
from .losses import LossConfig, contrastive_loss, distill_loss, embedding_distill_loss, rank_world
from .memory import release_freed_memory
from .pairs import MixtureSampler, group_pairs, pairs_from_manifest, partners_from_negatives
from .neighbours import build_neighbour_captions
from .readout import fit_feature_readout
from .setup import build_model, build_sources, check_batch_fits, set_trainable
from .step import grad_cache_step, plain_step
from .teacher import (TeacherError, TeacherMap, TeacherTable, build_teacher_table, fit_teacher_map, load_teacher_map,
                      load_teacher_table, save_teacher_map, teacher_texts)

logger = logging.getLogger(__name__)


def init_distributed_from_env() -> None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def shutdown_distributed() -> None:
    """Leave the process group cleanly: every rank waits at a barrier first, so no rank tears down
    gloo's connections while another still uses them (that kills the process with SIGABRT at exit)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


class Trainer:
    def __init__(self, cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.rank, self.world = rank_world()
        cfg.check_distill()
        if cfg.batch_size % (self.world * cfg.grad_accum):
            raise ValueError(f"batch_size {cfg.batch_size} must divide by world size x grad_accum ({self.world}x{cfg.grad_accum})")
        self.progress = progress and self.rank == 0
        saved = run_folder.checkpoints(self.out) if resume else []
        latest = saved[-1] if saved else None
        if latest is None and not overwrite:  # before the pairs are read and the model loads: a folder holding a run is refused
            run_folder.check_fresh(self.out)
        self.sources, self.problems = build_sources(cfg)
        check_batch_fits(cfg, self.sources, self.world, self.problems)
        if overwrite and self.rank == 0:  # --overwrite: the previous run goes once the inputs are known good
            run_folder.clear_run(self.out)
        self.identity = run_folder.run_identity(cfg, self.sources)
        resumed_step = run_folder.check_resumable(latest, self.identity) if latest else 0
        # dev sets are read now, on every rank (so all ranks stop together): a bad path, kind or
        # language stops the run before step 1; only rank 0 scores them
        self.dev_sets = [load_dev_set(d) for d in cfg.dev]
        self._centering_images: Optional[list[str]] = None  # training image paths, listed at the first centering fit
        self._readout_fitted_at: Optional[int] = None  # the step the read-out was last fitted at (export twice: once)
        self._memory_built_at: Optional[int] = None  # the same for the neighbour-caption memory
        self.step = 0
        if self.rank == 0:  # records past the resumed step are trained (and logged) again; a fresh run logs anew
            run_folder.restart_log(self.out, resumed_step if latest else None)
        torch.manual_seed(cfg.seed)
        if cfg.neighbour_captions is not None and not self._sources_have_pictures():
            raise ValueError(f"run {cfg.name!r}: a [neighbour_captions] table needs pictures (image files or feature "
                             f"rows) in the run's sources, and {', '.join(s.name for s in cfg.sources)} hold only texts")
        self.model = load_model(latest / "model") if latest else build_model(cfg)
        set_trainable(self.model, cfg)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        partners = self._mine_hard_negatives(resume)
        self.teacher = self._teacher_table(resume)
        self.teacher_map = self._teacher_map(resume, resumed_from=latest)
        self._distill_values: list[float] = []  # this step's distillation terms (logged beside the loss)
        self._embedding_distill_values: list[float] = []
        self.sampler = MixtureSampler(self.sources, cfg.seed, one_lang=[s.name for s in cfg.sources if s.one_lang_per_batch],
                                      partners=partners)
        self._train_mode()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("nothing to train: every parameter is frozen")
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if latest:
            state = torch.load(latest / "optimizer.pt", map_location="cpu", weights_only=True)
            self.optimizer.load_state_dict(state)
            self.step = resumed_step
        self.embedder = PairEmbedder(self.model, chunk=cfg.embed_chunk, label_prior_in_loss=cfg.label_prior_in_loss)
        dims = tuple(self.model.config.matryoshka_dims) if cfg.matryoshka else ()
        self.loss_cfg = LossConfig(kind=cfg.loss, matryoshka_dims=dims)
        from ..backbone import native_bf16

        self.autocast = cfg.autocast_bf16 == "on" or (cfg.autocast_bf16 == "auto" and native_bf16())

    def _mine_hard_negatives(self, resume: bool) -> dict[str, dict[tuple[str, str], list[str]]]:
        """Sources with hard_negatives_top_k: each pair gets a confusable wrong caption under the BASE
        model, mined once before step 1 into the run folder; a resumed run reuses that file. Returns the
        sampler's partners of the sources with hard_negatives_as = "batch" (their pairs lose the negative)."""
        from .mining import mine_hard_negatives

        partners = {}
        for i, spec in enumerate(self.cfg.sources):
            if spec.hard_negatives_top_k is None:
                continue
            mined = self.out / "mined" / f"{spec.name}.jsonl"
            if not (resume and mined.is_file()):
                failure: Optional[BaseException] = None
                if self.rank == 0:
                    langs = sorted({lang for groups in self.sources[i].by_concept.values() for lang in groups})
                    try:
                        report = mine_hard_negatives(self.model, spec.path, mined, langs=langs,
                                                     top_k=spec.hard_negatives_top_k, seed=self.cfg.seed,
                                                     progress=self.progress)
                    except Exception as err:  # every rank must hear why, not gloo's 'Connection closed by peer'
                        failure = err
                    else:
                        logger.info("source %r: mined %d hard negatives for %d pairs -> %s; base top-1 per language: %s",
                                    spec.name, sum(report.mined.values()), sum(report.rows.values()), mined,
                                    {k: round(v, 3) for k, v in report.top1.items()})
                self._share_rank0_failure(failure, f"mining hard negatives for source {spec.name!r} into {mined}")
            pairs = pairs_from_manifest(mined, kinds=spec.kinds, max_per_concept_lang=spec.max_per_concept_lang)
            if spec.hard_negatives_as == "batch":
                pairs, partners[spec.name] = partners_from_negatives(pairs)
            self.sources[i] = group_pairs(spec.name, pairs, spec.weight)
        return partners

    def _teacher_table(self, resume: bool) -> Optional[TeacherTable]:
        """The teacher's vectors of every text of the distilled sources: embedded once by rank 0 before
        step 1 into RUN/teacher/TEACHER.safetensors (reused on resume), then read by every rank."""
        if self.cfg.teacher is None:
            return None
        texts = teacher_texts([p for i, spec in enumerate(self.cfg.sources) if spec.distill
                               for langs in self.sources[i].by_concept.values() for pairs in langs.values() for p in pairs])
        path = self.out / "teacher" / f"{self.cfg.teacher}.safetensors"
        failure: Optional[BaseException] = None
        if self.rank == 0:
            try:
                table = build_teacher_table(self.cfg.teacher, texts, path, progress=self.progress, resume=resume)
                logger.info("teacher %r: %d texts -> %s", self.cfg.teacher, len(table.texts), path)
            except Exception as err:  # every rank must hear why
                failure = err
        self._share_rank0_failure(failure, f"embedding the texts of the distilled sources with teacher "
                                           f"{self.cfg.teacher!r} into {path}")
        return table if self.rank == 0 else load_teacher_table(path)

    def _teacher_map(self, resume: bool, resumed_from: Optional[Path]) -> Optional[TeacherMap]:
        """With distill_embedding_weight: the fixed map from this model's space to the teacher's,
        fitted by rank 0 on the BASE model's embeddings of the teacher's texts before step 1 and written to
        RUN/teacher/TEACHER-map.safetensors; a resumed run reads it (refitting on a checkpoint would give
        another map, and another run)."""
        if self.teacher is None or not self.cfg.distill_embedding_weight:
            return None
        path = self.out / "teacher" / f"{self.cfg.teacher}-map.safetensors"
        if resumed_from is not None and not path.is_file():
            raise TeacherError(f"resuming from {resumed_from}: the run's teacher map {path} is missing (it is written "
                               f"before step 1); start the run again without --resume")
        failure: Optional[BaseException] = None
        if self.rank == 0 and not (resume and path.is_file()):
            try:
                was_training = self.model.training
                self.model.eval()
                with torch.random.fork_rng(devices=[]):  # the run's random stream is the same with or without it
                    student = self.model.encode_text(list(self.teacher.texts), batch_size=64, as_tensor=True,
                                                     progress=self.progress)
                self.model.train(was_training)
                student = student.float().cpu()
                fitted = fit_teacher_map(student, self.teacher.vectors)
                save_teacher_map(fitted, self.cfg.teacher, path)
                logger.info("teacher map %r: fitted on %d texts (mean centered cosine %.3f) -> %s", self.cfg.teacher,
                            len(student), float(fitted.cosine(student, self.teacher.vectors).mean()), path)
            except Exception as err:  # every rank must hear why
                failure = err
        self._share_rank0_failure(failure, f"fitting the map to teacher {self.cfg.teacher!r} into {path}")
        return load_teacher_map(path, self.cfg.teacher).to(self.device)

    def _share_rank0_failure(self, failure: Optional[BaseException], what: str) -> None:
        """After work only rank 0 does: every rank learns whether it failed (one broadcast, which is also
        the barrier), and all of them raise with rank 0's cause instead of waiting for it or dying of a closed
        connection that hides it."""
        if self.world > 1:
            # rank 0's `what` travels too: only rank 0 knows which part of its work failed
            shared = [None if failure is None else (what, f"{type(failure).__name__}: {failure}")]
            torch.distributed.broadcast_object_list(shared, src=0)
            if shared[0] is not None and failure is None:
                raise RuntimeError("rank 0 failed while {}: {}".format(*shared[0]))
        if failure is not None:
            raise failure

    # ---- pieces ----------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        warm = max(1, self.cfg.warmup_steps)
        if step < warm:
            return self.cfg.lr * (step + 1) / warm
        frac = (step - warm) / max(1, self.cfg.steps - warm)
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))  # cosine to 0

    def _loss(self, a, p, n):
        return contrastive_loss(a, p, self.model.logit_scale, negatives=n, logit_bias=self.model.logit_bias, cfg=self.loss_cfg)

    def _loss_for(self, pairs):
        """The loss of a batch of `pairs`: contrastive, plus the teacher's term when the run has one (it needs
        the teacher vectors of exactly these rows, so the step gets a loss made for its batch)."""
        if self.teacher is None:
            return self._loss
        ta, tp, mask = (t.to(self.device) for t in self.teacher.rows(pairs))

        def loss(a, p, n):
            total = self._loss(a, p, n)
            if self.cfg.distill_weight:
                kd = distill_loss(a, p, ta, tp, mask, self.model.logit_scale, self.cfg.distill_temperature,
                                  self.cfg.distill_only_where_teacher_is_right)
                self._distill_values.append(float(kd.detach()))
                total = total + self.cfg.distill_weight * kd
            if self.teacher_map is not None:
                ekd = embedding_distill_loss(a, p, ta, tp, mask, self.teacher_map)
                self._embedding_distill_values.append(float(ekd.detach()))
                total = total + self.cfg.distill_embedding_weight * ekd
            return total

        return loss

    def _local_batches(self, step: int):
        """This rank's micro-batches of the global batch of `step`."""
        global_batch = self.sampler.batch(step, self.cfg.batch_size)
        per_rank = len(global_batch) // self.world
        mine = global_batch[self.rank * per_rank : (self.rank + 1) * per_rank]
        size = len(mine) // self.cfg.grad_accum
        return [mine[i * size : (i + 1) * size] for i in range(self.cfg.grad_accum)]

    def train_step(self, step: int) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(step)
        self.optimizer.zero_grad(set_to_none=True)
        self._distill_values, self._embedding_distill_values = [], []
        losses = []
        for micro in self._local_batches(step):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                if self.cfg.grad_cache_chunk:
                    losses.append(grad_cache_step(self.embedder, micro, self._loss_for(micro), self.cfg.grad_cache_chunk,
                                                  1 / self.cfg.grad_accum))
                else:
                    losses.append(plain_step(self.embedder, micro, self._loss_for(micro), 1 / self.cfg.grad_accum))
        if self.world > 1:
            for p in self.params:  # what DDP does: average gradients over ranks
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))
        release_freed_memory()  # batch-sized activations are freed now; without this RSS ratchets up (memory.py)
        return sum(losses) / len(losses)

    def save_checkpoint(self) -> Path:
        return run_folder.write_checkpoint(self.out, self.model, self.optimizer, self.step, self.identity,
                                           self.cfg.keep_checkpoints)

    def _log(self, record: dict) -> None:
        if self.rank == 0:
            run_folder.append_log(self.out, record)

    def _train_mode(self) -> None:
        """Train mode for what trains; the image tower ALWAYS stays in eval mode: its BatchNorm must use
        its ImageNet running statistics (batch statistics would differ between training and inference,
        and would overwrite the running ones even when the tower is frozen)."""
        self.model.train()
        if self.model.image_tower is not None:
            self.model.image_tower.eval()
        if not any(p.requires_grad for p in self.model.backbone.parameters()):
            self.model.backbone.eval()

    def evaluate(self) -> dict:
        self.model.eval()
        try:
            if any(d.anchor_kind == "image" for d in self.dev_sets):
                refresh_label_embeddings(self.model)  # image dev sets are scored as users will see them
                self._fit_feature_readout()
                self._build_neighbour_captions()
                self._fit_image_centering()
            return {d.spec.name: dev_metrics(self.model, d) for d in self.dev_sets}
        finally:
            self._train_mode()

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, stop_after: Optional[int] = None) -> dict:
        """Train to cfg.steps (or stop early after `stop_after` steps of this call, for tests)."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", disable=not self.progress)
        done_here = 0
        t0 = time.time()
        while self.step < cfg.steps and (stop_after is None or done_here < stop_after):
            t = time.time()
            loss = self.train_step(self.step)
            self.step += 1
            done_here += 1
            pairs_s = cfg.batch_size / max(time.time() - t, 1e-9)
            record = {"step": self.step, "loss": round(loss, 5), "lr": self._lr(self.step - 1),
                      "logit_scale": round(float(self.model.logit_scale.detach().exp()), 3), "pairs_per_s": round(pairs_s, 2),
                      "elapsed_s": round(time.time() - t0, 1)}
            if self._distill_values:  # the teacher's term, already inside `loss` (weighted)
                record["distill"] = round(sum(self._distill_values) / len(self._distill_values), 5)
            if self._embedding_distill_values:
                record["distill_embedding"] = round(sum(self._embedding_distill_values) / len(self._embedding_distill_values), 5)
            self._log(record)
            bar.set_postfix(loss=f"{loss:.3f}", pairs_s=f"{pairs_s:.1f}")
            bar.update(1)
            last = self.step == cfg.steps
            dev_now = bool(cfg.dev) and (self.step % cfg.eval_every == 0 or last)
            checkpoint_now = self.step % cfg.checkpoint_every == 0 or last
            if dev_now or checkpoint_now:
                self._rank0_step_end(dev_now, checkpoint_now)
        bar.close()
        return {"step": self.step, "wall_s": time.time() - t0}

    def _rank0_step_end(self, dev_now: bool, checkpoint_now: bool) -> None:
        """Dev evaluation and the checkpoint, which only rank 0 does. A failure there (a full disk, an
        unreadable dev image) stops every rank with rank 0's cause; the other ranks would otherwise die at
        the next all_reduce of a closed connection that hides it."""
        failure: Optional[BaseException] = None
        what = f"evaluating on the dev sets at step {self.step}"
        if self.rank == 0:
            try:
                if dev_now:
                    self._log({"step": self.step, "dev": self.evaluate()})
                if checkpoint_now:
                    what = f"writing the checkpoint of step {self.step} under {self.out / 'checkpoints'}"
                    self.save_checkpoint()
            except Exception as err:
                failure = err
        self._share_rank0_failure(failure, what)

    def export(self, folder: str | Path, card_extra: str = "") -> Path:
        """Save the trained model (trained parts only) as a loadable folder, e.g. adapters/NAME. Its model card is
        written anew with this run's training section, unless the folder holds a hand-written card (kept)."""
        run_folder.check_export_target(Path(folder))
        self.model.eval()
        # first: the label table, read-out and memory below come from the weights as stored; a memory built at the
        # last dev scoring came from the weights before rounding (a second export finds nothing left to round)
        if round_to_storage(self.model)[1]:
            self._memory_built_at = None
        refresh_label_embeddings(self.model)
        self._fit_feature_readout()
        self._build_neighbour_captions()
        self._fit_image_centering()
        card = run_folder.training_card(Path(folder), self.cfg, self.step, self.identity)
        return save_model(self.model, folder, card_extra=card + card_extra if card else card_extra)

    def _fit_feature_readout(self) -> None:
        """Fit the feature read-out on this run's pictures when the recipe has a [feature_readout] table. Without
        one, a base's read-out is kept as it is: a fine-tune on a few hundred pairs would fit it to those."""
        if self.model.feature_readout is None or self.cfg.feature_readout is None or self._readout_fitted_at == self.step:
            return
        if not self._sources_have_pictures():
            logger.warning("feature read-out: this run's sources hold no pictures, so the base's read-out is kept")
            return
        report = fit_feature_readout(self.model, self.sources, seed=self.cfg.seed, progress=self.progress)
        self._readout_fitted_at = self.step  # nothing it depends on changes until the next step
        self._log({"step": self.step, "feature_readout": dataclasses.asdict(report)})

    def _sources_have_pictures(self) -> bool:
        return any(p.image is not None or p.features is not None for src in self.sources
                   for langs in src.by_concept.values() for pairs in langs.values() for p in pairs)

    def _build_neighbour_captions(self) -> None:
        """Build the neighbour-caption memory from this run's pictures when the recipe has a [neighbour_captions]
        table (after the read-out: the memory's values are text embeddings, which neither changes)."""
        if self.model.neighbour_captions is None or self.cfg.neighbour_captions is None or self._memory_built_at == self.step:
            return
        report = build_neighbour_captions(self.model, self.sources, seed=self.cfg.seed, progress=self.progress)
        self._memory_built_at = self.step
        self._log({"step": self.step, "neighbour_captions": dataclasses.asdict(report)})

    def _fit_image_centering(self) -> None:
        """Refit the centering mean on this run's training images (it follows the trained image side)."""
        if self.model.image_centering is None:
            return
        if self._centering_images is None:  # the sources do not change after __init__: list them once
            self._centering_images = sorted({p.image for src in self.sources for langs in src.by_concept.values()
                                             for pairs in langs.values() for p in pairs if p.image is not None})
        images = self._centering_images
        if len(images) < 2:  # text-only fine-tuning of a centered base: its mean stays as it was
            logger.warning("image centering: this run's sources hold %d image(s), so the base's mean is kept", len(images))
            return
        fit_image_centering(self.model, [Path(p) for p in images], seed=self.cfg.seed)
