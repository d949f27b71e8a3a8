"""Top-k selection over rows of scores, seen items masked, users in parallel.

One pass over each row keeps the k best candidates in a small sorted buffer (a new candidate
enters only when it beats the k-th, and a block of items is skipped after one vectorised
comparison when none of them does): no sort and no partition of the catalogue, no copy of the
scores. The buffer orders by score, then by item index (the lower first), so results are the
same on any number of threads.

``masked_top_k`` selects from rows of scores already computed; ``factor_top_k`` scores a model
that is one product of two tables and selects as it goes, a cache-sized tile of scores at a
time, so no row of scores ever goes out to memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from embedrec.kernels.adam import JIT

BLOCK = 32  # items tested together before any is looked at one by one
TILE_ITEMS = 1024  # factor_top_k: movies scored per product (a tile of 128 users: 512 KB)
TILE_USERS = 128  # at most this many users per thread's block


@njit(inline="always", **JIT)
def keep_best(row, offset, n, allowed, best_i, best_s, floor):
    """Fold ``row[:n]`` (the scores of items ``offset ..``) into a row's sorted best k
    (``best_i``, ``best_s``), given its k-th best score so far (``floor``); returns the new
    floor. A candidate enters only when it beats the k-th, and a block of items is skipped
    after one vectorised comparison when none of them does."""
    k = len(best_s)
    for b0 in range(0, n, BLOCK):
        b1 = min(b0 + BLOCK, n)
        hit = False  # one vectorised test per block: most blocks hold no candidate
        for i in range(b0, b1):
            hit |= row[i] > floor
        if not hit:
            continue
        for i in range(b0, b1):
            s = row[i]
            if s > floor and allowed[offset + i]:
                q = k - 1
                while q > 0 and best_s[q - 1] < s:
                    best_s[q] = best_s[q - 1]
                    best_i[q] = best_i[q - 1]
                    q -= 1
                best_s[q] = s
                best_i[q] = offset + i
                floor = best_s[k - 1]
    return floor


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
        keep_best(row, 0, n_items, allowed, best_i, best_s, ninf)


def item_tiles(right: np.ndarray, width: int) -> np.ndarray:
    """``right`` (items x factors) as (tiles, factors, width) blocks of its transpose, the
    last one padded with zeros: each block is contiguous, ready for one matrix product."""
    n_items, n_factors = right.shape
    n_tiles = max(1, -(-n_items // width))
    tiles = np.zeros((n_tiles, n_factors, width), dtype=right.dtype)
    for t in range(n_tiles):
        part = right[t * width:(t + 1) * width]
        tiles[t, :, :len(part)] = part.T
    return tiles


@njit(parallel=True, **JIT)
def factor_top_k(left, tiles, n_items, users, seen_indptr, seen_items, allowed, k, block,
                 out_items, out_scores):
    """``masked_top_k`` of the scores ``left[users] @ right.T`` (``tiles = item_tiles(right,
    w)``) without ever holding a row of them: each thread takes ``block`` users at a time and
    scores them a tile of ``w`` movies at a time (one matrix product into a buffer that stays
    in cache), masking seen movies and keeping each row's best k as it goes. The same ordering
    (score, then the lower index) and the same -1 / -inf for rows short of k candidates."""
    n_rows = len(users)
    width = tiles.shape[2]
    ninf = -np.inf
    for b in prange((n_rows + block - 1) // block):
        r0 = b * block
        m = min(block, n_rows - r0)
        rows = np.empty((m, left.shape[1]), dtype=left.dtype)
        ptr = np.zeros(m + 1, dtype=np.int64)
        for r in range(m):
            u = users[r0 + r]
            rows[r] = left[u]
            ptr[r + 1] = ptr[r] + seen_indptr[u + 1] - seen_indptr[u]
        seen = np.empty(ptr[m], dtype=np.int64)  # each row's seen movies, sorted
        for r in range(m):
            u = users[r0 + r]
            seen[ptr[r]:ptr[r + 1]] = np.sort(seen_items[seen_indptr[u]:seen_indptr[u + 1]])
        cursor = ptr[:m].copy()
        floor = np.full(m, ninf, dtype=np.float64)
        for r in range(m):
            for q in range(k):
                out_items[r0 + r, q] = -1
                out_scores[r0 + r, q] = ninf
        scores = np.empty((m, width), dtype=left.dtype)
        for t in range(tiles.shape[0]):
            t0 = t * width
            t1 = min(t0 + width, n_items)
            np.dot(rows, tiles[t], scores)
            for r in range(m):
                row = scores[r]
                while cursor[r] < ptr[r + 1] and seen[cursor[r]] < t1:
                    row[seen[cursor[r]] - t0] = ninf
                    cursor[r] += 1
                floor[r] = keep_best(row, t0, t1 - t0, allowed, out_items[r0 + r],
                                     out_scores[r0 + r], floor[r])
