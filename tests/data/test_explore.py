"""explore: summary counts and the reference notebook's top-users x top-movies crosstab."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from embedrec.data import load_ratings_file
from embedrec.data.explore import summary, top_crosstab

# user 3 rates 4 movies, user 1 rates 3, users 2 and 4 rate 2 each;
# movies 10, 20 and 40 have 3 ratings each, movie 30 has 2.
FILE = (
    "userId,movieId,rating\n"
    "4,20,3\n"
    "1,10,4\n"
    "1,20,3\n"
    "1,30,5\n"
    "2,10,2\n"
    "2,40,1\n"
    "3,10,5\n"
    "3,20,4\n"
    "3,30,1\n"
    "3,40,2\n"
    "4,40,4\n"
)


@pytest.fixture
def tiny(write):
    return load_ratings_file(write("tiny.csv", FILE), scale=(1.0, 5.0))


def test_top_crosstab_orders_by_activity_then_id(tiny):
    grid = top_crosstab(tiny, 3)
    expected = pd.DataFrame(
        [[5.0, 4.0, 2.0],        # user 3
         [4.0, 3.0, np.nan],     # user 1 (no rating for movie 40)
         [2.0, np.nan, 1.0]],    # user 2 wins the tie with user 4 by id
        index=pd.Index([3, 1, 2], name="userId"),
        columns=pd.Index([10, 20, 40], name="movieId"),  # 10, 20, 40 tie at 3 ratings
    )
    pd.testing.assert_frame_equal(grid, expected)


def test_top_crosstab_smaller_and_larger_than_the_data(tiny):
    grid = top_crosstab(tiny, 1)
    assert grid.shape == (1, 1) and grid.loc[3, 10] == 5.0
    full = top_crosstab(tiny, 15)
    assert full.index.tolist() == [3, 1, 2, 4]
    assert full.columns.tolist() == [10, 20, 40, 30]
    assert int(full.notna().to_numpy().sum()) == 11
    assert (full.loc[4, 20], full.loc[4, 40], full.loc[1, 30]) == (3.0, 4.0, 5.0)
    assert np.isnan(full.loc[4, 10]) and np.isnan(full.loc[4, 30])


def test_top_crosstab_with_string_ids(write):
    data = load_ratings_file(write("s.csv", "user,item,rating\nb,x,1\nb,y,2\na,y,3\n"))
    grid = top_crosstab(data, 2)
    assert grid.index.tolist() == ["b", "a"]
    assert grid.columns.tolist() == ["y", "x"]
    assert grid.to_numpy().tolist()[0] == [2.0, 1.0]
    assert np.isnan(grid.loc["a", "x"])


def test_summary(tiny, tmp_path):
    s = summary(tiny)
    assert s == {
        "name": "tiny",
        "n_ratings": 11,
        "n_users": 4,
        "n_items": 4,
        "n_items_listed": None,
        "scale": [1.0, 5.0],
        "mean_rating": pytest.approx(34 / 11),
        "density": 11 / 16,
        "ratings": {"1": 2, "2": 2, "3": 2, "4": 3, "5": 2},
        "ratings_per_user": {"min": 2, "median": 2.5, "mean": 2.75, "max": 4},
        "ratings_per_item": {"min": 2, "median": 3.0, "mean": 2.75, "max": 3},
        "duplicates_resolved": 0,
        "duplicate_policy": "last",
        "blank_lines": 0,
        "scale_inferred": False,
        "id_types": {"user": "int", "item": "int"},
        "time_range": None,
        "md5": hashlib.md5(FILE.encode()).hexdigest(),
    }


def test_summary_half_stars_items_listed_and_duplicates(write):
    path = write("r.csv", "userId,movieId,rating\n1,1,3.5\n1,1,4.5\n2,1,0.5\n")
    movies = write("movies.csv", "movieId,title\n1,One\n2,Two\n3,Three\n")
    s = summary(load_ratings_file(path, items_path=movies, duplicates="mean"))
    assert s["ratings"] == {"0.5": 1, "4": 1}  # (3.5 + 4.5) / 2
    assert s["duplicates_resolved"] == 1
    assert s["n_items_listed"] == 3
    assert (s["n_ratings"], s["n_users"], s["n_items"]) == (2, 2, 1)
