"""The `mmembed` command line: one entry point; each area registers its commands here.

Command modules keep heavy imports (torch, transformers) inside the command functions, so
`mmembed --help` is instant.
"""
from __future__ import annotations

import typer

app = typer.Typer(
    help="mmembed: images and text in 100+ languages in one embedding space.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command("models")
def models_cmd() -> None:
    """List the model names that `mmembed.load()` and --model accept."""
    from .registry import _REGISTRY, _adapter_names, default_model_name, get_config

    # plain lines, never cut to the terminal's width: names are meant to be copied
    default = default_model_name()
    rows = [(name, "config", get_config(name).description) for name in sorted(_REGISTRY)]
    rows += [(name, "trained adapter", "adapters/" + name) for name in _adapter_names()]
    for name, kind, description in rows:
        typer.echo(name + (" (default)" if name == default else ""))
        typer.echo(f"    {kind}: {description}")


# ---- command groups of the other areas (each module exposes `register(app)`) -----------------
def _register_all() -> None:
    from .data.cli import data_app

    app.add_typer(data_app, name="data", help="Build the datasets (emoji, clip art, parallel text).")
    from .evaluation.cli import register as register_eval
    register_eval(app)
    from .search.cli import register as register_search
    register_search(app)
    from .training.cli import register as register_train
    register_train(app)


_register_all()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # python -m mmembed.cli
    app()
