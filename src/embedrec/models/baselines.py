"""Baselines without torch: the global mean and damped user + item biases.

``BiasBaseline`` is also the documented cold-start fallback: a user or movie with no training
ratings gets bias 0, so a cold row is predicted from whatever part of it is known.
"""

from __future__ import annotations

import numpy as np

from embedrec.data.dataset import Ratings


def _safe_ratio(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count, and 0 where count is 0 (no ratings and no damping)."""
    out = np.zeros(len(total))
    np.divide(total, count, out=out, where=count > 0)
    return out


class GlobalMean:
    """Predicts the mean training rating for every pair."""

    name = "mean"

    def __init__(self) -> None:
        self.mean = 0.0

    def fit(self, train: Ratings) -> GlobalMean:
        self.mean = float(np.mean(train.ratings, dtype=np.float64))
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.mean, dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": np.array([self.mean], dtype=np.float64)}


class BiasBaseline:
    """mean + b_user + b_item, fitted by alternating damped averages (a few ALS sweeps).

    b_item = sum(r - mean - b_user) / (n_item + item_damping), then
    b_user = sum(r - mean - b_item) / (n_user + user_damping), repeated ``sweeps`` times.
    Damping shrinks the biases of users and items with few ratings toward zero.
    """

    name = "bias"

    def __init__(self, *, user_damping: float = 5.0, item_damping: float = 5.0, sweeps: int = 3,
                 clip: tuple[float, float] | None = None):
        self.user_damping, self.item_damping, self.sweeps = user_damping, item_damping, sweeps
        self.clip = clip
        self.mean = 0.0
        self.user_bias = np.zeros(0)
        self.item_bias = np.zeros(0)

    def fit(self, train: Ratings) -> BiasBaseline:
        u, i = train.users, train.items
        r = train.ratings.astype(np.float64)
        self.mean = float(r.mean())
        n_u = np.bincount(u, minlength=train.n_users)
        n_i = np.bincount(i, minlength=train.n_items)
        bu, bi = np.zeros(train.n_users), np.zeros(train.n_items)
        resid = r - self.mean
        for _ in range(max(1, self.sweeps)):
            bi = _safe_ratio(np.bincount(i, resid - bu[u], minlength=train.n_items),
                             n_i + self.item_damping)
            bu = _safe_ratio(np.bincount(u, resid - bi[i], minlength=train.n_users),
                             n_u + self.user_damping)
        self.user_bias, self.item_bias = bu, bi
        if self.clip is None:
            self.clip = train.scale
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        pred = self.mean + self.user_bias[users] + self.item_bias[items]
        if self.clip is not None:
            pred = np.clip(pred, *self.clip)
        return pred.astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": np.array([self.mean]), "user_bias": self.user_bias, "item_bias": self.item_bias}


class Popular:
    """Most-popular recommender: ranks items by their number of training ratings.

    A top-N baseline only: it does not predict ratings (``predicts_ratings`` is False).
    """

    name = "pop"
    predicts_ratings = False

    def __init__(self) -> None:
        self.counts = np.zeros(0)

    def fit(self, train: Ratings) -> Popular:
        self.counts = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The popularity of each item (a ranking score, not a rating)."""
        return self.counts[items].astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}
