"""Load a MovieLens release or any ratings file into an immutable ``Ratings``."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from embedrec.data.dataset import Ratings
from embedrec.data.fetch import ProgressFn, locate, md5_of
from embedrec.data.readers import (
    read_items, read_parquet, read_table, resolve_duplicates, sniff_format, validate_ratings,
)
from embedrec.data.registry import DEFAULT_RELEASE, TableFormat, get_release
from embedrec.errors import DataError

log = logging.getLogger(__name__)

# Header names tried, in order, when the caller does not name a column of their own file.
COLUMN_GUESSES = {
    "user": ("userId", "user_id", "user", "userid", "UserID"),
    "item": ("movieId", "item_id", "item", "movie_id", "itemId", "movieid", "MovieID"),
    "rating": ("rating", "Rating", "score"),
    "timestamp": ("timestamp", "Timestamp", "time", "ts"),
}


def load_movielens(
    name: str = DEFAULT_RELEASE,
    data: str | Path | None = None,
    *,
    download: bool = True,
    duplicates: str = "last",
    progress: ProgressFn | None = None,
) -> Ratings:
    """Load MovieLens release ``name`` from ``data``, $EMBEDREC_DATA, the cache or the web."""
    release = get_release(name)
    folder = locate(release, data, download=download, progress=progress)
    path = folder / release.ratings.file
    frame = read_table(path, release.ratings)
    frame = validate_ratings(frame, path, header=release.ratings.header, scale=release.scale)
    frame, n_dup = resolve_duplicates(frame, path, duplicates)
    items_path = folder / release.items.file
    items = read_items(items_path, release.items, release.genre_flags) if items_path.is_file() else None
    source = {"path": str(path), "md5": md5_of(path), "release": name, "duplicates": n_dup,
              "duplicate_policy": duplicates}
    data_set = Ratings.from_frame(frame, scale=release.scale, name=name, item_info=items, source=source)
    log.info("loaded %s: %d ratings, %d users, %d items", name, len(data_set), data_set.n_users,
             data_set.n_items)
    return data_set


def _pick_columns(header: list[str], given: dict[str, str | None], path: Path) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for role, guesses in COLUMN_GUESSES.items():
        want = given.get(role)
        if want is not None:
            if want not in header:
                raise DataError(f"{path}: no column {want!r} for {role}; the file has: {', '.join(header)}")
            chosen[role] = want
            continue
        hit = next((g for g in guesses if g in header), None)
        if hit is not None:
            chosen[role] = hit
        elif role != "timestamp":
            raise DataError(
                f"{path}: cannot find the {role} column (tried {', '.join(guesses)}); "
                f"the file has: {', '.join(header)}; name it with --{role}-col"
            )
    return chosen


def load_ratings_file(
    path: str | Path,
    *,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    sep: str | None = None,
    scale: tuple[float, float] | None = None,
    items_path: str | Path | None = None,
    duplicates: str = "last",
    name: str | None = None,
) -> Ratings:
    """Load a CSV, TSV or Parquet ratings file with a header row.

    ``scale`` is the declared rating range; ratings outside it are an error. When it is None the
    range is taken from the data.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    given = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = read_parquet(path)
        cols = _pick_columns([str(c) for c in raw.columns], given, path)
    else:
        fmt = sniff_format(path, sep)
        raw = read_table(path, fmt)
        cols = _pick_columns([str(c) for c in raw.columns], given, path)
    frame = raw.rename(columns={v: k for k, v in cols.items()})
    file_columns = dict(cols)
    frame = validate_ratings(frame, path, header=True, scale=scale, file_columns=file_columns)
    frame, n_dup = resolve_duplicates(frame, path, duplicates)
    items = None
    if items_path is not None:
        ipath = Path(items_path).expanduser()
        ifmt = sniff_format(ipath, None) if ipath.is_file() else None
        if ifmt is None:
            raise DataError(f"{ipath}: file not found")
        header = list(pd.read_csv(ipath, nrows=0, sep=ifmt.sep).columns)
        id_col = next((c for c in (item_col, *COLUMN_GUESSES["item"]) if c and c in header), None)
        if id_col is None or "title" not in header:
            raise DataError(f"{ipath}: an items file needs an item id column and a 'title' column")
        cols_fmt = tuple("item" if c == id_col else c for c in header)
        items = read_items(ipath, TableFormat(file=ipath.name, sep=ifmt.sep, header=True,
                                              encoding="utf-8", columns=cols_fmt))
    source = {"path": str(path), "md5": md5_of(path), "duplicates": n_dup,
              "duplicate_policy": duplicates}
    return Ratings.from_frame(frame, scale=scale, name=name or path.stem, item_info=items,
                              source=source)
