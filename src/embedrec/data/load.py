"""Load a MovieLens release or any ratings file into an immutable ``Ratings``.

Delimited files are read by pyarrow's multi-threaded CSV reader straight into typed arrays;
anything it cannot type cleanly (a bad value, an empty field or line, a bad encoding) sends the
file down the careful pandas path, whose errors name the file, line and column. The encoded
result is cached (``embedrec.data.cache``) so a second load takes seconds.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from embedrec.data import cache
from embedrec.data.dataset import IdMap, Ratings
from embedrec.data.fetch import ProgressFn, locate, md5_of
from embedrec.data.readers import (
    DUPLICATE_POLICIES, ID_TYPES, RowError, check_header, parse_ids, parse_ratings,
    parse_timestamps, read_items, read_parquet, read_records, read_table, resolve_duplicates,
    sniff_format, validate_ratings,
)
from embedrec.data.registry import DEFAULT_RELEASE, RELEASES, TableFormat, get_release
from embedrec.errors import ConfigError, DataError

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
    scale: tuple[float, float] | None = None,
) -> Ratings:
    """Load MovieLens release ``name`` from ``data``, $EMBEDREC_DATA, the cache or the web.

    ``scale`` overrides the release's documented rating scale (a rating outside it is an error).
    """
    release = get_release(name)
    scale = _check_scale(scale) or release.scale
    folder = locate(release, data, download=download, progress=progress)
    path = folder / release.ratings.file
    fmt = release.ratings
    columns = {role: role for role in fmt.columns}
    items_path = folder / release.items.file
    items = read_items(items_path, release.items, release.genre_flags) if items_path.is_file() else None
    data_set = _load(path, fmt, columns, scale=scale, duplicates=duplicates, name=name,
                     item_info=items, source={"release": name}, use_cache=use_cache)
    log.info("loaded %s: %d ratings, %d users, %d items", name, len(data_set), data_set.n_users,
             data_set.n_items)
    return data_set


def _check_scale(scale) -> tuple[float, float] | None:
    if scale is None:
        return None
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise ConfigError(f"scale {scale!r}: expected two numbers, LOW and HIGH") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"scale {lo:g} to {hi:g}: expected finite numbers with LOW < HIGH")
    return lo, hi


def parse_scale(text: str | None) -> tuple[float, float] | None:
    """``"0.5,5"`` -> (0.5, 5.0): the --scale option."""
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return _check_scale((float(parts[0]), float(parts[1])))
    except ValueError:
        raise ConfigError(f"--scale {text!r}: expected LOW,HIGH, e.g. 0.5,5") from None


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
    """The header row's names (stripped), after any blank lines."""
    return _header_at(path, sep)[0]


def _header_at(path: Path, sep: str) -> tuple[list[str], int]:
    """The header row's names and its physical line."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        try:
            for row in reader:
                if any(c.strip() for c in row):
                    return [c.strip() for c in row], reader.line_num
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: malformed line ({exc})") from exc
    raise DataError(f"{path}: the file is empty")


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
    id_type: str = "auto",
) -> Ratings:
    """Load a CSV, TSV or Parquet ratings file with a header row, or a MovieLens-style folder
    (``ratings.csv`` and optionally ``movies.csv``, as ``embedrec data synth`` writes).

    ``scale`` is the declared rating range; ratings outside it are an error. When it is None the
    range is taken from the data, and the load says so (a warning, and
    ``source["scale_inferred"]``).

    ``id_type`` is ``"auto"`` (an id column is numeric only when every value is a canonical
    integer: no leading zero, sign or space; otherwise its values are kept as strings, exactly as
    written), ``"int"`` or ``"str"``. Blank lines are skipped and counted
    (``source["blank_lines"]``); timestamps become integer seconds since the epoch (see
    ``embedrec.data.readers.parse_timestamps``).
    """
    if id_type not in ID_TYPES:
        raise ConfigError(f"id type {id_type!r}: use one of {', '.join(ID_TYPES)}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"duplicates policy {duplicates!r}: use one of "
                          f"{', '.join(DUPLICATE_POLICIES)}")
    scale = _check_scale(scale)
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / "ratings.csv").is_file():
            raise DataError(f"{path}: no ratings.csv in this folder")
        movies = path / "movies.csv"
        return load_ratings_file(
            path / "ratings.csv", user_col=user_col, item_col=item_col, rating_col=rating_col,
            timestamp_col=timestamp_col, sep=sep, scale=scale,
            items_path=items_path or (movies if movies.is_file() else None),
            duplicates=duplicates, name=name or path.name, use_cache=use_cache, id_type=id_type)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    given = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    ipath = Path(items_path).expanduser() if items_path is not None else None
    if ipath is not None and not ipath.is_file():
        raise DataError(f"{ipath}: file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = read_parquet(path)
        cols = _pick_columns([str(c) for c in raw.columns], given, path)
        frame = raw[list(cols.values())].set_axis(list(cols), axis=1)
        if len(frame) == 0:
            raise DataError(f"{path}: no rows")
        frame = validate_ratings(frame, path, header=True, scale=scale, file_columns=cols,
                                 id_type=id_type, unit="row")
        frame, n_dup = resolve_duplicates(frame, path, duplicates)
        found = scale or (float(frame["rating"].min()), float(frame["rating"].max()))
        data = Ratings.from_frame(frame, scale=found, name=name or path.stem,
                                  source=_source(path, md5_of(path), n_dup, duplicates, 0,
                                                 scale is None, frame["user"], frame["item"]))
    else:
        fmt = sniff_format(path, sep)
        head = _header(path, fmt.sep)
        check_header(head, path)
        cols = _pick_columns(head, given, path)
        data = _load(path, fmt, cols, scale=scale, duplicates=duplicates, name=name or path.stem,
                     item_info=None, source={}, use_cache=use_cache, id_type=id_type,
                     user_file=True)
    _report(data)
    if ipath is not None:
        data = dataclasses.replace(data, item_info=_items_file(ipath, item_col, data))
    return data


def _items_file(ipath: Path, item_col: str | None, data: Ratings) -> pd.DataFrame:
    """The items file, its ids typed like the ratings' item ids; warns when none match."""
    ifmt = sniff_format(ipath, None)
    header = _header(ipath, ifmt.sep)
    check_header(header, ipath)
    id_col = next((c for c in (item_col, *COLUMN_GUESSES["item"]) if c and c in header), None)
    if id_col is None or "title" not in header:
        raise DataError(f"{ipath}: an items file needs an item id column and a 'title' column")
    cols_fmt = tuple("item" if c == id_col else c for c in header)
    kind = "int" if data.item_map.ids.dtype.kind in "iu" else "str"
    items = read_items(ipath, TableFormat(file=ipath.name, sep=ifmt.sep, header=True,
                                          encoding="utf-8-sig", columns=cols_fmt), id_type=kind)
    matched = int(np.isin(data.item_map.ids, items.index.to_numpy()).sum()) if len(items) else 0
    if matched == 0:
        log.warning("%s: none of its item ids match a rated item (matched 0 / listed %d / "
                    "rated %d); titles will be missing", ipath, len(items), data.n_items)
    elif matched < data.n_items:
        log.info("%s: %d of %d rated items have a title (%d listed)", ipath, matched,
                 data.n_items, len(items))
    data.source.update(items_matched=matched, items_listed=len(items))
    return items


def _source(path: Path, md5: str, n_dup: int, policy: str, blank: int, inferred: bool,
            users: np.ndarray, items: np.ndarray) -> dict:
    kind = {"i": "int", "u": "int"}
    return {"path": str(path), "md5": md5, "duplicates": int(n_dup), "duplicate_policy": policy,
            "blank_lines": int(blank), "scale_inferred": bool(inferred),
            "id_types": {"user": kind.get(np.asarray(users).dtype.kind, "str"),
                         "item": kind.get(np.asarray(items).dtype.kind, "str")}}


def describe_load(data: Ratings) -> str:
    """One line on what loading did: scale (declared or inferred), duplicates, blank lines."""
    src = data.source
    scale = f"scale {data.scale[0]:g} to {data.scale[1]:g}"
    shard = src.get("shard")
    if shard:  # a Parquet folder (embedrec.data.shards): no duplicates resolved across files
        return (f"{data.name}: {sum(shard['rows']):,} ratings in Parquet row groups, "
                f"{len(data):,} read by rank {shard['rank']} of {shard['world']}; {scale}")
    scale += (" inferred from the data (declare it with --scale LOW,HIGH)"
              if src.get("scale_inferred") else "")
    text = (f"{data.name}: {len(data):,} ratings; {scale}; {src.get('duplicates', 0):,} duplicate "
            f"(user, item) rows resolved by policy {src.get('duplicate_policy', 'last')}")
    if src.get("blank_lines"):
        text += f"; {src['blank_lines']:,} blank line(s) skipped"
    return text


def _report(data: Ratings) -> None:
    """Log what a load did to the file (every load, the cached ones too)."""
    src = data.source
    path = src.get("path", data.name)
    if src.get("blank_lines"):
        log.info("%s: skipped %d blank line(s)", path, src["blank_lines"])
    if src.get("duplicates"):
        log.warning("%s: %d duplicate (user, item) rows resolved by policy %r", path,
                    src["duplicates"], src.get("duplicate_policy"))
    else:
        log.info("%s: no duplicate (user, item) rows (policy %r)", path, src.get("duplicate_policy"))
    if src.get("scale_inferred"):
        log.info("%s: rating scale %g to %g inferred from the data; declare it with "
                    "--scale LOW,HIGH (scale=(LOW, HIGH) in Python)", path, *data.scale)


# ---------------------------------------------------------------- the shared loading path ----
def _load(path: Path, fmt: TableFormat, columns: dict[str, str], *, scale, duplicates: str,
          name: str, item_info, source: dict, use_cache: bool, id_type: str = "auto",
          user_file: bool = False) -> Ratings:
    """Read (fast or careful), validate, encode, resolve duplicates; through the cache.

    ``columns`` maps roles (user, item, rating, timestamp) to the file's column names (for a
    file without a header: to ``fmt.columns``).
    """
    md5 = md5_of(path)
    options = {"columns": columns, "scale": list(scale) if scale else None,
               "duplicates": duplicates, "sep": fmt.sep, "header": fmt.header,
               "id_type": id_type, "user_file": user_file}
    hit = cache.load(path, md5, options) if use_cache else None
    if hit is not None:
        arrays, manifest = hit["arrays"], hit["manifest"]
        n_dup, found_scale = manifest["duplicates"], tuple(manifest["scale"])
        blank = manifest.get("blank_lines", 0)
    else:
        raw = _read_fast(path, fmt, columns, scale, id_type, user_file)
        if raw is not None:
            blank = raw.pop("blank_lines")
        else:
            raw, blank = _read_careful(path, fmt, columns, scale, id_type)
        arrays, n_dup = _encode(raw, path, duplicates)
        found_scale = scale or (float(arrays["ratings"].min()), float(arrays["ratings"].max()))
        if use_cache:
            cache.store(path, md5, options, arrays,
                        {"duplicates": n_dup, "scale": list(found_scale), "blank_lines": blank})
    return Ratings(
        users=arrays["users"], items=arrays["items"], ratings=arrays["ratings"],
        timestamps=arrays.get("timestamps"), user_map=IdMap(arrays["user_ids"]),
        item_map=IdMap(arrays["item_ids"]), scale=(float(found_scale[0]), float(found_scale[1])),
        name=name, item_info=item_info,
        source=_source(path, md5, n_dup, duplicates, blank, scale is None, arrays["user_ids"],
                       arrays["item_ids"]) | source)


def _arrow_ids(col, id_type: str):
    """Ids from a pyarrow string column, or None when the careful path must decide."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pc.any(pc.match_substring_regex(col, r"^\s*$")).as_py():
        return None  # a missing id: the careful path names its line
    if id_type != "str" and pc.all(pc.match_substring_regex(col, r"^(0|[1-9][0-9]*)$")).as_py():
        try:
            return pc.cast(col, pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # beyond int64: the careful path names the line
            return None
    if id_type == "int":
        return None
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object).astype(str)


def _read_fast(path: Path, fmt: TableFormat, columns: dict[str, str], scale, id_type: str = "auto",
               user_file: bool = False) -> dict | None:
    """Typed arrays by pyarrow, or None when the file needs the careful path.

    MovieLens release files have integer ids by definition; a user's file is read as text and
    typed by ``parse_ids``' rules. Anything odd (a bad value, a blank line, a value the checks
    refuse) returns None, so that the careful path names the line.
    """
    if fmt.sep == "::" or fmt.encoding.lower().replace("-", "") not in ("utf8", "utf8sig"):
        return None
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if fmt.header:
        names, line = _header_at(path, fmt.sep)
        if line != 1:
            return None
    else:
        names = list(fmt.columns)
    # None (a release file, which has none, or quotes): empty lines go to the careful path
    blank = _empty_lines(path) if user_file else None
    if fmt.header and fmt.columns:  # a MovieLens header: our names for its columns, by position
        names = list(fmt.columns) + names[len(fmt.columns):]
    if user_file:
        types = {"user": pa.string(), "item": pa.string(), "rating": pa.float64(),
                 "timestamp": pa.string()}
    else:
        types = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float64(),
                 "timestamp": pa.int64()}
    wanted = {role: col for role, col in columns.items() if col in names}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if fmt.header else 0,
                                           block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=fmt.sep,
                                             ignore_empty_lines=blank is not None,
                                             newlines_in_values=user_file),
            convert_options=pacsv.ConvertOptions(
                column_types={col: types[role] for role, col in wanted.items()},
                include_columns=list(wanted.values()), strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        log.debug("fast reader declined %s (%s); reading it carefully", path, exc)
        return None
    if table.num_rows == 0 or any(table.column(c).null_count for c in wanted.values()):
        return None
    try:
        out = {}
        for role, col in wanted.items():
            column = table.column(col)
            if role in ("user", "item"):
                out[role] = (_arrow_ids(column, id_type) if user_file
                             else parse_ids(column.to_numpy(), id_type))
                if out[role] is None:
                    return None
            elif role == "rating":
                out[role] = parse_ratings(column.to_numpy(), scale)
            elif user_file:
                try:
                    numbers = column.cast(pa.int64()).to_numpy()
                except pa.ArrowInvalid:
                    numbers = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
                out[role] = parse_timestamps(numbers)
            else:
                out[role] = parse_timestamps(column.to_numpy())
    except RowError:
        return None  # the careful path names the line
    out["blank_lines"] = blank or 0
    return out


def _empty_lines(path: Path, chunk: int = 1 << 24) -> int | None:
    """How many empty lines (``\\n`` or ``\\r\\n`` alone) the file holds, or None when that count
    could be wrong: the file has quotes (an empty line may sit inside a quoted value)."""
    count, tail = 0, b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            if b'"' in block:
                return None
            buf = tail + block
            data = np.frombuffer(buf, dtype=np.uint8)
            nl = data == 10
            pairs = nl[:-1] & nl[1:]
            triples = nl[:-2] & (data[1:-1] == 13) & nl[2:]
            # a pair lying wholly in the previous block's tail was counted with that block
            count += int(pairs[max(len(tail) - 1, 0):].sum()) + int(triples.sum())
            tail = buf[-2:]
    return count


def _read_careful(path: Path, fmt: TableFormat, columns: dict[str, str], scale,
                  id_type: str = "auto") -> tuple[dict, int]:
    """Every error names the file, the physical line and the column. Returns (arrays, blank lines)."""
    if fmt.sep == "::":
        frame = read_table(path, fmt)
        shown = None
        lines = None
        blank = 0
    else:
        if fmt.header and not fmt.columns:
            rec = read_records(path, fmt.sep, header=True, encoding=fmt.encoding,
                               keep=list(columns.values()))
            frame = pd.DataFrame({role: rec.columns[col] for role, col in columns.items()})
            shown = columns
        else:
            rec = read_records(path, fmt.sep, header=fmt.header, encoding=fmt.encoding,
                               names=list(fmt.columns))
            if fmt.header:  # a MovieLens header: our names for its columns, by position
                width = len(rec.header)
                names = list(fmt.columns)[:width] + rec.header[len(fmt.columns):]
                rec.columns = dict(zip(names, [rec.columns[c] for c in rec.header]))
            frame = pd.DataFrame({role: rec.columns[role] for role in columns
                                  if role in rec.columns})
            shown = None
        lines, blank = rec.lines, rec.blank_lines
    frame = validate_ratings(frame, path, header=fmt.header, scale=scale, file_columns=shown,
                             id_type=id_type, lines=lines)
    out = {role: frame[role].to_numpy() for role in ("user", "item", "rating")}
    if "timestamp" in frame:
        out["timestamp"] = frame["timestamp"].to_numpy()
    return out, blank


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
    return ids.astype(str) if ids.dtype.kind in "OT" else ids


def is_release_folder(path: Path) -> bool:
    """Whether ``path`` names a registry release folder (so --data means that release)."""
    return release_of_folder(path) is not None


def release_of_folder(path: Path) -> str | None:
    """The release a folder is named after (``ml-10M100K`` -> ``ml-10m``), or None."""
    return next((r.name for r in RELEASES.values() if path.name in (r.name, r.folder)), None)
