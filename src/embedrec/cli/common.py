"""The Typer apps, consoles, shared options and the data loader every command uses."""

from __future__ import annotations

import logging
import sys
import zipfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from embedrec.errors import EmbedrecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Embedding recommenders for explicit ratings: does a network beat MF here?")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list, fetch, describe.")
app.add_typer(data_app, name="data")
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)
log = logging.getLogger("embedrec")

DatasetOpt = Annotated[Optional[str], typer.Option(
    "--dataset", "-d", help="MovieLens release name (default ml-latest-small).")]
DataOpt = Annotated[Optional[Path], typer.Option(
    "--data", help="A release folder or zip, or your own ratings file (CSV/TSV/Parquet).")]
NoDownloadOpt = Annotated[bool, typer.Option("--no-download", help="Never download.")]
EngineOpt = Annotated[Optional[str], typer.Option(
    help="auto (the compiled kernel where the model has one), kernel or torch; "
         "fast / exact: torch with lazy / dense updates.")]
UpdatesOpt = Annotated[Optional[str], typer.Option(
    help="lazy (Adam and L2 on the batch's rows) or dense (every row, every step: "
         "the reference's arithmetic).")]
ItemsOpt = Annotated[Optional[Path], typer.Option(
    "--items", help="With your own ratings file: a CSV of item id, title (and genres).")]
ScaleOpt = Annotated[Optional[str], typer.Option(
    "--scale", help="The rating scale LOW,HIGH (e.g. 0.5,5): a rating outside it is an error. "
    "Default: a release's own scale, or inferred from your file (and said so).")]
IdTypeOpt = Annotated[str, typer.Option(
    "--id-type", help="Your file's ids: auto (numbers only when every id is a plain integer, "
    "else kept as written), int or str.")]
DuplicatesOpt = Annotated[str, typer.Option(
    "--duplicates", help="The same (user, item) twice: keep the last, the first, the mean, or "
    "error.")]
ARGV: list[str] = []  # this invocation's arguments (``embedrec train --nproc`` passes them on)
RATINGS_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".pq"}


@app.callback()
def _main(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                               help="More log output (-v info, -vv debug).")] = 0):
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def progress_bar() -> Progress:
    import os

    rank = os.environ.get("RANK", "0")  # under torchrun only rank 0 shows progress
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
                    disable=not err.is_terminal or rank != "0")


def load_data(dataset: str, data: Path | None, *, download: bool = True,
              items: Path | None = None, scale: str | None = None, id_type: str = "auto",
              duplicates: str = "last", report: bool = True, **file_options):
    """A MovieLens release (by name, from a folder or zip) or the user's own ratings file.

    With ``report``, one line on stdout says what loading did (scale, duplicates, blank lines).
    """
    from embedrec.data.load import describe_load

    ratings = _load_data(dataset, data, download=download, items=items, scale=scale,
                         id_type=id_type, duplicates=duplicates, **file_options)
    if report:
        out.print(describe_load(ratings), markup=False, highlight=False)
    return ratings


def _load_data(dataset: str, data: Path | None, *, download: bool = True,
               items: Path | None = None, scale: str | None = None, id_type: str = "auto",
               duplicates: str = "last", by_rank: bool = False, **file_options):
    from embedrec.data.shards import is_parquet_folder

    if dataset is None and data is not None and is_parquet_folder(data):
        from embedrec.data.shards import read_rank_shard
        from embedrec.training import distributed

        if by_rank:  # under torchrun each rank reads only its row groups (a collective)
            return read_rank_shard(data, distributed.rank(), distributed.world(),
                                   distributed.gather)
        return read_rank_shard(data)
    from embedrec.data import load_movielens, load_ratings_file
    from embedrec.data.load import is_release_folder, parse_scale, release_of_folder

    declared = parse_scale(scale)
    file_options |= {"scale": declared, "id_type": id_type, "duplicates": duplicates}
    if dataset is None and data is not None and data.is_dir():
        if is_release_folder(data):  # --data .../ml-100k means ml-100k
            dataset = release_of_folder(data)
        elif (data / "ratings.csv").is_file():  # a MovieLens-format folder, e.g. data synth
            return load_ratings_file(data, items_path=items, **file_options)
    dataset = dataset or "ml-latest-small"
    if data is not None and data.is_file() and not zipfile.is_zipfile(data):
        if data.suffix.lower() not in RATINGS_SUFFIXES:
            raise EmbedrecError(f"{data}: expected a folder, a zip, or a .csv/.tsv/.parquet file")
        return load_ratings_file(data, items_path=items,
                                 **{k: v for k, v in file_options.items() if v is not None})
    if items is not None:
        raise EmbedrecError("--items goes with your own ratings file (--data FILE)")
    with progress_bar() as bar:
        task = bar.add_task(f"downloading {dataset}", total=None)
        return load_movielens(dataset, data, download=download, scale=declared,
                              duplicates=duplicates,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))


def cell(value) -> Text:
    """A table cell holding ``value`` as plain text: titles, ids and names from a data file or a
    model folder are never read as rich markup ("[red]", "[/oops]", "[link=...]")."""
    return Text(f"{value:.3f}" if isinstance(value, float) else str(value))


def safe(value) -> str:
    """``value`` escaped for a string that is printed with markup (e.g. inside "[bold]...[/]")."""
    return escape(str(value))


def split_models(models: list[str]) -> list[str]:
    return [m.strip() for chunk in models for m in chunk.split(",") if m.strip()]


def model_names_help() -> str:
    from embedrec.models.registry import names

    return ", ".join(names())


PresetFileOpt = Annotated[Optional[Path], typer.Option(
    "--preset-file", help="A JSON preset (e.g. best.json from `embedrec tune`); replaces --preset.")]
MlflowOpt = Annotated[Optional[str], typer.Option(
    "--mlflow", help="Log to MLflow at this tracking URI ('local' = ./mlruns); needs "
                     "pip install embedrec[mlflow].")]

SetOpt = Annotated[list[str], typer.Option(
    "--set", help="A model setting, MODEL.KEY=VALUE (repeatable), e.g. mlp.hidden=32; "
                  "*.n_factors=64 sets every model that has it.")]


def parse_settings(values: list[str]) -> dict[str, dict]:
    """``--set MODEL.KEY=VALUE`` options as {model: {key: typed value}}."""
    from embedrec.models.registry import get, specs

    out: dict[str, dict] = {}
    for text in values:
        target, sep, value = text.partition("=")
        model, dot, key = target.strip().partition(".")
        if not sep or not dot or not model or not key:
            raise EmbedrecError(f"--set {text!r}: expected MODEL.KEY=VALUE, e.g. mlp.hidden=32")
        if model == "*":
            having = [s for s in specs() if key in getattr(s.Config, "__dataclass_fields__", {})]
            if not having:
                raise EmbedrecError(f"--set {text!r}: no model has a setting {key!r}")
            parsed = having[0].parse_setting(key, value.strip())
        else:
            parsed = get(model).parse_setting(key, value.strip())
        out.setdefault(model, {})[key] = parsed
    return out


def mean_std(mean, std, digits=4) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"
