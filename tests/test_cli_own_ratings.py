"""The CLI on a user's own file: product codes end to end (issue 16) and bad files (issue 10)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from embedrec.cli import main
from embedrec.persistence import load_model

# 12 customers x 6 products; codes with leading zeros, a space and a non-ASCII letter.
USERS = [f"C{n:03d}" for n in range(12)]
CODES = ["00123", "123", "0042", "SKU 7", "été-1", "9"]


@pytest.fixture
def shop(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    t0 = 1714557600  # 2024-05-01 10:00:00 UTC
    for u, user in enumerate(USERS):
        for i, code in enumerate(CODES):
            if (u + i) % 3:  # 2 of every 3 pairs rated
                rows.append((user, code, float(rng.integers(1, 6)), t0 + 3600 * (u * 6 + i)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    ratings = tmp_path / "orders.csv"
    frame.to_csv(ratings, index=False)
    ratings.write_text(ratings.read_text() + "\n")  # an export that ends in a blank line
    items = tmp_path / "products.csv"
    pd.DataFrame({"item_id": CODES, "title": [f"product {c}" for c in CODES]}).to_csv(items, index=False)
    return ratings, items, frame


def _args(ratings, items):
    return ["--data", str(ratings), "--items", str(items), "--scale", "1,5"]


def test_product_codes_end_to_end(shop, tmp_path, capsys):
    ratings, items, frame = shop
    model = tmp_path / "model"
    assert main(["train", "--model", "bias", "--out", str(model), *_args(ratings, items)]) == 0
    out = capsys.readouterr().out
    assert "scale 1 to 5;" in out and "1 blank line(s) skipped" in out
    bundle = load_model(model)
    assert bundle.item_map.to_list() == sorted(CODES)
    assert bundle.user_map.to_list() == USERS

    assert main(["recommend", "--model", str(model), "--user", "C001", "-k", "3", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    seen = set(frame.loc[frame["user_id"] == "C001", "item_id"])
    assert len(recs) == 2 and {r["movieId"] for r in recs} == set(CODES) - seen
    assert all(r["title"] == f"product {r['movieId']}" for r in recs)

    mine = tmp_path / "mine.csv"
    mine.write_text("item_id,rating\n00123,5\n0042,4\n")  # read as written: 00123, not 123
    assert main(["recommend", "--model", str(model), "--ratings", str(mine), "-k", "2"]) == 0
    assert "recognised 2 of 2 ratings" in capsys.readouterr().err
    assert main(["recommend", "--model", str(model), "--ratings", str(mine), "-k", "2",
                 "--json"]) == 0
    picked = {r["movieId"] for r in json.loads(capsys.readouterr().out)}
    assert len(picked) == 2 and picked <= set(CODES) - {"00123", "0042"}

    top = tmp_path / "top.csv"
    assert main(["recommend", "--model", str(model), "--all-users", "-k", "2", "--out", str(top)]) == 0
    written = pd.read_csv(top, dtype=str, keep_default_na=False)
    assert set(written["userId"]) == set(USERS)
    assert set(written["movieId"]) <= set(CODES)
    assert len(written) == 2 * len(USERS)  # every customer has at least 2 unrated products
    for user, group in written.groupby("userId"):
        rated = set(frame.loc[frame["user_id"] == user, "item_id"])
        assert not set(group["movieId"]) & rated  # never a product the customer rated


def test_data_info_shows_dates_ids_duplicates_and_blank_lines(write_cli, capsys):
    path = write_cli("r.csv", "user,item,rating,timestamp\n\n"
                     "u1,001,4,2024-05-01T10:00:00Z\nu1,1,3,1714600800\n".replace(
                         "1714600800", "2024-05-01T22:00:00Z") + "u1,001,5,2024-05-03\n")
    assert main(["data", "info", "--data", str(path), "--duplicates", "mean", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "time range 2024-05-01 22:00:00 to 2024-05-03 00:00:00 UTC" in out
    assert "ids: users str, items str" in out
    assert "duplicate (user, item) rows: 1 resolved by policy mean; blank lines skipped: 1" in out
    assert "scale 3 to 4.5 (inferred from the data; declare it with --scale LOW,HIGH)" in out
    assert main(["data", "info", "--data", str(path), "--json", "--id-type", "str"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["time_range"] == ["2024-05-01 22:00:00", "2024-05-03 00:00:00"]
    assert info["scale_inferred"] is True and info["blank_lines"] == 1


@pytest.fixture
def write_cli(tmp_path):
    def _write(name, text):
        path = tmp_path / name
        path.write_bytes(text.encode())
        return path
    return _write


def test_scale_option(write_cli, capsys):
    path = write_cli("r.csv", "user,item,rating\n1,2,4\n1,3,6\n")
    assert main(["data", "info", "--data", str(path), "--scale", "1,5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}, line 3, column rating: rating 6 is outside the declared scale 1 to 5"
    assert main(["data", "info", "--data", str(path), "--scale", "5"]) == 1
    assert "--scale '5': expected LOW,HIGH" in capsys.readouterr().err


def test_compare_settings_say_the_scale_was_inferred(tmp_path, capsys):
    path = tmp_path / "r.csv"
    rows = [f"{u},{i},{1 + (u * i) % 5}" for u in range(6) for i in range(5)]
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n1,1,5\n")  # (1, 1) twice
    out = tmp_path / "out"
    assert main(["compare", "--data", str(path), "--models", "mean,bias", "--seeds", "1",
                 "--no-report", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("r: 30 ratings; scale 1 to 5 inferred from the data (declare it with --scale LOW,HIGH); "
            "1 duplicate (user, item) rows resolved by policy last") in printed
    settings = json.loads((out / "settings.json").read_text())
    assert settings["scale_inferred"] is True and settings["scale"] == [1.0, 5.0]
    assert settings["duplicates"] == 1 and settings["duplicate_policy"] == "last"
    # a second, cached, load reports the same; --duplicates error refuses the file
    assert main(["data", "info", "--data", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["duplicates_resolved"] == 1
    assert main(["compare", "--data", str(path), "--duplicates", "error"]) == 1
    assert "1 duplicate (user, item) rows, e.g. user 1 item 1" in capsys.readouterr().err


@pytest.mark.parametrize("rows", [["1,1,4"], ["1,1,4", "2,2,3"]])
def test_tiny_file_in_compare_is_a_clear_error_without_warnings(tmp_path, capsys, rows):
    path = tmp_path / "tiny.csv"
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["compare", "--data", str(path), "--models", "mean,bias", "--seeds", "1"]) == 1
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {path} has {len(rows)} rating(s): too few to split into training and "
                   "test rows (at least 10 are needed)")


def test_escape_bytes_from_a_header_never_reach_the_terminal(write_cli, capsys):
    path = write_cli("r.csv", "user,item,\x1b[2J\x1b]0;owned\x07score!\n1,2,3\n")
    assert main(["data", "info", "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot find the rating column" in err
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", err)


def test_data_info_prints_markup_like_ids_as_text(write_cli, capsys):
    path = write_cli("r.csv", "user,item,rating\n[/oops],[red]x,4\n[/oops],y,3\n")
    assert main(["data", "info", "--data", str(path), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "[/oops]" in out and "[red]x" in out
