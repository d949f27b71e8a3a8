"""EASE, iALS and item-kNN against hand-computed cases, and their own rules (memory refusal,
lambda on validation, fold-in)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.models.ease import ease_weights
from embedrec.models.ials import fold_in_user, solve_side
from embedrec.models.implicit import csr, dense_rows, interactions
from embedrec.models.knn import neighbours
from embedrec.models.registry import get
from embedrec.models.spec import Shape
from tests.conftest import make_ratings


def _ratings(pairs, ratings=None) -> Ratings:
    users, items = zip(*pairs)
    frame = pd.DataFrame({"user": users, "item": items,
                          "rating": ratings or [4.0] * len(pairs), "timestamp": range(len(pairs))})
    return Ratings.from_frame(frame, scale=(0.5, 5.0))


def _shape(data):
    return Shape(data.n_users, data.n_items, data.scale)


def test_ease_two_items_by_hand():
    # X = [[1, 1], [1, 0]]: G = [[2, 1], [1, 1]], lambda 1: P = (G + I)^-1 = [[2, -1], [-1, 3]] / 5
    # B_01 = -P_01 / P_11 = 1/3, B_10 = -P_10 / P_00 = 1/2 (the ridge fits of one column on the other)
    np.testing.assert_allclose(ease_weights(np.array([[2.0, 1.0], [1.0, 1.0]]), 1.0),
                               [[0, 1 / 3], [1 / 2, 0]], atol=1e-6)
    data = _ratings([(1, 10), (1, 20), (2, 10)])
    spec = get("ease")
    model = spec.fit(spec.config(l2=1.0, min_count=1), data, _shape(data))
    np.testing.assert_allclose(model.rank_scores(np.array([1])), [[0.0, 1 / 3]], atol=1e-6)
    np.testing.assert_allclose(model.predict(np.array([0, 1]), np.array([1, 1])), [1 / 3, 1 / 3],
                               atol=1e-6)


def test_ease_equals_a_ridge_fit_per_column():
    data = make_ratings(n_users=30, n_items=8, density=0.4, seed=2)
    x = dense_rows(*csr(*interactions(data, 0.0), data.n_users), np.arange(data.n_users),
                   data.n_items, dtype=np.float64)
    b = ease_weights(x.T @ x, 3.0)
    for j in range(data.n_items):
        others = np.delete(np.arange(data.n_items), j)
        xo = x[:, others]
        ridge = np.linalg.solve(xo.T @ xo + 3.0 * np.eye(len(others)), xo.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], ridge, atol=1e-4)
        assert b[j, j] == 0


def test_ease_refuses_a_catalogue_too_big_for_memory_naming_the_size():
    data = make_ratings(n_users=30, n_items=20, seed=1)
    spec = get("ease")
    with pytest.raises(ConfigError, match=r"ease on 20 items .* needs 0\.0 GB, more than"):
        spec.fit(spec.config(max_gb=1e-9, min_count=1), data, _shape(data))


def test_ease_chooses_lambda_on_validation_and_leaves_rare_items_below():
    data = make_ratings(n_users=60, n_items=25, density=0.3, seed=3)
    spec = get("ease")
    model = spec.fit(spec.config(l2=(1.0, 30.0), min_count=1), data, _shape(data))
    assert model.l2 in (1.0, 30.0)
    # an item below min_count scores under every item of the model
    counts = np.bincount(data.items, minlength=data.n_items)
    model = spec.fit(spec.config(l2=5.0, min_count=int(np.sort(counts)[1]) + 1), data, _shape(data))
    rare = np.setdiff1d(np.arange(data.n_items), model.kept)
    assert len(rare) >= 1
    scores = model.rank_scores(np.arange(data.n_users))
    assert (scores[:, rare].max(1) < scores[:, model.kept].min(1)).all()


def test_ials_fold_in_by_hand_and_cg_matches_cholesky():
    # Y = I (2 items), the user took item 0, alpha 1, reg 1:
    # (Y'Y + alpha y0 y0' + reg I) x = (1 + alpha) y0  ->  diag(3, 2) x = (2, 0)  ->  x = (2/3, 0)
    np.testing.assert_allclose(fold_in_user(np.eye(2), np.array([0]), 1.0, 1.0), [2 / 3, 0], atol=1e-12)
    data = make_ratings(n_users=20, n_items=12, density=0.4, seed=5)
    spec = get("ials")
    exact = spec.fit(spec.config(n_factors=4, solver="cholesky", sweeps=3), data, _shape(data))
    cg = spec.fit(spec.config(n_factors=4, solver="cg", cg_steps=8, sweeps=3), data, _shape(data))
    np.testing.assert_allclose(cg.rank_scores(np.arange(20)), exact.rank_scores(np.arange(20)),
                               atol=2e-3)


def test_ials_sweeps_lower_the_weighted_loss():
    data = make_ratings(n_users=25, n_items=15, density=0.3, seed=6)
    users, items = interactions(data, 0.0)
    p = np.zeros((data.n_users, data.n_items))
    p[users, items] = 1
    conf = 1 + 4.0 * p
    spec = get("ials")
    losses = []
    for sweeps in (1, 2, 4):
        m = spec.fit(spec.config(n_factors=3, alpha=4.0, reg=0.5, sweeps=sweeps,
                                 solver="cholesky"), data, _shape(data))
        x, y = m.user_factors.astype(np.float64), m.item_factors.astype(np.float64)
        losses.append((conf * (p - x @ y.T) ** 2).sum() + 0.5 * ((x ** 2).sum() + (y ** 2).sum()))
    assert losses[0] > losses[1] > losses[2]


def test_ials_solve_side_is_the_normal_equations():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(5, 3)).astype(np.float32)
    indptr, cols = np.array([0, 2, 3]), np.array([0, 4, 2])
    out = solve_side(y, np.zeros((2, 3), np.float32), indptr, cols, 2.0, 0.7, "cholesky", 1)
    yu = y[[0, 4]].astype(np.float64)
    a = y.T.astype(np.float64) @ y + 2.0 * yu.T @ yu + 0.7 * np.eye(3)
    np.testing.assert_allclose(out[0], np.linalg.solve(a, 3.0 * yu.sum(0)), rtol=1e-4, atol=1e-5)


def test_knn_cosine_neighbours_by_hand():
    # users x items [[1, 1, 0], [1, 1, 1], [0, 0, 1]]: every item has 2 users;
    # co-ratings (0, 1) = 2 -> cosine 1; (0, 2) = (1, 2) = 1 -> cosine 1/2
    x = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=np.float32)
    idx, sims = neighbours(x, 2)
    assert idx[0].tolist() == [1, 2] and idx[1].tolist() == [0, 2]
    np.testing.assert_allclose(sims, [[1, 0.5], [1, 0.5], [0.5, 0.5]])
    data = _ratings([(1, 10), (1, 20), (2, 10), (2, 20), (2, 30), (3, 30)])
    spec = get("knn")
    model = spec.fit(spec.config(k=1), data, _shape(data))
    # user 3 rated item 2 only: item 2's one neighbour (0 or 1, tied at 1/2) gets 1/2
    scores = model.rank_scores(np.array([2]))[0]
    np.testing.assert_allclose(sorted(scores.tolist()), [0.0, 0.0, 0.5], atol=1e-6)
    assert scores[2] == 0
    # user 1 rated items 0 and 1, each the other's neighbour at similarity 1
    np.testing.assert_allclose(model.rank_scores(np.array([0]))[0], [1, 1, 0], atol=1e-6)


@pytest.mark.parametrize("name", ["ease", "ials", "knn"])
def test_fold_in_of_a_training_user_gives_their_own_scores(name):
    data = make_ratings(n_users=30, n_items=12, density=0.4, seed=8)
    spec = get(name)
    config = spec.config(**({"min_count": 1} if name == "ease" else {}))
    model = spec.fit(config, data, _shape(data))
    user = 3
    items = data.items[data.users == user]
    params = spec.fold_in(model, items, data.ratings[data.users == user], base_bias=0.0, l2=1.0,
                          iterations=5)
    got, own = model.score_user(params), model.rank_scores(np.array([user]))[0]
    if name == "ials":  # one closed-form solve reproduces the last sweep's user solve closely
        assert np.corrcoef(got, own)[0, 1] > 0.99
    else:
        np.testing.assert_allclose(got, own, atol=1e-5)


def test_min_rating_makes_only_good_ratings_interactions():
    data = _ratings([(1, 10), (1, 20), (2, 10)], ratings=[5.0, 1.0, 4.0])
    users, items = interactions(data, 4.0)
    assert users.tolist() == [0, 1] and items.tolist() == [0, 0]


def test_ials_frequency_scaled_regularisation_by_hand():
    """reg_u = reg (1 + alpha n_u / n_items)^nu. Y = I (2 items), the user took item 0, alpha 1,
    reg 1, nu 1: reg_u = 1 + 1/2 = 1.5, so diag(3.5, 2.5) x = (2, 0) -> x = (4/7, 0)."""
    np.testing.assert_allclose(fold_in_user(np.eye(2), np.array([0]), 1.0, 1.0, 1.0),
                               [4 / 7, 0], atol=1e-12)
    # training solves use the same rule: a user side solve, one row per user
    rng = np.random.default_rng(1)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    indptr, cols = np.array([0, 1, 4]), np.array([2, 0, 3, 5])
    for solver in ("cholesky", "cg"):
        out = solve_side(y, np.zeros((2, 3), np.float32), indptr, cols, 2.0, 0.7, solver, 12,
                         reg_exponent=0.5)
        for r, items in enumerate(([2], [0, 3, 5])):
            expected = fold_in_user(y, np.array(items), 2.0, 0.7, 0.5)
            np.testing.assert_allclose(out[r], expected, rtol=1e-3, atol=1e-4)
    # nu = 0 is the plain model
    data = make_ratings(n_users=15, n_items=10, density=0.4, seed=2)
    spec = get("ials")
    plain = spec.fit(spec.config(n_factors=3, sweeps=2), data, _shape(data))
    zero = spec.fit(spec.config(n_factors=3, sweeps=2, reg_exponent=0.0), data, _shape(data))
    np.testing.assert_array_equal(plain.user_factors, zero.user_factors)
    scaled = spec.fit(spec.config(n_factors=3, sweeps=2, reg_exponent=1.0), data, _shape(data))
    assert not np.allclose(plain.user_factors, scaled.user_factors)
