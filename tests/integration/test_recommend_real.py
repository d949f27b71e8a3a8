"""Train, save, load and recommend on the real ml-latest-small (needs $EMBEDREC_DATA)."""

import numpy as np
import pytest

import embedrec
from embedrec.recommender import recommend_all, score_users

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def saved_biased(ml_small, tmp_path_factory):
    bundle = embedrec.train_bundle(ml_small, "biased", embedrec.get_preset("default"), seed=0)
    folder = embedrec.save_model(bundle, tmp_path_factory.mktemp("real") / "biased")
    return bundle, folder


def test_round_trip_on_real_data(saved_biased):
    bundle, folder = saved_biased
    loaded = embedrec.load_model(folder)
    users = np.arange(len(bundle.user_map))
    assert np.array_equal(score_users(bundle, users), score_users(loaded, users))
    assert loaded.manifest["dataset"] == "ml-latest-small"
    assert loaded.manifest["dataset_md5"] == "325a6f09399d1c45671f187505e1a100"


def test_known_user_gets_unseen_titled_movies(saved_biased, ml_small):
    loaded = embedrec.load_model(saved_biased[1])
    frame = embedrec.recommend(loaded, 1, k=10)
    rated_by_1 = set(ml_small.item_map.raw(ml_small.items[ml_small.users == 0]).tolist())
    assert len(frame) == 10 and not rated_by_1 & set(frame["movieId"])
    assert frame["title"].str.len().min() > 0


def test_similar_movies_share_genres(saved_biased):
    loaded = embedrec.load_model(saved_biased[1])
    frame = embedrec.similar_items(loaded, "Toy Story (1995)", k=10)
    kids = frame["genres"].str.contains("Animation|Children").sum()
    base_rate = loaded.item_info["genres"].str.contains("Animation|Children").mean()  # about 0.1
    assert kids >= 3 > 10 * base_rate - 1


def test_new_user_and_all_users(saved_biased):
    loaded = embedrec.load_model(saved_biased[1])
    frame, fit = embedrec.recommend_for_ratings(
        loaded, [("Toy Story (1995)", 5), (2571, 4), ("no such film", 3)], k=10)
    assert (fit.n_used, fit.n_given, fit.unknown) == (2, 3, ["no such film"])
    assert len(frame) == 10 and 1 not in set(frame["movieId"]) and 2571 not in set(frame["movieId"])
    items, _ = recommend_all(loaded, 10)
    assert items.shape == (610, 10) and (items >= 0).all()
