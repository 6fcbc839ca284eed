"""A run folder (`--out`): checkpoints/step_N, log.jsonl, final/. One folder holds ONE run.

- A fresh run (no `--resume`) into a folder that holds a run (checkpoints or final/) is refused before
  the model loads: its checkpoints would be pruned and mixed with the new run's, its log appended to.
- `--resume` continues only the run the checkpoint belongs to: the checkpoint records the config and a
  fingerprint of the training pairs, and a mismatch is refused, naming what differs.
- On resume, log.jsonl loses the records past the resumed step (they are trained again), so no step
  is logged twice; the log is rewritten atomically. A fresh run starts a new log.
- Checkpoints are folders written atomically (temp + rename); only the newest `keep` are kept.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..paths import temp_dir_beside, write_text_atomically
from ..serialization import CONFIG, WEIGHTS, save_model
from .config import TrainConfig
from .pairs import PairSource

STATE = "trainer_state.json"
LOG = "log.jsonl"
# settings a resumed run may change: where it is, what it reports and how often it saves (not what it trains)
RESUME_MAY_CHANGE = ("out", "on_error", "dev", "eval_every", "checkpoint_every", "keep_checkpoints", "embed_chunk")
GENERATED_CARD = "This folder holds only the trained parts (safetensors)"  # serialization.model_card's line
_STEP_DIR = re.compile(r"step_(\d+)")


class RunFolderError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """What makes a run this run: its config (as JSON) and, per source, its pair count and fingerprint."""

    config: dict[str, Any]
    data: dict[str, dict[str, Any]]


def checkpoints(out: Path) -> list[Path]:
    """The run's checkpoint folders, oldest step first (by number: step_1000000 sorts after step_999999)."""
    root = Path(out) / "checkpoints"
    found = [(int(m.group(1)), p) for p in root.glob("step_*") if p.is_dir() and (m := _STEP_DIR.fullmatch(p.name))] \
        if root.is_dir() else []
    return [p for _, p in sorted(found)]


def run_identity(cfg: TrainConfig, sources: Sequence[PairSource]) -> RunIdentity:
    data = {}
    for src in sources:
        h = hashlib.sha256()
        for concept in src.concepts:
            for lang in sorted(src.by_concept[concept]):
                for pair in src.by_concept[concept][lang]:
                    h.update(json.dumps(dataclasses.asdict(pair), sort_keys=True, default=str).encode("utf-8") + b"\n")
        data[src.name] = {"pairs": len(src), "sha256": h.hexdigest()[:16]}
    return RunIdentity(json.loads(json.dumps(cfg.to_dict(), default=str)), data)


def check_fresh(out: Path) -> None:
    """Refuse to start a new run in a folder that holds one (before the slow model load)."""
    if saved := checkpoints(out):
        state = _read_state(saved[-1])
        raise RunFolderError(f"{out} holds a run (step {state.get('step', '?')}); pass --resume to continue it, "
                             f"--overwrite to start over there, or a new --out")
    if (Path(out) / "final" / CONFIG).is_file():
        raise RunFolderError(f"{out} holds a finished run ({Path(out) / 'final'}) and no checkpoint to resume; "
                             f"pass --overwrite to start over there, or a new --out")


def _not_a_run(out: Path) -> list[str]:
    """What in `out`'s checkpoints/, final/ and log.jsonl is not an mmembed run's own (so --overwrite must not delete
    it): entries of checkpoints/ that are not step_N checkpoints, files of final/ a saved model does not hold, log
    lines that are not step records."""
    found = []
    root = out / "checkpoints"
    if root.is_dir():
        found += [f"checkpoints/{p.name}" for p in root.iterdir()
                  if not (_STEP_DIR.fullmatch(p.name) and (p / STATE).is_file())]
    final = out / "final"
    if final.is_dir():
        found += [f"final/{p.name}" for p in final.iterdir() if p.name not in (WEIGHTS, CONFIG, "README.md")]
        if not (final / CONFIG).is_file():
            found.append(f"final/ without {CONFIG}")
    if (out / LOG).is_file():
        lines = (out / LOG).read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                ok = isinstance(record, dict) and "step" in record
            except ValueError:
                ok = not line.strip() or number == len(lines)  # blank, or the last line cut by a kill
            if not ok:
                found.append(f"{LOG} line {number}")
                break
    return found


def clear_run(out: Path) -> list[str]:
    """`--overwrite`: remove the run a folder holds (checkpoints, final model, log) and nothing else; the names
    removed. Anything there that is not an mmembed run's own is refused, and then nothing is deleted."""
    out = Path(out)
    if foreign := _not_a_run(out):
        raise RunFolderError(f"--overwrite: {out} holds what is not an mmembed run's ({', '.join(foreign[:5])}); "
                             "nothing was deleted; pass a new --out")
    removed = []
    for name in ("checkpoints", "final"):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
            removed.append(name)
    if (out / LOG).is_file():
        (out / LOG).unlink()
        removed.append(LOG)
    return removed


def check_resumable(checkpoint: Path, identity: RunIdentity) -> int:
    """The checkpoint's step, if it is a checkpoint of the run `identity` describes; else RunFolderError."""
    state = _read_state(checkpoint)
    if not isinstance(state.get("step"), int):
        raise RunFolderError(f"cannot resume from {checkpoint}: its {STATE} records no step")
    differ = _diff(state.get("config", {}), identity.config)
    for name, now in identity.data.items():
        then = state.get("data", {}).get(name)  # older checkpoints record no data: their config is checked
        if then is not None and then != now:
            differ.append(f"source {name!r}: {then['pairs']} pairs in the checkpoint's run, {now['pairs']} now"
                          + (" (other pairs)" if then["pairs"] == now["pairs"] else ""))
    if differ:
        listed = "; ".join(differ[:8]) + (f"; and {len(differ) - 8} more" if len(differ) > 8 else "")
        raise RunFolderError(f"cannot resume {checkpoint}: it is a checkpoint of another run ({listed}); resume with "
                             f"the command that started it, or start this run in a new --out")
    return int(state["step"])


def _read_state(checkpoint: Path) -> dict:
    try:
        return json.loads((checkpoint / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{checkpoint / STATE}: unreadable ({err})") from None


_MISSING = object()


def _diff(then: Any, now: Any, key: str = "") -> list[str]:
    if isinstance(then, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(then) | set(now)):
            if (not key and k in RESUME_MAY_CHANGE) or k not in then:  # a field newer than the checkpoint
                continue
            out += _diff(then[k], now.get(k, _MISSING), f"{key}.{k}" if key else k)
        return out
    if isinstance(then, list) and isinstance(now, list) and len(then) == len(now):
        return [d for i, (a, b) in enumerate(zip(then, now)) for d in _diff(a, b, f"{key}[{i}]")]
    if then != now:
        shown = "not set" if now is _MISSING else repr(now)[:80]
        return [f"{key} {repr(then)[:80]} in the checkpoint, {shown} now"]
    return []


def restart_log(out: Path, upto_step: Optional[int]) -> None:
    """Keep the log records of steps <= upto_step (None: none, a fresh run) and drop the rest, atomically."""
    log = Path(out) / LOG
    if not log.is_file():
        return
    if upto_step is None:
        log.unlink()
        return
    kept = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill mid-write
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= upto_step:
            kept.append(line + "\n")
    write_text_atomically(log, "".join(kept))


def append_log(out: Path, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_checkpoint(out: Path, model, optimizer: torch.optim.Optimizer, step: int, identity: RunIdentity,
                     keep: int) -> Path:
    """RUN/checkpoints/step_N (atomically), recording the run's identity; then prune to the newest `keep`."""
    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = temp_dir_beside(final)
    try:
        save_model(model, tmp / "model", lossless=True)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        state = {"step": step, "config": identity.config, "data": identity.data}
        (tmp / STATE).write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if keep > 0:
        for old in checkpoints(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def check_export_target(folder: Path) -> None:
    """Before training: the model can be saved to `folder` (new, empty or an earlier saved model)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"cannot export to {folder}: it is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / CONFIG).is_file():
        raise RunFolderError(f"cannot export to {folder}: it is a non-empty folder that is not a saved mmembed model "
                             f"(no {CONFIG}), and exporting replaces the whole folder; pass a new or empty folder")


def training_card(folder: Path, cfg: TrainConfig, step: int, identity: RunIdentity) -> str:
    """The model card's training section; "" where `folder` holds a hand-written card, which is kept."""
    readme = Path(folder) / "README.md"
    if readme.is_file() and GENERATED_CARD not in readme.read_text(encoding="utf-8", errors="replace"):
        return ""
    sources = ", ".join(f"{s.name} ({s.path}, {identity.data.get(s.name, {}).get('pairs', '?')} pairs)"
                        for s in cfg.sources)
    return (f"\n## Training\n\n`mmembed train` from {cfg.start()}: {step} of {cfg.steps} steps, batch {cfg.batch_size}, "
            f"lr {cfg.lr}, loss {cfg.loss}, seed {cfg.seed}; sources: {sources}.\n")


__all__ = ["RunFolderError", "RunIdentity", "append_log", "check_export_target", "check_fresh", "clear_run",
           "check_resumable", "checkpoints", "restart_log", "run_identity", "training_card", "write_checkpoint"]
