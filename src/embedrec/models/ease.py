"""EASE (Steck 2019): a closed-form item x item linear model for top-N ranking.

With X the binary user x item matrix and G = X'X, the weights are B = I - P / diag(P) with
P = (G + lambda I)^-1 (the diagonal of B is zero, so an item never recommends itself). A user's
scores are x_u B. The model ranks only: its scores are not ratings.

Only items with at least ``min_count`` interactions take part (the rest score below every
such item, by popularity), which keeps the inverse small; a catalogue whose item x item
matrices would not fit in ``max_gb`` is refused with its size. With several ``l2`` values,
lambda is chosen on validation rows: one interaction per user (of those with 3 or more) is held
out of the item x item statistics, each lambda is fitted on the rest and scored by NDCG@10 of
the held-out items, and the best fit is kept (a user's scores still start from every item they
rated). The inverse runs in float32 (torch's when it is installed, else numpy's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.models.implicit import (
    HistoryScorer, check_history, check_memory, check_named, csr, dense_rows, holdout_one,
    interactions, ndcg_of_held, user_vector,
)
from embedrec.models.registry import register
from embedrec.models.spec import Capabilities, ModelSpec, Shape, UserParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EASEConfig:
    l2: tuple[float, ...] = (150.0, 500.0)  # lambda, or candidates chosen on validation
    min_count: int = 5  # items with fewer interactions are left out of the item x item model
    min_rating: float = 0.0  # a rating at least this is an interaction (0: every rating)
    max_gb: float = 4.0  # refuse catalogues whose dense item x item work needs more
    seed: int = 0  # which interactions are held out to choose lambda

    def __post_init__(self) -> None:
        l2 = (self.l2,) if isinstance(self.l2, (int, float)) else tuple(self.l2)
        object.__setattr__(self, "l2", tuple(float(x) for x in l2))
        if not self.l2 or min(self.l2) <= 0:
            raise ConfigError(f"ease: l2 must be one or more values > 0, got {self.l2}")
        if self.min_count < 1 or self.max_gb <= 0:
            raise ConfigError("ease: min_count must be >= 1 and max_gb > 0")


def _inverse(a: np.ndarray) -> np.ndarray:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; numpy is the fallback
        return np.linalg.inv(a)
    return torch.linalg.inv(torch.from_numpy(a)).numpy()


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B = I - P / diag(P), P = (G + l2 I)^-1, B's diagonal zero (float32)."""
    p = gram.astype(np.float32)
    p[np.diag_indices_from(p)] += np.float32(l2)
    p = _inverse(p)
    b = p / (-np.diag(p))[None, :]
    np.fill_diagonal(b, 0.0)
    return b


class EASEScorer(HistoryScorer):
    def __init__(self, kept: np.ndarray, weights: np.ndarray, counts: np.ndarray, l2: float,
                 indptr: np.ndarray, items: np.ndarray, n_items: int):
        super().__init__(indptr, items, n_items)
        self.kept = np.asarray(kept, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.counts = np.asarray(counts, dtype=np.float64)
        self.l2 = float(l2)
        # items outside the model rank below all of its items, the more popular first
        self.floor = (-1e3 + self.counts / (self.counts.max() + 1.0)).astype(np.float32)

    def scores_from(self, x: np.ndarray) -> np.ndarray:
        out = np.broadcast_to(self.floor, (len(x), self.n_items)).copy()
        out[:, self.kept] = x[:, self.kept] @ self.weights
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"kept": self.kept, "weights": self.weights, "counts": self.counts,
                "l2": np.array([self.l2])} | self.history_arrays()


class EASESpec(ModelSpec):
    name = "ease"
    summary = "EASE: closed-form item x item ranker, lambda chosen on validation (ranks only)"
    Config = EASEConfig
    capabilities = Capabilities(trained_by="fit", predicts_ratings=False)
    colour = "#17becf"

    def search_space(self, trial, train):
        """One lambda (the tuner chooses it on validation NDCG instead of the fit's own
        held-out interactions) and the item cut-off."""
        return {"l2": trial.suggest_float("l2", 10.0, 3000.0, log=True),
                "min_count": trial.suggest_int("min_count", 1, 10)}, {}

    def fit(self, config: EASEConfig, train: Ratings, shape: Shape) -> EASEScorer:
        users, items = interactions(train, config.min_rating)
        counts = np.bincount(items, minlength=shape.n_items).astype(np.float64)
        kept = np.flatnonzero(counts >= config.min_count)
        if len(kept) == 0:
            raise ConfigError(f"ease: no item has {config.min_count} or more interactions")
        # G, its inverse and B at float64/float32, plus a copy: about 4 dense n x n matrices
        check_memory(f"ease on {len(kept):,} items (item x item matrices)",
                     4 * 8.0 * len(kept) ** 2, config.max_gb)
        position = np.full(shape.n_items, -1, dtype=np.int64)
        position[kept] = np.arange(len(kept))
        indptr, hist = csr(users, items, shape.n_users)
        sub = position[items] >= 0
        if len(config.l2) > 1:
            l2, weights = self._choose(config, users[sub], position[items[sub]], shape.n_users,
                                       len(kept))
        else:
            l2 = config.l2[0]
            x = dense_rows(*csr(users[sub], position[items[sub]], shape.n_users),
                           np.arange(shape.n_users), len(kept), dtype=np.float32)
            weights = ease_weights(x.T @ x, l2)
        model = EASEScorer(kept, weights, counts, l2, indptr, hist, shape.n_items)
        model.min_rating = config.min_rating
        return model

    def _choose(self, config, users, items, n_users, n_items) -> tuple[float, np.ndarray]:
        indptr, hist = csr(users, items, n_users)
        keep, held_users, held = holdout_one(indptr, hist, config.seed)
        rows = np.repeat(np.arange(n_users), np.diff(indptr))
        fit_indptr, fit_items = csr(rows[keep], hist[keep], n_users)
        x = dense_rows(fit_indptr, fit_items, np.arange(n_users), n_items, dtype=np.float32)
        gram = x.T @ x
        xs = x[held_users]
        best = (-1.0, None, None)
        for l2 in config.l2:
            weights = ease_weights(gram, l2)
            scores = xs @ weights
            scores[xs > 0] = -np.inf
            ndcg = ndcg_of_held(scores, held)
            log.info("ease: lambda %g, validation NDCG@10 %.4f", l2, ndcg)
            if ndcg > best[0]:
                best = (ndcg, l2, weights)
        return best[1], best[2]

    def expected_shapes(self, config, shape: Shape) -> dict:
        return {"counts": (shape.n_items,), "l2": (1,)}

    def load_scorer(self, config, arrays, shape: Shape) -> EASEScorer:
        check_named(self.name, arrays, self.expected_shapes(config, shape),
                    ("kept", "weights", "user_indptr", "user_items"))
        kept, weights = arrays["kept"], arrays["weights"]
        if kept.ndim != 1 or kept.dtype.kind not in "iu" or (
                len(kept) and (kept.min() < 0 or kept.max() >= shape.n_items)):
            raise ValueError("kept must be item indices in range")
        if weights.shape != (len(kept), len(kept)):
            raise ValueError(f"weights has shape {weights.shape}, expected {(len(kept),) * 2}")
        check_history(self.name, arrays, shape.n_users, shape.n_items)
        return self.scorer(config, arrays, shape)

    def scorer(self, config, arrays, shape: Shape) -> EASEScorer:
        model = EASEScorer(arrays["kept"], arrays["weights"], arrays["counts"],
                           float(arrays["l2"][0]), arrays["user_indptr"], arrays["user_items"],
                           shape.n_items)
        model.min_rating = config.min_rating
        return model

    def fold_in(self, scorer: EASEScorer, items, ratings, *, base_bias, l2, iterations):
        """EASE needs no fitting for a new user: their item vector is their parameters."""
        return UserParams(vector=user_vector(items, ratings, scorer.min_rating),
                          base_bias=base_bias)


register(EASESpec())
