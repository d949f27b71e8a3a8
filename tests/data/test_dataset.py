"""Ratings and IdMap: contiguous int32 indices in sorted raw-id order, float32, read-only arrays."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import pandas as pd
import pytest

from embedrec.data import IdMap, Ratings, load_ratings_file
from embedrec.errors import DataError

# users 30, 10, 20 and items 200, 100, 300 appear out of order on purpose
FILE = (
    "userId,movieId,rating,timestamp\n"
    "30,200,4.5,1000\n"
    "10,100,3,1001\n"
    "20,300,5,999\n"
    "10,300,1,1002\n"
)


@pytest.fixture
def data(write) -> Ratings:
    return load_ratings_file(write("r.csv", FILE), scale=(0.5, 5.0))


def test_indices_follow_sorted_raw_ids(data):
    assert data.user_map.to_list() == [10, 20, 30]
    assert data.item_map.to_list() == [100, 200, 300]
    assert data.users.tolist() == [2, 0, 1, 0]
    assert data.items.tolist() == [1, 0, 2, 2]
    assert data.ratings.tolist() == [4.5, 3.0, 5.0, 1.0]
    assert data.timestamps.tolist() == [1000, 1001, 999, 1002]
    assert (len(data), data.n_users, data.n_items) == (4, 3, 3)
    assert data.scale == (0.5, 5.0)
    assert data.name == "r"


def test_dtypes(data):
    assert data.users.dtype == np.int32
    assert data.items.dtype == np.int32
    assert data.ratings.dtype == np.float32
    assert data.timestamps.dtype == np.int64


def test_indices_match_sklearn_label_encoder(data):
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    frame = pd.read_csv(io.StringIO(FILE))
    assert data.users.tolist() == preprocessing.LabelEncoder().fit_transform(frame["userId"]).tolist()
    assert data.items.tolist() == preprocessing.LabelEncoder().fit_transform(frame["movieId"]).tolist()


def test_no_timestamp_column(write):
    data = load_ratings_file(write("r.csv", "user,item,rating\n1,1,3\n"))
    assert data.timestamps is None
    assert "timestamp" not in data.to_frame().columns


@pytest.mark.parametrize("name", ["users", "items", "ratings", "timestamps"])
def test_arrays_are_read_only(data, name):
    array = getattr(data, name)
    assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        array[0] = 0


def test_id_maps_are_read_only(data):
    with pytest.raises(ValueError, match="read-only"):
        data.user_map.ids[0] = 99


def test_fields_cannot_be_reassigned(data):
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.ratings = np.zeros(4, dtype=np.float32)  # type: ignore[misc]


def test_take_keeps_id_maps_and_row_order(data):
    sub = data.take(np.array([3, 0]))
    assert sub.user_map is data.user_map and sub.item_map is data.item_map
    assert (sub.n_users, sub.n_items, len(sub)) == (3, 3, 2)
    assert sub.users.tolist() == [0, 2]
    assert sub.items.tolist() == [2, 1]
    assert sub.ratings.tolist() == [1.0, 4.5]
    assert sub.timestamps.tolist() == [1002, 1000]
    assert sub.to_frame().values.tolist() == [[10, 300, 1.0, 1002], [30, 200, 4.5, 1000]]
    assert sub.scale == data.scale and sub.name == data.name and sub.source is data.source
    assert not sub.ratings.flags.writeable
    # counts are over the full vocabularies: user 20 (index 1) has no rating in the subset
    assert sub.user_counts().tolist() == [1, 0, 1]
    assert sub.item_counts().tolist() == [0, 1, 1]


def test_counts(data):
    assert data.user_counts().tolist() == [2, 1, 1]
    assert data.item_counts().tolist() == [1, 1, 2]


def test_to_frame_with_indices(data):
    frame = data.to_frame(raw_ids=False)
    assert frame["user"].tolist() == [2, 0, 1, 0]
    assert frame["item"].tolist() == [1, 0, 2, 2]


def test_string_ids(write):
    data = load_ratings_file(write("s.csv", "user,item,rating\nbob,x,3\nalice,y,4\nbob,y,2\n"))
    assert data.user_map.to_list() == ["alice", "bob"]
    assert data.item_map.to_list() == ["x", "y"]
    assert data.users.tolist() == [1, 0, 1]
    assert data.items.tolist() == [0, 1, 1]
    assert data.users.dtype == np.int32
    assert data.user_map.index("bob") == 1
    assert "carol" not in data.user_map and "alice" in data.user_map
    with pytest.raises(KeyError):
        data.user_map.index("carol")
    assert data.user_map.index(3, missing=-5) == -5  # a number is never a string id
    assert data.user_map.indices(np.array(["bob", "carol", "alice"])).tolist() == [1, -1, 0]
    assert data.user_map.indices(np.array([1, 2])).tolist() == [-1, -1]
    assert data.to_frame()["user"].tolist() == ["bob", "alice", "bob"]


# ---- IdMap --------------------------------------------------------------------------------------
def test_idmap_lookups():
    m = IdMap(np.array([3, 7, 11]))
    assert len(m) == 3
    assert [m.index(3), m.index(7), m.index(11)] == [0, 1, 2]
    assert m.raw(1) == 7 and m.raw(np.array([2, 0])).tolist() == [11, 3]
    assert 7 in m and 8 not in m
    out = m.indices(np.array([11, 0, 7, 12, 3, 100]))
    assert out.tolist() == [2, -1, 1, -1, 0, -1]
    assert out.dtype == np.int32
    assert m.indices(np.array([8, 3]), missing=-9).tolist() == [-9, 0]
    assert m.indices(np.array([[3, 4], [11, 7]])).tolist() == [[0, -1], [2, 1]]


@pytest.mark.parametrize("unknown", [0, 8, 12, -1, 7.5, "7", "abc", None, 2**70])
def test_idmap_unknown_ids(unknown):
    m = IdMap(np.array([3, 7, 11]))
    with pytest.raises(KeyError):
        m.index(unknown)
    assert m.index(unknown, missing=-1) == -1
    assert unknown not in m


def test_idmap_empty():
    m = IdMap(np.array([], dtype=np.int64))
    assert len(m) == 0
    assert m.indices(np.array([1, 2])).tolist() == [-1, -1]
    assert m.index(1, missing=-3) == -3


def test_idmap_requires_sorted_unique_1d():
    with pytest.raises(ValueError, match="sorted and unique"):
        IdMap(np.array([3, 1]))
    with pytest.raises(ValueError, match="sorted and unique"):
        IdMap(np.array([1, 1]))
    with pytest.raises(ValueError, match="one-dimensional"):
        IdMap(np.array([[1, 2]]))


def test_idmap_equality():
    assert IdMap(np.array([1, 2])) == IdMap(np.array([1, 2]))
    assert IdMap(np.array([1, 2])) != IdMap(np.array([1, 3]))
    with pytest.raises(TypeError):
        hash(IdMap(np.array([1])))


# ---- construction checks ------------------------------------------------------------------------
def test_from_frame_rejects_an_empty_frame():
    frame = pd.DataFrame({"user": [], "item": [], "rating": []})
    with pytest.raises(DataError, match="tiny: no ratings"):
        Ratings.from_frame(frame, name="tiny")


def test_lengths_must_agree():
    with pytest.raises(DataError, match="users has 1 rows, ratings has 2"):
        Ratings(users=np.array([0], dtype=np.int32), items=np.array([0, 0], dtype=np.int32),
                ratings=np.array([1, 2], dtype=np.float32), timestamps=None,
                user_map=IdMap(np.array([1])), item_map=IdMap(np.array([1])), scale=(1, 5))


def test_indices_must_fit_the_maps():
    with pytest.raises(DataError, match="out of range"):
        Ratings(users=np.array([1], dtype=np.int32), items=np.array([0], dtype=np.int32),
                ratings=np.array([1], dtype=np.float32), timestamps=None,
                user_map=IdMap(np.array([1])), item_map=IdMap(np.array([1])), scale=(1, 5))


def test_title_with_and_without_item_info(write):
    path = write("r.csv", "userId,movieId,rating\n1,10,4\n1,20,3\n")
    movies = write("movies.csv", 'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n30,Extra,\n')
    data = load_ratings_file(path, items_path=movies)
    assert data.title(10) == "Heat, The (1995)"
    assert data.title(20) == "item 20"  # rated but not listed
    assert data.item_info.loc[10, "genres"] == "Action|Crime"
    assert data.item_info.loc[30, "genres"] == ""
    assert sorted(data.item_info.index) == [10, 30]
    assert load_ratings_file(path).title(10) == "item 10"


def test_parquet_file(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "r.parquet"
    pd.DataFrame({"user_id": [5, 2], "item_id": ["b", "a"], "score": [1.5, 2.0]}).to_parquet(path)
    data = load_ratings_file(path)
    assert data.users.tolist() == [1, 0]
    assert data.item_map.to_list() == ["a", "b"]
    assert data.ratings.tolist() == [1.5, 2.0]
    assert data.name == "r"


def test_tab_separated_is_sniffed(write):
    data = load_ratings_file(write("r.tsv", "user\titem\trating\n1\t2\t3.5\n"))
    assert data.to_frame().values.tolist() == [[1, 2, 3.5]]


def test_source_records_path_and_md5(write):
    path = write("r.csv", FILE)
    data = load_ratings_file(path)
    assert data.source["path"] == str(path)
    assert data.source["md5"] == hashlib.md5(FILE.encode()).hexdigest()
