"""What the implicit-feedback rankers (EASE, iALS, item-kNN) share, numpy only.

Their training data is a binary user x item matrix: a rating at or above ``min_rating`` is an
interaction (with ``min_rating`` 0, every rating is). EASE and item-kNN score a user from the
items they interacted with, so their model files store those lists (CSR: ``user_indptr`` over
users into ``user_items``), checked on load like every other array.
"""

from __future__ import annotations

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.models.scorer import Scorer
from embedrec.models.spec import UserParams, check_arrays


def interactions(train: Ratings, min_rating: float) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of the distinct pairs rated at least ``min_rating``, sorted by user."""
    keep = train.ratings >= min_rating
    pairs = np.unique(np.stack([train.users[keep].astype(np.int64),
                                train.items[keep].astype(np.int64)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def csr(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of pairs; ``rows`` need not be sorted."""
    order = np.argsort(rows, kind="stable")
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n_rows)))).astype(np.int64)
    return indptr, np.asarray(cols)[order].astype(np.int64)


def dense_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, n_cols: int,
               dtype=np.float32) -> np.ndarray:
    """Binary (len(rows), n_cols) matrix of the chosen CSR rows."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), n_cols), dtype=dtype)
    lengths = indptr[rows + 1] - indptr[rows]
    which = np.repeat(np.arange(len(rows)), lengths)
    starts = np.repeat(indptr[rows] - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    cols = indices[starts + np.arange(int(lengths.sum()))]
    out[which, cols] = 1
    return out


def check_memory(what: str, n_bytes: float, max_gb: float) -> None:
    """Refuse work whose dense matrices would not fit in ``max_gb`` GB, saying how big they are."""
    if n_bytes > max_gb * 1e9:
        raise ConfigError(f"{what} needs {n_bytes / 1e9:.1f} GB, more than the {max_gb:g} GB "
                          "allowed (max_gb); use a smaller catalogue (raise min_count) or another "
                          "model")


def check_history(name: str, arrays: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
    """The stored interaction lists: a valid CSR over users with item indices in range."""
    indptr, items = arrays["user_indptr"], arrays["user_items"]
    if indptr.shape != (n_users + 1,) or items.ndim != 1:
        raise ValueError(f"{name}: user_indptr has shape {indptr.shape}, expected ({n_users + 1},)")
    if indptr.dtype.kind not in "iu" or items.dtype.kind not in "iu":
        raise ValueError(f"{name}: user_indptr and user_items must hold integers")
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(items):
        raise ValueError(f"{name}: user_indptr is not a valid offsets array over user_items")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"{name}: user_items holds item indices out of range")


def check_named(name: str, arrays: dict[str, np.ndarray], fixed: dict[str, tuple[int, ...]],
                free: tuple[str, ...]) -> None:
    """Names of all arrays, shapes and finiteness of those whose shape is known in advance."""
    extra = set(arrays) - set(fixed) - set(free)
    missing = (set(fixed) | set(free)) - set(arrays)
    if extra or missing:
        raise ValueError(f"weights do not fit a {name} model: missing {sorted(missing)}, "
                         f"unexpected {sorted(extra)}")
    check_arrays(name, {k: arrays[k] for k in fixed}, fixed)
    for key in free:
        if arrays[key].dtype.kind == "f" and not np.isfinite(arrays[key]).all():
            raise ValueError(f"{key} holds NaN or infinite values")


def holdout_one(indptr: np.ndarray, indices: np.ndarray, seed: int, min_items: int = 3
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random interaction of every user with at least ``min_items``, held out to choose a
    setting: (keep mask over interactions, users with a held-out item, their held-out item)."""
    rng = np.random.default_rng(seed)
    counts = np.diff(indptr)
    users = np.flatnonzero(counts >= min_items)
    picks = indptr[users] + (rng.random(len(users)) * counts[users]).astype(np.int64)
    keep = np.ones(len(indices), dtype=bool)
    keep[picks] = False
    return keep, users, indices[picks]


def ndcg_of_held(scores: np.ndarray, held: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k of one held-out item per row (seen items already at -inf)."""
    if len(held) == 0:
        return 0.0
    target = scores[np.arange(len(held)), held]
    rank = (scores > target[:, None]).sum(1)  # 0-based
    return float(np.mean(np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)))


def user_vector(items: np.ndarray, ratings: np.ndarray, min_rating: float) -> np.ndarray:
    """The items of a new user that count as interactions (all of them when none reaches
    ``min_rating``, so a user who rated only low still gets a list)."""
    items = np.asarray(items, dtype=np.int64)
    good = np.asarray(ratings) >= min_rating
    return np.unique(items[good] if good.any() else items)


class HistoryScorer(Scorer):
    """A ranking-only scorer that scores users from their stored interaction lists."""

    predicts_ratings = False
    min_rating = 0.0  # a new user's rating at least this is an interaction

    def __init__(self, indptr: np.ndarray, items: np.ndarray, n_items: int):
        self.user_indptr = np.asarray(indptr, dtype=np.int64)
        self.user_items = np.asarray(items, dtype=np.int64)
        self._n_items = n_items

    @property
    def n_items(self) -> int:
        return self._n_items

    def history(self, users: np.ndarray) -> np.ndarray:
        return dense_rows(self.user_indptr, self.user_items, users, self._n_items)

    def scores_from(self, x: np.ndarray) -> np.ndarray:
        """(rows, n_items) scores of binary interaction rows ``x``."""
        raise NotImplementedError

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), self._n_items), dtype=np.float32)
        for start in range(0, len(users), 512):
            block = users[start:start + 512]
            out[start:start + len(block)] = self.scores_from(self.history(block))
        return out

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The ranking score of each pair (not a rating)."""
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        out = np.empty(len(users), dtype=np.float32)
        unique, where = np.unique(users, return_inverse=True)
        for start in range(0, len(unique), 256):
            block = np.arange(start, min(start + 256, len(unique)))
            scores = self.rank_scores(unique[block])
            rows = np.flatnonzero((where >= block[0]) & (where <= block[-1]))
            out[rows] = scores[where[rows] - block[0], items[rows]]
        return out

    def score_user(self, params: UserParams) -> np.ndarray:
        x = np.zeros((1, self._n_items), dtype=np.float32)
        x[0, np.asarray(params.vector, dtype=np.int64)] = 1
        return self.scores_from(x)[0]

    def history_arrays(self) -> dict[str, np.ndarray]:
        return {"user_indptr": self.user_indptr, "user_items": self.user_items}
