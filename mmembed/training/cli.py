"""`mmembed train`: from a TOML recipe, or straight from a user's own pairs file."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer


def _print_error(console, err: BaseException) -> None:
    """One red `error:` line; the message is escaped (a path or value with [brackets] prints as it is) and not
    wrapped, so it stays greppable in logs."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)


def train_cmd(
    config: Annotated[Optional[Path], typer.Argument(help="TOML training recipe (see configs/).")] = None,
    pairs: Annotated[Optional[Path], typer.Option(help="Your own pairs: .jsonl / .csv / folder of images (instead of CONFIG).")] = None,
    base: Annotated[Optional[str], typer.Option(help="Model to start from (name, adapter or saved folder); default: the model `mmembed.load()` gives.")] = None,
    freeze_lora: Annotated[bool, typer.Option("--freeze-lora", help="Keep the base's LoRA fixed: only projector, head and temperature train, on cached text states (several times faster on a CPU).")] = False,
    freeze_text_side: Annotated[bool, typer.Option("--freeze-text-side", help="--freeze-lora, and pooler and head fixed too: only the image projector trains, so every text embedding stays exactly the base's (your image-text pairs move the images only).")] = False,
    label_prior_in_loss: Annotated[bool, typer.Option("--label-prior-in-loss", help="With --freeze-lora and a base that has a label prior (the default model does): train with the prior applied to your images, as encode_image applies it.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Run folder (checkpoints, log.jsonl, final model).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Override the number of steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override pairs per step.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Override the learning rate.")] = None,
    loss: Annotated[Optional[str], typer.Option(help="Override the loss: clip (symmetric InfoNCE) or siglip (sigmoid).")] = None,
    grad_cache_chunk: Annotated[Optional[int], typer.Option(help="Cached-gradient step (GradCache) in chunks of this many pairs: a --batch-size far larger than fits in memory.")] = None,
    on_error: Annotated[str, typer.Option(help="Bad rows in --pairs: skip (report and skip) or reject (stop).")] = "skip",
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint in the run folder.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start over in a run folder that holds a run: its checkpoints, final/ and log.jsonl are deleted first.")] = False,
    export: Annotated[Optional[Path], typer.Option(help="Also save the final model here (e.g. adapters/NAME).")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="With --pairs of texts: also distill this text teacher's in-batch similarities (e5 = multilingual-e5-small).")] = None,
) -> None:
    """Contrastive training (InfoNCE / SigLIP, in-batch + hard negatives, Matryoshka, GradCache)."""
    from rich.console import Console
    from rich.markup import escape

    from ..serialization import CheckpointError
    from .config import SourceSpec, TrainConfig
    from .pairs import PairsError
    from .run_folder import RunFolderError, check_export_target
    from .trainer import Trainer, init_distributed_from_env, shutdown_distributed

    console = Console(stderr=True)
    if (config is None) == (pairs is None):
        console.print("[red]error:[/red] give either CONFIG (a TOML recipe) or --pairs FILE")
        raise typer.Exit(2)
    try:
        if config is not None:
            cfg = TrainConfig.from_toml(config)
            if teacher is not None:
                raise ValueError("--teacher goes with --pairs; in a recipe set teacher = \"...\" and distill = true on its sources")
        else:
            from ..registry import default_model_name

            base = base or default_model_name()
            cfg = TrainConfig(base=base, out=str(out or "runs/custom"), name=f"{Path(base).name}-custom",
                              sources=[SourceSpec(name="pairs", path=str(pairs), custom=True, distill=teacher is not None)],
                              steps=100, batch_size=32, lr=5e-4, teacher=teacher)
        if out is not None:
            cfg.out = str(out)
        if on_error not in ("skip", "reject"):
            raise ValueError(f"--on-error must be skip or reject, got {on_error!r}")
        cfg.on_error = on_error  # type: ignore[assignment]
        overrides = (("base", base), ("freeze_lora", (freeze_lora or freeze_text_side) or None),
                     ("freeze_text_side", freeze_text_side or None), ("label_prior_in_loss", label_prior_in_loss or None),
                     ("steps", steps), ("batch_size", batch_size), ("lr", lr), ("loss", loss),
                     ("grad_cache_chunk", grad_cache_chunk))
        # replace() runs the config's own checks again on the overridden values (a bad --loss is named)
        cfg = dataclasses.replace(cfg, **{key: value for key, value in overrides if value is not None})
        for target in (Path(cfg.out) / "final", *([export] if export is not None else [])):
            check_export_target(target)  # before training, not after it
        if resume and overwrite:
            raise ValueError("--resume continues the run in --out and --overwrite deletes it: pass one of them")
        init_distributed_from_env()
        trainer = Trainer(cfg, resume=resume, overwrite=overwrite)
    except (ValueError, FileNotFoundError, KeyError, ImportError) as err:  # ImportError: a teacher package missing
        _print_error(console, err)
        raise typer.Exit(1) from None
    for problem in trainer.problems[:50]:
        console.print(f"[yellow]skipped[/yellow] {escape(str(problem))}", highlight=False, soft_wrap=True)
    if len(trainer.problems) > 50:
        console.print(f"[yellow]... and {len(trainer.problems) - 50} more skipped rows[/yellow]")
    try:
        result = trainer.run()
        if trainer.rank == 0:
            final = trainer.export(Path(cfg.out) / "final")
            console.print(f"trained {result['step']} steps in {result['wall_s']:.0f} s -> {final}")
            if export is not None:
                trainer.export(export)
                console.print(f"exported -> {export}")
    except (PairsError, RunFolderError, CheckpointError) as err:  # e.g. an export folder filled while training ran
        _print_error(console, err)
        raise typer.Exit(1) from None
    finally:
        shutdown_distributed()


def mine_negatives_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest of text-text pairs (e.g. data/build/parallel/train.jsonl).")],
    out: Annotated[Path, typer.Option(help="Manifest to write: the rows of --langs, each with a hard negative.")],
    langs: Annotated[str, typer.Option(help="Comma-separated caption languages to mine, e.g. de,fr,ar.")],
    model: Annotated[Optional[str], typer.Option(help="Model that scores the candidates (name, adapter or folder); default: the default model.")] = None,
    top_k: Annotated[int, typer.Option(help="Draw each negative from this many most-confusable wrong captions.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
) -> None:
    """Mine hard negatives: each pair's most confusable wrong caption in its language, under MODEL."""
    from rich.console import Console

    import mmembed

    from .mining import check_output, mine_hard_negatives

    console = Console(stderr=True)
    try:
        check_output(manifest, out)  # before the model loads: --out the input, or a folder, is refused at once
        report = mine_hard_negatives(mmembed.load(model), manifest, out, langs=[x.strip() for x in langs.split(",") if x.strip()],
                                     top_k=top_k, seed=seed, batch_size=batch_size)
    except (ValueError, OSError, KeyError) as err:  # MiningError, a model name that does not load, an unwritable --out
        _print_error(console, err)
        raise typer.Exit(1) from None
    for lang, rows in report.rows.items():
        console.print(f"{lang}: {rows} rows, {report.mined[lang]} with a negative, top-1 {100 * report.top1[lang]:.1f}%")
    console.print(f"wrote {sum(report.rows.values())} rows -> {report.out}")


def soup_cmd(
    out: Annotated[Path, typer.Argument(help="New folder for the averaged model (e.g. runs/soup).")],
    models: Annotated[list[str], typer.Argument(help="Two or more runs of one base: saved folders or adapter names.")],
) -> None:
    """Average the trained weights of runs that share a base (a model soup); the label prior follows the text side."""
    from rich.console import Console

    from .soup import average_models

    console = Console(stderr=True)
    try:
        report = average_models(models, out)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # SoupError, CheckpointError
        _print_error(console, err)
        raise typer.Exit(1) from None
    console.print(f"{report.out}: mean of {len(report.models)} models; {len(report.differ)} of {report.tensors} "
                  f"trained tensors differ between them"
                  + ("; the label prior was re-embedded with the soup's text side" if report.label_prior_refreshed else ""),
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("soup")(soup_cmd)
    app.command("mine-negatives")(mine_negatives_cmd)
