"""Read ratings and item tables into pandas, with errors that name the file, line and column.

Line numbers are 1-based lines of the file as a text editor shows them (the header is line 1).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from embedrec.data.registry import TableFormat
from embedrec.errors import DataError

log = logging.getLogger(__name__)

REQUIRED = ("user", "item", "rating")
DUPLICATE_POLICIES = ("last", "first", "mean", "error")


def _decode_error_line(path: Path, encoding: str) -> tuple[int, int] | None:
    """(1-based line, offending byte) of the first line that is not valid ``encoding`` text.

    pandas' UnicodeDecodeError only holds the bad field, so its offsets cannot give the line.
    """
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                return number, raw[exc.start]
    return None


def read_table(path: Path, fmt: TableFormat) -> pd.DataFrame:
    """Read a delimited file.

    When ``fmt.columns`` is set, the columns come back under those names (user, item, rating, ...)
    in file order, whatever the header says; when it is empty, the header's own names are kept.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    sep, header = fmt.sep, (0 if fmt.header else None)
    # Numeric "::" files (ratings.dat) split on ':' with the fast C engine, the real fields being
    # every other one; files with titles ("Star Wars: Episode IV") need a true "::" split.
    fast_dat = sep == "::" and "title" not in fmt.columns
    # index_col=False: a row with one field too many is an error, never a shifted index
    kwargs: dict = dict(header=header, encoding=fmt.encoding, skip_blank_lines=False,
                        index_col=False)
    if fast_dat:
        kwargs.update(sep=":", usecols=list(range(0, 2 * len(fmt.columns), 2)), low_memory=False)
    elif sep == "::":
        kwargs.update(sep="::", engine="python", quoting=csv.QUOTE_NONE)
    else:
        kwargs.update(sep=sep, low_memory=False)
    if not fmt.header:
        kwargs["names"] = None if fast_dat else list(fmt.columns)
    try:
        frame = pd.read_csv(path, **kwargs)
    except UnicodeDecodeError as exc:
        found = _decode_error_line(path, fmt.encoding)
        where = f", line {found[0]}" if found else ""
        byte = found[1] if found else exc.object[exc.start]
        raise DataError(
            f"{path}{where}: not valid {fmt.encoding.replace('-sig', '')} text (byte 0x{byte:02x})"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed line ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    if fast_dat:
        frame.columns = list(fmt.columns)[: frame.shape[1]]
    if fmt.header and fmt.columns:
        head = list(fmt.columns)[: frame.shape[1]]
        frame.columns = head + [str(c) for c in frame.columns[len(head):]]
    elif fmt.header:
        frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{path}: no rows after the header")
    return frame


def _first_line(mask: np.ndarray, header: bool) -> int:
    return int(np.flatnonzero(mask)[0]) + (2 if header else 1)


def validate_ratings(
    frame: pd.DataFrame,
    path: Path,
    *,
    header: bool,
    scale: tuple[float, float] | None,
    file_columns: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Check columns and values; return a frame with clean dtypes (ids as read, float32 ratings)."""
    shown = file_columns or {}
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        want = ", ".join(shown.get(c, c) for c in missing)
        have = ", ".join(map(str, frame.columns))
        raise DataError(f"{path}: missing column(s) {want}; the file has: {have}")
    out = pd.DataFrame()
    for col in ("user", "item"):
        values = frame[col]
        bad = values.isna().to_numpy()
        if bad.any():
            line = _first_line(bad, header)
            raise DataError(f"{path}, line {line}, column {shown.get(col, col)}: missing id")
        if values.dtype.kind == "f":
            if not np.all(np.mod(values.to_numpy(), 1) == 0):
                line = _first_line(np.mod(values.to_numpy(), 1) != 0, header)
                raise DataError(f"{path}, line {line}, column {shown.get(col, col)}: id is not a whole number")
            values = values.astype(np.int64)
        out[col] = values
    out["rating"] = _numeric(frame["rating"], path, header, shown.get("rating", "rating"), scale)
    if "timestamp" in frame.columns:
        ts = pd.to_numeric(frame["timestamp"], errors="coerce")
        bad = ts.isna().to_numpy()
        if bad.any():
            line = _first_line(bad, header)
            raise DataError(
                f"{path}, line {line}, column {shown.get('timestamp', 'timestamp')}: "
                f"{str(frame['timestamp'].iloc[line - (2 if header else 1)])!r} is not a timestamp"
            )
        out["timestamp"] = ts.to_numpy().astype(np.int64)
    return out


def _numeric(
    values: pd.Series, path: Path, header: bool, name: str, scale: tuple[float, float] | None
) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        line = _first_line(bad, header)
        raw = values.iloc[line - (2 if header else 1)]
        what = "missing rating" if pd.isna(raw) or str(raw).strip().lower() in ("", "nan") else (
            f"{str(raw)!r} is not a finite number")
        raise DataError(f"{path}, line {line}, column {name}: {what}")
    if scale is not None:
        lo, hi = scale
        off = (numbers < lo) | (numbers > hi)
        if off.any():
            line = _first_line(off, header)
            raise DataError(
                f"{path}, line {line}, column {name}: rating {numbers[off][0]:g} is outside the "
                f"declared scale {lo:g} to {hi:g}"
            )
    return numbers.astype(np.float32)


def resolve_duplicates(frame: pd.DataFrame, path: Path, policy: str) -> tuple[pd.DataFrame, int]:
    """Apply the duplicate (user, item) policy; return the frame and how many rows it dropped.

    ``last`` keeps the latest rating (by timestamp when there is one, else by file order),
    ``first`` the earliest, ``mean`` averages them, ``error`` refuses the file.
    """
    if policy not in DUPLICATE_POLICIES:
        raise DataError(f"unknown duplicate policy {policy!r}; use one of {DUPLICATE_POLICIES}")
    dup = frame.duplicated(["user", "item"], keep=False).to_numpy()
    if not dup.any():
        return frame, 0
    n_groups = int(frame[dup].drop_duplicates(["user", "item"]).shape[0])
    n_drop = int(dup.sum()) - n_groups
    if policy == "error":
        first = frame.loc[dup, ["user", "item"]].iloc[0]  # ids only: a full row upcasts to float
        raise DataError(
            f"{path}: {n_drop} duplicate (user, item) rows, e.g. user {first['user']} "
            f"item {first['item']}; choose a duplicates policy (last, first, mean)"
        )
    log.warning("%s: %d duplicate (user, item) rows resolved by policy %r", path, n_drop, policy)
    if policy == "mean":
        agg = {"rating": "mean"} | ({"timestamp": "max"} if "timestamp" in frame else {})
        merged = frame.groupby(["user", "item"], sort=False, as_index=False).agg(agg)
        merged["rating"] = merged["rating"].astype(np.float32)
        return merged, n_drop
    order = frame.sort_values("timestamp", kind="stable") if "timestamp" in frame else frame
    kept = order.drop_duplicates(["user", "item"], keep=policy).sort_index()
    return kept, n_drop


def read_items(path: Path, fmt: TableFormat, genre_flags: tuple[str, ...] = ()) -> pd.DataFrame:
    """Item metadata indexed by raw item id, with ``title`` and ``genres`` (``|``-joined)."""
    try:
        frame = read_table(path, fmt)
    except DataError as exc:
        if "not valid" not in str(exc) or fmt.encoding == "latin-1":
            raise
        log.warning("%s is not %s; reading titles as latin-1", path, fmt.encoding)
        frame = read_table(path, TableFormat(**{**fmt.__dict__, "encoding": "latin-1"}))
    if "item" not in frame.columns or "title" not in frame.columns:
        raise DataError(f"{path}: an items file needs item id and title columns")
    if genre_flags:
        flags = frame[list(genre_flags)].to_numpy(dtype=bool)
        names = np.array(genre_flags, dtype=object)
        frame["genres"] = ["|".join(names[row]) or "(no genres listed)" for row in flags]
    if "genres" not in frame.columns:
        frame["genres"] = ""
    frame["title"] = frame["title"].astype(str)
    frame["genres"] = frame["genres"].fillna("").astype(str)
    keep = ["item", "title", "genres"] + list(genre_flags)
    return frame[keep].drop_duplicates("item").set_index("item")


def sniff_format(path: Path, sep: str | None) -> TableFormat:
    """A TableFormat for a user's own CSV/TSV file with a header row."""
    if sep is None:
        with open(path, "rb") as fh:
            head = fh.readline().decode("utf-8", errors="replace")
        sep = "\t" if head.count("\t") > head.count(",") else ","
    # utf-8-sig: reads plain UTF-8 too, and drops the byte-order mark spreadsheets write
    return TableFormat(file=path.name, sep=sep, header=True, encoding="utf-8-sig", columns=())


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc


__all__ = ["read_table", "validate_ratings", "resolve_duplicates", "read_items"]
