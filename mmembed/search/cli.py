"""CLI commands of the search area: index, search, encode, demo, serve (registered on the root app).

Heavy imports (torch, LanceDB, FastAPI) happen inside the commands, so `mmembed --help` is instant.
Expected failures (unknown collection or model, mismatched model, bad option, a path that cannot be
read or written, a number out of range) print one red 'error:' line and exit 1; they never dump a
traceback. Ctrl-C during `index` exits 130 (typer.Exit passes through the wrapper).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from mmembed.paths import check_output_file

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection folder (or LanceDB URI, e.g. s3://...).")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name (see `mmembed models`), adapter or saved folder. Default: the collection's model, else the default model.")]


def _passes_through() -> tuple[type, ...]:
    """typer / click control flow (Exit(130) after Ctrl-C, usage errors): not ours to reword. Exit and Abort
    subclass RuntimeError, so they must be let through before the RuntimeError clause below."""
    import click
    from typer import exceptions as typer_exceptions

    return (typer.Exit, typer.Abort, typer_exceptions.TyperException, click.exceptions.Exit,
            click.exceptions.Abort, click.ClickException)


def _message(err: BaseException) -> str:
    """One line naming the input: an OSError from the system as 'PATH: reason', anything else as it says."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        where = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else f"{err.filename}"
        return f"{where}: {err.strerror}"
    if isinstance(err, OverflowError):
        return f"a number is out of range ({err})"
    return str(err)


def _friendly(fn: Callable) -> Callable:
    """Turn the errors a user can fix into one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from rich.console import Console
        from rich.markup import escape

        from ..registry import UnknownModelError
        from .info import CollectionError

        try:
            return fn(*args, **kwargs)
        except _passes_through():
            raise
        except (CollectionError, UnknownModelError, OSError, ValueError, RuntimeError, OverflowError) as err:
            Console(stderr=True).print(f"[red]error:[/red] {escape(_message(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _positive(option: str, value: Optional[int]) -> None:
    """Refuse a count of 0 or less up front (before any model loads)."""
    if value is not None and (isinstance(value, bool) or value < 1):
        raise ValueError(f"{option} must be a positive int, got {value}")


def _check_dim(dim: Optional[int], model_dim: Optional[int] = None) -> None:
    """--dim: 1.. before the model is known, 1..model_dim once it is (0 must not mean 'all dims')."""
    if dim is None:
        return
    if dim < 1 or (model_dim is not None and dim > model_dim):
        bound = f"1..{model_dim}" if model_dim is not None else "1..(the model's dim)"
        raise ValueError(f"--dim must be an int in {bound}, got {dim}")


def _check_collection_path(collection: str) -> None:
    if "://" not in collection and Path(collection).is_file():
        raise ValueError(f"--collection {collection} is a regular file, not a collection folder")


def _remove_if_left_empty(collection: str, existed: bool) -> None:
    """A failed first run leaves no empty collection folder behind."""
    p = Path(collection)
    if not existed and p.is_dir() and not any(p.iterdir()):
        p.rmdir()


def _print_skipped(console, skipped, show: int) -> None:
    if not skipped:
        return
    console.print(f"[yellow]skipped {len(skipped)} input(s):[/yellow]")
    for s in skipped[:show]:
        console.print(f"  {s.path}: {s.reason}", highlight=False, markup=False, soft_wrap=True)
    if len(skipped) > show:
        console.print(f"  ... and {len(skipped) - show} more (--show-skipped N to list more)")


@_friendly
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Folders of images (recursive), .txt / .csv / .tsv / .jsonl files.")],
    collection: CollectionOpt,
    model: ModelOpt = None,
    engine: Annotated[str, typer.Option(help="local: this process; ray: Ray Data actor pool (RAY_ADDRESS or --ray-address for a cluster).")] = "local",
    workers: Annotated[int, typer.Option(help="Ray: embedder actors (each loads the model once).")] = 1,
    cpus_per_worker: Annotated[float, typer.Option(help="Ray: CPUs (and torch threads) per embedder actor.")] = 1.0,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray: cluster address, e.g. auto on a cluster node (default: $RAY_ADDRESS, else a new local instance).")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per model call.")] = 32,
    chunk_size: Annotated[int, typer.Option(help="Rows per commit (what an interruption can lose at most).")] = 256,
    language: Annotated[Optional[str], typer.Option(help="Language of text rows that do not say.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="Tag every indexed row (repeatable).")] = None,
    text_field: Annotated[Optional[str], typer.Option(help="CSV/JSONL field holding the text (default: text, caption, title or sentence).")] = None,
    dim: Annotated[Optional[int], typer.Option(help="Store Matryoshka-truncated vectors (new collections only).")] = None,
    appearance: Annotated[bool, typer.Option(help="Keep each image's look (its 1,280 image-tower features) for image queries (new collections only; --no-appearance saves the space, and image queries rank by cosine alone).")] = True,
    show_skipped: Annotated[int, typer.Option(help="How many skipped inputs to list.")] = 50,
) -> None:
    """Index images and texts into a collection (re-runnable: unchanged files are not embedded again)."""
    from rich.console import Console

    from .collection import Collection
    from .discover import TextOptions
    from .ray_engine import RayOptions

    if engine not in ("local", "ray"):
        raise ValueError(f"--engine must be local or ray, got {engine!r}")
    for option, value in (("--batch-size", batch_size), ("--chunk-size", chunk_size), ("--workers", workers)):
        _positive(option, value)
    if not cpus_per_worker > 0:
        raise ValueError(f"--cpus-per-worker must be a number > 0, got {cpus_per_worker}")
    _check_dim(dim)
    _check_collection_path(collection)
    console = Console()
    existed = Path(collection).exists()
    col = None
    try:
        col = Collection(collection, model=model, dim=dim, batch_size=batch_size, appearance=appearance)
        if col.info is None:  # a new collection: its vectors are cut to --dim of the model's dims
            _check_dim(dim, col.model.dim)
        opts = TextOptions(text_field=text_field, language=language, tags=tuple(tag or ()))
        report = col.index_paths(paths, options=opts, engine=engine, chunk_size=chunk_size,
                                 ray_options=RayOptions(address=ray_address, num_workers=workers,
                                                        cpus_per_worker=cpus_per_worker))
    except Exception:
        _remove_if_left_empty(collection, existed)  # the empty folder opening it made: nothing of this run stays
        raise
    except KeyboardInterrupt:  # exit 130 like a shell; typer.Exit passes through _friendly
        _remove_if_left_empty(collection, existed)
        rows = len(col) if col is not None else 0
        console.print(f"[yellow]interrupted[/yellow]: {rows} rows are committed in {collection}; "
                      "run the same command again to continue (nothing is duplicated)")
        raise typer.Exit(130) from None
    console.print(
        f"[green]indexed[/green] {report.inserted} new, {report.updated} updated"
        f"{f' ({report.relabeled} only relabeled)' if report.relabeled else ''}, {report.unchanged} unchanged, "
        f"{report.removed} removed (gone from the source) "
        f"in {report.seconds:.1f} s -> {collection} ({len(col)} rows, model {col.info.model}"
        f"{', ANN index built' if report.indexed_ann else ''})", soft_wrap=True)
    _print_skipped(console, report.skipped, show_skipped)


@_friendly
def search_cmd(
    query: Annotated[Optional[str], typer.Argument(help="Text in any language.")] = None,
    collection: CollectionOpt = ...,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results.")] = 10,
    image: Annotated[Optional[Path], typer.Option(help="Search with an image file instead of a text.")] = None,
    where: Annotated[Optional[str], typer.Option(help="SQL filter, e.g. \"language = 'de' AND folder = 'cats'\".")] = None,
    language: Annotated[Optional[list[str]], typer.Option(help="Only rows in this language (repeatable).")] = None,
    folder: Annotated[Optional[str], typer.Option(help="Only rows under this folder (relative to the indexed root).")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="Only rows with this tag (repeatable: any of them).")] = None,
    kind: Annotated[Optional[str], typer.Option(help="image or text.")] = None,
    exact: Annotated[bool, typer.Option(help="Scan every vector even if an ANN index exists.")] = False,
    html: Annotated[Optional[Path], typer.Option(help="Also write an HTML page with thumbnails.")] = None,
    lexical_weight: Annotated[float, typer.Option(help="Re-order a text query's hits by cosine fused with romanized character n-grams of their text (names across scripts); 0.15 is the tuned weight, 0: cosine only.")] = 0.0,
    query_lang: Annotated[Optional[str], typer.Option(help="The QUERY's language (sw, hi, ar, de, fr, es, ru): gloss it with its English from a FreeDict dictionary (Debian dict-freedict-*), so words the model does not know ('mbwa', dog) still find their pictures.")] = None,
    gloss_weight: Annotated[Optional[float], typer.Option(help="Weight of the English gloss with --query-lang (default: the language's tuned weight; 0: off).")] = None,
    appearance_weight: Annotated[Optional[float], typer.Option(help="With --image: rank image rows by (1 - w) x cosine + w x the image tower features' cosine, so the same thing drawn or photographed another way comes first (default: the tuned 0.5; 0: cosine only).")] = None,
    model: ModelOpt = None,
) -> None:
    """Search a collection with a text (any language) or an image; prints a table."""
    from rich.console import Console
    from rich.table import Table

    from .collection import Collection
    from .render import QueryResult, write_html

    if (query is None) == (image is None):
        raise ValueError("give a QUERY text or --image PATH (one of them)")
    if query is not None and not query.strip():
        raise ValueError("QUERY is empty: give a text to search for (or --image PATH)")
    _positive("-k", k)
    if gloss_weight is not None and query_lang is None:
        raise ValueError("--gloss-weight needs --query-lang (the language of the QUERY to gloss)")
    if query_lang is not None and image is not None:
        raise ValueError("--query-lang glosses a QUERY text; an --image query has no language")
    if appearance_weight is not None:
        if image is None:
            raise ValueError("--appearance-weight weighs an --image query's look; a QUERY text has none")
        from mmembed.appearance import check_appearance_weight

        check_appearance_weight(appearance_weight)
    _check_collection_path(collection)
    if html is not None:
        check_output_file("--html", html)
    if query_lang is not None:
        from mmembed.glossary import check_weight, glossary_for

        glossary_for(query_lang)  # an unknown language or a missing dictionary is named before the model loads
        if gloss_weight is not None:
            check_weight(gloss_weight)
    col = Collection(collection, model=model, create=False)
    q = query if query is not None else image
    hits = col.search(q, k=k, where=where, language=language, folder=folder, tag=tag, kind=kind,
                      exact=exact or None, lexical_weight=lexical_weight, query_lang=query_lang,
                      gloss_weight=gloss_weight, appearance_weight=appearance_weight)  # Collection bounds k (MAX_K)
    label = query if query is not None else f"image {image}"
    table = Table("#", "score", "kind", "text", "lang", "folder", "image / source", title=f"{label!s} -> {collection}")
    for h in hits:
        d = h.document
        table.add_row(str(h.rank), f"{h.score:.3f}", d.kind, d.text[:60], d.language or "", d.folder,
                      (d.image or d.source or "")[-60:])
    Console().print(table)
    if html is not None:
        write_html(html, [QueryResult(str(label), hits)], f"mmembed search: {label}", f"collection {collection}")
        Console().print(f"wrote {html}")


@_friendly
def encode_cmd(
    inputs: Annotated[list[str], typer.Argument(help="Texts, image files, folders, or .txt/.csv/.jsonl files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .npy (matrix) or .parquet (rows with ids).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model name (default: the default model).")] = None,
    dim: Annotated[Optional[int], typer.Option(help="Matryoshka truncation.")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per model call.")] = 32,
    text: Annotated[bool, typer.Option("--text", help="Treat every input as literal text, even if a file has that name.")] = False,
    image_role: Annotated[str, typer.Option("--image-role", help="What the images are: 'document' (to be searched) or 'query' (to be labelled: their texts are ranked); a model may embed the two differently.")] = "document",
) -> None:
    """Embed inputs and write the vectors to .npy or .parquet."""
    from rich.console import Console

    from ..config import IMAGE_ROLES
    from ..registry import load
    from .export import FORMATS, encode_inputs, write_vectors

    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {out}: unknown format {out.suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    _positive("--batch-size", batch_size)
    _check_dim(dim)
    if image_role not in IMAGE_ROLES:
        raise ValueError(f"--image-role {image_role!r}: use one of {', '.join(IMAGE_ROLES)}")
    check_output_file("--out", out)
    loaded = load(model)
    _check_dim(dim, loaded.dim)
    encoded = encode_inputs(loaded, inputs, dim=dim, batch_size=batch_size, literal_text=text, image_role=image_role)
    console = Console()
    if encoded.vectors.shape[0] == 0:  # like `mmembed index`: an empty folder or a typo is an error, not a 0-row file
        _print_skipped(console, encoded.skipped, 50)
        raise ValueError(f"nothing to encode in {', '.join(inputs)}: no text or image found; nothing was written to {out}")
    path = write_vectors(out, encoded)
    console.print(f"wrote {encoded.vectors.shape[0]} x {encoded.vectors.shape[1]} float32 vectors -> {path}")
    _print_skipped(console, encoded.skipped, 50)


@_friendly
def demo_cmd(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model (default: the default model).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (collection, demo.html, demo_grid.png).")] = Path("mmembed-demo"),
    size: Annotated[int, typer.Option(help="How many pictures to index.")] = 300,
    source: Annotated[str, typer.Option(help="emoji (Noto Color Emoji + CLDR names) or clipart (Open Clip Art).")] = "emoji",
    k: Annotated[int, typer.Option("-k", "--k", help="Hits per query.")] = 5,
    gloss: Annotated[bool, typer.Option(help="Gloss the sw, hi, ar, de, fr, es and ru queries with their English from FreeDict dictionaries (mmembed/glossary.py).")] = True,
) -> None:
    """Index real pictures that ship in packages and search them in ten languages."""
    from rich.console import Console
    from rich.table import Table

    from .demo import hit_label, run_demo, target_ranks

    if source not in ("emoji", "clipart"):
        raise ValueError(f"--source must be emoji or clipart, got {source!r}")
    _positive("--size", size)
    _positive("-k", k)
    console = Console()
    result = run_demo(out, model, size=size, source=source, k=k, gloss=gloss,
                      log=lambda m: console.print(m, markup=False, highlight=False))
    table = Table("lang", "query", "meaning", f"top {k} hits (score)", title=f"{result.mode} search, model {result.collection.info.model}")
    for r in result.results:
        table.add_row(r.language, r.query, r.gloss, " · ".join(f"{hit_label(h)} {h.score:.2f}" for h in r.hits))
    console.print(table)
    ranks = target_ranks(result.results)
    found = sum(r is not None for r in ranks.values())
    console.print(f"the expected picture is in the top {k} for {found}/{len(ranks)} queries")
    console.print(f"wrote {result.html} and {result.grid} in {result.seconds:.1f} s")


@_friendly
def serve_cmd(
    model: ModelOpt = None,
    collection: Annotated[Optional[str], typer.Option("--collection", "-c", help="Collection for POST /v1/search.")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    batching: Annotated[bool, typer.Option(help="Dynamic batching of concurrent requests.")] = True,
    max_batch: Annotated[int, typer.Option(help="Inputs per merged model call.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="A batch closes after this many ms with no new request.")] = 5.0,
    max_delay_ms: Annotated[float, typer.Option(help="...or this many ms after its first request.")] = 50.0,
    max_inputs: Annotated[int, typer.Option(help="Inputs per request (more: 413).")] = 256,
    max_image_bytes: Annotated[int, typer.Option(help="Bytes per image (more: 413).")] = 8 * 1024 * 1024,
) -> None:
    """Serve an OpenAI-compatible /v1/embeddings, /v1/search and /health (FastAPI + uvicorn)."""
    from .server import serve
    from .server_inputs import ServerSettings

    for option, value in (("--max-batch", max_batch), ("--max-inputs", max_inputs), ("--max-image-bytes", max_image_bytes)):
        _positive(option, value)
    if collection:
        _check_collection_path(collection)
    settings = ServerSettings(batching=batching, max_batch=max_batch, max_wait_ms=max_wait_ms, max_delay_ms=max_delay_ms,
                              max_inputs=max_inputs, max_image_bytes=max_image_bytes)
    serve(model, collection, host, port, settings)


def register(app: typer.Typer) -> None:
    """Add the search commands to the root `mmembed` app (flat commands, not a group)."""
    app.command("index")(index_cmd)
    app.command("search")(search_cmd)
    app.command("encode")(encode_cmd)
    app.command("demo")(demo_cmd)
    app.command("serve")(serve_cmd)
