"""`embedrec train`, `recommend` and `similar`: making and using model folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from embedrec.cli.common import (DataOpt, DatasetOpt, DuplicatesOpt, EngineOpt, IdTypeOpt,
                                 ItemsOpt, NoDownloadOpt, PresetFileOpt, ScaleOpt, SetOpt,
                                 UpdatesOpt, app, cell, err, load_data, model_names_help, out,
                                 parse_settings, progress_bar)
from embedrec.errors import EmbedrecError


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", "-m", help=f"One of: {model_names_help()}.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    preset: Annotated[str, typer.Option(help="default, reference or large.")] = "default",
    split: Annotated[Optional[str], typer.Option(
        help="Train on this split's train part and score its test part (default: all rows).")] = None,
    seed: Annotated[int, typer.Option(help="Model seed.")] = 0,
    epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1)] = None,
    engine: EngineOpt = None,
    updates: UpdatesOpt = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda or auto.")] = None,
    settings: SetOpt = [],
    items: ItemsOpt = None,
    no_download: NoDownloadOpt = False,
    scale: ScaleOpt = None,
    id_type: IdTypeOpt = "auto",
    duplicates: DuplicatesOpt = "last",
    preset_file: PresetFileOpt = None,
    loss: Annotated[Optional[str], typer.Option(
        help="mse, or a ranking loss (bpr, bpr_pop, softmax, full_softmax): the model then "
             "only ranks.")] = None,
    relevant: Annotated[Optional[float], typer.Option(
        help="Ranking losses: a rating at least this is a positive (4.0).")] = None,
    implicit: Annotated[bool, typer.Option(
        "--implicit", help="Ranking losses: every rating is a positive.")] = False,
    refit: Annotated[bool, typer.Option(
        "--refit", help="After validation, learn from every training row: a fitted model fits "
                        "on them, a torch model trains again for its best epoch count.")] = False,
    nproc: Annotated[int, typer.Option(
        "--nproc", min=1, help="Data-parallel training with N processes on this machine (starts "
        "torchrun's elastic launcher; --batch-size is then the global batch, split over them). "
        "Under torchrun, leave it out.")] = 1,
    checkpoints: Annotated[Optional[Path], typer.Option(
        "--checkpoints", help="Write an atomic checkpoint to this folder after every epoch "
        "(default with --resume: OUT.checkpoints).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the latest checkpoint (from the start when there is "
        "none); the same command and settings as the interrupted run.")] = False,
) -> None:
    """Train one model and save it (safetensors weights + JSON manifest).

    Data-parallel: `embedrec train --nproc N ...`, or `torchrun --nproc-per-node N -m embedrec
    train ...` (multi-node: torchrun's --nnodes and --rdzv-* flags). Rank 0 alone writes.
    """
    from embedrec.cli.common import ARGV
    from embedrec.experiment import train_bundle
    from embedrec.models.registry import get
    from embedrec.persistence import save_model
    from embedrec.io import check_model_out
    from embedrec.presets import choose_preset
    from embedrec.training import distributed
    from embedrec.training.checkpoint import Checkpoints

    check_model_out(out_dir)  # before any work: never train for minutes, then refuse

    get(model)  # an unknown model fails before the data is read
    chosen = choose_preset(preset, preset_file).with_overrides(
        epochs=epochs, batch_size=batch_size, engine=engine, updates=updates, device=device, loss=loss,
        relevant=relevant, implicit=implicit or None, refit=refit or None)
    chosen = chosen.with_model_settings(parse_settings(settings))
    if nproc > 1 and not distributed.launched():  # start the ranks; each runs this command
        distributed.per_rank_batch(chosen.train_config(model).batch_size, nproc)
        if chosen.train_config(model).engine == "kernel":
            raise EmbedrecError("--engine kernel trains in one process; use --engine torch "
                                "(or auto) with --nproc")
        distributed.launch(nproc, distributed.without_option(ARGV, "--nproc"))
        return
    folder = checkpoints or (out_dir.with_name(out_dir.name + ".checkpoints") if resume else None)
    with distributed.session(chosen.train.device):
        writer = distributed.is_writer()
        load = lambda: load_data(dataset, data, download=not no_download,  # noqa: E731
                                 items=items, scale=scale, id_type=id_type,
                                 duplicates=duplicates, report=writer, by_rank=True)
        from embedrec.data.shards import is_parquet_folder

        # a Parquet folder: every rank reads its row groups at once; else rank 0 downloads and
        # builds the cache first
        ratings = (load() if data is not None and is_parquet_folder(data)
                   else distributed.writer_first(load, "the data"))
        with progress_bar() as bar:
            task = bar.add_task(f"training {model}", total=None)
            bundle = train_bundle(
                ratings, model, chosen, seed=seed, split=split,
                progress=lambda d, t: bar.update(task, completed=d, total=t),
                checkpoints=None if folder is None else Checkpoints(folder, resume=resume))
        distributed.writer_only(lambda: save_model(bundle, out_dir), f"the model {out_dir}")
    if not writer:
        return
    metrics = bundle.manifest.get("metrics") or {}
    extra = f", test RMSE {metrics['rmse']:.4f}" if metrics.get("rmse") is not None else (
        f", test NDCG@{metrics['k']} {metrics['ndcg_at_k']:.4f}" if metrics else "")
    out.print(f"saved {model} trained on {bundle.manifest['n_train']:,} ratings to {out_dir}{extra}",
              markup=False, highlight=False)
    for note in bundle.manifest.get("notes") or []:
        out.print(f"{model}: {note}", markup=False, highlight=False)


def _print_frame(frame, title: str, as_json: bool) -> None:
    if as_json:
        out.print_json(frame.to_json(orient="records"))
        return
    table = Table(title=cell(title))  # titles and ids are data: never rich markup
    for col in frame.columns:
        table.add_column(cell(col), justify="right" if col in ("movieId", "score") else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(cell(v) for v in row))
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
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # ids as written: 00123
    except (OSError, ValueError) as exc:
        raise EmbedrecError(f"{path}: cannot read ratings ({exc})") from exc
    cols = {c.lower(): c for c in frame.columns}
    movie = next((cols[c] for c in ("movieid", "movie_id", "movie", "title", "item", "item_id", "itemid") if c in cols), None)
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
    device: Annotated[Optional[str], typer.Option(
        help="With --all-users: cpu (numpy), cuda or auto (torch on a GPU when present).")] = None,
) -> None:
    """Top-k unseen movies for a known user, a new user (--rate / --ratings), or every user."""
    from embedrec.foldin import recommend_for_ratings
    from embedrec.persistence import load_model
    from embedrec.recommender import UnknownIdError, popular, recommend_all
    from embedrec.recommender import recommend as recommend_user

    if fallback not in (None, "popular"):
        raise EmbedrecError(f"--fallback {fallback!r}: the only fallback is 'popular'")
    bundle = load_model(model_dir)
    if all_users:
        if out_file is None:
            raise EmbedrecError("--all-users needs --out FILE")
        if str(out_file).strip() in ("", ".") or out_file.is_dir():
            raise EmbedrecError(f"--out {str(out_file)!r}: give a file name for the CSV")
        import pandas as pd

        from embedrec.recommender import topn_device

        items, scores = recommend_all(bundle, k, device=topn_device(device))
        n = items.shape[0]
        real = items.ravel() >= 0  # users with fewer than k unseen movies get fewer rows
        frame = pd.DataFrame({"userId": np.repeat(bundle.user_map.ids, items.shape[1])[real],
                              "rank": np.tile(np.arange(1, items.shape[1] + 1), n)[real],
                              "movieId": bundle.item_map.raw(items.ravel()[real]),
                              "score": scores.ravel()[real]})
        from embedrec.io import atomic_write_text as atomic_write

        atomic_write(out_file, frame.to_csv(index=False))
        out.print(f"wrote top-{k} for {n:,} users to {out_file}", markup=False, highlight=False)
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
