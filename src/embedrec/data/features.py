"""Features as arrays: item features (genres, release year) and interaction features (time).

- Genres come from the items table's ``genres`` column (``|``-joined, as MovieLens writes them,
  and as ``read_items`` writes ml-100k's genre flags); "(no genres listed)" and blanks mean none.
  They are stored as a CSR (``genre_indptr``, ``genre_indices``) over the item index, with the
  genre vocabulary in sorted order.
- The release year is parsed from a MovieLens title's trailing ``(YYYY)`` (``-1`` when absent).
- Interaction features come from the ratings' timestamps (seconds since the epoch): the year of
  the rating and the days since the user's first rating, where "first" is taken over the rows
  passed as ``reference`` (the training rows), never the test rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from embedrec.data.dataset import IdMap, Ratings

NO_GENRES = {"", "(no genres listed)"}
_YEAR = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$")
SECONDS_PER_DAY = 86_400


def release_year(title: str) -> int:
    """The year in a title's trailing ``(1995)`` (or ``(2007-2013)``), or -1."""
    match = _YEAR.search(str(title))
    return int(match.group(1)) if match else -1


def split_genres(text: str) -> list[str]:
    return [g.strip() for g in str(text).split("|") if g.strip() not in NO_GENRES]


@dataclass(frozen=True, eq=False)
class ItemFeatures:
    """Per-item features over an item index (the dataset's ``item_map``)."""

    genre_names: tuple[str, ...]
    genre_indptr: np.ndarray  # (n_items + 1,) int64
    genre_indices: np.ndarray  # int32 indices into genre_names
    year: np.ndarray  # (n_items,) int32 release year, -1 unknown

    @property
    def n_items(self) -> int:
        return len(self.year)

    def genres_of(self, item: int) -> list[str]:
        lo, hi = self.genre_indptr[item], self.genre_indptr[item + 1]
        return [self.genre_names[g] for g in self.genre_indices[lo:hi]]

    def padded_genres(self, pad: int = -1) -> np.ndarray:
        """(n_items, most genres of any item) int64 genre indices, ``pad`` where none."""
        counts = np.diff(self.genre_indptr)
        width = max(1, int(counts.max(initial=0)))
        out = np.full((self.n_items, width), pad, dtype=np.int64)
        rows = np.repeat(np.arange(self.n_items), counts)
        cols = np.arange(len(self.genre_indices)) - np.repeat(self.genre_indptr[:-1], counts)
        out[rows, cols] = self.genre_indices
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"genre_indptr": self.genre_indptr.astype(np.int64),
                "genre_indices": self.genre_indices.astype(np.int32),
                "year": self.year.astype(np.int32)}

    @classmethod
    def from_arrays(cls, genre_names: list[str], arrays: dict[str, np.ndarray],
                    n_items: int) -> ItemFeatures:
        """Rebuild from stored arrays, checking them (ValueError says what is wrong)."""
        indptr, indices, year = (arrays["genre_indptr"], arrays["genre_indices"], arrays["year"])
        if indptr.shape != (n_items + 1,) or year.shape != (n_items,):
            raise ValueError("item feature arrays do not cover every item")
        if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices):
            raise ValueError("genre_indptr is not a valid offsets array")
        if len(indices) and (indices.min() < 0 or indices.max() >= len(genre_names)):
            raise ValueError("genre indices out of range")
        return cls(tuple(str(g) for g in genre_names), indptr.astype(np.int64),
                   indices.astype(np.int32), year.astype(np.int32))


def item_features(item_map: IdMap, item_info: pd.DataFrame | None) -> ItemFeatures | None:
    """Genres and release years of every item in ``item_map`` (None without an items table).

    Items missing from the table get no genres and year -1.
    """
    if item_info is None:
        return None
    n = len(item_map)
    titles = item_info["title"] if "title" in item_info else pd.Series("", index=item_info.index)
    genres = item_info["genres"] if "genres" in item_info else pd.Series("", index=item_info.index)
    per_item: list[list[str]] = [[] for _ in range(n)]
    year = np.full(n, -1, dtype=np.int32)
    index = item_map.indices(np.asarray(item_info.index))
    for pos, idx in enumerate(index):
        if idx < 0:
            continue
        per_item[idx] = split_genres(genres.iloc[pos])
        year[idx] = release_year(titles.iloc[pos])
    names = tuple(sorted({g for gs in per_item for g in gs}))
    lookup = {g: i for i, g in enumerate(names)}
    counts = np.array([len(gs) for gs in per_item], dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    indices = np.array([lookup[g] for gs in per_item for g in gs], dtype=np.int32)
    return ItemFeatures(names, indptr, indices, year)


def time_features(rows: Ratings, reference: Ratings | None = None) -> dict[str, np.ndarray] | None:
    """Per-row interaction features from timestamps (None when the data has none).

    ``year``: calendar year (UTC) of the rating; ``days_since_first``: days since the user's
    first rating among ``reference``'s rows (default ``rows``), 0 when earlier or unknown.
    """
    if rows.timestamps is None:
        return None
    reference = rows if reference is None else reference
    ts = rows.timestamps.astype(np.int64)
    year = pd.to_datetime(ts, unit="s", utc=True).year.to_numpy().astype(np.int32)
    first = np.full(rows.n_users, np.iinfo(np.int64).max, dtype=np.int64)
    if reference.timestamps is not None and len(reference):
        np.minimum.at(first, reference.users, reference.timestamps.astype(np.int64))
    start = first[rows.users]
    days = np.where(start == np.iinfo(np.int64).max, 0,
                    np.maximum(ts - start, 0) // SECONDS_PER_DAY).astype(np.int32)
    return {"year": year, "days_since_first": days}
