"""New users, from a handful of ratings and no retraining (fold-in).

The model's movie parameters stay fixed; only the new user's parameters are fitted, by the
model's own spec (``ModelSpec.fold_in``: e.g. a ridge solve for the dot model, Gauss-Newton
steps through the sigmoid or the network for the others, the damped bias for the baselines).
Movies the model cannot score are scored by the fallback with the user's damped bias. Numpy
only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from embedrec.errors import EmbedrecError
from embedrec.models.spec import UserParams
from embedrec.persistence import ModelBundle
from embedrec.recommender import UnknownIdError, check_k, describe, find_movie, top_k


@dataclass(frozen=True)
class FoldIn:
    """A new user's parameters and how many of their ratings were recognised."""

    params: UserParams
    n_given: int
    n_used: int
    unknown: list
    items: np.ndarray  # indices of the recognised movies

    @property
    def vector(self) -> np.ndarray | None:
        return self.params.vector

    @property
    def bias(self) -> float:
        return self.params.bias


def parse_rated(bundle: ModelBundle, rated: list[tuple[object, float]]) -> tuple[np.ndarray, np.ndarray, list]:
    """Resolve (movie id or title, rating) pairs; returns item indices, ratings, unknown ones."""
    lo, hi = bundle.scale
    items, values, unknown = [], [], []
    for movie, rating in rated:
        rating = float(rating)
        if not (lo <= rating <= hi) or math.isnan(rating):
            raise EmbedrecError(f"rating {rating:g} for {movie!r} is outside the scale {lo:g} to {hi:g}")
        try:
            idx = find_movie(bundle, movie)
        except UnknownIdError:
            unknown.append(movie)
            continue
        if bundle.item_counts[idx] == 0:
            unknown.append(movie)
            continue
        items.append(idx)
        values.append(rating)
    return np.array(items, dtype=np.int64), np.array(values, dtype=np.float32), unknown


def fold_in(bundle: ModelBundle, rated: list[tuple[object, float]], *, l2: float = 1.0,
            iterations: int = 20) -> FoldIn:
    """Fit a new user's parameters to their ratings, item parameters fixed.

    ``l2`` is the ridge penalty on the user's parameters (sum of squares, not averaged).
    """
    if not rated:
        raise EmbedrecError("no ratings given for the new user")
    items, r, unknown = parse_rated(bundle, rated)
    if len(items) == 0:
        raise EmbedrecError(f"none of the {len(rated)} rated movies is known to the model")
    base_bias = bundle.fallback.user_bias_for(items, r)
    params = bundle.spec.fold_in(bundle.scorer, items, r.astype(np.float64), base_bias=base_bias,
                                 l2=l2, iterations=iterations)
    return FoldIn(params=params, n_given=len(rated), n_used=len(items), unknown=unknown,
                  items=items)


def score_new_user(bundle: ModelBundle, fit: FoldIn) -> np.ndarray:
    """Predicted ratings of every item for a folded-in user (the fallback's where the model
    cannot score; popularity for a model that only ranks)."""
    return np.asarray(bundle.scored.to_rating(bundle.scored.score_user(fit.params)),
                      dtype=np.float32)


def top_for_new_user(bundle: ModelBundle, rated: list[tuple[object, float]], k: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, FoldIn]:
    """Top-k item indices and predicted ratings for a new user, and the fold-in behind them.
    The movies they rated, and movies the model cannot score itself
    (``ModelBundle.candidate_items``), are not candidates."""
    check_k(k)
    fit = fold_in(bundle, rated)
    scores = bundle.scored.score_user(fit.params)
    scores[fit.items] = -np.inf
    scores[~bundle.candidate_items()] = -np.inf
    best = top_k(scores[None, :], k)[0]
    best = best[np.isfinite(scores[best])]
    return best, bundle.scored.to_rating(scores[best]), fit


def recommend_for_ratings(bundle: ModelBundle, rated: list[tuple[object, float]], k: int = 10
                          ) -> tuple[pd.DataFrame, FoldIn]:
    """Recommendations for a new user from (movie, rating) pairs, without retraining."""
    items, scores, fit = top_for_new_user(bundle, rated, k)
    return describe(bundle, items, scores), fit
