"""Load a MovieLens release or any ratings file into an immutable ``Ratings``.

Delimited files are read by pyarrow's multi-threaded CSV reader straight into typed arrays;
anything it cannot type cleanly (a bad value, an empty field or line, a bad encoding) sends the
file down the careful pandas path, whose errors name the file, line and column. The encoded
result is cached (``embedrec.data.cache``) so a second load takes seconds.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from embedrec.data import cache
from embedrec.data.dataset import IdMap, Ratings
from embedrec.data.fetch import ProgressFn, locate, md5_of
from embedrec.data.readers import (
    read_items, read_parquet, read_table, resolve_duplicates, sniff_format, validate_ratings,
)
from embedrec.data.registry import DEFAULT_RELEASE, RELEASES, TableFormat, get_release
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
    use_cache: bool = True,
) -> Ratings:
    """Load MovieLens release ``name`` from ``data``, $EMBEDREC_DATA, the cache or the web."""
    release = get_release(name)
    folder = locate(release, data, download=download, progress=progress)
    path = folder / release.ratings.file
    fmt = release.ratings
    columns = {role: role for role in fmt.columns}
    items_path = folder / release.items.file
    items = read_items(items_path, release.items, release.genre_flags) if items_path.is_file() else None
    data_set = _load(path, fmt, columns, scale=release.scale, duplicates=duplicates, name=name,
                     item_info=items, source={"release": name}, use_cache=use_cache)
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
                f"the file has: {', '.join(header)}; rename that column, or name it with "
                f"load_ratings_file(..., {role}_col=...)"
            )
    return chosen


def _header(path: Path, sep: str) -> list[str]:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        first = next(csv.reader(fh, delimiter=sep), [])
    return [c.strip() for c in first]


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
    use_cache: bool = True,
) -> Ratings:
    """Load a CSV, TSV or Parquet ratings file with a header row, or a MovieLens-style folder
    (``ratings.csv`` and optionally ``movies.csv``, as ``embedrec data synth`` writes).

    ``scale`` is the declared rating range; ratings outside it are an error. When it is None the
    range is taken from the data.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / "ratings.csv").is_file():
            raise DataError(f"{path}: no ratings.csv in this folder")
        movies = path / "movies.csv"
        return load_ratings_file(
            path / "ratings.csv", user_col=user_col, item_col=item_col, rating_col=rating_col,
            timestamp_col=timestamp_col, sep=sep, scale=scale,
            items_path=items_path or (movies if movies.is_file() else None),
            duplicates=duplicates, name=name or path.name, use_cache=use_cache)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    given = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    items = _items_file(Path(items_path).expanduser(), item_col) if items_path is not None else None
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = read_parquet(path)
        cols = _pick_columns([str(c) for c in raw.columns], given, path)
        frame = raw.rename(columns={v: k for k, v in cols.items()})
        frame = validate_ratings(frame, path, header=True, scale=scale, file_columns=cols)
        frame, n_dup = resolve_duplicates(frame, path, duplicates)
        source = {"path": str(path), "md5": md5_of(path), "duplicates": n_dup,
                  "duplicate_policy": duplicates}
        return Ratings.from_frame(frame, scale=scale, name=name or path.stem, item_info=items,
                                  source=source)
    fmt = sniff_format(path, sep)
    cols = _pick_columns(_header(path, fmt.sep), given, path)
    return _load(path, fmt, cols, scale=scale, duplicates=duplicates, name=name or path.stem,
                 item_info=items, source={}, use_cache=use_cache)


def _items_file(ipath: Path, item_col: str | None) -> pd.DataFrame:
    if not ipath.is_file():
        raise DataError(f"{ipath}: file not found")
    ifmt = sniff_format(ipath, None)
    header = _header(ipath, ifmt.sep)
    id_col = next((c for c in (item_col, *COLUMN_GUESSES["item"]) if c and c in header), None)
    if id_col is None or "title" not in header:
        raise DataError(f"{ipath}: an items file needs an item id column and a 'title' column")
    cols_fmt = tuple("item" if c == id_col else c for c in header)
    return read_items(ipath, TableFormat(file=ipath.name, sep=ifmt.sep, header=True,
                                         encoding="utf-8", columns=cols_fmt))


# ---------------------------------------------------------------- the shared loading path ----
def _load(path: Path, fmt: TableFormat, columns: dict[str, str], *, scale, duplicates: str,
          name: str, item_info, source: dict, use_cache: bool) -> Ratings:
    """Read (fast or careful), validate, encode, resolve duplicates; through the cache.

    ``columns`` maps roles (user, item, rating, timestamp) to the file's column names (for a
    file without a header: to ``fmt.columns``).
    """
    md5 = md5_of(path)
    options = {"columns": columns, "scale": list(scale) if scale else None,
               "duplicates": duplicates, "sep": fmt.sep, "header": fmt.header}
    hit = cache.load(path, md5, options) if use_cache else None
    if hit is not None:
        arrays, manifest = hit["arrays"], hit["manifest"]
        n_dup, found_scale = manifest["duplicates"], tuple(manifest["scale"])
    else:
        raw = _read_fast(path, fmt, columns, scale)
        if raw is None:
            raw = _read_careful(path, fmt, columns, scale)
        arrays, n_dup = _encode(raw, path, duplicates)
        found_scale = scale or (float(arrays["ratings"].min()), float(arrays["ratings"].max()))
        if use_cache:
            cache.store(path, md5, options, arrays,
                        {"duplicates": n_dup, "scale": list(found_scale)})
    return Ratings(
        users=arrays["users"], items=arrays["items"], ratings=arrays["ratings"],
        timestamps=arrays.get("timestamps"), user_map=IdMap(arrays["user_ids"]),
        item_map=IdMap(arrays["item_ids"]), scale=(float(found_scale[0]), float(found_scale[1])),
        name=name, item_info=item_info,
        source={"path": str(path), "md5": md5, "duplicates": n_dup,
                "duplicate_policy": duplicates} | source)


def _read_fast(path: Path, fmt: TableFormat, columns: dict[str, str], scale) -> dict | None:
    """Typed arrays by pyarrow, or None when the file needs the careful path."""
    if fmt.sep == "::" or fmt.encoding.lower().replace("-", "") not in ("utf8", "utf8sig"):
        return None
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = _header(path, fmt.sep) if fmt.header else list(fmt.columns)
    if fmt.header and fmt.columns:  # a MovieLens header: our names for its columns, by position
        names = list(fmt.columns) + names[len(fmt.columns):]
    types = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float64(),
             "timestamp": pa.int64()}
    wanted = {role: col for role, col in columns.items() if col in names}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if fmt.header else 0,
                                           block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=fmt.sep, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={col: types[role] for role, col in wanted.items()},
                include_columns=list(wanted.values()), strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        log.debug("fast reader declined %s (%s); reading it carefully", path, exc)
        return None
    if table.num_rows == 0 or any(table.column(c).null_count for c in wanted.values()):
        return None
    out = {role: table.column(col).to_numpy() for role, col in wanted.items()}
    del table
    rating = out["rating"]
    if not np.isfinite(rating).all():
        return None
    if scale is not None and ((rating < scale[0]) | (rating > scale[1])).any():
        return None  # the careful path names the line
    out["rating"] = rating.astype(np.float32)
    return out


def _read_careful(path: Path, fmt: TableFormat, columns: dict[str, str], scale) -> dict:
    """The pandas path: slower, and every error names the file, line and column."""
    if fmt.header and not fmt.columns:
        frame = read_table(path, fmt).rename(columns={v: k for k, v in columns.items()})
        shown = columns
    else:
        frame = read_table(path, fmt)
        shown = None
    frame = validate_ratings(frame, path, header=fmt.header, scale=scale, file_columns=shown)
    out = {role: frame[role].to_numpy() for role in ("user", "item", "rating") }
    if "timestamp" in frame:
        out["timestamp"] = frame["timestamp"].to_numpy()
    return out


def _encode(raw: dict, path: Path, duplicates: str) -> tuple[dict, int]:
    """Contiguous indices in sorted raw-id order; duplicates found with one sort, resolved by
    the documented policy (rare, so that part may use pandas)."""
    user_ids, users = np.unique(raw["user"], return_inverse=True)
    item_ids, items = np.unique(raw["item"], return_inverse=True)
    keys = users.astype(np.int64) * len(item_ids) + items
    sorted_keys = np.sort(keys)
    n_dup = 0
    if (sorted_keys[1:] == sorted_keys[:-1]).any():
        frame = pd.DataFrame({"user": raw["user"], "item": raw["item"], "rating": raw["rating"]}
                             | ({"timestamp": raw["timestamp"]} if "timestamp" in raw else {}))
        frame, n_dup = resolve_duplicates(frame, path, duplicates)
        raw = {k: frame[k].to_numpy() for k in frame.columns}
        user_ids, users = np.unique(raw["user"], return_inverse=True)
        item_ids, items = np.unique(raw["item"], return_inverse=True)
    arrays = {"users": users.astype(np.int32), "items": items.astype(np.int32),
              "ratings": np.asarray(raw["rating"], dtype=np.float32),
              "user_ids": _plain(user_ids), "item_ids": _plain(item_ids)}
    if "timestamp" in raw:
        arrays["timestamps"] = np.asarray(raw["timestamp"], dtype=np.int64)
    return arrays, n_dup


def _plain(ids: np.ndarray) -> np.ndarray:
    """Ids as a numeric or fixed-width string array (object arrays cannot be cached safely)."""
    return ids.astype(str) if ids.dtype == object else ids


def is_release_folder(path: Path) -> bool:
    """Whether ``path`` names a registry release folder (so --data means that release)."""
    return release_of_folder(path) is not None


def release_of_folder(path: Path) -> str | None:
    """The release a folder is named after (``ml-10M100K`` -> ``ml-10m``), or None."""
    return next((r.name for r in RELEASES.values() if path.name in (r.name, r.folder)), None)
