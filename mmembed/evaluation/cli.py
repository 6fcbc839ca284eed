"""`mmembed eval`: score models and baselines on the same tasks, in one table, JSON and plots.

    mmembed eval --model gemma3-270m-mm --tasks t2i,i2t,bitext --data /work/datasets \
        --baselines e5,imagenet-labels,prompteol --langs en,de,zh --limit 500 --out results/
    mmembed eval -m MODEL -b imagenet-labels -t t2i,i2t -d data/build/photos -d data/build/debian-photos \
        --pool all-photos=photos,debian-photos      # also scored as one set (evaluation/compare.py)
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import List, Optional

import typer

from mmembed.appearance import DEFAULT_APPEARANCE_WEIGHT, check_appearance_weight


class EvalUsageError(Exception):
    """Bad arguments; printed as one line and exit code 2."""


def _settings(**kw):
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()}


def parse_pools(specs: List[str], dataset_names: List[str]) -> dict[str, list[str]]:
    """`NAME=ds1,ds2,...` -> {NAME: [ds1, ds2, ...]}: at least two distinct loaded datasets, a new name."""
    pools: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, members = spec.partition("=")
        name, parts = name.strip(), [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not name or len(parts) < 2:
            raise ValueError(f"--pool {spec!r}: expected NAME=DATASET,DATASET[,...] (two or more datasets)")
        twice = sorted({m for m in parts if parts.count(m) > 1})
        if twice:
            raise ValueError(f"--pool {spec!r}: {', '.join(twice)} named twice; a pool joins two or more different datasets")
        if name in dataset_names or name in pools:
            raise ValueError(f"--pool {spec!r}: the name {name!r} is already a dataset or pool; pick another")
        unknown = [m for m in parts if m not in dataset_names]
        if unknown:
            raise ValueError(f"--pool {spec!r}: {', '.join(unknown)} not among the datasets loaded "
                             f"({', '.join(dataset_names)})")
        pools[name] = list(dict.fromkeys(parts))
    return pools


def run_eval_command(
    models: List[str],
    tasks: str,
    data: List[Path],
    out: Path,
    baselines: Optional[str],
    limit: Optional[int],
    langs: Optional[str],
    seed: int,
    split: str,
    batch_size: int,
    openclip_budget: float,
    openclip_steps: Optional[int],
    plots: bool,
    console=None,
    label_prior: bool = True,
    bootstrap: int = 1000,
    pools: Optional[List[str]] = None,
    lexical_weight: float = 0.0,
    gloss: bool = False,
    gloss_weight: Optional[float] = None,
    appearance_weight: float = DEFAULT_APPEARANCE_WEIGHT,
) -> dict:
    """The whole command as a function (the CLI wraps it; tests and notebooks may call it)."""
    from rich.console import Console

    from .data import EvalDataError, load_eval_data
    from .encoders import EncoderOptions, UnknownEncoderError, check_encoder_name, expand_baselines
    from .compare import MIN_DRAWS, compare_encoders, pool_results
    from ..paths import OutputPathError
    from .output import RESULTS_FILE, RUN_FILE, check_out, clear_outputs, write_json
    from .report import comparison_table, results_payload, summary_table, task_tables
    from .runner import QueryGlossing, run_evaluation
    from mmembed.glossary import SOURCES, GlossaryError, check_weight, weight_for
    from .tasks import TaskError, build_tasks, parse_task_names

    console = console or Console()
    # ---- validate everything cheap before loading any model ------------------------------
    try:
        if not (lexical_weight >= 0 and lexical_weight != float("inf")):
            raise EvalDataError(f"--lexical-weight must be a finite number >= 0 (0: cosine only), got {lexical_weight}")
        if gloss_weight is not None:
            try:
                check_weight(gloss_weight)
            except ValueError as err:
                raise EvalDataError(f"--gloss-weight: {err}") from None
        try:
            check_appearance_weight(appearance_weight)
        except ValueError as err:
            raise EvalDataError(f"--appearance-weight: {err}") from None
        if bootstrap != 0 and bootstrap < MIN_DRAWS:
            raise EvalDataError(f"--bootstrap must be 0 (no comparison) or at least {MIN_DRAWS} draws: fewer cannot "
                                f"place a 95% interval; got {bootstrap}")
        _check_numbers(batch_size=batch_size, seed=seed, limit=limit, openclip_budget=openclip_budget,
                       openclip_steps=openclip_steps)
        check_out(out)
        task_names = parse_task_names(tasks)
        names = list(dict.fromkeys([*models, *expand_baselines(baselines)]))
        if not names:
            raise UnknownEncoderError("no model given: pass --model NAME and/or --baselines")
        for name in names:
            check_encoder_name(name)
        if not data:
            raise EvalDataError("no --data given: pass a dataset folder, a folder of datasets, or a .jsonl file")
        lang_set = frozenset(p.strip() for p in langs.split(",") if p.strip()) if langs is not None else None
        if lang_set is not None and not lang_set:
            raise EvalDataError(f"--langs {langs!r} names no language; leave it out to score every language")
        datasets = load_eval_data(data, split, limit, seed)
        _check_langs(lang_set, datasets)
        task_list, notes = build_tasks(task_names, datasets, lang_set)
        gloss_weights = ({lang: weight_for(lang, gloss_weight) for lang in SOURCES}
                         if gloss or gloss_weight is not None else {})
        glossing = QueryGlossing(gloss_weights)
        try:
            glossing.load({QueryGlossing.query_lang(t) for t in task_list if glossing.applies(t)})
        except GlossaryError as err:
            raise EvalDataError(f"--gloss: {err}") from None
        try:
            pool_map = parse_pools(list(pools or []), [ds.name for ds in datasets])
        except ValueError as err:
            raise EvalDataError(str(err)) from None
        # the scratch CLIP trains on the train split beside each evaluated split
        train = [ds.manifest.parent / "train.jsonl" for ds in datasets if (ds.manifest.parent / "train.jsonl").is_file()]
        if "openclip-scratch" in names and not train:
            raise EvalDataError("openclip-scratch trains on train.jsonl beside the evaluated manifests; "
                                f"none found next to {', '.join(str(ds.manifest) for ds in datasets)}")
    except (TaskError, UnknownEncoderError, EvalDataError, OutputPathError) as err:
        raise EvalUsageError(str(err)) from None
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    opts = EncoderOptions(seed=seed, batch_size=batch_size, train_data=tuple(train),
                          openclip_budget_s=openclip_budget, openclip_steps=openclip_steps, label_prior=label_prior,
                          appearance_weight=appearance_weight)
    console.print(f"eval: {len(task_list)} tasks on {', '.join(ds.name for ds in datasets)}; encoders: {', '.join(names)}")

    def progress(er, results):
        ok = sum(r.status == "ok" for r in results)
        t = ", ".join(f"{k} {v:.1f}s" for k, v in er.timings.items())
        console.print(f"  {er.name}: {ok}/{len(results)} tasks scored ({t})")

    from mmembed.images import ImageInputError

    try:
        run = run_evaluation(names, task_list, opts, on_encoder=progress, lexical_weight=lexical_weight,
                             glossing=glossing)
    except ImageInputError as err:  # the manifest check opens every image; this catches what only decoding finds
        raise EvalUsageError(f"{err}") from None
    run.results.extend(pool_results(run.results, pool_map))  # pooled rows then show in every table and file

    # ---- report ---------------------------------------------------------------------------
    for table in task_tables(run):
        console.print(table)
    console.print(summary_table(run))
    # the first encoder is the model under test; every other one is compared with it on the same queries
    # (by the name it reports: a model given as a folder path is named by its config)
    comparisons = (compare_encoders(run.results, run.encoders[0].name, draws=bootstrap, seed=seed)
                   if bootstrap and len(run.encoders) > 1 else [])
    if comparisons:
        console.print(comparison_table(comparisons))
    settings = _settings(tasks=task_names, encoders=names, data=[str(d) for d in data], split=split, limit=limit,
                         langs=sorted(lang_set) if lang_set else None, seed=seed, batch_size=batch_size,
                         openclip_budget_s=openclip_budget, openclip_steps=openclip_steps, label_prior=label_prior,
                         bootstrap=bootstrap, pools=pool_map or None, lexical_weight=lexical_weight,
                         gloss_weights=glossing.weights or None, appearance_weight=appearance_weight)
    ds_info = [{"name": ds.name, "manifest": str(ds.manifest), "records": len(ds.records),
                "concepts": len(ds.concepts), "langs": len(ds.langs)} for ds in datasets]
    payload = results_payload(run, settings, ds_info, notes, comparisons)
    import mmembed

    # an earlier run's files go first (ours only, by name), results.json comes last: never a mix of two runs
    try:
        check_out(out)  # again: the folder may have changed while the models ran
    except OutputPathError as err:
        raise EvalUsageError(str(err)) from None
    clear_outputs(out)
    files = [write_json(out / RUN_FILE, {
        "mmembed_version": mmembed.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "timings": {e.name: e.timings for e in run.encoders}})]
    if plots:
        from .plots import write_plots

        files.extend(write_plots(run, out))
    files.insert(0, write_json(out / RESULTS_FILE, payload))
    console.print("wrote " + ", ".join(str(f) for f in files))
    return payload


def _check_numbers(batch_size: int, seed: int, limit: Optional[int], openclip_budget: float,
                   openclip_steps: Optional[int]) -> None:
    from .data import EvalDataError

    if batch_size < 1:
        raise EvalDataError(f"--batch-size must be >= 1, got {batch_size}")
    if seed < 0:
        raise EvalDataError(f"--seed must be >= 0, got {seed}")
    if limit is not None and limit < 1:
        raise EvalDataError(f"--limit must be >= 1 (concepts per dataset), got {limit}")
    if not (0 < openclip_budget < float("inf")):
        raise EvalDataError(f"--openclip-budget must be a number of seconds > 0, got {openclip_budget}")
    if openclip_steps is not None and openclip_steps < 1:
        raise EvalDataError(f"--openclip-steps must be >= 1, got {openclip_steps}")


def _check_langs(lang_set, datasets) -> None:
    """Every --langs code must be in some dataset (as a caption's or an anchor text's language)."""
    from .data import EvalDataError

    if not lang_set:
        return
    present = sorted({lang for ds in datasets for r in ds.records for lang in (r.record.lang, r.record.text_lang) if lang})
    absent = sorted(lang_set - set(present))
    if absent:
        raise EvalDataError(f"--langs: {', '.join(absent)} not present in {', '.join(ds.name for ds in datasets)} "
                            f"(present: {', '.join(present)})")


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        model: List[str] = typer.Option([], "--model", "-m", help="Model to score (repeatable): any name `mmembed models` lists, a saved folder, or a baseline name."),
        tasks: str = typer.Option("t2i,i2t,zeroshot,bitext,t2t", "--tasks", "-t", help="Comma-separated: t2i, i2t, zeroshot, bitext, t2t, i2i (image -> image; datasets with several images of a concept, e.g. emoji-styles)."),
        data: List[Path] = typer.Option([], "--data", "-d", help="Dataset folder, folder of datasets, or a .jsonl manifest (repeatable)."),
        out: Path = typer.Option(Path("results"), "--out", "-o", help="Folder for results.json, run.json and the PNG plots (an earlier run's files of those names are replaced; nothing else is touched)."),
        baselines: Optional[str] = typer.Option(None, "--baselines", "-b", help="Comma-separated: e5, imagenet-labels, image-features (images only, for i2i), prompteol, openclip-scratch."),
        limit: Optional[int] = typer.Option(None, "--limit", help="At most N concepts per dataset (drawn with --seed)."),
        langs: Optional[str] = typer.Option(None, "--langs", help="Comma-separated languages to score (default: all present)."),
        seed: int = typer.Option(0, "--seed", help="Seed for --limit sampling, random-init parts and baseline training."),
        split: str = typer.Option("test", "--split", help="Manifest split read from each dataset folder."),
        batch_size: int = typer.Option(32, "--batch-size", help="Encoding batch size."),
        openclip_budget: float = typer.Option(300.0, "--openclip-budget", help="Training seconds for openclip-scratch (match the adapter's wall time)."),
        openclip_steps: Optional[int] = typer.Option(None, "--openclip-steps", help="Train openclip-scratch for exactly N steps instead (reproducible)."),
        plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots."),
        label_prior: bool = typer.Option(True, "--label-prior/--no-label-prior", help="Keep mmembed models' label prior (mmembed/label_prior.py) on images; --no-label-prior scores them without it."),
        bootstrap: int = typer.Option(1000, "--bootstrap", help="Draws (at least 100) of the paired bootstrap over concepts that compares the first encoder with each other one (95% interval); 0: no comparison."),
        pool: List[str] = typer.Option([], "--pool", help="NAME=DATASET,DATASET: also score those datasets as one set NAME (each query ranked in its own dataset; repeatable)."),
        lexical_weight: float = typer.Option(0.0, "--lexical-weight", help="Text -> text tasks (bitext, t2t) rank by cosine fused with romanized character n-grams (mmembed/lexical.py), for every encoder alike; 0.15 is the tuned weight, 0 (default) is cosine only."),
        gloss: bool = typer.Option(False, "--gloss", help="Gloss text queries in sw, hi, ar, de, fr, es, ru with their English from FreeDict dictionaries (mmembed/glossary.py, Debian dict-freedict-*), each language at its tuned weight, for every encoder alike."),
        gloss_weight: Optional[float] = typer.Option(None, "--gloss-weight", help="Gloss as --gloss, with this weight for every language (0: off)."),
        appearance_weight: float = typer.Option(DEFAULT_APPEARANCE_WEIGHT, "--appearance-weight", help="Image -> image tasks (i2i) rank mmembed models' images by (1 - w) x cosine + w x the image tower features' cosine, as `mmembed search --image` does (mmembed/appearance.py); 0: cosine alone."),
    ) -> None:
        """Score models and baselines on retrieval, zero-shot and bitext tasks: table, JSON, plots."""
        try:
            run_eval_command(model, tasks, data, out, baselines, limit, langs, seed, split, batch_size,
                             openclip_budget, openclip_steps, plots, label_prior=label_prior, bootstrap=bootstrap,
                             pools=pool, lexical_weight=lexical_weight, gloss=gloss, gloss_weight=gloss_weight,
                             appearance_weight=appearance_weight)
        except EvalUsageError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
