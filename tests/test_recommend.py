import numpy as np
import pytest
import torch

from embedrec import recommend as rec
from embedrec.errors import EmbedrecError
from embedrec.presets import get_preset
from embedrec.training.pipeline import train_bundle
from tests.conftest import make_ratings


@pytest.fixture(scope="module")
def bundle():
    data = make_ratings(n_users=25, n_items=18, seed=3)
    return train_bundle(data, "dot", get_preset("default").with_overrides(epochs=3), seed=0)


def test_top_k_orders_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -1.0]])
    assert rec.top_k(scores, 3).tolist() == [[1, 3, 2]]
    assert rec.top_k(scores, 10).shape == (1, 5)  # k larger than the catalogue


def test_recommend_masks_seen_items(bundle):
    user = bundle.user_map.ids[0]
    frame = rec.recommend(bundle, user, k=50)
    seen_raw = set(bundle.item_map.raw(bundle.seen(0)).tolist())
    assert not seen_raw & set(frame["movieId"].tolist())
    assert len(frame) == len(bundle.item_map) - len(seen_raw)
    assert frame["score"].is_monotonic_decreasing


def test_recommend_all_matches_single_user(bundle):
    items, _ = rec.recommend_all(bundle, 5, chunk=7)
    for u in (0, 3, 24):  # user 0 rated nearly every item: fewer than k real places
        single = rec.recommend(bundle, bundle.user_map.ids[u], k=5)
        real = items[u][items[u] >= 0]
        assert bundle.item_map.raw(real).tolist() == single["movieId"].tolist()
    assert (items[0] >= 0).sum() == len(bundle.item_map) - len(bundle.seen(0))


def test_unknown_user_and_bad_k(bundle):
    with pytest.raises(rec.UnknownIdError, match="unknown user"):
        rec.recommend(bundle, 999_999)
    with pytest.raises(EmbedrecError, match="k must be"):
        rec.recommend(bundle, bundle.user_map.ids[0], k=0)


def test_dot_fold_in_is_the_ridge_solution(bundle):
    rated = [(bundle.item_map.ids[i], r) for i, r in [(0, 5.0), (2, 1.0), (5, 3.5)]]
    fit = rec.fold_in(bundle, rated, l2=0.5)
    q = bundle.model.item_factors.weight.detach().numpy()[[0, 2, 5]].astype(np.float64)
    expected = np.linalg.solve(q.T @ q + 0.5 * np.eye(q.shape[1]), q.T @ np.array([5.0, 1.0, 3.5]))
    assert np.allclose(fit.vector, expected, atol=1e-5)
    assert (fit.n_given, fit.n_used) == (3, 3)


def test_fold_in_counts_unknown_and_rejects_bad_input(bundle):
    frame, fit = rec.recommend_for_ratings(bundle, [(bundle.item_map.ids[0], 4.0), (123456, 3.0)], 5)
    assert (fit.n_used, fit.unknown) == (1, [123456])
    assert bundle.item_map.ids[0] not in frame["movieId"].tolist()  # rated items are not recommended
    with pytest.raises(EmbedrecError, match="no ratings"):
        rec.recommend_for_ratings(bundle, [], 5)
    with pytest.raises(EmbedrecError, match="outside the scale"):
        rec.fold_in(bundle, [(bundle.item_map.ids[0], 9.0)])
    with pytest.raises(EmbedrecError, match="none of the"):
        rec.fold_in(bundle, [(123456, 3.0)])


def test_similar_items_by_cosine(bundle):
    with torch.no_grad():
        w = bundle.model.item_factors.weight
        w[1] = w[0] * 3.0  # same direction as item 0, different length
    frame = rec.similar_items(bundle, bundle.item_map.ids[0], k=3)
    assert frame["movieId"].iloc[0] == bundle.item_map.ids[1]
    assert frame["score"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert bundle.item_map.ids[0] not in frame["movieId"].tolist()
