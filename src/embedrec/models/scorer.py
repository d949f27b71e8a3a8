"""The numpy scorer protocol: what every trained model becomes for evaluation, recommending and
serving (no torch needed).

A scorer predicts ratings for (user, item) pairs, with NaN where it cannot score; scores the
whole catalogue for a set of users (ranking scores, monotonic in the predicted rating); scores
the catalogue for a folded-in user; and may expose item vectors (``similar``) and item biases
(reports). ``Scorer`` gives the defaults a subclass does not need to repeat.
"""

from __future__ import annotations

import numpy as np

from embedrec.models.spec import UserParams


class Scorer:
    """Base class with defaults: ratings are their own ranking scores."""

    predicts_ratings: bool = True

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 predictions for index arrays (ranking scores for a model that only ranks)."""
        raise NotImplementedError

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) float32 ranking scores."""
        users = np.asarray(users, dtype=np.int64)
        grid_u = np.repeat(users, self.n_items)
        grid_i = np.tile(np.arange(self.n_items), len(users))
        return self.predict(grid_u, grid_i).reshape(len(users), self.n_items)

    def rank_scores_torch(self, users: np.ndarray, device):
        """``rank_scores`` as a float32 tensor on a torch ``device`` (top-N on a GPU). The
        default computes them with numpy and moves them; models override it where the scoring
        itself is worth moving."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.rank_scores(users))).to(device)

    def score_user(self, params: UserParams) -> np.ndarray:
        """(n_items,) ranking scores for a user given by parameters (a folded-in user)."""
        raise NotImplementedError

    def linear_factors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(U, V), float32, C-contiguous, with ``rank_scores(users) == U[users] @ V.T`` up to
        float rounding, or None. A model whose ranking scores are one product of two tables
        says so here, and top-N for many users then runs as one matrix product per chunk into
        a reused buffer, with no other pass over the scores."""
        return None

    def to_rating(self, scores: np.ndarray) -> np.ndarray:
        """Ranking scores as predicted ratings."""
        return np.asarray(scores, dtype=np.float32)

    def from_rating(self, ratings: np.ndarray) -> np.ndarray:
        """Ratings as ranking scores (the inverse of ``to_rating``)."""
        return np.asarray(ratings, dtype=np.float32)

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, k) movie vectors whose cosine means similarity, or None."""
        return None

    def scorable_items(self) -> np.ndarray | None:
        """(n_items,) bool: the items this scorer gives a score of its own, for a model that
        scores items without training ratings from their features
        (``cold_items_from_features``); None: not known apart from the training ratings."""
        return None

    def item_biases(self) -> tuple[np.ndarray, str] | None:
        """Learned per-item biases and their unit ('stars', 'logit units'), or None."""
        return None

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything stored in a model file, by name."""
        raise NotImplementedError

    @property
    def n_items(self) -> int:
        raise NotImplementedError


class SigmoidRatings:
    """For scorers whose ranking scores are logits of a sigmoid scaled to [low, high]."""

    low: float
    high: float

    def to_rating(self, scores: np.ndarray) -> np.ndarray:
        x = np.asarray(scores)
        return ((0.5 + 0.5 * np.tanh(0.5 * x)) * (self.high - self.low) + self.low).astype(np.float32)

    def from_rating(self, ratings: np.ndarray) -> np.ndarray:
        frac = np.clip((np.asarray(ratings, dtype=np.float64) - self.low) / (self.high - self.low),
                       1e-6, 1 - 1e-6)
        return np.log(frac / (1 - frac)).astype(np.float32)
