"""Item-kNN: cosine similarity of items over the users who rated both, k neighbours per item.

With X the binary user x item matrix, sim(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|) (U_i: the
users who rated i); each item keeps its k most similar other items. A user's score for item i
is the sum of sim(j, i) over the items j they rated whose neighbours include i. Ranks only; a new
user is scored from the items they rated, nothing to fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.models.implicit import (
    HistoryScorer, check_history, check_memory, check_named, csr, dense_rows, interactions,
    user_vector,
)
from embedrec.models.registry import register
from embedrec.models.spec import Capabilities, ModelSpec, Shape, UserParams


@dataclass(frozen=True)
class KNNConfig:
    k: int = 100  # neighbours kept per item
    min_rating: float = 0.0  # a rating at least this is an interaction (0: every rating)
    max_gb: float = 4.0  # refuse data whose dense user x item matrix needs more
    chunk: int = 1024  # items whose similarities are computed at once

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1 or self.chunk < 1 or self.max_gb <= 0:
            raise ConfigError("knn: k and chunk must be whole numbers >= 1, max_gb > 0")


def neighbours(x: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(n_items, k) indices and cosine similarities of each item's k nearest other items
    (an item with fewer neighbours is padded with itself at similarity 0)."""
    n_items = x.shape[1]
    k_eff = min(k, max(n_items - 1, 1))
    norms = np.sqrt(x.sum(0, dtype=np.float64))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    idx = np.tile(np.arange(n_items, dtype=np.int32)[:, None], (1, k))
    sims = np.zeros((n_items, k), dtype=np.float32)
    for start in range(0, n_items, chunk):
        cols = np.arange(start, min(start + chunk, n_items))
        sim = (x[:, cols].T @ x) * inv[cols][:, None] * inv[None, :]
        sim[np.arange(len(cols)), cols] = -np.inf  # not its own neighbour
        top = np.argpartition(-sim, k_eff - 1, axis=1)[:, :k_eff]
        vals = np.take_along_axis(sim, top, axis=1)
        vals = np.where(np.isfinite(vals) & (vals > 0), vals, 0.0)
        top = np.where(vals > 0, top, cols[:, None])
        idx[cols, :k_eff], sims[cols, :k_eff] = top, vals
    return idx, sims


class KNNScorer(HistoryScorer):
    def __init__(self, idx: np.ndarray, sims: np.ndarray, indptr, items, n_items: int):
        super().__init__(indptr, items, n_items)
        self.idx = np.asarray(idx, dtype=np.int32)
        self.sims = np.asarray(sims, dtype=np.float32)

    def scores_from(self, x: np.ndarray) -> np.ndarray:
        rows, items = np.nonzero(x)
        n = self.n_items
        flat = rows[:, None].astype(np.int64) * n + self.idx[items]
        out = np.bincount(flat.ravel(), weights=self.sims[items].ravel(), minlength=len(x) * n)
        return out.reshape(len(x), n).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"neighbours": self.idx, "similarities": self.sims} | self.history_arrays()


class KNNSpec(ModelSpec):
    name = "knn"
    summary = "item-kNN: cosine over co-ratings, k neighbours per item (ranks only)"
    Config = KNNConfig
    capabilities = Capabilities(trained_by="fit", predicts_ratings=False)
    colour = "#8c564b"

    def search_space(self, trial, train):
        """Neighbours kept per item."""
        return {"k": trial.suggest_int("k", 5, 500, log=True)}, {}

    def fit(self, config: KNNConfig, train: Ratings, shape: Shape) -> KNNScorer:
        check_memory(f"knn on {shape.n_users:,} users x {shape.n_items:,} items",
                     4.0 * shape.n_users * shape.n_items + 8.0 * config.chunk * shape.n_items,
                     config.max_gb)
        users, items = interactions(train, config.min_rating)
        indptr, hist = csr(users, items, shape.n_users)
        x = dense_rows(indptr, hist, np.arange(shape.n_users), shape.n_items)
        idx, sims = neighbours(x, config.k, config.chunk)
        model = KNNScorer(idx, sims, indptr, hist, shape.n_items)
        model.min_rating = config.min_rating
        return model

    def expected_shapes(self, config, shape: Shape) -> dict:
        return {"neighbours": (shape.n_items, config.k), "similarities": (shape.n_items, config.k)}

    def load_scorer(self, config, arrays, shape: Shape) -> KNNScorer:
        check_named(self.name, arrays, self.expected_shapes(config, shape),
                    ("user_indptr", "user_items"))
        nb = arrays["neighbours"]
        if nb.dtype.kind not in "iu" or (nb.size and (nb.min() < 0 or nb.max() >= shape.n_items)):
            raise ValueError("neighbours must be item indices in range")
        check_history(self.name, arrays, shape.n_users, shape.n_items)
        return self.scorer(config, arrays, shape)

    def scorer(self, config, arrays, shape: Shape) -> KNNScorer:
        model = KNNScorer(arrays["neighbours"], arrays["similarities"], arrays["user_indptr"],
                          arrays["user_items"], shape.n_items)
        model.min_rating = config.min_rating
        return model

    def fold_in(self, scorer: KNNScorer, items, ratings, *, base_bias, l2, iterations):
        return UserParams(vector=user_vector(items, ratings, scorer.min_rating),
                          base_bias=base_bias)


register(KNNSpec())
