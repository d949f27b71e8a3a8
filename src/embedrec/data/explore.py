"""Describe a dataset: counts, rating distribution, activity, and the reference's crosstab."""

from __future__ import annotations

import numpy as np
import pandas as pd

from embedrec.data.dataset import Ratings


def summary(data: Ratings) -> dict:
    """Counts, scale, sparsity and the distribution of ratings, users' and items' activity."""
    values, counts = np.unique(data.ratings, return_counts=True)
    per_user, per_item = data.user_counts(), data.item_counts()
    n_listed = len(data.item_info) if data.item_info is not None else None
    return {
        "name": data.name,
        "n_ratings": len(data),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_items_listed": n_listed,
        "scale": list(data.scale),
        "mean_rating": float(data.ratings.mean()),
        "density": len(data) / (data.n_users * data.n_items),
        "ratings": {f"{v:g}": int(c) for v, c in zip(values, counts)},
        "ratings_per_user": _describe(per_user),
        "ratings_per_item": _describe(per_item),
        "duplicates_resolved": data.source.get("duplicates", 0),
        "duplicate_policy": data.source.get("duplicate_policy"),
        "blank_lines": data.source.get("blank_lines", 0),
        "scale_inferred": data.source.get("scale_inferred", False),
        "id_types": data.source.get("id_types"),
        "time_range": time_range(data),
        "md5": data.source.get("md5"),
    }


def time_range(data: Ratings) -> list[str] | None:
    """The first and last rating times as ISO-8601 UTC strings, or None without timestamps."""
    if data.timestamps is None or len(data.timestamps) == 0:
        return None
    lo, hi = int(data.timestamps.min()), int(data.timestamps.max())
    return [pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S") for t in (lo, hi)]


def _describe(counts: np.ndarray) -> dict:
    return {"min": int(counts.min()), "median": float(np.median(counts)),
            "mean": float(counts.mean()), "max": int(counts.max())}


def top_crosstab(data: Ratings, n: int = 15) -> pd.DataFrame:
    """Ratings the ``n`` most active users gave the ``n`` most rated movies (NaN where unrated).

    Rows are raw user ids, columns raw movie ids, both ordered by activity (most first; ties by
    id), as in the reference notebook.
    """
    per_user, per_item = data.user_counts(), data.item_counts()
    top_u = np.lexsort((np.arange(data.n_users), -per_user))[:n]
    top_i = np.lexsort((np.arange(data.n_items), -per_item))[:n]
    grid = np.full((len(top_u), len(top_i)), np.nan, dtype=np.float64)
    u_pos = np.full(data.n_users, -1)
    u_pos[top_u] = np.arange(len(top_u))
    i_pos = np.full(data.n_items, -1)
    i_pos[top_i] = np.arange(len(top_i))
    keep = (u_pos[data.users] >= 0) & (i_pos[data.items] >= 0)
    grid[u_pos[data.users[keep]], i_pos[data.items[keep]]] = data.ratings[keep]
    return pd.DataFrame(grid, index=pd.Index(data.user_map.raw(top_u), name="userId"),
                        columns=pd.Index(data.item_map.raw(top_i), name="movieId"))


def log_histogram(counts: np.ndarray) -> dict:
    """Histogram of positive counts over powers-of-two bins (1, 2-3, 4-7, ...)."""
    counts = counts[counts > 0]
    top = int(np.ceil(np.log2(counts.max() + 1))) if len(counts) else 1
    edges = 2 ** np.arange(top + 1)
    hist, _ = np.histogram(counts, bins=edges)
    return {"edges": [int(e) for e in edges], "counts": [int(c) for c in hist]}


def data_profile(data: Ratings, n: int = 15) -> dict:
    """Everything the report shows about the data: summary, activity histograms, crosstab."""
    cross = top_crosstab(data, n)
    titles = {str(m): data.title(m) for m in cross.columns}
    return {
        "summary": summary(data),
        "ratings_per_user": log_histogram(data.user_counts()),
        "ratings_per_item": log_histogram(data.item_counts()),
        "crosstab": {
            "users": [int(u) if hasattr(u, "__int__") else str(u) for u in cross.index],
            "movies": [int(m) if hasattr(m, "__int__") else str(m) for m in cross.columns],
            "titles": [titles[str(m)] for m in cross.columns],
            "ratings": [[None if np.isnan(v) else float(v) for v in row] for row in cross.to_numpy()],
        },
    }
