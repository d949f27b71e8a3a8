"""`embedrec data list | fetch | synth | info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from embedrec.cli.common import (
    DataOpt, DatasetOpt, DuplicatesOpt, IdTypeOpt, ItemsOpt, NoDownloadOpt, ScaleOpt, cell,
    data_app, load_data, out, progress_bar, safe,
)


@data_app.command("list")
def data_list() -> None:
    """The MovieLens releases embedrec can download and verify."""
    from embedrec.data.registry import RELEASES

    table = Table()
    for col in ("name", "ratings", "scale", "md5", "url"):
        table.add_column(col)
    for r in RELEASES.values():
        table.add_row(r.name, f"{r.n_ratings:,}", f"{r.scale[0]:g}-{r.scale[1]:g}",
                      r.md5 or ("(files pinned)" if r.file_md5 else "(read at download)"), r.url)
    out.print(table)


@data_app.command("fetch")
def data_fetch(dataset: Annotated[str, typer.Argument(help="Release name.")] = "ml-latest-small",
               data: DataOpt = None,
               trust_mirror: Annotated[bool, typer.Option(
                   "--trust-mirror", help="Accept a download embedrec has no checksum for "
                   "(the mirror's own .md5 is trusted).")] = False) -> None:
    """Find or download a release, verify it, and print where it is."""
    from embedrec.data.fetch import locate
    from embedrec.data.registry import get_release

    with progress_bar() as bar:
        task = bar.add_task(f"downloading {dataset}", total=None)
        folder = locate(get_release(dataset), data, trust_mirror=trust_mirror or None,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    out.print(str(folder), markup=False, highlight=False)


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
    out.print(f"wrote {ratings:,} ratings of {users:,} users on {items:,} movies to {folder}",
              markup=False, highlight=False)


@data_app.command("info")
def data_info(dataset: DatasetOpt = None, data: DataOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
              top: Annotated[int, typer.Option(min=1, help="Crosstab size.")] = 15,
              items: ItemsOpt = None, no_download: NoDownloadOpt = False,
              scale: ScaleOpt = None, id_type: IdTypeOpt = "auto",
              duplicates: DuplicatesOpt = "last") -> None:
    """Counts, rating scale and distribution, time range, and the top users x top movies crosstab."""
    from embedrec.data.explore import summary, top_crosstab

    ratings = load_data(dataset, data, download=not no_download, items=items, scale=scale,
                        id_type=id_type, duplicates=duplicates, report=False)
    info, cross = summary(ratings), top_crosstab(ratings, top)
    if as_json:
        info["crosstab"] = json.loads(cross.to_json(orient="split"))
        out.print_json(json.dumps(info))
        return
    out.print(f"[bold]{safe(info['name'])}[/]: {info['n_ratings']:,} ratings, {info['n_users']:,} users, "
              f"{info['n_items']:,} rated items" + (f" ({info['n_items_listed']:,} listed)"
                                                    if info["n_items_listed"] else ""))
    inferred = " (inferred from the data; declare it with --scale LOW,HIGH)" if info["scale_inferred"] else ""
    out.print(f"scale {info['scale'][0]:g} to {info['scale'][1]:g}{inferred}, mean "
              f"{info['mean_rating']:.3f}, density {info['density']:.4%}, md5 {info['md5']}")
    if info["time_range"]:
        out.print(f"time range {info['time_range'][0]} to {info['time_range'][1]} UTC")
    if info["id_types"]:
        out.print(f"ids: users {info['id_types']['user']}, items {info['id_types']['item']}")
    out.print(f"duplicate (user, item) rows: {info['duplicates_resolved']:,} resolved by policy "
              f"{info['duplicate_policy'] or 'last'}; blank lines skipped: {info['blank_lines']:,}")
    for key in ("ratings_per_user", "ratings_per_item"):
        d = info[key]
        out.print(f"{key.replace('_', ' ')}: min {d['min']}, median {d['median']:g}, "
                  f"mean {d['mean']:.1f}, max {d['max']}")
    dist = Table(title="rating distribution")
    dist.add_column("rating")
    dist.add_column("count", justify="right")
    dist.add_column("share", justify="right")
    for value, count in info["ratings"].items():
        dist.add_row(cell(value), f"{count:,}", f"{count / info['n_ratings']:.1%}")
    out.print(dist)
    grid = Table(title=f"ratings of the {top} most active users (rows) for the {top} most rated movies")
    grid.add_column("userId", justify="right")
    for movie in cross.columns:
        grid.add_column(cell(movie), justify="right")
    for user, row in cross.iterrows():
        grid.add_row(cell(user), *("" if v != v else f"{v:g}" for v in row))
    out.print(grid)
