"""The one cold-start composition: a model's scorer first, the damped bias baseline where the
model cannot score.

A row is handed to the fallback when its user has no training rating, when its item has none
and the model cannot score items from features, or when the model returns NaN. Models that
only rank (``predicts_ratings`` False) are left as they are: the fallback predicts ratings, and
mixing ratings into ranking scores would mean nothing. Evaluation, recommending, fold-in and the
service all score through this class.
"""

from __future__ import annotations

import numpy as np

from embedrec.models.baselines import BiasBaseline
from embedrec.models.scorer import Scorer
from embedrec.models.spec import Capabilities, UserParams


class WithFallback:
    """``primary`` where it can score, ``fallback`` elsewhere."""

    def __init__(self, primary: Scorer, fallback: BiasBaseline, *, known_users: np.ndarray,
                 known_items: np.ndarray, capabilities: Capabilities,
                 predicts_ratings: bool = True):
        """``predicts_ratings`` False: the model's scores only rank (e.g. it was trained with a
        ranking loss), whatever its scorer could do."""
        self.primary, self.fallback = primary, fallback
        self.known_users = np.asarray(known_users, dtype=bool)
        self.known_items = np.asarray(known_items, dtype=bool)
        # items the model scores itself: those with training ratings and, for a model that
        # scores items from their features, those its scorer says it can (all when it does not say)
        self.scorable_items = self.known_items.copy()
        if capabilities.cold_items_from_features:
            own = primary.scorable_items()
            self.scorable_items |= (np.ones_like(self.known_items) if own is None
                                    else np.asarray(own, dtype=bool))
        self.predicts_ratings = primary.predicts_ratings and predicts_ratings
        # scored at a rating's time when the model has time inputs (else the time is ignored)
        self.uses_time = "timestamps" in capabilities.needs | capabilities.uses

    def cold(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Rows the model cannot score (unknown user, or unknown item it cannot score)."""
        return ~self.known_users[users] | ~self.scorable_items[items]

    @property
    def default_time(self) -> int | None:
        """The time predictions are made for when none is given (None: the model has no time
        inputs)."""
        return getattr(self.primary, "default_time", None) if self.uses_time else None

    def predict(self, users: np.ndarray, items: np.ndarray,
                timestamps: np.ndarray | None = None) -> np.ndarray:
        """Predicted ratings (ranking scores for a ranking-only model) for index pairs, at
        ``timestamps`` (seconds; default: the model's ``default_time``)."""
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        pred = self.own_predict(users, items, timestamps).copy()
        if self.predicts_ratings:
            use = self.cold(users, items) | np.isnan(pred)
            if use.any():
                pred[use] = self.fallback.predict(users[use], items[use])
        return pred

    def own_predict(self, users: np.ndarray, items: np.ndarray,
                    timestamps: np.ndarray | None = None) -> np.ndarray:
        """The model's own predictions on every row (what the reference reported)."""
        if timestamps is not None and self.uses_time:
            return np.asarray(self.primary.predict(users, items, timestamps=timestamps),
                              dtype=np.float32)
        return np.asarray(self.primary.predict(users, items), dtype=np.float32)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) ranking scores, monotonic in the predicted rating."""
        users = np.asarray(users, dtype=np.int64)
        scores = np.array(self.primary.rank_scores(users), dtype=np.float32)
        if not self.predicts_ratings:
            return scores
        cold_items = np.flatnonzero(~self.scorable_items)
        if len(cold_items):
            scores[:, cold_items] = self.primary.from_rating(
                self.fallback.ratings_block(users, cold_items))
        cold_rows = np.flatnonzero(~self.known_users[users])
        if len(cold_rows):
            scores[cold_rows] = self.primary.from_rating(
                self.fallback.ratings_block(users[cold_rows], np.arange(scores.shape[1])))
        bad = np.isnan(scores)
        if bad.any():
            rows, cols = np.nonzero(bad)
            scores[rows, cols] = self.primary.from_rating(
                self.fallback.predict(users[rows], cols))
        return scores

    def linear_factors(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The primary's ``linear_factors`` when they give these users' ``rank_scores`` on every
        item a list may hold: all users known and every factor finite (the fallback's columns,
        the movies the model cannot score, never enter a list). None otherwise."""
        factors = self.primary.linear_factors()
        if factors is None or not self.known_users[np.asarray(users, dtype=np.int64)].all():
            return None
        if "_finite" not in self.__dict__:
            self._finite = bool(np.isfinite(factors[0]).all() and np.isfinite(factors[1]).all())
        return factors if self._finite else None

    def rank_scores_torch(self, users: np.ndarray, device):
        """``rank_scores`` as a tensor on a torch device; the few cold rows and columns are
        filled from the fallback computed with numpy."""
        import torch

        users = np.asarray(users, dtype=np.int64)
        scores = self.primary.rank_scores_torch(users, device).float()
        if not self.predicts_ratings:
            return scores
        cold_items = np.flatnonzero(~self.scorable_items)
        if len(cold_items):
            block = self.primary.from_rating(self.fallback.ratings_block(users, cold_items))
            scores[:, torch.from_numpy(cold_items).to(device)] = torch.from_numpy(block).to(device)
        cold_rows = np.flatnonzero(~self.known_users[users])
        if len(cold_rows):
            block = self.primary.from_rating(
                self.fallback.ratings_block(users[cold_rows], np.arange(scores.shape[1])))
            scores[torch.from_numpy(cold_rows).to(device)] = torch.from_numpy(block).to(device)
        bad = torch.isnan(scores)
        if bool(bad.any()):
            rows, cols = (t.cpu().numpy() for t in torch.nonzero(bad, as_tuple=True))
            fill = self.primary.from_rating(self.fallback.predict(users[rows], cols))
            scores[bad] = torch.from_numpy(fill).to(device)
        return scores

    def score_user(self, params: UserParams) -> np.ndarray:
        """(n_items,) ranking scores for a folded-in user."""
        scores = np.array(self.primary.score_user(params), dtype=np.float32)
        if self.predicts_ratings:
            cold = ~self.scorable_items | np.isnan(scores)
            if cold.any():
                fb = self.fallback
                ratings = np.clip(fb.mean + params.base_bias + fb.item_bias[cold], *fb.clip)
                scores[cold] = self.primary.from_rating(ratings)
        return scores

    def to_rating(self, scores: np.ndarray) -> np.ndarray:
        """Ratings for a model that predicts them; a ranking-only model's scores as they are."""
        if not self.predicts_ratings:
            return np.asarray(scores, dtype=np.float32)
        return self.primary.to_rating(scores)
