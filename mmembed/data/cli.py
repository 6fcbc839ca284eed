"""`mmembed data ...`: build and list the datasets (mounted by the root CLI as `data`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

data_app = typer.Typer(
    help="Build datasets (JSONL pair manifests, images, card.json) from packaged sources.",
    no_args_is_help=True,
)


def parse_option(text: str) -> tuple[str, Any]:
    """'skin_tones=true' -> ('skin_tones', True); values are JSON, else plain strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise typer.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--set")
    lowered = raw.strip().lower()
    if lowered in ("none", "null"):
        return key.strip(), None
    try:
        return key.strip(), json.loads(lowered if lowered in ("true", "false") else raw)
    except json.JSONDecodeError:
        return key.strip(), raw


@data_app.command("list")
def list_datasets() -> None:
    """Print the datasets that can be built."""
    from mmembed.data.builders import DATASETS

    width = max(map(len, DATASETS))
    for name, spec in DATASETS.items():
        typer.echo(f"{name:<{width}} {spec.description}")


@data_app.command("build")
def build(
    name: str = typer.Argument(..., help="dataset name (see `list`)"),
    out: Path = typer.Option(..., "--out", help="dataset folder to create; an existing one must be empty or a previous build, which is "
                                          "replaced atomically (any other folder or a file is refused)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="at most N >= 1 concepts (stable choice)"),
    langs: Optional[str] = typer.Option(None, "--langs", help="comma-separated CLDR language codes, case-sensitive: en,de,zh_Hant"),
    options: List[str] = typer.Option(
        [], "--set", help="builder option KEY=VALUE, e.g. skin_tones=true, max_per_category=none"
    ),
) -> None:
    """Build dataset NAME into --out and print its counts."""
    import time

    from mmembed.data.builders import MissingSourceError, build_dataset
    from mmembed.data.builders.output import CARD_NAME

    extra = dict(parse_option(o) for o in options)
    start = time.perf_counter()
    try:
        path = build_dataset(name, out, limit=limit, langs=langs, **extra)
    except MissingSourceError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)
    except ValueError as err:  # unknown dataset, option name or value; an --out that is not a build; no records
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)
    counts = json.loads((path / CARD_NAME).read_text(encoding="utf-8"))["counts"]
    records = counts["records"]
    typer.echo(
        f"{name}: {records['total']} records (train {records['train']}, dev {records['dev']}, "
        f"test {records['test']}), {counts['concepts']['total']} concepts, "
        f"{counts['languages']} languages -> {path} in {time.perf_counter() - start:.1f}s"
    )
