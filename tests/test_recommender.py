import numpy as np
import pytest

from embedrec.foldin import fold_in, recommend_for_ratings, score_new_user
from embedrec.recommender import (
    UnknownIdError, recommend, recommend_all, score_users, similar_items, top_k,
)
from embedrec.errors import EmbedrecError
from embedrec.presets import get_preset
from embedrec.experiment import train_bundle
from tests.conftest import make_ratings


@pytest.fixture(scope="module")
def bundle():
    data = make_ratings(n_users=25, n_items=18, seed=3)
    return train_bundle(data, "dot", get_preset("default").with_overrides(epochs=3), seed=0)


def test_top_k_orders_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -1.0]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2]]
    assert top_k(scores, 10).shape == (1, 5)  # k larger than the catalogue


def test_recommend_masks_seen_items(bundle):
    user = bundle.user_map.ids[0]
    frame = recommend(bundle, user, k=50)
    seen_raw = set(bundle.item_map.raw(bundle.seen(0)).tolist())
    assert not seen_raw & set(frame["movieId"].tolist())
    assert len(frame) == len(bundle.item_map) - len(seen_raw)
    assert frame["score"].is_monotonic_decreasing


def test_recommend_all_matches_single_user(bundle):
    items, _ = recommend_all(bundle, 5, chunk=7)
    for u in (0, 3, 24):  # user 0 rated nearly every item: fewer than k real places
        single = recommend(bundle, bundle.user_map.ids[u], k=5)
        real = items[u][items[u] >= 0]
        assert bundle.item_map.raw(real).tolist() == single["movieId"].tolist()
    assert (items[0] >= 0).sum() == len(bundle.item_map) - len(bundle.seen(0))


def test_unknown_user_and_bad_k(bundle):
    with pytest.raises(UnknownIdError, match="unknown user"):
        recommend(bundle, 999_999)
    with pytest.raises(EmbedrecError, match="k must be"):
        recommend(bundle, bundle.user_map.ids[0], k=0)


def test_dot_fold_in_is_the_ridge_solution(bundle):
    rated = [(bundle.item_map.ids[i], r) for i, r in [(0, 5.0), (2, 1.0), (5, 3.5)]]
    fit = fold_in(bundle, rated, l2=0.5)
    q = bundle.model.item_factors[[0, 2, 5]].astype(np.float64)
    expected = np.linalg.solve(q.T @ q + 0.5 * np.eye(q.shape[1]), q.T @ np.array([5.0, 1.0, 3.5]))
    assert np.allclose(fit.vector, expected, atol=1e-5)
    assert (fit.n_given, fit.n_used) == (3, 3)


def test_fold_in_counts_unknown_and_rejects_bad_input(bundle):
    frame, fit = recommend_for_ratings(bundle, [(bundle.item_map.ids[0], 4.0), (123456, 3.0)], 5)
    assert (fit.n_used, fit.unknown) == (1, [123456])
    assert bundle.item_map.ids[0] not in frame["movieId"].tolist()  # rated items are not recommended
    with pytest.raises(EmbedrecError, match="no ratings"):
        recommend_for_ratings(bundle, [], 5)
    with pytest.raises(EmbedrecError, match="outside the scale"):
        fold_in(bundle, [(bundle.item_map.ids[0], 9.0)])
    with pytest.raises(EmbedrecError, match="none of the"):
        fold_in(bundle, [(123456, 3.0)])


def test_similar_items_by_cosine(bundle):
    import copy

    bundle = copy.deepcopy(bundle)  # the fixture is shared: edit a copy
    w = bundle.model.item_factors
    w[1] = w[0] * 3.0  # same direction as item 0, different length
    frame = similar_items(bundle, bundle.item_map.ids[0], k=3)
    assert frame["movieId"].iloc[0] == bundle.item_map.ids[1]
    assert frame["score"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert bundle.item_map.ids[0] not in frame["movieId"].tolist()


@pytest.mark.parametrize("name, min_corr", [("dot", 0.4), ("biased", 0.5), ("mlp", 0.8)])
def test_fold_in_recovers_a_known_user(name, min_corr):
    """Folding in a training user's own ratings gives scores like the trained user's, and fits
    those ratings better than the bias baseline does."""
    data = make_ratings(n_users=60, n_items=40, seed=3)
    preset = get_preset("default").with_overrides(epochs=20, valid_fraction=0.0)
    b = train_bundle(data, name, preset, seed=0)
    corrs, gains = [], []
    for u in range(1, 15):
        mine = data.users == u
        items, ratings = data.items[mine], data.ratings[mine]
        fit = fold_in(b, [(b.item_map.ids[i], float(r)) for i, r in zip(items, ratings)])
        new = score_new_user(b, fit)
        corrs.append(np.corrcoef(new, score_users(b, np.array([u]))[0])[0, 1])
        base = b.fallback.mean + fit.params.base_bias + b.fallback.item_bias[items]
        gains.append(np.sqrt(np.mean((new[items] - ratings) ** 2))
                     - np.sqrt(np.mean((base - ratings) ** 2)))
    assert np.mean(corrs) > min_corr
    assert np.mean(gains) < 0


@pytest.mark.parametrize("name", ["dot", "biased", "mlp", "pop"])
def test_top_n_with_torch_on_a_device_equals_numpy(name):
    """The torch top-N path (what runs on a GPU) gives the numpy path's lists, here on the CPU."""
    data = make_ratings(n_users=30, n_items=25, seed=2)
    bundle = train_bundle(data, name, get_preset("default").with_overrides(epochs=2), seed=0)
    items_np, scores_np = recommend_all(bundle, 5)
    items_t, scores_t = recommend_all(bundle, 5, device="cpu", chunk=7)
    np.testing.assert_allclose(scores_t, scores_np, rtol=1e-5, atol=1e-5)
    # the same lists, up to the order of near ties
    same = (items_t == items_np) | np.isclose(scores_t, scores_np, atol=1e-5)
    assert same.all()


def test_topn_device_names():
    import torch

    from embedrec.recommender import topn_device

    assert topn_device("cpu") is None and topn_device(None) is None
    if not torch.cuda.is_available():
        assert topn_device("auto") is None
        with pytest.raises(EmbedrecError, match="no CUDA device"):
            topn_device("cuda")
    with pytest.raises(EmbedrecError, match="unknown device"):
        topn_device("tpu")


@pytest.mark.parametrize("name", ["dot", "biased"])
def test_one_product_per_chunk_gives_the_rank_scores_and_their_lists(name):
    """A model whose scores are one product of two tables (``linear_factors``) is ranked from
    that product: the same scores as ``rank_scores`` and the lists a full sort of them gives."""
    data = make_ratings(n_users=30, n_items=25, seed=2)
    bundle = train_bundle(data, name, get_preset("default").with_overrides(epochs=2), seed=0)
    left, right = bundle.model.linear_factors()
    users = np.arange(len(bundle.user_map))
    expected = bundle.scored.rank_scores(users)
    np.testing.assert_allclose(left @ right.T, expected, rtol=1e-5, atol=1e-5)
    assert bundle.scored.linear_factors(users) is not None
    expected[~bundle.candidate_items()[None, :].repeat(len(users), 0)] = -np.inf
    for u in users:
        expected[u, bundle.seen(u)] = -np.inf
    items, scores = recommend_all(bundle, 5, chunk=7)
    for u in users:
        order = np.lexsort((np.arange(expected.shape[1]), -expected[u]))[:5]
        order = order[np.isfinite(expected[u, order])]
        got = items[u][items[u] >= 0]
        assert len(got) == len(order)
        assert ((got == order) | np.isclose(expected[u, got], expected[u, order], atol=1e-5)).all()
        np.testing.assert_allclose(scores[u][:len(got)],
                                   bundle.scored.to_rating(expected[u, order])
                                   if bundle.scored.predicts_ratings else expected[u, order],
                                   rtol=1e-5, atol=1e-5)


def test_no_product_for_unknown_users_or_factors_that_are_not_finite(bundle):
    import copy

    fresh = copy.deepcopy(bundle)
    assert fresh.scored.linear_factors(np.array([0, 1])) is not None
    fresh.scored.known_users[1] = False  # an unknown user's row is the fallback's
    assert fresh.scored.linear_factors(np.array([0, 1])) is None
    assert fresh.scored.linear_factors(np.array([0])) is not None
    broken = copy.deepcopy(bundle)
    broken.model.user_factors[2, 0] = np.nan
    broken.__dict__.pop("scored", None)
    assert broken.scored.linear_factors(np.array([0])) is None
    items, _ = recommend_all(broken, 3)  # the general path, with the fallback for the NaN row
    assert (items[2] >= 0).all()
