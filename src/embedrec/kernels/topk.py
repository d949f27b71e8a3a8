"""Top-k selection over rows of scores, seen items masked, users in parallel.

One pass over each row keeps the k best candidates in a small sorted buffer (a new candidate
enters only when it beats the k-th, and a block of items is skipped after one vectorised
comparison when none of them does): no sort and no partition of the catalogue, no copy of the
scores. The buffer orders by score, then by item index (the lower first), so results are the
same on any number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from embedrec.kernels.adam import JIT

BLOCK = 32  # items tested together before any is looked at one by one


@njit(parallel=True, **JIT)
def masked_top_k(scores, users, seen_indptr, seen_items, allowed, k, out_items, out_scores):
    """For row r (user ``users[r]``): the ``k`` best of ``scores[r]`` over items with
    ``allowed[item]`` and not in the user's ``seen_items[seen_indptr[u]:seen_indptr[u + 1]]``.

    Writes ``out_items`` (-1 where fewer than k qualify) and ``out_scores`` (-inf there).
    ``scores`` is modified: seen items become -inf. NaN scores never qualify."""
    n_items = scores.shape[1]
    ninf = -np.inf
    for r in prange(scores.shape[0]):
        row = scores[r]
        u = users[r]
        for e in range(seen_indptr[u], seen_indptr[u + 1]):
            row[seen_items[e]] = ninf
        best_i = out_items[r]
        best_s = out_scores[r]
        for q in range(k):
            best_i[q] = -1
            best_s[q] = ninf
        floor = ninf  # the k-th best so far
        for b0 in range(0, n_items, BLOCK):
            b1 = min(b0 + BLOCK, n_items)
            hit = False  # one vectorised test per block: most blocks hold no candidate
            for i in range(b0, b1):
                hit |= row[i] > floor
            if not hit:
                continue
            for i in range(b0, b1):
                s = row[i]
                if s > floor and allowed[i]:
                    q = k - 1
                    while q > 0 and best_s[q - 1] < s:
                        best_s[q] = best_s[q - 1]
                        best_i[q] = best_i[q - 1]
                        q -= 1
                    best_s[q] = s
                    best_i[q] = i
                    floor = best_s[k - 1]
