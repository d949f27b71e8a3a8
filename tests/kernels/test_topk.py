"""The compiled top-k agrees with a full sort, masks what it must, and fills short lists."""

from __future__ import annotations

import numpy as np
import pytest

from embedrec.kernels.topk import masked_top_k


def reference(scores, users, indptr, items, allowed, k):
    """Sort each row by (-score, index) over allowed, unseen items with finite scores."""
    out_i = np.full((len(users), k), -1)
    out_s = np.full((len(users), k), -np.inf, dtype=scores.dtype)
    for r, u in enumerate(users):
        ok = allowed.copy()
        ok[items[indptr[u]:indptr[u + 1]]] = False
        cand = np.flatnonzero(ok & (scores[r] > -np.inf))
        order = cand[np.lexsort((cand, -scores[r][cand]))][:k]
        out_i[r, :len(order)], out_s[r, :len(order)] = order, scores[r][order]
    return out_i, out_s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_a_full_sort_with_ties_and_masks(dtype):
    rng = np.random.default_rng(0)
    n_users, n_items, k = 50, 200, 10
    scores = np.round(rng.normal(size=(n_users, n_items)), 1).astype(dtype)  # many ties
    seen = [rng.choice(n_items, rng.integers(0, 60), replace=False) for _ in range(n_users)]
    indptr = np.concatenate(([0], np.cumsum([len(s) for s in seen]))).astype(np.int64)
    items = np.concatenate(seen).astype(np.int64)
    allowed = rng.random(n_items) > 0.1
    users = rng.permutation(n_users).astype(np.int64)
    rows = scores[users]
    want_i, want_s = reference(rows, users, indptr, items, allowed, k)
    got_i, got_s = np.empty((n_users, k), np.int64), np.empty((n_users, k), dtype)
    masked_top_k(rows.copy(), users, indptr, items, allowed, k, got_i, got_s)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_s, want_s)


def test_short_lists_are_filled_with_minus_one():
    scores = np.array([[3.0, 1.0, 2.0, np.nan]])
    indptr, items = np.array([0, 1]), np.array([2])  # item 2 seen
    allowed = np.array([True, False, True, True])    # item 1 not allowed; item 3 NaN
    got_i, got_s = np.empty((1, 3), np.int64), np.empty((1, 3))
    masked_top_k(scores, np.array([0]), indptr, items, allowed, 3, got_i, got_s)
    assert got_i.tolist() == [[0, -1, -1]]
    assert got_s[0, 0] == 3.0 and np.isneginf(got_s[0, 1:]).all()


@pytest.mark.parametrize("width,block", [(16, 1), (64, 7), (1000, 64), (37, 50)])
def test_the_tiled_product_picks_what_a_full_sort_of_the_product_does(width, block):
    """Small integer factors make every score exact whatever the product's blocking, and give
    many ties: each tiling of users and movies picks exactly the full sort's items."""
    from embedrec.kernels.topk import factor_top_k, item_tiles

    rng = np.random.default_rng(1)
    n_users, n_items, k = 40, 300, 10
    left = rng.integers(-2, 3, size=(n_users, 3)).astype(np.float32)
    right = rng.integers(-2, 3, size=(n_items, 3)).astype(np.float32)
    seen = [rng.choice(n_items, rng.integers(200, 300), replace=False) for _ in range(n_users)]
    indptr = np.concatenate(([0], np.cumsum([len(s) for s in seen]))).astype(np.int64)
    items = np.concatenate(seen).astype(np.int32)
    allowed = rng.random(n_items) > 0.1
    users = rng.permutation(n_users)[:33].astype(np.int64)
    want_i, want_s = reference(left[users] @ right.T, users, indptr, items, allowed, k)
    assert (want_i == -1).any()  # some users have fewer than k candidates
    got_i, got_s = np.empty((len(users), k), np.int64), np.empty((len(users), k), np.float32)
    factor_top_k(left, item_tiles(right, width), n_items, users, indptr, items, allowed, k,
                 block, got_i, got_s)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_s, want_s)


def test_item_tiles_hold_the_transpose_in_blocks():
    from embedrec.kernels.topk import item_tiles

    right = np.arange(10, dtype=np.float32).reshape(5, 2)
    tiles = item_tiles(right, 2)
    assert tiles.shape == (3, 2, 2) and tiles.flags.c_contiguous
    np.testing.assert_array_equal(tiles[1], [[4, 6], [5, 7]])
    np.testing.assert_array_equal(tiles[2], [[8, 0], [9, 0]])
