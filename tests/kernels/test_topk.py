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
