"""New users, from a handful of ratings and no retraining (fold-in).

The model's movie parameters stay fixed; only the new user's vector (and bias) is fitted:
a ridge solve for the dot model; for the biased model a ridge solve in logit space refined by
Gauss-Newton (Levenberg-Marquardt) steps through the sigmoid; Gauss-Newton steps through the
network for the MLP; the damped bias for the baselines. Numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from embedrec.errors import EmbedrecError
from embedrec.models.baselines import BiasBaseline, Popular
from embedrec.models.inference import EmbeddingScorer
from embedrec.persistence import ModelBundle
from embedrec.recommender import UnknownIdError, _check_k, describe, find_movie, top_k


@dataclass(frozen=True)
class FoldIn:
    """A new user's parameters and how many of their ratings were recognised."""

    vector: np.ndarray | None  # user factors (None for baselines)
    bias: float
    n_given: int
    n_used: int
    unknown: list
    items: np.ndarray  # indices of the recognised movies


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
    """Fit a new user's vector and bias to their ratings, item parameters fixed.

    ``l2`` is the ridge penalty on the user's parameters (sum of squares, not averaged).
    """
    if not rated:
        raise EmbedrecError("no ratings given for the new user")
    items, r, unknown = parse_rated(bundle, rated)
    if len(items) == 0:
        raise EmbedrecError(f"none of the {len(rated)} rated movies is known to the model")
    model, fb = bundle.model, bundle.fallback
    r64 = r.astype(np.float64)
    bias = float(np.sum(r64 - fb.mean - fb.item_bias[items]) / (len(r) + fb.user_damping))
    vector = None
    if isinstance(model, EmbeddingScorer):
        q = model.item_factors[items].astype(np.float64)
        if model.name == "dot":
            vector = np.linalg.solve(q.T @ q + l2 * np.eye(q.shape[1]), q.T @ r64)
        elif model.name == "biased":
            vector, bias = _fold_in_biased(model, items, r64, l2, iterations)
        else:
            vector = _fold_in_mlp(model, items, r64, l2, iterations)
    return FoldIn(vector=None if vector is None else vector.astype(np.float32), bias=bias,
                  n_given=len(rated), n_used=len(items), unknown=unknown, items=items)


def _gauss_newton(theta, residual_jacobian, l2: float, iterations: int):
    """Minimise sum(residual^2) + l2 * |theta|^2 with Levenberg-Marquardt steps."""
    damping = 1e-3
    res, jac = residual_jacobian(theta)
    loss = res @ res + l2 * theta @ theta
    for _ in range(iterations):
        a = jac.T @ jac + (l2 + damping) * np.eye(len(theta))
        step = np.linalg.solve(a, jac.T @ res - l2 * theta)
        candidate = theta + step
        res_c, jac_c = residual_jacobian(candidate)
        loss_c = res_c @ res_c + l2 * candidate @ candidate
        if loss_c < loss:
            theta, res, jac, loss = candidate, res_c, jac_c, loss_c
            damping = max(damping / 3, 1e-9)
            if np.abs(step).max() < 1e-7:
                break
        else:
            damping *= 5
    return theta


def _fold_in_biased(model: EmbeddingScorer, items, r, l2, iterations):
    lo, hi = model.low, model.high
    q = model.item_factors[items].astype(np.float64)
    bi = model.weights["item_bias.weight"][items, 0].astype(np.float64)
    frac = np.clip((r - lo) / (hi - lo), 0.05, 0.95)
    x = np.hstack([q, np.ones((len(items), 1))])
    z = np.log(frac / (1 - frac)) - bi  # target logits minus the item biases
    theta = np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), x.T @ z)

    def residual_jacobian(t):
        s = 1.0 / (1.0 + np.exp(-(x @ t + bi)))
        return r - (lo + (hi - lo) * s), ((hi - lo) * s * (1 - s))[:, None] * x

    theta = _gauss_newton(theta, residual_jacobian, l2, iterations)
    return theta[:-1], float(theta[-1])


def _fold_in_mlp(model: EmbeddingScorer, items, r, l2, iterations):
    lo, hi = model.low, model.high
    proj = model.user_projection.astype(np.float64)  # (hidden, k)
    item_hidden = model.item_hidden[items].astype(np.float64)  # (n, hidden)
    w2, b2 = model.w2.astype(np.float64), model.b2

    def residual_jacobian(p):
        pre = item_hidden + proj @ p
        active = pre > 0
        s = 1.0 / (1.0 + np.exp(-(np.where(active, pre, 0.0) @ w2 + b2)))
        jac = ((hi - lo) * s * (1 - s))[:, None] * ((active * w2) @ proj)
        return r - (lo + (hi - lo) * s), jac

    start = model.user_factors.mean(axis=0).astype(np.float64)
    return _gauss_newton(start, residual_jacobian, l2, iterations)


def score_new_user(bundle: ModelBundle, fit: FoldIn) -> np.ndarray:
    """Predictions for every item for a folded-in user."""
    model, n_items, fb = bundle.model, len(bundle.item_map), bundle.fallback
    if isinstance(model, EmbeddingScorer):
        scores = model.score_vector(fit.vector, fit.bias).astype(np.float32).copy()
        cold = ~bundle.known_items()
        scores[cold] = np.clip(fb.mean + fit.bias + fb.item_bias[cold], *bundle.scale)
        return scores
    if isinstance(model, BiasBaseline):
        return np.clip(model.mean + fit.bias + model.item_bias, *bundle.scale).astype(np.float32)
    if isinstance(model, Popular):
        return model.counts.astype(np.float32)
    return np.full(n_items, model.mean, dtype=np.float32)


def top_for_new_user(bundle: ModelBundle, rated: list[tuple[object, float]], k: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, FoldIn]:
    """Top-k item indices and predicted ratings for a new user, and the fold-in behind them.
    The movies they rated, and movies without training ratings, are not candidates."""
    _check_k(k)
    fit = fold_in(bundle, rated)
    scores = score_new_user(bundle, fit)
    scores[fit.items] = -np.inf
    scores[~bundle.known_items()] = -np.inf
    best = top_k(scores[None, :], k)[0]
    best = best[np.isfinite(scores[best])]
    return best, scores[best], fit


def recommend_for_ratings(bundle: ModelBundle, rated: list[tuple[object, float]], k: int = 10
                          ) -> tuple[pd.DataFrame, FoldIn]:
    """Recommendations for a new user from (movie, rating) pairs, without retraining."""
    items, scores, fit = top_for_new_user(bundle, rated, k)
    return describe(bundle, items, scores), fit
