"""A user's own ratings file, read as written (issue 16) and bad files refused cleanly (issue 10).

Every file here is a few hand-written lines; the expected ids, counts, seconds and line numbers
are worked out by hand in the comments.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedrec.data import load_ratings_file
from embedrec.data.readers import parse_timestamps
from embedrec.errors import ConfigError, DataError


def at(path: Path, rest: str) -> str:
    return re.escape(str(path)) + rest


# ---- ids are labels -----------------------------------------------------------------------------
def test_zero_padded_ids_stay_distinct(write):
    """The issue's example: items 001 and 1 are different products; 4 ratings, no duplicates."""
    data = load_ratings_file(write("r.csv", "user,item,rating\nu1,001,4\nu1,1,3\nu2,001,5\nu2,2,2\n"))
    assert len(data) == 4 and data.source["duplicates"] == 0
    assert data.item_map.to_list() == ["001", "1", "2"]
    assert data.user_map.to_list() == ["u1", "u2"]
    assert data.source["id_types"] == {"user": "str", "item": "str"}
    assert data.to_frame().values.tolist() == [["u1", "001", 4.0], ["u1", "1", 3.0],
                                               ["u2", "001", 5.0], ["u2", "2", 2.0]]


def test_canonical_integers_are_numbers(write):
    data = load_ratings_file(write("r.csv", "user,item,rating\n1,10,4\n2,0,3\n"))
    assert data.user_map.ids.dtype == np.int64 and data.item_map.to_list() == [0, 10]
    assert data.source["id_types"] == {"user": "int", "item": "int"}


@pytest.mark.parametrize("odd", ["-3", "+3", " 3", "3 ", "3.0", "1e3", "A7"])
def test_one_non_canonical_value_keeps_the_whole_column_as_text(write, odd):
    path = write("r.csv", f'user,item,rating\n1,10,4\n1,"{odd}",3\n2,7,5\n')
    data = load_ratings_file(path)
    assert sorted(data.item_map.to_list()) == sorted(["10", odd, "7"])
    assert data.user_map.to_list() == [1, 2]  # the other column is judged on its own


def test_inner_spaces_and_unicode_round_trip(write):
    text = 'user,item,rating\nJosé,"prod 12",4\n東京 ユーザー,"prod 12",3\nJosé,"ça va",5\n'
    data = load_ratings_file(write("r.csv", text))
    assert data.user_map.to_list() == ["José", "東京 ユーザー"]
    assert data.item_map.to_list() == ["prod 12", "ça va"]
    assert data.user_map.index("東京 ユーザー") == 1 and data.item_map.index("prod 12") == 0


def test_id_type_override(write):
    path = write("r.csv", "user,item,rating\n1,001,4\n1,1,3\n2,02,5\n")
    as_int = load_ratings_file(path, id_type="int")  # 001 and 1 are then one item: 1 duplicate
    assert as_int.item_map.to_list() == [1, 2] and as_int.source["duplicates"] == 1
    as_str = load_ratings_file(path, id_type="str")
    assert as_str.user_map.to_list() == ["1", "2"] and as_str.item_map.to_list() == ["001", "02", "1"]
    with pytest.raises(ConfigError, match="id type 'float'"):
        load_ratings_file(path, id_type="float")


def test_id_type_int_refuses_a_label_naming_line_and_column(write):
    path = write("r.csv", "user,item,rating\n1,5,4\n1,A7,3\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column item: 'A7' is not an integer id")):
        load_ratings_file(path, id_type="int")


def test_user_id_beyond_int64_is_an_error(write):
    """Issue 10 #17: a canonical integer too big for int64 names its line and column."""
    path = write("r.csv", "userId,movieId,rating\n1,5,4\n99999999999999999999,5,3\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column userId: user id 99999999999999999999 "
                                                 r"is beyond the 64-bit integer range; read ids as labels")):
        load_ratings_file(path)
    assert load_ratings_file(path, id_type="str").user_map.to_list() == ["1", "99999999999999999999"]
    path2 = write("r2.csv", "userId,movieId,rating\n9223372036854775807,5,4\n")
    assert load_ratings_file(path2).user_map.to_list() == [9223372036854775807]


def test_items_file_keeps_product_codes(write, caplog):
    ratings = write("r.csv", "user,sku,rating\nu1,00123,5\nu2,00123,4\nu2,123,1\n")
    items = write("items.csv", "sku,title\n00123,Blue mug\n123,Red mug\n999,Unrated\n")
    data = load_ratings_file(ratings, item_col="sku", items_path=items)
    assert data.title("00123") == "Blue mug" and data.title("123") == "Red mug"
    assert data.source["items_matched"] == 2 and data.source["items_listed"] == 3


def test_items_file_with_no_matching_id_warns_with_counts(write, caplog):
    """Issue 10 #20: matched / listed / rated."""
    ratings = write("r.csv", "user,item,rating\n1,10,5\n1,11,4\n2,12,1\n")
    items = write("items.csv", "item,title\n1,A\n2,B\n")
    with caplog.at_level(logging.WARNING, logger="embedrec.data"):
        load_ratings_file(ratings, items_path=items)
    assert (f"{items}: none of its item ids match a rated item (matched 0 / listed 2 / rated 3); "
            "titles will be missing") in caplog.messages


# ---- blank lines --------------------------------------------------------------------------------
def test_blank_and_whitespace_lines_anywhere_are_skipped_and_counted(write):
    # blank lines: line 1, line 3, line 5 (spaces), line 7 (\r\n only), line 9 (tab), line 10
    text = "\nuser,item,rating\n\n1,10,4\n   \n1,11,3\r\n\r\n2,10,5\n\t\n\n"
    data = load_ratings_file(write("r.csv", text))
    assert data.to_frame().values.tolist() == [[1, 10, 4.0], [1, 11, 3.0], [2, 10, 5.0]]
    assert data.source["blank_lines"] == 6
    again = load_ratings_file(write("r.csv", text))  # from the cache: the same count
    assert again.source["blank_lines"] == 6


def test_trailing_blank_line_is_harmless(write):
    """The issue's case: a 4-row file ending in an empty line."""
    data = load_ratings_file(write("r.csv", "userId,movieId,rating\n1,1,4\n1,2,3\n2,1,5\n2,2,2\n\n"))
    assert len(data) == 4 and data.source["blank_lines"] == 1


def test_tsv_blank_lines(write):
    # lines 1-2 blank before the header (the separator is sniffed past them), lines 5-6 blank
    data = load_ratings_file(write("r.tsv", "\n \nuser\titem\trating\n1\t2\t3\n\t\t\n  \n2\t2\t4\n"))
    assert len(data) == 2 and data.source["blank_lines"] == 4


# ---- physical line numbers ----------------------------------------------------------------------
def test_line_numbers_count_lines_inside_quoted_fields(write):
    # line 2-4: one record whose item spans 3 lines; line 5 blank; line 6 the bad rating
    text = 'user,item,rating\n1,"a\nb\nc",4\n\n2,x,oops\n'
    path = write("r.csv", text)
    with pytest.raises(DataError, match=at(path, r", line 6, column rating: 'oops' is not a finite number")):
        load_ratings_file(path)


def test_multi_line_label_round_trips(write):
    data = load_ratings_file(write("r.csv", 'user,item,rating\n1,"a\nb",4\n2,"a\nb",3\n'))
    assert data.item_map.to_list() == ["a\nb"] and len(data) == 2


def test_line_numbers_after_blank_lines_and_a_missing_id(write):
    path = write("r.csv", "\n\nuser,item,rating\n1,2,3\n\n,4,5\n")
    with pytest.raises(DataError, match=at(path, r", line 6, column user: missing id")):
        load_ratings_file(path)


# ---- timestamps ---------------------------------------------------------------------------------
def test_seconds_milliseconds_and_iso_strings_agree(write):
    # 2024-05-01T10:00:00Z = 1714557600 s
    secs = load_ratings_file(write("s.csv", "u,i,rating,timestamp\n1,1,4,1714557600\n"),
                             user_col="u", item_col="i")
    ms = load_ratings_file(write("ms.csv", "u,i,rating,timestamp\n1,1,4,1714557600999\n"),
                           user_col="u", item_col="i")
    iso = load_ratings_file(write("iso.csv", "u,i,rating,timestamp\n1,1,4,2024-05-01T12:00:00+02:00\n"
                                  "1,2,4,2024-05-01T10:00:00Z\n1,3,4,2024-05-01 10:00:00\n"
                                  "1,4,4,2024-05-01\n"), user_col="u", item_col="i")
    assert secs.timestamps.tolist() == [1714557600]
    assert ms.timestamps.tolist() == [1714557600]  # 999 ms floored
    assert iso.timestamps.tolist() == [1714557600, 1714557600, 1714557600, 1714521600]
    assert iso.timestamps.dtype == np.int64


def test_timestamp_kinds_by_hand():
    # 99999999999 is below 1e11: seconds; 100000000000 and up: milliseconds
    assert parse_timestamps(np.array([99999999999])).tolist() == [99999999999]
    assert parse_timestamps(np.array([100000000000, 200000000000])).tolist() == [100000000, 200000000]
    assert parse_timestamps(np.array([-1.5, 2.5])).tolist() == [-2, 2]  # floored
    assert parse_timestamps(np.array(["1.7e9"], dtype=object)).tolist() == [1700000000]


@pytest.mark.parametrize(("values", "line", "message"), [
    (["100", "2024-05-01"], 3, r"'2024-05-01' is a date but the column's first value is a number"),
    (["2024-05-01", "100"], 3, r"'100' is a number but the column's first value is a date"),
    (["978300760", "978300760000"], 3, r"timestamp 978300760000 is in milliseconds but the column's "
                                      r"first is in seconds"),
    (["100", "soon"], 3, r"'soon' is not a timestamp"),
    (["2024-05-01", "2024-13-45"], 3, r"'2024-13-45' is not a timestamp"),
    (["100", "1e30"], 3, r"timestamp 1e30 is out of range"),  # issue 10 #17
    (["100", ""], 3, r"missing timestamp"),
])
def test_bad_timestamp_columns_name_the_first_odd_row(write, values, line, message):
    path = write("r.csv", "user,item,rating,time\n" + "".join(
        f"1,{n},4,{v}\n" for n, v in enumerate(values)))
    with pytest.raises(DataError, match=at(path, f", line {line}, column time: {message}")):
        load_ratings_file(path)


def test_parquet_datetimes_of_any_unit_and_zone(tmp_path):
    stamps = pd.to_datetime(["2024-05-01 12:00:00.7", "2024-05-02 12:00:00.0"]).tz_localize("Europe/Paris")
    frames = {
        "ns_tz": stamps,
        "ms_naive": stamps.tz_convert("UTC").tz_localize(None).as_unit("ms"),
        "s_utc": stamps.tz_convert("UTC").as_unit("s"),
    }
    want = [1714557600, 1714644000]  # 12:00 Paris (+02:00) = 10:00 UTC; the .7 s floored
    for name, column in frames.items():
        path = tmp_path / f"{name}.parquet"
        pd.DataFrame({"user": ["a", "b"], "item": ["x", "x"], "rating": [4.0, 3.0],
                      "timestamp": column}).to_parquet(path)
        assert load_ratings_file(path).timestamps.tolist() == want, name
    dates = tmp_path / "dates.parquet"
    pq.write_table(pa.table({"user": [1, 2], "item": [3, 3], "rating": [4.0, 3.0],
                             "timestamp": pa.array([19844, 19845], pa.date32())}), dates)
    assert load_ratings_file(dates).timestamps.tolist() == [1714521600, 1714608000]
    millis = tmp_path / "millis.parquet"
    pd.DataFrame({"user": [1], "item": [3], "rating": [4.0], "timestamp": [1714557600123]}).to_parquet(millis)
    assert load_ratings_file(millis).timestamps.tolist() == [1714557600]


def test_parquet_string_ids_and_errors_name_rows(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame({"user": ["007", "7"], "item": ["a", "a"], "rating": [4.0, 1e308]}).to_parquet(path)
    with pytest.raises(DataError, match=at(path, r", row 2, column rating: rating 1e\+308 is beyond the "
                                                 r"float32 range")):
        load_ratings_file(path)
    pd.DataFrame({"user": ["007", "7"], "item": ["a", "a"], "rating": [4.0, 2.0]}).to_parquet(path)
    assert load_ratings_file(path).user_map.to_list() == ["007", "7"]


# ---- issue 10: bad files ------------------------------------------------------------------------
def test_float32_overflow_is_an_error(write):
    """#16: 1e308 is finite in float64 and inf in float32."""
    path = write("r.csv", "user,item,rating\n1,2,4\n1,3,1e308\n")
    with pytest.raises(DataError, match=at(path, r", line 3, column rating: rating 1e\+308 is beyond "
                                                 r"the float32 range")):
        load_ratings_file(path)


def test_off_scale_rating_with_a_declared_scale(write):
    """#15: with a scale, off-scale is an error; without, the scale is inferred and said so."""
    path = write("r.csv", "user,item,rating\n1,2,4\n\n1,3,-1\n")
    with pytest.raises(DataError, match=at(path, r", line 4, column rating: rating -1 is outside the "
                                                 r"declared scale 1 to 5")):
        load_ratings_file(path, scale=(1, 5))
    data = load_ratings_file(path)
    assert data.scale == (-1.0, 4.0) and data.source["scale_inferred"] is True
    assert load_ratings_file(path, scale=(-1, 5)).source["scale_inferred"] is False
    with pytest.raises(ConfigError, match="LOW < HIGH"):
        load_ratings_file(path, scale=(5, 1))


@pytest.mark.parametrize("header", ["user,rating,item,rating", "user,user,item,rating"])
def test_duplicate_header_names_are_refused(write, header):
    """#18."""
    path = write("r.csv", header + "\n1,2,3,4\n")
    name = header.split(",")[1]
    with pytest.raises(DataError, match=at(path, f", line 1: column name '{name}' appears twice")):
        load_ratings_file(path)


def test_duplicate_parquet_column_names_are_refused(tmp_path):
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table([[1], [2], [3.0], [4.0]], names=["user", "item", "rating", "rating"]), path)
    with pytest.raises(DataError, match=at(path, r": column name 'rating' appears twice")):
        load_ratings_file(path)


def test_control_characters_never_reach_the_message(write):
    """#22: a header with terminal escapes is echoed with them replaced."""
    path = write("r.csv", "user,item,\x1b[2J\x1b[31mstars\x07\n1,2,3\n")
    with pytest.raises(DataError) as info:
        load_ratings_file(path)
    text = str(info.value)
    assert "?[2J?[31mstars?" in text
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", text)


def test_cache_does_not_serve_old_encodings(write):
    """The same bytes read with another id type are encoded again, not served from the cache."""
    path = write("r.csv", "user,item,rating\n1,001,4\n1,1,3\n")
    assert load_ratings_file(path).item_map.to_list() == ["001", "1"]
    assert load_ratings_file(path, id_type="int").item_map.to_list() == [1]
    assert load_ratings_file(path).item_map.to_list() == ["001", "1"]


def test_unclosed_quote_names_the_line_its_record_starts_on(write):
    path = write("r.csv", 'user,item,rating\n1,2,3\n1,"abc,4\n2,3,4\n')
    with pytest.raises(DataError, match=at(path, r", line 3: malformed line \(unexpected end of data\)")):
        load_ratings_file(path)


def test_fast_and_careful_readers_agree_on_blank_lines(write, monkeypatch):
    """Empty lines (line 4, line 6 as \\r\\n, lines 8-9) keep a file on the fast reader; the
    careful reader gives the same rows and count."""
    from embedrec.data import load

    text = "user,item,rating\n1,10,4\n1,11,3\n\n1,12,3\r\n\r\n2,10,5\n\n\n"
    fast = load_ratings_file(write("fast.csv", text), use_cache=False)
    monkeypatch.setattr(load, "_read_fast", lambda *a, **k: None)
    careful = load_ratings_file(write("careful.csv", text), use_cache=False)
    for data in (fast, careful):
        assert data.to_frame().values.tolist() == [[1, 10, 4.0], [1, 11, 3.0], [1, 12, 3.0],
                                                   [2, 10, 5.0]]
        assert data.source["blank_lines"] == 4


def test_fast_reader_takes_files_with_empty_lines(write, monkeypatch):
    from embedrec.data import load

    def refuse(*args, **kwargs):
        raise AssertionError("the careful reader was used")

    monkeypatch.setattr(load, "_read_careful", refuse)
    data = load_ratings_file(write("r.csv", "user,item,rating\nu1,001,4\n\nu2,1,3\n\n"),
                             use_cache=False)
    assert data.source["blank_lines"] == 2 and data.item_map.to_list() == ["001", "1"]


def test_quoted_file_with_an_empty_line_inside_a_value(write):
    """The empty line inside the quoted label is part of the label, not a blank line."""
    data = load_ratings_file(write("r.csv", 'user,item,rating\n1,"a\n\nb",4\n2,x,3\n\n'))
    assert data.item_map.to_list() == ["a\n\nb", "x"] and data.source["blank_lines"] == 1


def test_fast_reader_takes_quoted_labels(write, monkeypatch):
    from embedrec.data import load

    def refuse(*args, **kwargs):
        raise AssertionError("the careful reader was used")

    monkeypatch.setattr(load, "_read_careful", refuse)
    data = load_ratings_file(write("r.csv", 'user,item,rating\n1,"a, b",4\n2,"c\nd",3\n'),
                             use_cache=False)
    assert data.item_map.to_list() == ["a, b", "c\nd"] and data.source["blank_lines"] == 0
