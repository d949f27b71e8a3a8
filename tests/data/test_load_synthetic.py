"""load_movielens on tiny hand-written release folders (no real data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from embedrec.data import get_release, load_movielens
from embedrec.errors import DataError


def test_tiny_ml100k_folder(tmp_path, tiny_100k):
    folder = tiny_100k.write_folder(tmp_path / "ml-100k")
    data = load_movielens("ml-100k", folder, download=False)
    assert (len(data), data.n_users, data.n_items) == (5, 3, 3)
    assert data.scale == (1.0, 5.0)
    assert data.name == "ml-100k"
    assert data.to_frame().values.tolist() == [
        [1, 1, 5.0, 874965758], [1, 2, 3.0, 876893171], [2, 1, 4.0, 878542960],
        [3, 3, 1.0, 876893119], [2, 3, 2.0, 889751712],
    ]
    info = data.item_info
    assert list(info.index) == [1, 2, 3, 4]  # item 4 is listed, never rated
    assert info.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert info.loc[2, "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    assert info.loc[2, "genres"] == "Drama|Musical"
    assert info.loc[3, "genres"] == "(no genres listed)"
    assert info.loc[4, "genres"] == "Horror"
    assert data.source["release"] == "ml-100k" and data.source["duplicates"] == 0


def test_parent_folder_is_searched_for_the_release(tmp_path, tiny_100k):
    tiny_100k.write_folder(tmp_path / "root" / "ml-100k")
    assert len(load_movielens("ml-100k", tmp_path / "root", download=False)) == 5


def test_missing_items_file_gives_no_item_info(tmp_path):
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    data = load_movielens("ml-latest-small", folder, download=False)
    assert data.item_info is None
    assert data.title(1) == "item 1"


def test_ml_latest_small_layout(tmp_path):
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n2,11,0.5,964981247\n1,11,5.0,1\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    )
    data = load_movielens("ml-latest-small", folder, download=False)
    assert (len(data), data.n_users, data.n_items) == (3, 2, 2)
    assert data.ratings.tolist() == [4.0, 0.5, 5.0]
    assert data.title(11) == "American President, The (1995)"


def test_release_rating_off_scale_names_the_line(tmp_path):
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,5.5,2\n")
    with pytest.raises(DataError, match=r"ratings\.csv, line 3, column rating: rating 5\.5 is outside"):
        load_movielens("ml-latest-small", folder, download=False)


def test_dat_titles_may_contain_colons(tmp_path):
    """ml-1m/ml-10m movies.dat use '::'; a title's own ':' must not split it."""
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::260::3::978302109\n6::1::4::978301968\n")
    (folder / "movies.dat").write_bytes(
        b"1::Toy Story (1995)::Animation|Children's|Comedy\n"
        b"260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi\n"
        b"3::Caf\xe9 au lait (1993)::Comedy\n"
    )
    data = load_movielens("ml-1m", folder, download=False)
    assert data.to_frame().values.tolist() == [
        [1, 1, 5.0, 978300760], [1, 260, 3.0, 978302109], [6, 1, 4.0, 978301968],
    ]
    assert data.users.dtype == np.int32 and data.scale == (1.0, 5.0)
    info = data.item_info
    assert info.loc[260, "title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert info.loc[260, "genres"] == "Action|Adventure|Fantasy|Sci-Fi"
    assert info.loc[3, "title"] == "Café au lait (1993)"


def test_unknown_release():
    with pytest.raises(DataError, match=r"unknown dataset 'ml-3m'; known: ml-latest-small, ml-100k"):
        get_release("ml-3m")
    with pytest.raises(DataError, match="unknown dataset"):
        load_movielens("ml-3m", download=False)


def test_registry_facts():
    small, k100 = get_release("ml-latest-small"), get_release("ml-100k")
    assert (small.scale, small.n_ratings, small.md5) == ((0.5, 5.0), 100_836, None)
    assert (k100.scale, k100.n_ratings) == ((1.0, 5.0), 100_000)
    assert k100.url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert get_release("ml-10m").folder == "ml-10M100K"
