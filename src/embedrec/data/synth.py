"""A realistic synthetic MovieLens: heavy-tailed activity and popularity, latent-factor ratings.

``synthesize`` draws:
- users' activity from a lognormal (every user rates at least ``min_per_user`` movies, as in
  MovieLens), and movies' popularity from a lognormal with a heavier tail;
- (user, movie) pairs by activity and popularity, with no duplicates;
- ratings = 3.5 + user bias + movie bias + user · movie factors + noise, rounded to the
  half-star scale, whole stars more often than half stars (as people rate);
- timestamps from each user's own active period;
- movies with made-up titles and genres, the genres tied to the movie factors, so that
  similar movies share genres.

The defaults were tuned so that a draw the size of ml-latest-small matches its shape (see the
README's table): per-user and per-movie medians, means and maxima, the share of movies with
fewer than 5 ratings, and the rating distribution.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from embedrec.errors import ConfigError

log = logging.getLogger(__name__)

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western")
_WORDS = ("Silent", "Last", "Red", "Midnight", "Lost", "Golden", "Dark", "Little", "Secret",
          "Broken", "Wild", "Final", "Hidden", "Crimson", "Blue", "Iron", "Paper", "Winter",
          "Summer", "Electric")
_NOUNS = ("River", "City", "Garden", "Empire", "Road", "Dream", "Station", "Kingdom", "Heart",
          "Machine", "Island", "Storm", "Mirror", "Letter", "Circus", "Horizon", "Hotel", "Planet",
          "Forest", "Symphony")


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    n_users: int
    n_items: int
    n_ratings: int
    seed: int = 0
    n_factors: int = 8  # rank of the latent taste model
    min_per_user: int = 20  # as MovieLens: every user has at least this many ratings
    user_sigma: float = 1.4  # lognormal spread of user activity
    item_sigma: float = 2.1  # lognormal spread of movie popularity
    taste: float = 0.6  # std of the user · movie interaction, in stars
    noise: float = 0.55  # std of the rating noise, in stars
    base: float = 3.15  # global offset of the latent ratings, in stars
    user_bias: float = 0.45  # std of user biases (generosity), in stars
    item_bias: float = 0.45  # std of movie biases (quality), in stars
    half_star_share: float = 0.6  # share of ratings rounded to a half star

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_items, self.n_ratings) < 1:
            raise ConfigError("users, items and ratings must be at least 1")
        if self.n_ratings > self.n_users * self.n_items // 2:
            raise ConfigError("more ratings than half of all user-movie pairs: too dense")
        floor = min(self.min_per_user, self.n_items // 2)
        if self.n_ratings < self.n_users * floor:
            raise ConfigError(f"need at least {floor} ratings per user "
                              f"({self.n_users * floor:,} in all)")


def _user_counts(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    floor = min(cfg.min_per_user, cfg.n_items // 2)
    cap = max(floor, cfg.n_items // 2)
    weights = rng.lognormal(0.0, cfg.user_sigma, cfg.n_users)
    extra = cfg.n_ratings - floor * cfg.n_users
    counts = floor + np.floor(weights / weights.sum() * extra).astype(np.int64)
    counts = np.minimum(counts, cap)
    short = cfg.n_ratings - counts.sum()
    while short > 0:  # hand out what rounding and the cap left, to users with room
        room = np.flatnonzero(counts < cap)
        take = rng.choice(room, size=min(short, len(room)), replace=False)
        counts[take] += 1
        short = cfg.n_ratings - counts.sum()
    return counts


def _pairs(cfg: SynthConfig, counts: np.ndarray, popularity: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs: each user draws its count of movies by popularity."""
    users = np.repeat(np.arange(cfg.n_users, dtype=np.int64), counts)
    cdf = np.cumsum(popularity / popularity.sum())
    items = np.searchsorted(cdf, rng.random(len(users)))
    rows = np.arange(len(users))  # rows still to check: those of users who had a duplicate
    for round_ in range(50):
        keys = users[rows] * cfg.n_items + items[rows]
        order = np.argsort(keys, kind="stable")
        dup_local = np.zeros(len(rows), dtype=bool)
        dup_local[order[1:]] = keys[order[1:]] == keys[order[:-1]]
        dup = rows[dup_local]
        if len(dup) == 0:
            break
        # first by popularity, then uniformly for heavy users who keep drawing the same hits
        items[dup] = (np.searchsorted(cdf, rng.random(len(dup))) if round_ < 10
                      else rng.integers(0, cfg.n_items, len(dup)))
        rows = np.flatnonzero(np.isin(users, np.unique(users[dup])))
    else:
        keys = users * cfg.n_items + items
        _, first = np.unique(keys, return_index=True)
        keep = np.zeros(len(keys), dtype=bool)
        keep[first] = True
        log.warning("dropped %d duplicate pairs the sampler could not place", int((~keep).sum()))
        users, items = users[keep], items[keep]
    return users, np.minimum(items, cfg.n_items - 1)


def _cover_every_item(cfg: SynthConfig, users: np.ndarray, items: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Give every movie at least one rating (MovieLens lists only rated movies)."""
    counts = np.bincount(items, minlength=cfg.n_items)
    missing = np.flatnonzero(counts == 0)
    if len(missing) == 0 or len(missing) > len(items) // 4:
        return items
    donors = np.flatnonzero(counts[items] >= 3)  # rows whose movie can spare a rating
    rows = rng.choice(donors, size=min(len(missing), len(donors)), replace=False)
    items = items.copy()
    items[rows] = missing[:len(rows)]  # a new movie for that user: still no duplicate pair
    keys = users * cfg.n_items + items
    if len(np.unique(keys)) != len(keys):  # a donor lost its last spare: undo those rows
        raise RuntimeError("synthetic pairs collided; try another seed")
    return items


def synthesize(cfg: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings (userId, movieId, rating, timestamp) and movies (movieId, title, genres)."""
    rng = np.random.default_rng(cfg.seed)
    popularity = rng.lognormal(0.0, cfg.item_sigma, cfg.n_items)
    users, items = _pairs(cfg, _user_counts(cfg, rng), popularity, rng)
    items = _cover_every_item(cfg, users, items, rng)
    k = cfg.n_factors
    scale = np.sqrt(cfg.taste / np.sqrt(k))  # so that user · movie has std ``taste``
    p = rng.normal(0, scale, (cfg.n_users, k))
    q = rng.normal(0, scale, (cfg.n_items, k))
    b_u = rng.normal(0.0, cfg.user_bias, cfg.n_users)
    b_i = rng.normal(0.0, cfg.item_bias, cfg.n_items) + 0.12 * (np.log(popularity) - np.log(popularity).mean())
    raw = cfg.base + b_u[users] + b_i[items] + np.einsum("ij,ij->i", p[users], q[items])
    raw += rng.normal(0.0, cfg.noise, len(users))
    half = rng.random(len(users)) < cfg.half_star_share
    stars = np.where(half, np.round(raw * 2) / 2, np.round(raw))
    stars = np.clip(stars, 0.5, 5.0).astype(np.float32)
    start = rng.integers(946_684_800, 1_514_764_800, cfg.n_users)  # 2000 .. 2018
    span = rng.integers(86_400, 3 * 365 * 86_400, cfg.n_users)
    stamps = start[users] + (rng.random(len(users)) * span[users]).astype(np.int64)
    movie_ids = np.sort(rng.choice(np.arange(1, cfg.n_items * 3 + 1), cfg.n_items, replace=False))
    order = np.lexsort((movie_ids[items], users))  # by user, then movie, as MovieLens files are
    ratings = pd.DataFrame({"userId": users[order] + 1, "movieId": movie_ids[items][order],
                            "rating": stars[order], "timestamp": stamps[order]})
    return ratings, _movies(movie_ids, q, rng)


def _movies(movie_ids: np.ndarray, q: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = len(movie_ids)
    direction = rng.normal(size=(q.shape[1], len(GENRES)))
    affinity = q @ direction + rng.normal(0, 0.3, (n, len(GENRES)))
    n_genres = rng.integers(1, 4, n)
    ranked = np.argsort(-affinity, axis=1)
    genres = ["|".join(GENRES[g] for g in ranked[i, :n_genres[i]]) for i in range(n)]
    years = rng.integers(1930, 2019, n)
    w1, w2 = rng.integers(0, len(_WORDS), n), rng.integers(0, len(_NOUNS), n)
    titles = [f"{_WORDS[a]} {_NOUNS[b]} {i} ({y})" for i, (a, b, y) in
              enumerate(zip(w1, w2, years), start=1)]
    return pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": genres})


def write_synthetic(cfg: SynthConfig, out: str | Path) -> Path:
    """Write ratings.csv, movies.csv and synth.json (the settings) into ``out``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from embedrec.io import atomic_write_text as atomic_write

    from embedrec.io import check_synth_out

    out = check_synth_out(out)  # absent, empty or an earlier synth folder: nothing else
    out.mkdir(parents=True, exist_ok=True)
    ratings, movies = synthesize(cfg)
    # ratings as MovieLens writes them ("4.0", not "4"): a dictionary of the ten star values
    stars = [f"{v / 2:.1f}" for v in range(1, 11)]
    codes = np.rint(ratings["rating"].to_numpy() * 2).astype(np.int8) - 1
    table = pa.table({
        "userId": ratings["userId"].to_numpy(), "movieId": ratings["movieId"].to_numpy(),
        "rating": pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(stars)),
        "timestamp": ratings["timestamp"].to_numpy(),
    })
    tmp = out / ".ratings.csv.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(b"userId,movieId,rating,timestamp\n")
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False,
                                                          quoting_style="none"))
        tmp.replace(out / "ratings.csv")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    atomic_write(out / "movies.csv", movies.to_csv(index=False))
    atomic_write(out / "synth.json", json.dumps(cfg.__dict__, indent=1))
    return out
