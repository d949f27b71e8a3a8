"""Score a model on test rows, with cold-start rows counted and predicted by the fallback.

A test row is *cold* when its user or its movie has no rating among the training rows. The model
never scores such a row from an untrained embedding: the fallback (the damped bias baseline,
which gives an unknown user or movie bias 0) predicts it. ``rmse_model_all`` keeps the model's
own predictions on every row, which is what the reference reported.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.evaluation import ranking
from embedrec.evaluation.metrics import mae, mse, rmse


class Scored(Protocol):
    """A model with its fallback (``embedrec.models.fallback.WithFallback``)."""

    known_users: np.ndarray
    known_items: np.ndarray

    def predict(self, users: np.ndarray, items: np.ndarray,
                timestamps: np.ndarray | None = None) -> np.ndarray: ...

    def own_predict(self, users: np.ndarray, items: np.ndarray,
                    timestamps: np.ndarray | None = None) -> np.ndarray: ...


def cold_mask(train: Ratings, test: Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks over test rows: (cold user, cold item, either)."""
    known_users = np.bincount(train.users, minlength=train.n_users) > 0
    known_items = np.bincount(train.items, minlength=train.n_items) > 0
    cold_u, cold_i = ~known_users[test.users], ~known_items[test.items]
    return cold_u, cold_i, cold_u | cold_i


def cold_counts(scored: Scored, test: Ratings) -> tuple[dict, np.ndarray]:
    """Counts of cold test rows (user or movie without training ratings), and the mask."""
    cold_u = ~scored.known_users[test.users]
    cold_i = ~scored.known_items[test.items]
    cold = cold_u | cold_i
    return {"n_test": int(len(test)), "n_cold": int(cold.sum()),
            "n_cold_users": int(cold_u.sum()), "n_cold_items": int(cold_i.sum())}, cold


def evaluate_ratings(scored: Scored, test: Ratings) -> tuple[dict, np.ndarray]:
    """Rating metrics on ``test``; returns (metrics, final predictions).

    ``rmse`` scores the final predictions (the fallback's on rows the model cannot score);
    ``rmse_warm``/``rmse_cold`` split them by whether the user and movie had training ratings;
    ``rmse_cold_fallback`` is the bias fallback alone on the same cold rows;
    ``rmse_model_all`` scores the model's own predictions on every row.
    """
    counts, cold = cold_counts(scored, test)
    ts = test.timestamps  # each row at its own time (models without time inputs ignore it)
    pred = np.asarray(scored.predict(test.users, test.items, ts), dtype=np.float32)
    own = np.asarray(scored.own_predict(test.users, test.items, ts), dtype=np.float32)
    fallback = np.asarray(scored.fallback.predict(test.users[cold], test.items[cold]),
                          dtype=np.float32)
    truth = test.ratings
    warm = ~cold
    metrics = {
        "rmse": rmse(pred, truth),
        "mae": mae(pred, truth),
        "mse": mse(pred, truth),
        "rmse_warm": rmse(pred[warm], truth[warm]) if warm.any() else None,
        "rmse_cold": rmse(pred[cold], truth[cold]) if cold.any() else None,
        "rmse_cold_fallback": rmse(fallback, truth[cold]) if cold.any() else None,
        "rmse_model_all": rmse(own, truth) if np.isfinite(own).all() else None,
    } | counts
    return metrics, pred


def relevant_items(test: Ratings, threshold: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Test users (sorted) and, for each, the items they rated at least ``threshold``."""
    users = np.unique(test.users)
    order = np.argsort(test.users, kind="stable")
    starts = np.searchsorted(test.users[order], users)
    ends = np.searchsorted(test.users[order], users, side="right")
    good = test.ratings[order] >= threshold
    items = test.items[order]
    return users, [items[s:e][good[s:e]] for s, e in zip(starts, ends)]


def evaluate_ranking(
    recommend_fn, test: Ratings, *, k: int, threshold: float, item_counts: np.ndarray
) -> dict:
    """Top-k metrics over the test users.

    ``recommend_fn(users) -> (n_users, k) item indices`` must rank the whole catalogue minus
    each user's training items (-1 for empty places). Relevant = a test rating >= threshold;
    users without a relevant test item are left out of the means and counted apart.
    """
    users, relevant = relevant_items(test, threshold)
    recs = np.asarray(recommend_fn(users))[:, :k]
    n_rel = np.array([len(r) for r in relevant])
    hits = ranking.hits_matrix(recs, relevant)
    means = ranking.mean_metrics(hits, n_rel, k)
    return {
        "k": k,
        "relevance_threshold": threshold,
        "precision_at_k": means["precision"],
        "recall_at_k": means["recall"],
        "ndcg_at_k": means["ndcg"],
        "map_at_k": means["map"],
        "hit_rate_at_k": means["hit_rate"],
        "coverage_at_k": ranking.coverage(recs, len(item_counts)),
        "popularity_at_k": ranking.mean_popularity(recs, item_counts),
        "long_tail_at_k": ranking.long_tail_share(recs, item_counts),
        "n_users_ranked": means["n_users"],
        "n_users_no_relevant": int(len(users) - means["n_users"]),
    }
