"""`embedrec tune`: the same tuning budget for every model, on validation rows only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from embedrec.cli.common import (DataOpt, DatasetOpt, EngineOpt, ItemsOpt, MlflowOpt,
                                 NoDownloadOpt, PresetFileOpt, SetOpt, UpdatesOpt, app, err,
                                 load_data, model_names_help, out, parse_settings, split_models)

DEFAULT_MODELS = "dot,biased,mlp"


@app.command()
def tune(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for study.db, best.json and "
                                          "tuning.json (rerun to resume).")],
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    models: Annotated[list[str], typer.Option("--models", "-m", help="Comma-separated or repeated "
                                              f"(default {DEFAULT_MODELS}): "
                                              f"{model_names_help()}.")] = [],
    trials: Annotated[int, typer.Option(min=1, help="Trials per model (the same for all).")] = 50,
    timeout: Annotated[Optional[float], typer.Option(
        help="Wall-clock cap per model, in seconds (the same for all).")] = None,
    preset: Annotated[str, typer.Option(help="Base preset: default, reference or large.")] = "default",
    preset_file: PresetFileOpt = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Most epochs per trial.")] = None,
    engine: EngineOpt = None,
    updates: UpdatesOpt = None,
    valid_fraction: Annotated[Optional[float], typer.Option(help="Validation share of train.")] = None,
    loss: Annotated[Optional[str], typer.Option(
        help="Loss of the torch models: mse, or a ranking loss bpr, bpr_pop, softmax, "
             "full_softmax (then tuned on validation NDCG@k).")] = None,
    protocol: Annotated[str, typer.Option(
        help="Tune for protocol a (the preset's split, rating >= 4 relevant) or b (per-user "
             "holdout, every held-out rating relevant; ranking losses learn from every "
             "rating), as `compare --protocol` evaluates.")] = "a",
    holdout: Annotated[str, typer.Option(help="Protocol b: random or latest.")] = "random",
    holdout_fraction: Annotated[float, typer.Option(
        min=0.01, max=0.9, help="Protocol b: share of each user's ratings held out.")] = 0.2,
    space: Annotated[Optional[Path], typer.Option(
        "--space", help="JSON search-space overrides: {model or '*': {param: {low, high, log} | "
                        "{choices: [...]} | value}}.")] = None,
    settings: SetOpt = [],
    seed: Annotated[int, typer.Option(help="Sampler and model seed.")] = 0,
    threads: Annotated[int, typer.Option(
        min=1, help="torch threads per trial (1: fastest on a busy machine; kept in best.json)."
    )] = 1,
    mlflow: MlflowOpt = None,
    items: ItemsOpt = None,
    no_download: NoDownloadOpt = False,
) -> None:
    """Tune each model's settings with Optuna (TPE, pruning on validation loss; rating models
    by validation MSE, ranking models by validation NDCG@k); write a preset file of the best
    settings for `compare --preset-file` and `train --preset-file`."""
    from embedrec.presets import choose_preset
    from embedrec.tune import Budget, load_space_file, run_tuning

    budget = Budget(trials=trials, timeout=timeout)
    chosen = choose_preset(preset, preset_file).with_overrides(
        epochs=epochs, engine=engine, updates=updates, valid_fraction=valid_fraction, threads=threads,
        loss=loss)
    chosen = chosen.with_model_settings(parse_settings(settings))
    overrides = load_space_file(space) if space is not None else {}
    names = split_models(models) or DEFAULT_MODELS.split(",")
    if mlflow is not None:
        from embedrec.tracking import check_available

        check_available()
    from embedrec.protocols import PROTOCOLS, protocol_preset

    if protocol not in PROTOCOLS:
        from embedrec.errors import ConfigError

        raise ConfigError(f"unknown protocol {protocol!r}; use {' or '.join(PROTOCOLS)}")
    ratings = load_data(dataset, data, download=not no_download, items=items)
    chosen = protocol_preset(chosen, protocol, ratings, holdout=holdout,
                             fraction=holdout_fraction)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), console=err,
                   disable=not err.is_terminal)
    with bar:
        tasks = {name: bar.add_task(f"tuning {name}", total=trials, best="-") for name in names}

        def progress(name: str, done: int, total: int, best) -> None:
            bar.update(tasks[name], completed=done, total=total,
                       best="-" if best is None else f"{best:.4f}")

        report = run_tuning(ratings, preset=chosen, models=names, budget=budget, out=out_dir,
                            seed=seed, space=overrides, progress=progress, protocol=protocol)
    print_tuning(report)
    if mlflow is not None:
        from embedrec.tracking import log_tuning

        log_tuning(report, mlflow, out_dir)
    out.print(f"wrote {out_dir}/: best.json, tuning.json, study.db; next: embedrec compare "
              f"--tuned {out_dir}")


def print_tuning(report: dict) -> None:
    table = Table(title=f"tuning ({report['budget']['trials']} trials per model; lower is "
                        "better)", title_justify="left")
    for col in ("model", "objective", "best", "complete", "pruned", "best settings"):
        table.add_column(col, justify="left" if col in ("model", "best settings") else "right")
    for name, res in report["models"].items():
        best = res["best_value"]
        settings = res["best_model_settings"] | res["best_train_settings"]
        table.add_row(name, res.get("objective", "validation MSE"),
                      "-" if best is None else f"{best:.4f}", str(res["n_complete"]),
                      str(res["n_pruned"]), ", ".join(f"{k}={_short(v)}" for k, v in
                                                      settings.items()))
    out.print(table)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
