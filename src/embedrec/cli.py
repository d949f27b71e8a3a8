"""The ``embedrec`` command: a thin layer over the library. Errors become one line and an exit code.

Exit codes: 0 success, 1 a problem with data, settings or training (message on stderr),
2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import sys
import zipfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from embedrec.errors import EmbedrecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Embedding recommenders for explicit ratings: does a network beat MF here?")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list, fetch, describe.")
app.add_typer(data_app, name="data")
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)
log = logging.getLogger("embedrec")

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="MovieLens release name.")]
DataOpt = Annotated[Optional[Path], typer.Option(
    "--data", help="A release folder or zip, or your own ratings file (CSV/TSV/Parquet).")]
NoDownloadOpt = Annotated[bool, typer.Option("--no-download", help="Never download.")]
RATINGS_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".pq"}


@app.callback()
def _main(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                               help="More log output (-v info, -vv debug).")] = 0):
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


def load_data(dataset: str, data: Path | None, *, download: bool = True, **file_options):
    """A MovieLens release (by name, from a folder or zip) or the user's own ratings file."""
    from embedrec.data import load_movielens, load_ratings_file

    if data is not None and data.is_file() and not zipfile.is_zipfile(data):
        if data.suffix.lower() not in RATINGS_SUFFIXES:
            raise EmbedrecError(f"{data}: expected a folder, a zip, or a .csv/.tsv/.parquet file")
        return load_ratings_file(data, **{k: v for k, v in file_options.items() if v is not None})
    with _progress() as bar:
        task = bar.add_task(f"downloading {dataset}", total=None)
        return load_movielens(dataset, data, download=download,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))


def _split_models(models: list[str]) -> list[str]:
    return [m.strip() for chunk in models for m in chunk.split(",") if m.strip()]


def _fmt(mean, std, digits=4) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def print_summary(comparison) -> None:
    table = Table(title=f"{comparison.settings['dataset']}: {comparison.settings['split']} split, "
                        f"preset {comparison.settings['preset']['name']}, "
                        f"{len(comparison.settings['seeds'])} seed(s)")
    for col in ("model", "RMSE", "MAE", "RMSE warm", "RMSE model-only", "params", "train s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for row in comparison.summary():
        table.add_row(row["model"], _fmt(row["rmse"], row["rmse_std"]), _fmt(row["mae"], row["mae_std"]),
                      _fmt(row["rmse_warm"], row["rmse_warm_std"]),
                      _fmt(row["rmse_model_all"], row["rmse_model_all_std"]),
                      f"{row['n_params']:,.0f}", _fmt(row["train_seconds"], row["train_seconds_std"], 1))
    out.print(table)
    first = comparison.records[0]
    out.print(f"test rows {first['n_test']:,}, cold rows {first['n_cold']:,} "
              f"(users {first['n_cold_users']:,}, movies {first['n_cold_items']:,}) predicted by the "
              f"bias baseline; training rows {first['n_train']:,}, validation rows {first['n_valid']:,}")


@app.command()
def compare(
    dataset: DatasetOpt = "ml-latest-small",
    data: DataOpt = None,
    models: Annotated[list[str], typer.Option("--models", "-m", help="Comma-separated or repeated: "
                                              "dot, biased, mlp, mean, bias.")] = ["dot,biased,mlp,mean,bias"],
    preset: Annotated[str, typer.Option(help="reference or default.")] = "default",
    split: Annotated[Optional[str], typer.Option(
        help="random, kfold, user-random, user-latest, time (default: the preset's).")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Model seeds per model.")] = 3,
    epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1)] = None,
    engine: Annotated[Optional[str], typer.Option(help="fast (lazy Adam) or exact.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.")] = None,
    l2: Annotated[Optional[float], typer.Option(help="L2 coefficient on embedding tables.")] = None,
    valid_fraction: Annotated[Optional[float], typer.Option(help="Validation share of train.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Write results here.")] = None,
    no_download: NoDownloadOpt = False,
) -> None:
    """Train and compare models on one split; print mean ± std over seeds."""
    from embedrec.compare import run_comparison, write_results
    from embedrec.presets import get_preset

    chosen = get_preset(preset).with_overrides(epochs=epochs, batch_size=batch_size, engine=engine,
                                               lr=lr, l2=l2, valid_fraction=valid_fraction)
    ratings = load_data(dataset, data, download=not no_download)
    with _progress() as bar:
        tasks: dict[str, int] = {}

        def step(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        result = run_comparison(ratings, preset=chosen, models=_split_models(models), seeds=seeds,
                                split=split, progress=step)
    print_summary(result)
    if out_dir is not None:
        write_results(result, out_dir)
        out.print(f"wrote {out_dir}/results.json, results.csv, summary.json, settings.json")


@data_app.command("list")
def data_list() -> None:
    """The MovieLens releases embedrec can download and verify."""
    from embedrec.data.registry import RELEASES

    table = Table()
    for col in ("name", "ratings", "scale", "md5", "url"):
        table.add_column(col)
    for r in RELEASES.values():
        table.add_row(r.name, f"{r.n_ratings:,}", f"{r.scale[0]:g}-{r.scale[1]:g}",
                      r.md5 or "(read at download)", r.url)
    out.print(table)


@data_app.command("fetch")
def data_fetch(dataset: Annotated[str, typer.Argument(help="Release name.")] = "ml-latest-small",
               data: DataOpt = None) -> None:
    """Find or download a release, verify it, and print where it is."""
    from embedrec.data.fetch import locate
    from embedrec.data.registry import get_release

    with _progress() as bar:
        task = bar.add_task(f"downloading {dataset}", total=None)
        folder = locate(get_release(dataset), data,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    out.print(str(folder))


@data_app.command("info")
def data_info(dataset: DatasetOpt = "ml-latest-small", data: DataOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
              top: Annotated[int, typer.Option(min=1, help="Crosstab size.")] = 15,
              no_download: NoDownloadOpt = False) -> None:
    """Counts, rating scale and distribution, and the top users x top movies crosstab."""
    from embedrec.data.explore import summary, top_crosstab

    ratings = load_data(dataset, data, download=not no_download)
    info, cross = summary(ratings), top_crosstab(ratings, top)
    if as_json:
        info["crosstab"] = json.loads(cross.to_json(orient="split"))
        out.print_json(json.dumps(info))
        return
    out.print(f"[bold]{info['name']}[/]: {info['n_ratings']:,} ratings, {info['n_users']:,} users, "
              f"{info['n_items']:,} rated items" + (f" ({info['n_items_listed']:,} listed)"
                                                    if info["n_items_listed"] else ""))
    out.print(f"scale {info['scale'][0]:g} to {info['scale'][1]:g}, mean {info['mean_rating']:.3f}, "
              f"density {info['density']:.4%}, md5 {info['md5']}")
    for key in ("ratings_per_user", "ratings_per_item"):
        d = info[key]
        out.print(f"{key.replace('_', ' ')}: min {d['min']}, median {d['median']:g}, "
                  f"mean {d['mean']:.1f}, max {d['max']}")
    dist = Table(title="rating distribution")
    dist.add_column("rating")
    dist.add_column("count", justify="right")
    dist.add_column("share", justify="right")
    for value, count in info["ratings"].items():
        dist.add_row(value, f"{count:,}", f"{count / info['n_ratings']:.1%}")
    out.print(dist)
    grid = Table(title=f"ratings of the {top} most active users (rows) for the {top} most rated movies")
    grid.add_column("userId", justify="right")
    for movie in cross.columns:
        grid.add_column(str(movie), justify="right")
    for user, row in cross.iterrows():
        grid.add_row(str(user), *("" if v != v else f"{v:g}" for v in row))
    out.print(grid)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    try:
        app(args=argv, prog_name="embedrec", standalone_mode=False)
    except EmbedrecError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    except typer.Abort:
        err.print("interrupted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad option values, unknown commands
        exc.show()
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
