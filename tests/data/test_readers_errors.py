"""Bad input: every DataError names the file, the 1-based line (header = line 1) and the column."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedrec.data import load_ratings_file
from embedrec.data.readers import read_table, resolve_duplicates, validate_ratings
from embedrec.data.registry import TableFormat
from embedrec.errors import DataError

HEADER = "userId,movieId,rating\n"


def at(path: Path, rest: str) -> str:
    """A regex for '<path><rest>' with the path escaped."""
    return re.escape(str(path)) + rest


# ---- columns ------------------------------------------------------------------------------------
def test_missing_rating_column_names_file_and_columns(write):
    path = write("no_rating.csv", "userId,movieId,stars\n1,10,4\n")
    with pytest.raises(DataError, match=at(path, r": cannot find the rating column \(tried rating, "
                                                 r"Rating, score\); the file has: userId, movieId, stars")):
        load_ratings_file(path)


def test_missing_user_column(write):
    path = write("no_user.csv", "who,movieId,rating\n1,10,4\n")
    with pytest.raises(DataError, match=at(path, r": cannot find the user column")):
        load_ratings_file(path)


def test_named_column_absent_from_header(write):
    path = write("named.csv", HEADER + "1,10,4\n")
    with pytest.raises(DataError, match=at(path, r": no column 'stars' for rating; the file has: "
                                                 r"userId, movieId, rating")):
        load_ratings_file(path, rating_col="stars")


def test_validate_ratings_lists_missing_columns_by_file_name(tmp_path):
    frame = pd.DataFrame({"user": [1], "item": [2]})
    path = tmp_path / "r.csv"
    with pytest.raises(DataError, match=at(path, r": missing column\(s\) stars; the file has: user, item")):
        validate_ratings(frame, path, header=True, scale=None, file_columns={"rating": "stars"})


# ---- values -------------------------------------------------------------------------------------
def test_non_numeric_rating_names_line_3_and_column(write):
    path = write("abc.csv", HEADER + "1,10,4\n1,11,abc\n2,10,3\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column rating: 'abc' is not a finite number")):
        load_ratings_file(path)


@pytest.mark.parametrize("value", ["NaN", "nan", ""])
def test_missing_or_nan_rating(write, value):
    path = write("nan.csv", HEADER + "1,10,4\n2,10,3\n1,11," + value + "\n")
    with pytest.raises(DataError, match=at(path, r", line 4, column rating: missing rating")):
        load_ratings_file(path)


def test_infinite_rating(write):
    path = write("inf.csv", HEADER + "1,10,4\n1,11,inf\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column rating: 'inf' is not a finite number")):
        load_ratings_file(path)


def test_error_names_the_files_own_column(write):
    path = write("stars.csv", "u,i,stars\n1,10,4\n1,11,x\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column stars: 'x' is not a finite number")):
        load_ratings_file(path, user_col="u", item_col="i", rating_col="stars")


def test_rating_above_declared_scale(write):
    path = write("scale.csv", HEADER + "1,10,4\n1,11,0.5\n2,10,7\n2,11,5\n")
    with pytest.raises(DataError, match=at(path, r", line 4, column rating: rating 7 is outside the "
                                                 r"declared scale 0\.5 to 5")):
        load_ratings_file(path, scale=(0.5, 5.0))


def test_rating_below_declared_scale(write):
    path = write("low.csv", HEADER + "1,10,4\n1,11,0\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column rating: rating 0 is outside")):
        load_ratings_file(path, scale=(0.5, 5.0))


def test_scale_bounds_are_inclusive_and_default_to_the_data(write):
    path = write("ok.csv", HEADER + "1,10,0.5\n1,11,5\n2,10,3\n")
    assert load_ratings_file(path, scale=(0.5, 5.0)).scale == (0.5, 5.0)
    assert load_ratings_file(path).scale == (0.5, 5.0)
    path2 = write("ok2.csv", HEADER + "1,10,2\n1,11,4\n")
    assert load_ratings_file(path2).scale == (2.0, 4.0)


def test_missing_id(write):
    path = write("noid.csv", HEADER + "1,10,4\n,11,3\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column userId: missing id")):
        load_ratings_file(path)


def test_fractional_id_is_a_label(write):
    """11.5 is not a canonical integer, so the item column is kept as written (issue 16)."""
    data = load_ratings_file(write("fracid.csv", HEADER + "1,10,4\n2,11,3\n2,11.5,3\n"))
    assert data.item_map.to_list() == ["10", "11", "11.5"]
    assert data.user_map.to_list() == [1, 2]


def test_blank_line_in_the_middle_is_skipped_and_counted(write):
    data = load_ratings_file(write("blank.csv", HEADER + "1,10,4\n\n2,11,3\n"))
    assert data.to_frame().values.tolist() == [[1, 10, 4.0], [2, 11, 3.0]]
    assert data.source["blank_lines"] == 1


def test_bad_timestamp(write):
    path = write("ts.csv", "userId,movieId,rating,timestamp\n1,10,4,100\n1,11,3,soon\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column timestamp: 'soon' is not a timestamp")):
        load_ratings_file(path)


def test_line_with_too_many_fields(write):
    path = write("wide.csv", HEADER + "1,10,4\n1,11,3,9\n")
    with pytest.raises(DataError, match=at(path, r", line 3: 4 fields, the header has 3$")):
        load_ratings_file(path)


def test_headerless_release_file_counts_lines_from_1(tmp_path):
    """Without a header the first data row is line 1 (ml-100k's u.data)."""
    path = tmp_path / "u.data"
    path.write_text("1\t10\t4\t5\n1\t11\t6\t6\n")
    fmt = TableFormat(file="u.data", sep="\t", header=False, encoding="utf-8",
                      columns=("user", "item", "rating", "timestamp"))
    frame = read_table(path, fmt)
    with pytest.raises(DataError, match=at(path, r", line 2, column rating: rating 6 is outside")):
        validate_ratings(frame, path, header=False, scale=(1.0, 5.0))


# ---- whole-file problems ------------------------------------------------------------------------
def test_empty_file(write):
    path = write("empty.csv", b"")
    with pytest.raises(DataError, match=at(path, r": the file is empty")):
        load_ratings_file(path)


@pytest.mark.parametrize("content", [HEADER, HEADER.rstrip("\n")])
def test_header_only_file(write, content):
    path = write("header.csv", content)
    with pytest.raises(DataError, match=at(path, r": no rows after the header")):
        load_ratings_file(path)


def test_invalid_utf8_names_the_line(write):
    path = write("latin.csv", HEADER.encode() + b"1,10,4\n1,11,3\nab\xffc,12,5\n2,10,1\n")
    with pytest.raises(DataError, match=at(path, r", line 4: not valid utf-8 text \(byte 0xff\)")):
        load_ratings_file(path)


def test_invalid_utf8_far_into_the_file(write):
    """The line is counted in the file, not inside pandas' chunk or field."""
    body = b"".join(b"%d,%d,3\n" % (u, u + 1) for u in range(1, 2001))
    path = write("late.csv", HEADER.encode() + body + b"7,8,\xff\n")
    with pytest.raises(DataError, match=at(path, r", line 2002: not valid utf-8 text \(byte 0xff\)")):
        load_ratings_file(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(DataError, match=at(path, r": file not found")):
        load_ratings_file(path)


def test_missing_items_file(write, tmp_path):
    path = write("r.csv", HEADER + "1,10,4\n")
    with pytest.raises(DataError, match=at(tmp_path / "movies.csv", r": file not found")):
        load_ratings_file(path, items_path=tmp_path / "movies.csv")


def test_corrupt_parquet(write):
    path = write("r.parquet", b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=at(path, r": not a readable Parquet file")):
        load_ratings_file(path)


# ---- duplicates ---------------------------------------------------------------------------------
# (1, 10) is rated three times: 2.0 at t=100 (line 2), 4.0 at t=50 (line 3), 5.0 at t=70 (line 5).
DUPES = (
    "userId,movieId,rating,timestamp\n"
    "1,10,2.0,100\n"
    "1,10,4.0,50\n"
    "2,10,1.0,10\n"
    "1,10,5.0,70\n"
    "2,20,3.0,20\n"
)


@pytest.mark.parametrize(
    ("policy", "rating", "timestamp"),
    [
        ("last", 2.0, 100),  # latest timestamp wins, not the last line
        ("first", 4.0, 50),  # earliest timestamp
        ("mean", np.float32((2.0 + 4.0 + 5.0) / 3), 100),  # mean rating, latest time
    ],
)
def test_duplicate_policies_with_timestamps(write, policy, rating, timestamp):
    data = load_ratings_file(write("dupes.csv", DUPES), duplicates=policy)
    assert len(data) == 3
    assert data.source["duplicates"] == 2
    assert data.source["duplicate_policy"] == policy
    frame = data.to_frame()
    assert frame.values.tolist() == [
        [1, 10, rating, timestamp],
        [2, 10, 1.0, 10],
        [2, 20, 3.0, 20],
    ]
    assert data.ratings.dtype == np.float32


@pytest.mark.parametrize(("policy", "rating"), [("last", 5.0), ("first", 2.0), ("mean", 11 / 3)])
def test_duplicate_policies_without_timestamps_use_file_order(write, policy, rating):
    text = "".join(line.rsplit(",", 1)[0] + "\n" for line in DUPES.splitlines())
    data = load_ratings_file(write("dupes.csv", text), duplicates=policy)
    assert data.timestamps is None
    assert data.source["duplicates"] == 2
    got = dict(zip(zip(data.to_frame()["user"], data.to_frame()["item"]), data.ratings.tolist()))
    assert got == {(1, 10): pytest.approx(rating), (2, 10): 1.0, (2, 20): 3.0}


def test_duplicate_policy_error_refuses_the_file(write):
    path = write("dupes.csv", DUPES)
    with pytest.raises(DataError, match=at(path, r": 2 duplicate \(user, item\) rows, e\.g\. user 1 item 10; "
                                                 r"choose a duplicates policy")):
        load_ratings_file(path, duplicates="error")


def test_duplicates_are_logged(write, caplog):
    path = write("dupes.csv", DUPES)
    for _ in range(2):  # the second load comes from the cache, and says it again (issue 10, #19)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="embedrec.data"):
            load_ratings_file(path, duplicates="last")
        assert f"{path}: 2 duplicate (user, item) rows resolved by policy 'last'" in caplog.messages


def test_no_duplicates_counts_zero(write):
    data = load_ratings_file(write("clean.csv", HEADER + "1,10,4\n1,11,3\n"), duplicates="error")
    assert data.source["duplicates"] == 0


def test_unknown_duplicate_policy(tmp_path):
    frame = pd.DataFrame({"user": [1], "item": [1], "rating": [1.0]})
    with pytest.raises(DataError, match=r"unknown duplicate policy 'newest'"):
        resolve_duplicates(frame, tmp_path / "x.csv", "newest")
