"""The real MovieLens copies under $EMBEDREC_DATA (skipped when they are absent)."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from embedrec.data import load_movielens, random_split
from embedrec.data.explore import summary, top_crosstab

pytestmark = pytest.mark.realdata


# ---- ml-latest-small ----------------------------------------------------------------------------
def test_ml_latest_small_counts(ml_small):
    assert (len(ml_small), ml_small.n_users, ml_small.n_items) == (100_836, 610, 9_724)
    assert ml_small.scale == (0.5, 5.0)
    assert (ml_small.ratings.min(), ml_small.ratings.max()) == (0.5, 5.0)
    assert ml_small.users.dtype == np.int32 and ml_small.ratings.dtype == np.float32
    assert ml_small.timestamps is not None and ml_small.timestamps.dtype == np.int64
    assert ml_small.source["duplicates"] == 0


def test_ml_latest_small_titles(ml_small):
    assert ml_small.title(1) == "Toy Story (1995)"
    assert ml_small.title(356) == "Forrest Gump (1994)"
    assert ml_small.item_info.loc[1, "genres"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert len(ml_small.item_info) == 9_742  # movies.csv lists 18 movies nobody rated


def test_ml_latest_small_matches_an_independent_read(ml_small, ml_small_dir):
    raw = pd.read_csv(ml_small_dir / "ratings.csv")
    frame = ml_small.to_frame()
    assert np.array_equal(frame["user"].to_numpy(), raw["userId"].to_numpy())
    assert np.array_equal(frame["item"].to_numpy(), raw["movieId"].to_numpy())
    assert np.array_equal(frame["rating"].to_numpy(), raw["rating"].to_numpy(np.float32))
    assert ml_small.source["md5"] == hashlib.md5((ml_small_dir / "ratings.csv").read_bytes()).hexdigest()


def test_random_split_equals_sklearn_on_ml_latest_small(ml_small):
    model_selection = pytest.importorskip("sklearn.model_selection")
    split = random_split(len(ml_small), 0.1, 42)
    assert (len(split.train), len(split.test)) == (90_752, 10_084)
    train, test = model_selection.train_test_split(np.arange(len(ml_small)), test_size=0.1,
                                                   random_state=42)
    np.testing.assert_array_equal(split.train, train)
    np.testing.assert_array_equal(split.test, test)
    # the reference notebook splits the frame itself: same rows, same order
    tr_frame, te_frame = model_selection.train_test_split(ml_small.to_frame(), test_size=0.1,
                                                          random_state=42)
    np.testing.assert_array_equal(te_frame.index.to_numpy(), split.test)
    np.testing.assert_array_equal(ml_small.take(split.train).ratings, tr_frame["rating"].to_numpy())


def test_summary_and_crosstab_on_ml_latest_small(ml_small, ml_small_dir):
    s = summary(ml_small)
    assert (s["n_ratings"], s["n_users"], s["n_items"], s["n_items_listed"]) == (100_836, 610, 9_724, 9_742)
    assert s["ratings"]["4"] == 26_818 and s["ratings"]["0.5"] == 1_370
    assert sum(s["ratings"].values()) == 100_836
    assert s["ratings_per_user"]["max"] == 2_698 and s["ratings_per_item"]["max"] == 329
    grid = top_crosstab(ml_small, 3)
    assert grid.index.tolist() == [414, 599, 474]
    assert grid.columns.tolist() == [356, 318, 296]
    raw = pd.read_csv(ml_small_dir / "ratings.csv")
    expected = raw.pivot(index="userId", columns="movieId", values="rating").loc[[414, 599, 474], [356, 318, 296]]
    np.testing.assert_array_equal(grid.to_numpy(), expected.to_numpy())


# ---- ml-100k ------------------------------------------------------------------------------------
def test_ml_100k_counts(ml_100k):
    assert (len(ml_100k), ml_100k.n_users, ml_100k.n_items) == (100_000, 943, 1_682)
    assert ml_100k.scale == (1.0, 5.0)
    assert sorted(np.unique(ml_100k.ratings).tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(ml_100k.item_info) == 1_682


def test_ml_100k_titles_and_genres(ml_100k):
    info = ml_100k.item_info
    assert ml_100k.title(1) == "Toy Story (1995)"
    assert info.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert info.loc[543, "title"] == "Misérables, Les (1995)"  # latin-1 in u.item
    assert not info["genres"].eq("").any()


# ---- where the files come from ------------------------------------------------------------------
def test_load_from_parent_folder_and_release_folder(ml_small_dir):
    assert len(load_movielens("ml-latest-small", ml_small_dir, download=False)) == 100_836
    assert len(load_movielens("ml-latest-small", ml_small_dir.parent, download=False)) == 100_836


def test_load_through_embedrec_data(ml_100k_dir, monkeypatch):
    monkeypatch.setenv("EMBEDREC_DATA", str(ml_100k_dir.parent))
    data = load_movielens("ml-100k", download=False)
    assert len(data) == 100_000
    assert data.source["path"] == str(ml_100k_dir / "u.data")


def test_load_from_a_zip(ml_small_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    archive = tmp_path / "ml-latest-small.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for name in ("ratings.csv", "movies.csv"):
            zf.write(ml_small_dir / name, f"ml-latest-small/{name}")
    data = load_movielens("ml-latest-small", archive, download=False)
    assert (len(data), data.n_users, data.n_items) == (100_836, 610, 9_724)
    assert data.title(1) == "Toy Story (1995)"
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    unpacked = cache / "embedrec" / "unpacked" / f"ml-latest-small-{md5[:12]}"
    files = sorted(p.name for p in unpacked.iterdir() if not p.name.startswith("."))
    assert files == ["movies.csv", "ratings.csv"]
    assert (unpacked / ".embedrec-cache").is_dir()  # the encoded cache sits next to the data
    assert data.source["path"] == str(unpacked / "ratings.csv")
    assert [p.name for p in (cache / "embedrec" / "unpacked").iterdir()] == [unpacked.name]
    # a second load reuses the unpacked copy
    before = (unpacked / "ratings.csv").stat().st_mtime_ns
    assert len(load_movielens("ml-latest-small", archive, download=False)) == 100_836
    assert (unpacked / "ratings.csv").stat().st_mtime_ns == before
