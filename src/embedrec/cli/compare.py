"""`embedrec compare` and its summary tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from embedrec.errors import EmbedrecError

from embedrec.cli.common import (DataOpt, DatasetOpt, DuplicatesOpt, EngineOpt, IdTypeOpt,
                                 ItemsOpt, MlflowOpt, NoDownloadOpt, PresetFileOpt, ScaleOpt,
                                 SetOpt, UpdatesOpt, app, load_data, mean_std, model_names_help,
                                 out, parse_settings, progress_bar, safe, split_models)

RATING_COLUMNS = [("RMSE", "rmse", 4), ("MAE", "mae", 4), ("RMSE warm", "rmse_warm", 4),
                  ("RMSE cold", "rmse_cold", 4), ("cold, fallback only", "rmse_cold_fallback", 4),
                  ("RMSE model-only", "rmse_model_all", 4), ("train s", "train_seconds", 1)]
RANKING_COLUMNS = [("NDCG@{k}", "ndcg_at_k", 4), ("P@{k}", "precision_at_k", 4),
                   ("R@{k}", "recall_at_k", 4), ("MAP@{k}", "map_at_k", 4),
                   ("HR@{k}", "hit_rate_at_k", 3), ("coverage", "coverage_at_k", 3),
                   ("mean popularity", "popularity_at_k", 1), ("long tail", "long_tail_at_k", 3)]


def _summary_table(title: str, rows: list[dict], columns, k: int, params: bool) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    for name, _, _ in columns:
        table.add_column(name.format(k=k), justify="right")
    if params:
        table.add_column("params", justify="right")
    for row in rows:
        cells = [mean_std(row[key], row[f"{key}_std"], digits) for _, key, digits in columns]
        table.add_row(row["model"], *cells, *([f"{row['n_params']:,.0f}"] if params else []))
    return table


def print_summary(comparison) -> None:
    settings = comparison.settings
    k, rows = settings["k"], comparison.summary()
    out.print(f"[bold]{safe(settings['dataset'])}[/]: {settings['split']} split, preset "
              f"{settings['preset']['name']}, {len(settings['seeds'])} seed(s), mean ± std")
    out.print(_summary_table("rating prediction (test rows)", rows, RATING_COLUMNS, k, True))
    out.print(_summary_table(
        f"top-{k} recommendation (relevant = test rating >= {settings['relevance_threshold']:g})",
        rows, RANKING_COLUMNS, k, False))
    first = comparison.records[0]
    out.print(f"test rows {first['n_test']:,}, cold rows {first['n_cold']:,} "
              f"(users {first['n_cold_users']:,}, movies {first['n_cold_items']:,}) predicted by the "
              f"bias baseline unless the model scores new movies from their features; training "
              f"rows {first['n_train']:,}, validation rows {first['n_valid']:,}"
              f"{' (among them: --refit)' if settings['preset']['split'].get('refit') else ''}; "
              f"{first['n_users_ranked']:,} users ranked over the catalogue minus their training "
              f"items")
    for model, notes in input_notes(comparison.records).items():
        out.print(f"{model}: {'; '.join(notes)}")


def input_notes(records: list[dict]) -> dict[str, list[str]]:
    """Per model, the inputs it had to switch off (the same for every seed)."""
    notes: dict[str, list[str]] = {}
    for rec in records:
        for note in rec.get("notes") or []:
            if note not in notes.setdefault(rec["model"], []):
                notes[rec["model"]].append(note)
    return {k: v for k, v in notes.items() if v}


def print_pairs(stats: dict) -> None:
    """The paired tests, one sentence per pair (significant ones first)."""
    pairs = sorted(stats.get("pairs", []), key=lambda p: (p["metric"], not p["significant"]))
    if pairs:
        out.print("paired tests (seed-averaged; users resampled; Wilcoxon, Holm-corrected):")
    for p in pairs:
        out.print(f"  {p['sentence']}", markup=False, highlight=False)


@app.command()
def compare(
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    models: Annotated[list[str], typer.Option("--models", "-m", help="Comma-separated or repeated "
                                              f"(default: all): {model_names_help()}.")] = [],
    preset: Annotated[str, typer.Option(help="default, reference or large.")] = "default",
    split: Annotated[Optional[str], typer.Option(
        help="random, kfold, user-random, user-latest, time (default: the preset's).")] = None,
    ablation: Annotated[list[str], typer.Option(
        "--ablation", help="Also run MODEL with each of its inputs switched off in turn "
                           "(repeatable), e.g. hybrid_mf.")] = [],
    seeds: Annotated[int, typer.Option(min=1, help="Model seeds per model.")] = 3,
    epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1)] = None,
    engine: EngineOpt = None,
    updates: UpdatesOpt = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda or auto.")] = None,
    settings: SetOpt = [],
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.")] = None,
    l2: Annotated[Optional[float], typer.Option(help="L2 coefficient on embedding tables.")] = None,
    valid_fraction: Annotated[Optional[float], typer.Option(help="Validation share of train.")] = None,
    refit: Annotated[bool, typer.Option(
        "--refit", help="After validation, every model learns from the whole training part: "
                        "fitted models fit on it, torch models train again on it for their best "
                        "epoch count.")] = False,
    k: Annotated[Optional[int], typer.Option("-k", "--k", min=1, help="Top-N list length (10).")] = None,
    relevant: Annotated[Optional[float], typer.Option(
        help="A test rating at least this is relevant (4.0).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Write results here.")] = None,
    items: ItemsOpt = None,
    report: Annotated[bool, typer.Option("--report/--no-report",
                                         help="With --out: also write report.html.")] = True,
    no_download: NoDownloadOpt = False,
    scale: ScaleOpt = None,
    id_type: IdTypeOpt = "auto",
    duplicates: DuplicatesOpt = "last",
    preset_file: PresetFileOpt = None,
    tuned: Annotated[Optional[Path], typer.Option(
        "--tuned", help="A `tune --out` folder: use its best settings (its best.json).")] = None,
    mlflow: MlflowOpt = None,
    loss: Annotated[Optional[str], typer.Option(
        help="Loss of the torch models: mse, or a ranking loss bpr, bpr_pop, softmax, "
             "full_softmax.")] = None,
    implicit: Annotated[bool, typer.Option(
        "--implicit", help="Ranking losses learn from every rating, not only >= --relevant.")] = False,
    protocol: Annotated[Optional[str], typer.Option(
        help="a (random rating split, rating >= 4 relevant), b (per-user holdout, every held-out "
             "rating relevant) or both, side by side with a verdict per task.")] = None,
    holdout: Annotated[str, typer.Option(help="Protocol b: random or latest.")] = "random",
    holdout_fraction: Annotated[float, typer.Option(
        min=0.01, max=0.9, help="Protocol b: share of each user's ratings held out.")] = 0.2,
) -> None:
    """Train and compare models on one split; print mean ± std over seeds and paired tests."""
    from embedrec.compare import ablation_variants, run_comparison
    from embedrec.io import check_results_out
    from embedrec.presets import choose_preset

    if out_dir is not None:
        check_results_out(out_dir)  # before any work: never train for minutes, then refuse

    if tuned is not None:
        if preset_file is not None:
            raise EmbedrecError("give --tuned DIR or --preset-file F, not both")
        preset_file = tuned / "best.json"
    if mlflow is not None:
        from embedrec.tracking import check_available

        check_available()
    chosen = choose_preset(preset, preset_file).with_overrides(
        epochs=epochs, batch_size=batch_size, engine=engine, updates=updates, lr=lr, l2=l2,
        valid_fraction=valid_fraction, top_k=k, relevance_threshold=relevant, device=device,
        loss=loss, relevant=relevant, implicit=implicit or None, refit=refit or None)
    chosen = chosen.with_model_settings(parse_settings(settings))
    from embedrec.training import distributed

    if protocol is not None:
        if distributed.launched():
            raise EmbedrecError("--protocol runs in one process (not under torchrun)")
        compare_protocols(chosen, dataset=dataset, data=data, items=items, models=models,
                          seeds=seeds, protocol=protocol, holdout=holdout,
                          fraction=holdout_fraction, out_dir=out_dir, report=report,
                          download=not no_download)
        return
    quiet = out.quiet
    with distributed.session(chosen.train.device):
        writer = distributed.is_writer()
        out.quiet = quiet or not writer  # under torchrun rank 0 alone prints and writes
        try:
            ratings = distributed.writer_first(
                lambda: load_data(dataset, data, download=not no_download, items=items,
                                  scale=scale, id_type=id_type, duplicates=duplicates),
                "the data")
            with progress_bar() as bar:
                step = labelled_steps(bar)
                variants = [v for name in split_models(ablation)
                            for v in ablation_variants(name, chosen)]
                result = run_comparison(ratings, preset=chosen,
                                        models=split_models(models) or None,
                                        variants=variants, seeds=seeds, split=split,
                                        progress=step)
            print_summary(result)
            stats = result.stats()
            result.extras["stats"] = stats
            print_pairs(stats)
            distributed.writer_only(
                lambda: _write_outputs(result, out_dir, tuned=tuned, report=report,
                                       mlflow=mlflow), "the results")
        finally:
            out.quiet = quiet


def _write_outputs(result, out_dir: Path | None, *, tuned: Path | None, report: bool,
                   mlflow: str | None) -> None:
    if out_dir is not None:
        from embedrec.compare import write_results

        write_results(result, out_dir)
        if tuned is not None and (tuned / "tuning.json").is_file():  # the report's tuning section
            from embedrec.io import atomic_write_text as atomic_write

            atomic_write(out_dir / "tuning.json",
                         (tuned / "tuning.json").read_text(encoding="utf-8"))
        written = "results.json, results.csv, summary.json, settings.json, analysis.json, data.json"
        if report:
            from embedrec.reports import build_report

            build_report(out_dir)
            written += ", report.html, figures/"
        out.print(f"wrote {out_dir}/: {written}, predictions.npz, stats.json", markup=False,
                  highlight=False)
    if mlflow is not None:
        from embedrec.tracking import log_comparison

        log_comparison(result, mlflow, out_dir)


def labelled_steps(bar):
    """A progress callback (label, done, total) with one bar per label."""
    tasks: dict[str, int] = {}

    def step(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done)

    return step


def compare_protocols(preset, *, dataset, data, items, models, seeds: int, protocol: str,
                      holdout: str, fraction: float, out_dir: Path | None, report: bool,
                      download: bool) -> None:
    from embedrec.protocols import (
        describe, parse_protocols, protocol_preset, run_protocols, verdict, verdict_lines,
        write_protocols,
    )

    chosen = parse_protocols(protocol)
    ratings = load_data(dataset, data, download=download, items=items)
    with progress_bar() as bar:
        step = labelled_steps(bar)
        results = run_protocols(ratings, preset=preset, models=split_models(models) or None,
                                seeds=seeds, protocols=chosen, holdout=holdout,
                                fraction=fraction, progress=step)
    for name, comparison in results.items():
        used = protocol_preset(preset, name, ratings, holdout=holdout, fraction=fraction)
        out.print(f"\n[bold]protocol {name}[/]: {describe(name, used, holdout, fraction)}; "
                  f"{comparison.settings['protocol']['loss']} loss on "
                  f"{comparison.settings['protocol']['positives']} for ranking losses")
        print_summary(comparison)
    out.print("")
    for line in verdict_lines(verdict(results)):
        out.print(line)
    if out_dir is not None:
        folders = write_protocols(results, out_dir)
        if report:
            from embedrec.reports import build_report

            for folder in folders:
                build_report(folder)
        out.print(f"wrote {out_dir}/: verdict.json, "
                  + ", ".join(f"{f.name}/" for f in folders))
