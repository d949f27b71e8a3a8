"""Recommendations from a model bundle: top-k for known users, every user, similar movies.

Scores are computed for the whole catalogue at once (a user against every item), seen items are
masked, and the top k are picked with ``argpartition`` (for many users, by a compiled kernel
on every core: ``recommend_all``). Items with no training rating are candidates only for a
model that scores them from their features (``ModelBundle.candidate_items``), and users the
model was not fitted on are ranked by the bias fallback, never by an untrained embedding. New
users (fold-in) live in ``embedrec.foldin``. Everything here is numpy:
no torch is needed to recommend.
"""

from __future__ import annotations

import logging
import re
import threading

import numpy as np
import pandas as pd

from embedrec.errors import EmbedrecError
from embedrec.models.outputs import why_no_ratings
from embedrec.models.registry import specs
from embedrec.persistence import ModelBundle

log = logging.getLogger(__name__)


class UnknownIdError(EmbedrecError):
    """A user or movie id the model has never seen."""


# ---------------------------------------------------------------- look-ups -------------------
def user_index(bundle: ModelBundle, user) -> int:
    idx = bundle.user_map.index(_coerce(bundle.user_map.ids, user), missing=-1)
    if idx < 0:
        raise UnknownIdError(f"unknown user {user!r} (the model knows {len(bundle.user_map):,} users)")
    return idx


def _coerce(ids: np.ndarray, raw):
    text = raw.strip() if isinstance(raw, str) else ""
    digits = text[1:] if text.startswith("-") else text
    if ids.dtype.kind in "iu" and digits.isascii() and digits.isdigit():  # not '¹', not '١'
        return int(text)
    return raw


def find_movie(bundle: ModelBundle, query) -> int:
    """Item index for a movie id, an exact title, or a forgiving title search.

    The search matches titles holding every word of the query, case-insensitively; when several
    match, the error lists them (most rated first). A query made of digits is an id (or an exact
    title), never a word search.
    """
    raw = _coerce(bundle.item_map.ids, query)
    idx = bundle.item_map.index(raw, missing=-1)
    if idx >= 0:
        return idx
    info = bundle.item_info
    if info is None or not isinstance(query, str):
        raise UnknownIdError(f"unknown movie {query!r}")
    titles = info["title"].astype(str)
    exact = titles[titles.str.lower() == query.strip().lower()]
    numeric = query.strip().isdigit()  # a number is an id: no word search for it
    hits = exact if len(exact) or numeric else titles[search_mask(titles, query)]
    known = [i for i in hits.index if i in bundle.item_map]
    if len(known) == 1:
        return bundle.item_map.index(known[0])
    if not known:
        raise UnknownIdError(f"no movie matches {query!r}")
    known.sort(key=lambda i: -bundle.item_counts[bundle.item_map.index(i)])
    shown = "; ".join(f"{i}: {info.at[i, 'title']}" for i in known[:8])
    raise UnknownIdError(f"{len(known)} movies match {query!r}, be more precise or use an id: {shown}")


def search_mask(titles: pd.Series, query: str) -> np.ndarray:
    """Titles holding every query word: as a word prefix ("godfath"), or whole for numbers."""
    words = [w for w in re.split(r"\W+", query.lower()) if w]
    if not words:  # only punctuation: nothing to look for, so nothing matches
        return np.zeros(len(titles), dtype=bool)
    lower = titles.str.lower()
    mask = np.ones(len(titles), dtype=bool)
    for w in words:
        pattern = rf"\b{re.escape(w)}\b" if w.isdigit() else rf"\b{re.escape(w)}"
        mask &= lower.str.contains(pattern, regex=True).to_numpy()
    return mask


def describe(bundle: ModelBundle, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    raw = bundle.item_map.raw(items)
    info = bundle.item_info
    titles = [info.at[r, "title"] if info is not None and r in info.index else "" for r in raw]
    genres = [info.at[r, "genres"] if info is not None and r in info.index else "" for r in raw]
    return pd.DataFrame({"movieId": raw, "title": titles, "genres": genres,
                         "score": np.round(scores.astype(float), 4)})


# ---------------------------------------------------------------- scoring --------------------
def rank_scores(bundle: ModelBundle, users: np.ndarray) -> np.ndarray:
    """(len(users), n_items) scores whose order is the order of the predicted ratings.

    For the sigmoid models these are logits: cheaper than ratings and without the ties a
    saturated sigmoid makes. Turn chosen entries into ratings with ``to_ratings``. Users and
    movies the model cannot score are scored by the fallback (``ModelBundle.scored``).
    """
    return bundle.scored.rank_scores(np.asarray(users, dtype=np.int64))


def to_ratings(bundle: ModelBundle, scores: np.ndarray) -> np.ndarray:
    """Ranking scores from ``rank_scores`` as predicted ratings (popularity for ``pop``)."""
    return np.asarray(bundle.scored.to_rating(scores), dtype=np.float32)


def score_users(bundle: ModelBundle, users: np.ndarray) -> np.ndarray:
    """(len(users), n_items) predicted ratings; cold rows use the fallback."""
    return to_ratings(bundle, rank_scores(bundle, users))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores per row, best first (the selected ones ordered by score,
    then index; which of several tied candidates make the cut is deterministic but arbitrary)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    order = np.lexsort((part, -scores[rows, part]), axis=1)
    return part[rows, order]


def _mask_seen(bundle: ModelBundle, users: np.ndarray, scores: np.ndarray) -> None:
    """Remove each user's training movies, and movies the model cannot score itself (no
    training ratings, and no features it scores them from), from the candidates."""
    for row, u in enumerate(users):
        scores[row, bundle.seen(u)] = -np.inf
    scores[:, ~bundle.candidate_items()] = -np.inf


def recommend(bundle: ModelBundle, user, k: int = 10, *, exclude_seen: bool = True) -> pd.DataFrame:
    """The k best movies for a known user, with titles, genres and predicted ratings."""
    check_k(k)
    u = user_index(bundle, user)
    items, scores = top_for_users(bundle, np.array([u]), k, exclude_seen)
    keep = items[0] >= 0
    return describe(bundle, items[0][keep], scores[0][keep])


def top_for_users(bundle: ModelBundle, users: np.ndarray, k: int, exclude_seen: bool = True,
                  device=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and predicted ratings for ``users`` (-1 / -inf where a user has
    fewer than k candidates). ``device``: None scores and selects with numpy; a torch device
    (e.g. "cuda") scores and selects with torch on that device."""
    if device is not None:
        return _top_for_users_torch(bundle, np.asarray(users), k, exclude_seen, device)
    scores = rank_scores(bundle, users)
    if exclude_seen:
        _mask_seen(bundle, users, scores)
    best = top_k(scores, k)
    best_scores = np.take_along_axis(scores, best, axis=1)
    return _as_ratings(bundle, best, best_scores)


def _as_ratings(bundle: ModelBundle, best: np.ndarray, best_scores: np.ndarray):
    finite = np.isfinite(best_scores)
    ratings = np.where(finite, to_ratings(bundle, np.where(finite, best_scores, 0)), -np.inf)
    return np.where(finite, best, -1).astype(np.int32), ratings.astype(np.float32)


def _top_for_users_torch(bundle: ModelBundle, users: np.ndarray, k: int, exclude_seen: bool,
                         device) -> tuple[np.ndarray, np.ndarray]:
    import torch

    scores = bundle.scored.rank_scores_torch(users.astype(np.int64), device)
    if exclude_seen:
        seen = [bundle.seen(u) for u in users]
        rows = np.repeat(np.arange(len(users)), [len(s) for s in seen])
        cols = np.concatenate(seen) if seen else np.zeros(0, dtype=np.int64)
        scores[torch.from_numpy(rows).to(device), torch.from_numpy(cols.astype(np.int64)).to(device)] = -np.inf
        unknown = np.flatnonzero(~bundle.candidate_items())
        if len(unknown):
            scores[:, torch.from_numpy(unknown).to(device)] = -np.inf
    values, best = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    return _as_ratings(bundle, best.cpu().numpy(), values.cpu().numpy())


def recommend_all(bundle: ModelBundle, k: int = 10, *, chunk: int = 1024,
                  users: np.ndarray | None = None, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and predicted ratings for many users (all by default), seen items
    masked, in chunks of at most ``chunk`` users (fewer for a large catalogue where a chunk's
    scores are held: they stay under 64 MB, so memory is flat in the number of users).

    With numpy (``device`` None), a chunk is scored (BLAS on every core) and its top k are
    picked by a compiled kernel on every core, in one pass over each row without a sort
    (``embedrec.kernels.topk``); a model whose scores are one product of two tables
    (``Scorer.linear_factors``) is scored and picked in one compiled pass, a cache-sized tile
    of scores at a time, so no chunk's scores are ever held. With torch on ``device``, see
    ``top_for_users``. A user with
    fewer than k unseen items gets index -1 and score -inf in the spare places.
    """
    check_k(k)
    users = np.arange(len(bundle.user_map)) if users is None else np.asarray(users)
    n_items = len(bundle.item_map)
    k_eff = min(k, n_items)
    if device is not None or bundle.scored.linear_factors(users) is None:
        chunk = max(1, min(chunk, (1 << 24) // max(n_items, 1)))  # scores held: under 64 MB
    out_items = np.empty((len(users), k_eff), dtype=np.int32)
    out_scores = np.empty((len(users), k_eff), dtype=np.float32)
    buffers: dict[str, np.ndarray] = {}
    for start in range(0, len(users), chunk):
        block = users[start:start + chunk]
        where = slice(start, start + len(block))
        if device is not None:
            out_items[where], out_scores[where] = top_for_users(bundle, block, k_eff, device=device)
        else:
            out_items[where], out_scores[where] = _top_compiled(bundle, block, k_eff, buffers)
    return out_items, out_scores


_KERNEL_LOCK = threading.Lock()  # numba's default thread pool takes one caller at a time


def _top_compiled(bundle: ModelBundle, users: np.ndarray, k: int,
                  buffers: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    from embedrec.kernels.tables import numba_threads_now, one_blas_thread
    from embedrec.kernels.topk import TILE_ITEMS, TILE_USERS, factor_top_k, item_tiles, masked_top_k

    factors = bundle.scored.linear_factors(users)
    best = np.empty((len(users), k), dtype=np.int64)
    if factors is None:
        scores = np.ascontiguousarray(rank_scores(bundle, users))
        best_scores = np.empty((len(users), k), dtype=scores.dtype)
        with _KERNEL_LOCK:
            masked_top_k(scores, users.astype(np.int64), bundle.seen_indptr,
                         bundle.seen_items, bundle.candidate_items(), k, best, best_scores)
        return _as_ratings(bundle, best, best_scores)
    # one product of two tables: scored a cache-sized tile at a time as the top k are kept
    left, right = factors
    buffers = {} if buffers is None else buffers
    if buffers.get("right") is not right:  # the tiles, made once for every chunk
        buffers["right"], buffers["tiles"] = right, item_tiles(right, TILE_ITEMS)
    best_scores = np.empty((len(users), k), dtype=right.dtype)
    block = max(1, min(TILE_USERS, -(-len(users) // (4 * numba_threads_now()))))
    with _KERNEL_LOCK, one_blas_thread():
        factor_top_k(left, buffers["tiles"], right.shape[0], users.astype(np.int64),
                     bundle.seen_indptr, bundle.seen_items, bundle.candidate_items(), k,
                     block, best, best_scores)
    return _as_ratings(bundle, best, best_scores)


def topn_device(name: str | None):
    """The ``device`` argument of ``recommend_all`` for a --device option: None (numpy) for
    cpu, or the torch device for cuda / auto (auto is numpy when no GPU is present)."""
    if name in (None, "cpu"):
        return None
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else None
    if name == "cuda" and not torch.cuda.is_available():
        raise EmbedrecError("--device cuda: no CUDA device is available here (use cpu or auto)")
    if name != "cuda":
        raise EmbedrecError(f"unknown device {name!r}; use cpu, cuda or auto")
    return name


def check_k(k: int) -> None:
    if k < 1:
        raise EmbedrecError(f"k must be at least 1, got {k}")


def popular(bundle: ModelBundle, k: int = 10, exclude: np.ndarray | None = None) -> pd.DataFrame:
    """The most rated movies (the ``--fallback popular`` answer)."""
    counts = bundle.item_counts.astype(np.float64).copy()
    if exclude is not None:
        counts[exclude] = -np.inf
    items = top_k(counts[None, :], k)[0]
    return describe(bundle, items, counts[items])


# ---------------------------------------------------------------- similar items --------------
def similar_items(bundle: ModelBundle, movie, k: int = 10) -> pd.DataFrame:
    """Movies nearest to ``movie`` by cosine similarity of their vectors."""
    check_k(k)
    emb = bundle.scorer.item_vectors()
    if emb is None:
        with_vectors = [s.name for s in specs() if s.capabilities.item_vectors]
        raise EmbedrecError(f"the {bundle.name} model has no movie vectors; train one of "
                            f"{', '.join(with_vectors)}")
    idx = find_movie(bundle, movie)
    known = bundle.known_items()
    if not known[idx]:
        raise EmbedrecError(f"movie {bundle.item_map.raw(idx)} has no training ratings, so no embedding")
    norms = np.linalg.norm(emb, axis=1) + 1e-12
    sims = (emb @ emb[idx]) / (norms * norms[idx])
    sims[~known] = -np.inf
    sims[idx] = -np.inf
    items = top_k(sims[None, :], k)[0]
    items = items[np.isfinite(sims[items])]  # k may exceed the movies there are to compare
    return describe(bundle, items, sims[items])


def predict(bundle: ModelBundle, pairs: list[tuple[object, object]], *,
            timestamp: int | None = None) -> np.ndarray:
    """Predicted ratings for (user id, movie id) pairs of known users and movies.

    ``timestamp`` (seconds since 1970, UTC) is when the ratings would be made; models with time
    inputs default to the latest training rating (``bundle.scored.default_time``), and models
    without them ignore it.
    """
    if not bundle.scored.predicts_ratings:
        raise EmbedrecError(why_no_ratings(bundle.name, bundle.spec.capabilities, bundle.loss))
    users = np.array([user_index(bundle, u) for u, _ in pairs], dtype=np.int64)
    items = np.array([find_movie(bundle, m) for _, m in pairs], dtype=np.int64)
    times = None if timestamp is None else np.full(len(users), int(timestamp), dtype=np.int64)
    return bundle.scored.predict(users, items, times)

