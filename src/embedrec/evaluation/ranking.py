"""Top-N metrics as pure functions.

Everything is computed from a *hits* matrix: ``hits[u, j]`` is True when the j-th recommendation
for user u is relevant. ``n_relevant[u]`` is how many relevant items u has in the test rows.
Binary relevance throughout; each metric is in [0, 1] and equals 1 for a perfect ranking.

- precision@k = hits / k
- recall@k = hits / n_relevant
- hit rate@k = 1 if any hit
- NDCG@k = DCG / ideal DCG, DCG = sum_j hit_j / log2(j + 1) (j from 1)
- AP@k = sum_j precision@j * hit_j / min(k, n_relevant); MAP@k is its mean over users
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")


def hits_matrix(recommended: np.ndarray, relevant: Sequence[Iterable]) -> np.ndarray:
    """Boolean (n_users, k): is each recommended item in that user's relevant set?

    ``recommended`` may hold -1 for empty places (fewer candidates than k); those never hit.
    """
    recommended = np.asarray(recommended)
    hits = np.zeros(recommended.shape, dtype=bool)
    for row, rel in enumerate(relevant):
        rel = np.asarray(list(rel) if not isinstance(rel, np.ndarray) else rel)
        if len(rel):
            hits[row] = np.isin(recommended[row], rel) & (recommended[row] >= 0)
    return hits


def per_user(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each metric per user (users with no relevant item get NaN for every metric)."""
    hits = np.asarray(hits, dtype=bool)[:, :k]
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    if hits.shape[0] != len(n_rel):
        raise ValueError(f"hits has {hits.shape[0]} users, n_relevant {len(n_rel)}")
    if np.any(hits.sum(1) > n_rel):
        raise ValueError("more hits than relevant items for some user")
    valid = n_rel > 0
    n_hits = hits.sum(1).astype(np.float64)
    ranks = np.arange(1, hits.shape[1] + 1)
    discounts = 1.0 / np.log2(ranks + 1)
    dcg = (hits * discounts).sum(1)
    ideal_len = np.minimum(n_rel, k).astype(int)
    cum = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1))))
    idcg = cum[ideal_len]
    prec_at = np.cumsum(hits, axis=1) / ranks
    ap = (prec_at * hits).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "precision": n_hits / k,
            "recall": n_hits / n_rel,
            "ndcg": dcg / idcg,
            "map": ap / np.minimum(n_rel, k),
            "hit_rate": (n_hits > 0).astype(np.float64),
        }
    for key in out:
        out[key] = np.where(valid, out[key], np.nan)
    return out


def mean_metrics(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, float]:
    """Means over users with at least one relevant item; ``n_users`` counts them."""
    values = per_user(hits, n_relevant, k)
    valid = np.asarray(n_relevant) > 0
    result = {name: float(np.mean(v[valid])) if valid.any() else float("nan")
              for name, v in values.items()}
    result["n_users"] = int(valid.sum())
    return result


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's list."""
    rec = np.asarray(recommended).ravel()
    return len(np.unique(rec[rec >= 0])) / n_items if n_items else 0.0


def mean_popularity(recommended: np.ndarray, item_counts: np.ndarray) -> float:
    """Mean number of training ratings of the recommended items (higher = more mainstream)."""
    rec = np.asarray(recommended).ravel()
    rec = rec[rec >= 0]
    return float(np.mean(item_counts[rec])) if len(rec) else float("nan")


def long_tail_share(recommended: np.ndarray, item_counts: np.ndarray,
                    head_fraction: float = 0.2) -> float:
    """Share of recommended items in the long tail: outside the ``head_fraction`` most-rated
    items of the catalogue (ties at the boundary count as head)."""
    rec = np.asarray(recommended).ravel()
    rec = rec[rec >= 0]
    counts = np.asarray(item_counts)
    if not len(rec) or not len(counts):
        return float("nan")
    n_head = max(1, int(np.ceil(head_fraction * len(counts))))
    cutoff = np.sort(counts)[::-1][n_head - 1]
    return float(np.mean(counts[rec] < cutoff))


# One-list conveniences, for readers and tests: the same arithmetic as above.
def _one(ranked: Sequence, relevant: Iterable, k: int) -> dict[str, float]:
    rel = set(relevant)
    row = np.array([item in rel for item in list(ranked)[:k]] + [False] * max(0, k - len(ranked)))
    values = per_user(row[None, :], np.array([len(rel)]), k)
    return {name: float(v[0]) for name, v in values.items()}


def precision_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    return _one(ranked, relevant, k)["precision"]


def recall_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    return _one(ranked, relevant, k)["recall"]


def ndcg_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    return _one(ranked, relevant, k)["ndcg"]


def map_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    return _one(ranked, relevant, k)["map"]


def hit_rate_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    return _one(ranked, relevant, k)["hit_rate"]
