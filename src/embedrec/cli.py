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

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

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
ItemsOpt = Annotated[Optional[Path], typer.Option(
    "--items", help="With your own ratings file: a CSV of item id, title (and genres).")]
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


def load_data(dataset: str, data: Path | None, *, download: bool = True,
              items: Path | None = None, **file_options):
    """A MovieLens release (by name, from a folder or zip) or the user's own ratings file."""
    from embedrec.data import load_movielens, load_ratings_file
    from embedrec.data.load import is_release_folder, release_of_folder

    if dataset is None and data is not None and data.is_dir():
        if is_release_folder(data):  # --data .../ml-100k means ml-100k
            dataset = release_of_folder(data)
        elif (data / "ratings.csv").is_file():  # a MovieLens-format folder, e.g. data synth
            return load_ratings_file(data, items_path=items)
    dataset = dataset or "ml-latest-small"
    if data is not None and data.is_file() and not zipfile.is_zipfile(data):
        if data.suffix.lower() not in RATINGS_SUFFIXES:
            raise EmbedrecError(f"{data}: expected a folder, a zip, or a .csv/.tsv/.parquet file")
        return load_ratings_file(data, items_path=items,
                                 **{k: v for k, v in file_options.items() if v is not None})
    if items is not None:
        raise EmbedrecError("--items goes with your own ratings file (--data FILE)")
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


RATING_COLUMNS = [("RMSE", "rmse", 4), ("MAE", "mae", 4), ("RMSE warm", "rmse_warm", 4),
                  ("RMSE model-only", "rmse_model_all", 4), ("train s", "train_seconds", 1)]
RANKING_COLUMNS = [("NDCG@{k}", "ndcg_at_k", 4), ("P@{k}", "precision_at_k", 4),
                   ("R@{k}", "recall_at_k", 4), ("MAP@{k}", "map_at_k", 4),
                   ("HR@{k}", "hit_rate_at_k", 3), ("coverage", "coverage_at_k", 3),
                   ("mean popularity", "popularity_at_k", 1)]


def _summary_table(title: str, rows: list[dict], columns, k: int, params: bool) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    for name, _, _ in columns:
        table.add_column(name.format(k=k), justify="right")
    if params:
        table.add_column("params", justify="right")
    for row in rows:
        cells = [_fmt(row[key], row[f"{key}_std"], digits) for _, key, digits in columns]
        table.add_row(row["model"], *cells, *([f"{row['n_params']:,.0f}"] if params else []))
    return table


def print_summary(comparison) -> None:
    settings = comparison.settings
    k, rows = settings["k"], comparison.summary()
    out.print(f"[bold]{settings['dataset']}[/]: {settings['split']} split, preset "
              f"{settings['preset']['name']}, {len(settings['seeds'])} seed(s), mean ± std")
    out.print(_summary_table("rating prediction (test rows)", rows, RATING_COLUMNS, k, True))
    out.print(_summary_table(
        f"top-{k} recommendation (relevant = test rating >= {settings['relevance_threshold']:g})",
        rows, RANKING_COLUMNS, k, False))
    first = comparison.records[0]
    out.print(f"test rows {first['n_test']:,}, cold rows {first['n_cold']:,} "
              f"(users {first['n_cold_users']:,}, movies {first['n_cold_items']:,}) predicted by the "
              f"bias baseline; training rows {first['n_train']:,}, validation rows "
              f"{first['n_valid']:,}; {first['n_users_ranked']:,} users ranked over the catalogue "
              f"minus their training items")


@app.command()
def compare(
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    models: Annotated[list[str], typer.Option("--models", "-m", help="Comma-separated or repeated: "
                                              "dot, biased, mlp, mean, bias, pop.")] = ["dot,biased,mlp,mean,bias,pop"],
    preset: Annotated[str, typer.Option(help="default, reference or large.")] = "default",
    split: Annotated[Optional[str], typer.Option(
        help="random, kfold, user-random, user-latest, time (default: the preset's).")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Model seeds per model.")] = 3,
    epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1)] = None,
    engine: Annotated[Optional[str], typer.Option(help="fast (lazy Adam) or exact.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.")] = None,
    l2: Annotated[Optional[float], typer.Option(help="L2 coefficient on embedding tables.")] = None,
    valid_fraction: Annotated[Optional[float], typer.Option(help="Validation share of train.")] = None,
    k: Annotated[Optional[int], typer.Option("-k", "--k", min=1, help="Top-N list length (10).")] = None,
    relevant: Annotated[Optional[float], typer.Option(
        help="A test rating at least this is relevant (4.0).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Write results here.")] = None,
    items: ItemsOpt = None,
    report: Annotated[bool, typer.Option("--report/--no-report",
                                         help="With --out: also write report.html.")] = True,
    no_download: NoDownloadOpt = False,
) -> None:
    """Train and compare models on one split; print mean ± std over seeds."""
    from embedrec.compare import run_comparison, write_results
    from embedrec.presets import get_preset

    chosen = get_preset(preset).with_overrides(epochs=epochs, batch_size=batch_size, engine=engine,
                                               lr=lr, l2=l2, valid_fraction=valid_fraction,
                                               top_k=k, relevance_threshold=relevant)
    ratings = load_data(dataset, data, download=not no_download, items=items)
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
        written = "results.json, results.csv, summary.json, settings.json, analysis.json, data.json"
        if report:
            from embedrec.reports import build_report

            build_report(out_dir)
            written += ", report.html, figures/"
        out.print(f"wrote {out_dir}/: {written}")


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", "-m", help="dot, biased, mlp, mean or bias.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    preset: Annotated[str, typer.Option(help="default, reference or large.")] = "default",
    split: Annotated[Optional[str], typer.Option(
        help="Train on this split's train part and score its test part (default: all rows).")] = None,
    seed: Annotated[int, typer.Option(help="Model seed.")] = 0,
    epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1)] = None,
    engine: Annotated[Optional[str], typer.Option(help="fast or exact.")] = None,
    items: ItemsOpt = None,
    no_download: NoDownloadOpt = False,
) -> None:
    """Train one model and save it (safetensors weights + JSON manifest)."""
    from embedrec.persistence import save_model
    from embedrec.presets import get_preset
    from embedrec.training.pipeline import train_bundle

    chosen = get_preset(preset).with_overrides(epochs=epochs, batch_size=batch_size, engine=engine)
    ratings = load_data(dataset, data, download=not no_download, items=items)
    with _progress() as bar:
        task = bar.add_task(f"training {model}", total=None)
        bundle = train_bundle(ratings, model, chosen, seed=seed, split=split,
                              progress=lambda d, t: bar.update(task, completed=d, total=t))
    save_model(bundle, out_dir)
    metrics = bundle.manifest.get("metrics") or {}
    extra = f", test RMSE {metrics['rmse']:.4f}" if metrics else ""
    out.print(f"saved {model} trained on {bundle.manifest['n_train']:,} ratings to {out_dir}{extra}")


def _print_frame(frame, title: str, as_json: bool) -> None:
    if as_json:
        out.print_json(frame.to_json(orient="records"))
        return
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if col in ("movieId", "score") else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


def _parse_rate(values: list[str]) -> list[tuple[str, float]]:
    pairs = []
    for text in values:
        movie, sep, rating = text.rpartition("=")
        if not sep or not movie:
            raise EmbedrecError(f"--rate {text!r}: expected MOVIE=RATING, e.g. 'Toy Story (1995)=5'")
        try:
            pairs.append((movie, float(rating)))
        except ValueError:
            raise EmbedrecError(f"--rate {text!r}: {rating!r} is not a number") from None
    return pairs


def _read_rates_csv(path: Path) -> list[tuple[str, float]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise EmbedrecError(f"{path}: cannot read ratings ({exc})") from exc
    cols = {c.lower(): c for c in frame.columns}
    movie = next((cols[c] for c in ("movieid", "movie_id", "movie", "title", "item") if c in cols), None)
    if movie is None or "rating" not in cols:
        raise EmbedrecError(f"{path}: needs a movie (movieId or title) column and a rating column")
    values = pd.to_numeric(frame[cols["rating"]], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        line = int(bad.argmax()) + 2
        raise EmbedrecError(f"{path}, line {line}, column rating: "
                            f"{str(frame[cols['rating']].iloc[line - 2])!r} is not a number")
    return [(str(m), float(r)) for m, r in zip(frame[movie], values)]


@app.command()
def recommend(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder from `embedrec train`.")],
    user: Annotated[Optional[str], typer.Option(help="A known user id.")] = None,
    rate: Annotated[list[str], typer.Option(help="New user: MOVIE=RATING (id or title), repeated.")] = [],
    ratings_file: Annotated[Optional[Path], typer.Option("--ratings", help="New user: CSV of movie,rating.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many.")] = 10,
    all_users: Annotated[bool, typer.Option("--all-users", help="Top-k for every user (needs --out).")] = False,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="CSV for --all-users.")] = None,
    fallback: Annotated[Optional[str], typer.Option(help="'popular': answer unknown users with the most rated movies.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Top-k unseen movies for a known user, a new user (--rate / --ratings), or every user."""
    from embedrec.persistence import load_model
    from embedrec.foldin import recommend_for_ratings
    from embedrec.recommender import UnknownIdError, popular, recommend_all
    from embedrec.recommender import recommend as recommend_user

    if fallback not in (None, "popular"):
        raise EmbedrecError(f"--fallback {fallback!r}: the only fallback is 'popular'")
    bundle = load_model(model_dir)
    if all_users:
        if out_file is None:
            raise EmbedrecError("--all-users needs --out FILE")
        import pandas as pd

        items, scores = recommend_all(bundle, k)
        n = items.shape[0]
        real = items.ravel() >= 0  # users with fewer than k unseen movies get fewer rows
        frame = pd.DataFrame({"userId": np.repeat(bundle.user_map.ids, items.shape[1])[real],
                              "rank": np.tile(np.arange(1, items.shape[1] + 1), n)[real],
                              "movieId": bundle.item_map.raw(items.ravel()[real]),
                              "score": scores.ravel()[real]})
        from embedrec.compare import atomic_write

        atomic_write(out_file, frame.to_csv(index=False))
        out.print(f"wrote top-{k} for {n:,} users to {out_file}")
        return
    rated = _parse_rate(rate) + (_read_rates_csv(ratings_file) if ratings_file else [])
    if user is not None and rated:
        raise EmbedrecError("give either --user or --rate/--ratings, not both")
    if user is not None:
        try:
            frame = recommend_user(bundle, user, k)
            title = f"top {k} for user {user} ({bundle.name})"
        except UnknownIdError:
            if fallback != "popular":
                raise
            frame = popular(bundle, k)
            title = f"user {user} is unknown: fallback popular, the {k} most rated movies"
        _print_frame(frame, title, as_json)
        return
    if not rated:
        if fallback == "popular":
            _print_frame(popular(bundle, k), f"fallback popular: the {k} most rated movies", as_json)
            return
        raise EmbedrecError("give --user ID, or --rate MOVIE=RATING / --ratings FILE for a new user")
    try:
        frame, fit = recommend_for_ratings(bundle, rated, k)
    except EmbedrecError as exc:
        if fallback != "popular" or "none of the" not in str(exc):
            raise
        _print_frame(popular(bundle, k), f"{exc}: fallback popular, the {k} most rated movies",
                     as_json)
        return
    if not as_json:
        msg = f"recognised {fit.n_used} of {fit.n_given} ratings"
        if fit.unknown:
            msg += (f" (not recognised: {', '.join(map(str, fit.unknown[:5]))}; give a movie id or "
                    "the exact title: `embedrec similar --movie WORDS` lists the matches)")
        err.print(msg, markup=False)
    _print_frame(frame, f"top {k} for a new user ({bundle.name})", as_json)


@app.command()
def similar(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder from `embedrec train`.")],
    movie: Annotated[str, typer.Option(help="Movie id or (part of) a title.")],
    k: Annotated[int, typer.Option("-k", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Movies nearest to a movie in embedding space (cosine)."""
    from embedrec.persistence import load_model
    from embedrec.recommender import similar_items

    bundle = load_model(model_dir)
    frame = similar_items(bundle, movie, k)
    _print_frame(frame, f"movies like {movie!r} ({bundle.name})", as_json)


@app.command()
def serve(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder from `embedrec train`.")],
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you say so).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    cors_origin: Annotated[list[str], typer.Option(help="Allow this browser origin (repeat).")] = [],
) -> None:
    """Serve a model over HTTP: a JSON API (docs at /docs) and a web page at /."""
    import uvicorn

    from embedrec.persistence import load_model
    from embedrec.serve import create_app

    import socket

    load_model(model_dir)  # fail here, with a one-line error, rather than inside the server
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise EmbedrecError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    app_ = create_app(model_dir, cors_origins=tuple(cors_origin))
    err.print(f"serving {model_dir} on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command("report")
def report_cmd(folder: Annotated[Path, typer.Argument(help="A folder written by compare --out.")]
               ) -> None:
    """Rebuild report.html (and figures/) from a results folder, without retraining."""
    from embedrec.reports import build_report

    out.print(f"wrote {build_report(folder)}")


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


@data_app.command("synth")
def data_synth(
    users: Annotated[int, typer.Option(min=1, help="Number of users.")],
    items: Annotated[int, typer.Option(min=1, help="Number of movies (all get rated).")],
    ratings: Annotated[int, typer.Option(min=1, help="Number of ratings.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write a synthetic MovieLens-format folder (ratings.csv, movies.csv) of any size."""
    from embedrec.data.synth import SynthConfig, write_synthetic

    folder = write_synthetic(SynthConfig(n_users=users, n_items=items, n_ratings=ratings,
                                         seed=seed), out_dir)
    out.print(f"wrote {ratings:,} ratings of {users:,} users on {items:,} movies to {folder}")


@data_app.command("info")
def data_info(dataset: DatasetOpt = None, data: DataOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
              top: Annotated[int, typer.Option(min=1, help="Crosstab size.")] = 15,
              items: ItemsOpt = None, no_download: NoDownloadOpt = False) -> None:
    """Counts, rating scale and distribution, and the top users x top movies crosstab."""
    from embedrec.data.explore import summary, top_crosstab

    ratings = load_data(dataset, data, download=not no_download, items=items)
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
    except OSError as exc:  # e.g. --out names a folder, or a disk is full
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"error: {where}{exc.strerror or exc}", markup=False, highlight=False,
                  soft_wrap=True)
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
