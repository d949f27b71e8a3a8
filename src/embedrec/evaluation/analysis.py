"""Error analysis and a look inside trained models, as plain JSON-able numbers for reports.

- ``error_breakdown``: RMSE by user activity and by movie popularity (training ratings),
  warm vs cold rows, and the distributions of predicted and true ratings.
- ``learned_items``: the movies with the highest and lowest learned bias, and a 2-D PCA map of
  movie embeddings, both over the most rated movies (biases of rarely rated movies are noise).
"""

from __future__ import annotations

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.evaluation.evaluate import cold_mask

USER_BUCKETS = (1, 20, 50, 100, 200, 500)  # lower edges of training ratings per user
ITEM_BUCKETS = (0, 1, 5, 20, 50, 100)  # lower edges of training ratings per movie (0 = cold)


def _label(edges: tuple[int, ...], i: int) -> str:
    lo = edges[i]
    if i + 1 == len(edges):
        return f"{lo}+"
    hi = edges[i + 1] - 1
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _bucketed(counts: np.ndarray, edges: tuple[int, ...], err2: np.ndarray) -> list[dict]:
    which = np.searchsorted(np.asarray(edges), counts, side="right") - 1
    rows = []
    for b in range(len(edges)):
        mask = which == b
        rows.append({"bucket": _label(edges, b), "n": int(mask.sum()),
                     "rmse": float(np.sqrt(err2[mask].mean())) if mask.any() else None})
    return rows


def histogram(values: np.ndarray, bins: np.ndarray) -> dict:
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def rating_bins(scale: tuple[float, float], step: float = 0.25) -> np.ndarray:
    lo, hi = scale
    return np.arange(lo - step / 2, hi + step, step)


def error_breakdown(train: Ratings, test: Ratings, pred: np.ndarray) -> dict:
    """RMSE by bucket and rating distributions for one model's final test predictions."""
    err2 = (np.asarray(pred, dtype=np.float64) - test.ratings) ** 2
    per_user = np.bincount(train.users, minlength=train.n_users)[test.users]
    per_item = np.bincount(train.items, minlength=train.n_items)[test.items]
    _, _, cold = cold_mask(train, test)
    bins = rating_bins(train.scale)
    return {
        "by_user_activity": _bucketed(per_user, USER_BUCKETS, err2),
        "by_item_popularity": _bucketed(per_item, ITEM_BUCKETS, err2),
        "warm": {"n": int((~cold).sum()),
                 "rmse": float(np.sqrt(err2[~cold].mean())) if (~cold).any() else None},
        "cold": {"n": int(cold.sum()),
                 "rmse": float(np.sqrt(err2[cold].mean())) if cold.any() else None},
        "predicted": histogram(pred, bins),
        "true": histogram(test.ratings, bins),
    }


def _titles(data: Ratings, items: np.ndarray) -> list[str]:
    return [data.title(raw) for raw in data.item_map.raw(items)]


def learned_items(bundle, train: Ratings, *, n_top: int = 1000, n_bias: int = 10,
                  n_map: int = 50) -> dict:
    """Biases and a PCA map of embeddings over the ``n_top`` most rated training movies."""
    counts = np.bincount(train.items, minlength=train.n_items)
    top = np.lexsort((np.arange(len(counts)), -counts))[:n_top]
    top = top[counts[top] > 0]
    out: dict = {"n_top": int(len(top))}
    biases = bundle.scorer.item_biases()
    bias = None if biases is None else biases[0]
    if biases is not None:
        out["bias_unit"] = biases[1]
        order = top[np.argsort(-bias[top], kind="stable")]
        pick = lambda idx: [{"movieId": _raw(train, i), "title": t, "bias": float(bias[i]),  # noqa: E731
                             "n_ratings": int(counts[i])} for i, t in zip(idx, _titles(train, idx))]
        out["highest_bias"] = pick(order[:n_bias])
        out["lowest_bias"] = pick(order[::-1][:n_bias])
    factors = bundle.scorer.item_vectors()
    if factors is not None and len(top) >= 3:
        emb = np.asarray(factors, dtype=np.float64)[top]
        centred = emb - emb.mean(axis=0)
        _, sing, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        shown = np.arange(min(n_map, len(top)))
        out["pca"] = {
            "explained_variance": [float(v) for v in (sing[:2] ** 2 / (sing ** 2).sum())],
            "movies": [{"movieId": _raw(train, top[j]), "title": t, "x": float(coords[j, 0]),
                        "y": float(coords[j, 1]), "n_ratings": int(counts[top[j]])}
                       for j, t in zip(shown, _titles(train, top[shown]))],
        }
    return out


def _raw(data: Ratings, item: int):
    raw = data.item_map.raw(item)
    return raw.item() if hasattr(raw, "item") else raw
