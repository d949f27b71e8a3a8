"""Read ratings and item tables, with errors that name the file, line and column.

Line numbers are physical lines of the file, as a text editor shows them (the header is line 1):
a quoted field that holds a newline spans several lines, and blank lines count. Blank lines
(empty or whitespace only) are skipped wherever they are, and counted.

Values are read as the file wrote them:
- an id column is numeric only when every value is a canonical integer (no leading zero, no sign,
  no space) that fits 64 bits; otherwise the whole column is kept as strings, exactly as written.
  ``id_type="int"`` or ``"str"`` overrides the guess;
- timestamps become integer seconds since the epoch (UTC), see ``parse_timestamps``;
- ratings become float32, checked to be finite and inside float32's range.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from embedrec.data.registry import TableFormat
from embedrec.errors import DataError, printable

log = logging.getLogger(__name__)

REQUIRED = ("user", "item", "rating")
DUPLICATE_POLICIES = ("last", "first", "mean", "error")
ID_TYPES = ("auto", "int", "str")
# Numeric timestamps at or above this magnitude are milliseconds (1e11 s is the year 5138; 1e11 ms
# is 1973-03-03), below it seconds; at or above MAX_TIMESTAMP they are refused.
MS_THRESHOLD = 1e11
MAX_TIMESTAMP = 1e14
FLOAT32_MAX = float(np.finfo(np.float32).max)
_CANONICAL = r"(?:0|[1-9][0-9]*)"
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
INT64_MAX = np.iinfo(np.int64).max


class RowError(Exception):
    """A bad value at a 0-based data row; the caller turns it into file, line and column."""

    def __init__(self, row: int, message: str):
        super().__init__(message)
        self.row, self.message = int(row), message


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


def _not_text(path: Path, encoding: str, exc: UnicodeDecodeError) -> DataError:
    found = _decode_error_line(path, encoding)
    where = f", line {found[0]}" if found else ""
    byte = found[1] if found else exc.object[exc.start]
    return DataError(f"{path}{where}: not valid {encoding.replace('-sig', '')} text (byte 0x{byte:02x})")


def check_header(names: list[str], path: Path) -> None:
    """Refuse a header that names a column twice (which one would be meant is a guess)."""
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen and name != "":
            raise DataError(f"{path}, line 1: column name {printable(name)!r} appears twice "
                            f"(columns {seen[name]} and {number})")
        seen.setdefault(name, number)


# ---------------------------------------------------------------- the careful reader ----------
@dataclass
class Records:
    """The data rows of a delimited file as strings, with the physical line each starts on."""

    header: list[str] | None
    columns: dict[str, np.ndarray]  # column name -> object array of str (None for a short row)
    lines: np.ndarray  # int64, the physical line of each row
    blank_lines: int


def read_records(path: Path, sep: str, *, header: bool, encoding: str = "utf-8-sig",
                 names: list[str] | None = None, keep: list[str] | None = None) -> Records:
    """Read a delimited file with Python's csv module, tracking physical lines.

    ``names`` names the columns of a file without a header. Only the columns in ``keep`` (all
    when None) are returned. A row with more fields than the header is an error; a row with fewer
    gets None in the missing fields (the value checks then name it).
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    physical = 0
    last = ""

    def source(fh):
        nonlocal physical, last
        for raw in fh:
            physical += 1
            last = raw
            yield raw

    head: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    blank = 0
    end = 0
    try:
        with open(path, encoding=encoding, newline="") as fh:
            reader = csv.reader(source(fh), delimiter=sep, strict=True)
            for row in reader:
                start, end = end + 1, reader.line_num
                if start == end and last.strip() == "":
                    blank += 1
                    continue
                if header and head is None:
                    head = [c.strip() for c in row]
                    continue
                rows.append(row)
                lines.append(start)
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from exc
    except csv.Error as exc:  # e.g. a quote never closed: name the line its record starts on
        raise DataError(f"{path}, line {end + 1}: malformed line ({exc})") from exc
    if header and head is None:
        raise DataError(f"{path}: the file is empty")
    cols = head if header else list(names or [])
    if header:
        check_header(cols, path)
    if not rows:
        raise DataError(f"{path}: no rows after the header" if header else f"{path}: no rows")
    width = len(cols)
    for row, line in zip(rows, lines):
        if len(row) > width:
            raise DataError(f"{path}, line {line}: {len(row)} fields, the header has {width}"
                            if header else f"{path}, line {line}: {len(row)} fields, expected {width}")
    wanted = [c for c in cols if keep is None or c in keep]
    out = {}
    for name in wanted:
        j = cols.index(name)
        out[name] = np.array([r[j] if j < len(r) else None for r in rows], dtype=object)
    return Records(header=head, columns=out, lines=np.asarray(lines, dtype=np.int64),
                   blank_lines=blank)


# ---------------------------------------------------------------- values ----------------------
def _text(values: np.ndarray) -> pd.Series:
    """Values as a Series of Python str (object dtype), None/NaN kept as None."""
    s = pd.Series(values, dtype=object)
    return s.where(s.notna(), None)


def _first(mask) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def parse_ids(values: np.ndarray, id_type: str = "auto", *, role: str = "id") -> np.ndarray:
    """Raw ids as an int64 or str array (see the module docstring); RowError on a bad value."""
    if id_type not in ID_TYPES:
        raise DataError(f"unknown id type {id_type!r}; use one of {', '.join(ID_TYPES)}")
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind in "iu":
        if kind == "u" and len(values) and values.max() > INT64_MAX:
            row = _first(values > INT64_MAX)
            raise RowError(row, f"{role} id {values[row]} is beyond the 64-bit integer range")
        ints = values.astype(np.int64)
        return ints.astype(str) if id_type == "str" else ints
    if kind == "f":
        missing = np.isnan(values)
        if missing.any():
            raise RowError(_first(missing), "missing id")
        fractional = np.mod(values, 1) != 0
        if fractional.any():
            row = _first(fractional)
            raise RowError(row, f"{role} id {values[row]:g} is not a whole number")
        if np.abs(values).max(initial=0) >= 2.0**63:
            raise RowError(_first(np.abs(values) >= 2.0**63), f"{role} id is beyond the 64-bit integer range")
        ints = values.astype(np.int64)
        return ints.astype(str) if id_type == "str" else ints
    s = _text(values).map(lambda v: v if v is None or isinstance(v, str) else str(v))
    missing = s.isna().to_numpy() | (s.fillna("").str.strip() == "").to_numpy()
    if missing.any():
        raise RowError(_first(missing), "missing id")
    if id_type == "str":
        return s.to_numpy().astype(str)
    canonical = s.str.fullmatch(_CANONICAL).to_numpy(dtype=bool)
    if id_type == "auto" and not canonical.all():
        return s.to_numpy().astype(str)
    if id_type == "int":
        ok = s.str.strip().str.fullmatch(r"[+-]?[0-9]+").to_numpy(dtype=bool)
        if not ok.all():
            row = _first(~ok)
            raise RowError(row, f"{s.iloc[row]!r} is not an integer id (id type int)")
    digits = s.str.strip().str.lstrip("+-").str.lstrip("0").str.len().to_numpy()
    for row in np.flatnonzero(digits >= 19):
        number = int(s.iloc[row])
        if not -INT64_MAX - 1 <= number <= INT64_MAX:
            hint = "; read ids as labels with --id-type str (id_type='str')" if id_type == "auto" else ""
            raise RowError(int(row), f"{role} id {printable(s.iloc[row].strip())} is beyond the "
                                     f"64-bit integer range{hint}")
    return np.fromiter((int(v) for v in s), dtype=np.int64, count=len(s))


def parse_ratings(values: np.ndarray, scale: tuple[float, float] | None = None) -> np.ndarray:
    """Finite float32 ratings (inside ``scale`` when given); RowError on a bad value."""
    values = np.asarray(values)
    if values.dtype.kind in "iufb":
        numbers = values.astype(np.float64)
        raw = None
    else:
        raw = _text(values)
        numbers = pd.to_numeric(raw.fillna("").str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = _first(bad)
        shown = None if raw is None else raw.iloc[row]
        if shown is None or str(shown).strip().lower() in ("", "nan"):
            raise RowError(row, "missing rating")
        raise RowError(row, f"{str(shown)!r} is not a finite number")
    big = np.abs(numbers) > FLOAT32_MAX
    if big.any():
        row = _first(big)
        raise RowError(row, f"rating {numbers[row]:g} is beyond the float32 range "
                            f"(+-{FLOAT32_MAX:.4g})")
    if scale is not None:
        lo, hi = scale
        off = (numbers < lo) | (numbers > hi)
        if off.any():
            row = _first(off)
            raise RowError(row, f"rating {numbers[row]:g} is outside the declared scale "
                                f"{lo:g} to {hi:g}")
    return numbers.astype(np.float32)


def _numeric_seconds(numbers: np.ndarray, shown) -> np.ndarray:
    """Seconds from numbers of seconds or milliseconds (by magnitude); RowError when mixed."""
    if numbers.dtype.kind == "f":
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = _first(bad)
            raise RowError(row, f"{shown(row)!r} is not a timestamp")
    size = np.abs(numbers.astype(np.float64))
    huge = size >= MAX_TIMESTAMP
    if huge.any():
        row = _first(huge)
        raise RowError(row, f"timestamp {shown(row)} is out of range (seconds or milliseconds "
                            "since the epoch expected)")
    ms = size >= MS_THRESHOLD
    if len(ms) and (ms != ms[0]).any():
        row = _first(ms != ms[0])
        kinds = ("milliseconds", "seconds") if ms[0] else ("seconds", "milliseconds")
        raise RowError(row, f"timestamp {shown(row)} is in {kinds[1]} but the column's first "
                            f"is in {kinds[0]}: the column mixes units")
    if numbers.dtype.kind in "iu":
        ints = numbers.astype(np.int64)
        return ints // 1000 if len(ms) and ms[0] else ints
    secs = numbers / 1000.0 if len(ms) and ms[0] else numbers
    return np.floor(secs).astype(np.int64)


def parse_timestamps(values: np.ndarray | pd.Series) -> np.ndarray:
    """Integer seconds since the epoch (UTC), floored, from any of:

    - numbers: seconds, or milliseconds when at least 1e11 in magnitude (1e11 ms is 1973-03-03;
      1e11 s would be the year 5138); 1e14 and beyond are refused;
    - ISO-8601 strings (``2024-05-01``, ``2024-05-01T10:00:00``, with ``Z`` or an offset); a
      time without an offset is taken as UTC;
    - datetime or date values of any unit and timezone (Parquet timestamp and date types).

    A column that mixes kinds (numbers and dates, seconds and milliseconds) is refused at its
    first row that differs from the first row. RowError on a bad value.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    kind = series.dtype.kind
    if kind == "M":
        missing = series.isna().to_numpy()
        if missing.any():
            raise RowError(_first(missing), "missing timestamp")
        return series.to_numpy().astype("datetime64[s]").astype(np.int64)
    if kind in "iu":
        arr = series.to_numpy()
        if kind == "u" and len(arr) and arr.max() > INT64_MAX:
            row = _first(arr > INT64_MAX)
            raise RowError(row, f"timestamp {arr[row]} is out of range")
        return _numeric_seconds(arr, lambda r: arr[r])
    if kind == "f":
        arr = series.to_numpy(dtype=np.float64)
        missing = np.isnan(arr)
        if missing.any():
            raise RowError(_first(missing), "missing timestamp")
        return _numeric_seconds(arr, lambda r: f"{arr[r]:g}")
    s = _text(series.to_numpy(dtype=object))
    is_str = s.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if not is_str.all() and s.notna().all():  # Python date/datetime objects (Parquet date32)
        dated = s.map(lambda v: hasattr(v, "year")).to_numpy(dtype=bool)
        if dated.all():
            stamps = pd.to_datetime(s, utc=True, errors="coerce")
            if not stamps.isna().any():
                return parse_timestamps(stamps)
        s = s.map(lambda v: v if isinstance(v, str) else str(v))
    text = s.fillna("").str.strip()
    missing = (text == "").to_numpy()
    if missing.any():
        raise RowError(_first(missing), "missing timestamp")
    numeric = text.str.fullmatch(_NUMBER).to_numpy(dtype=bool)
    if numeric[0]:
        if not numeric.all():
            row = _first(~numeric)
            if pd.isna(pd.to_datetime(text.iloc[row], format="ISO8601", utc=True, errors="coerce")):
                raise RowError(row, f"{str(s.iloc[row])!r} is not a timestamp (seconds, "
                                    "milliseconds or an ISO-8601 date)")
            raise _odd(row, s.iloc[row], "numbers")
        whole = text.str.fullmatch(r"[+-]?[0-9]{1,18}").to_numpy(dtype=bool)
        if whole.all():
            return _numeric_seconds(text.astype(np.int64).to_numpy(), lambda r: text.iloc[r])
        return _numeric_seconds(text.astype(np.float64).to_numpy(), lambda r: text.iloc[r])
    stamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = _first(bad)
        if numeric[row]:
            raise _odd(row, s.iloc[row], "dates")
        raise RowError(row, f"{str(s.iloc[row])!r} is not a timestamp (seconds, milliseconds "
                            "or an ISO-8601 date)")
    return parse_timestamps(stamps)


def _odd(row: int, value, first: str) -> RowError:
    other = "a date" if first == "numbers" else "a number"
    return RowError(row, f"{str(value)!r} is {other} but the column's first value is "
                         f"{'a number' if first == 'numbers' else 'a date'}: the column mixes kinds")


# ---------------------------------------------------------------- frames ----------------------
def validate_ratings(
    frame: pd.DataFrame,
    path: Path,
    *,
    header: bool,
    scale: tuple[float, float] | None,
    file_columns: dict[str, str] | None = None,
    id_type: str = "auto",
    lines: np.ndarray | None = None,
    unit: str = "line",
) -> pd.DataFrame:
    """Check columns and values; return a frame with clean dtypes (int64 or str ids, float32
    ratings, int64 seconds).

    ``lines`` holds each row's physical line (default: consecutive lines after the header);
    ``unit="row"`` names rows instead (a Parquet file has no lines).
    """
    shown = file_columns or {}
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        want = ", ".join(shown.get(c, c) for c in missing)
        have = ", ".join(map(str, frame.columns))
        raise DataError(f"{path}: missing column(s) {want}; the file has: {have}")
    if lines is None:
        lines = np.arange(len(frame), dtype=np.int64) + (2 if header and unit == "line" else 1)
    out = {}
    for role in ("user", "item", "rating", "timestamp"):
        if role not in frame.columns:
            continue
        values = frame[role]
        try:
            if role in ("user", "item"):
                out[role] = parse_ids(values.to_numpy(), id_type, role="user" if role == "user" else "item")
            elif role == "rating":
                out[role] = parse_ratings(values.to_numpy(), scale)
            else:
                out[role] = parse_timestamps(values)
        except RowError as exc:
            raise DataError(f"{path}, {unit} {lines[exc.row]}, column "
                            f"{shown.get(role, role)}: {exc.message}") from None
    return pd.DataFrame(out)


def resolve_duplicates(frame: pd.DataFrame, path: Path, policy: str) -> tuple[pd.DataFrame, int]:
    """Apply the duplicate (user, item) policy; return the frame and how many rows it dropped.

    ``last`` keeps the latest rating (by timestamp when there is one, else by file order),
    ``first`` the earliest, ``mean`` averages them, ``error`` refuses the file. The caller
    reports the count (on every load, cached or not).
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
    if policy == "mean":
        agg = {"rating": "mean"} | ({"timestamp": "max"} if "timestamp" in frame else {})
        merged = frame.groupby(["user", "item"], sort=False, as_index=False).agg(agg)
        merged["rating"] = merged["rating"].astype(np.float32)
        return merged, n_drop
    order = frame.sort_values("timestamp", kind="stable") if "timestamp" in frame else frame
    kept = order.drop_duplicates(["user", "item"], keep=policy).sort_index()
    return kept, n_drop


def read_table(path: Path, fmt: TableFormat, *, dtype=None) -> pd.DataFrame:
    """Read a delimited file with pandas (items files, and ``::`` releases).

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
    kwargs: dict = dict(header=header, encoding=fmt.encoding, skip_blank_lines=True,
                        index_col=False, dtype=dtype)
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
        raise _not_text(path, fmt.encoding, exc) from exc
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


def read_items(path: Path, fmt: TableFormat, genre_flags: tuple[str, ...] = (), *,
               id_type: str | None = None) -> pd.DataFrame:
    """Item metadata indexed by raw item id, with ``title`` and ``genres`` (``|``-joined).

    With ``id_type`` the item ids are read as text and typed like a ratings file's ids
    (``"int"`` or ``"str"``), so that ``00123`` stays ``00123``.
    """
    dtype = str if id_type else None  # all text: a header name is not yet "item"
    try:
        frame = read_table(path, fmt, dtype=dtype)
    except DataError as exc:
        if "not valid" not in str(exc) or fmt.encoding == "latin-1":
            raise
        log.warning("%s is not %s; reading titles as latin-1", path, fmt.encoding)
        frame = read_table(path, TableFormat(**{**fmt.__dict__, "encoding": "latin-1"}), dtype=dtype)
    if "item" not in frame.columns or "title" not in frame.columns:
        raise DataError(f"{path}: an items file needs item id and title columns")
    if id_type:
        frame = frame[frame["item"].notna()].copy()
        ids = frame["item"].astype(object).to_numpy()
        if id_type == "int":
            ok = pd.Series(ids).str.fullmatch(r"\+?[0-9]{1,18}").to_numpy(dtype=bool)
            frame, ids = frame[ok].copy(), ids[ok]  # labels that cannot be int ids match nothing
            frame["item"] = ids.astype(np.int64)
        else:
            frame["item"] = ids.astype(str)
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
        head = ""
        with open(path, "rb") as fh:
            for raw in fh:  # the first line that is not blank
                head = raw.decode("utf-8", errors="replace")
                if head.strip():
                    break
        sep = "\t" if head.count("\t") > head.count(",") else ","
    # utf-8-sig: reads plain UTF-8 too, and drops the byte-order mark spreadsheets write
    return TableFormat(file=path.name, sep=sep, header=True, encoding="utf-8-sig", columns=())


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq

        names = [str(n) for n in pq.read_schema(path).names]
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"{path}: column name {printable(name)!r} appears twice "
                            f"(columns {seen[name]} and {number})")
        seen[name] = number
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc


__all__ = ["read_table", "read_records", "validate_ratings", "resolve_duplicates", "read_items",
           "parse_ids", "parse_ratings", "parse_timestamps", "check_header"]
