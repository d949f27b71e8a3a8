"""The immutable ratings dataset: contiguous int32 indices, float32 ratings, id maps, item metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from embedrec.errors import DataError


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


class IdMap:
    """Raw ids (sorted, as scikit-learn's LabelEncoder orders them) <-> contiguous indices."""

    def __init__(self, raw_ids: np.ndarray):
        raw = np.asarray(raw_ids)
        if raw.ndim != 1:
            raise ValueError("raw ids must be one-dimensional")
        if len(raw) > 1 and not np.all(raw[1:] > raw[:-1]):
            raise ValueError("raw ids must be sorted and unique")
        self.ids = _frozen(raw)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, raw: Any) -> bool:
        return self.index(raw, missing=-1) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self.ids, other.ids)

    __hash__ = None  # type: ignore[assignment]

    def index(self, raw: Any, *, missing: int | None = None) -> int:
        """Index of one raw id; KeyError (or ``missing``) when it is unknown."""
        try:  # a cast that changes the value (1.5 -> 1) or fails ("abc" -> int) is unknown
            probe = np.asarray([raw], dtype=self.ids.dtype)
            found = self.indices(probe, missing=-1)[0] if probe[0] == raw else -1
        except (TypeError, ValueError, OverflowError):
            found = -1
        if found < 0:
            if missing is None:
                raise KeyError(raw)
            return missing
        return int(found)

    def indices(self, raw: np.ndarray, *, missing: int = -1) -> np.ndarray:
        """Vectorised look-up; unknown ids become ``missing``."""
        raw = np.asarray(raw)
        if len(self.ids) == 0:
            return np.full(raw.shape, missing, dtype=np.int32)
        try:
            pos = np.searchsorted(self.ids, raw)
        except TypeError:  # e.g. string ids looked up with numbers
            return np.full(raw.shape, missing, dtype=np.int32)
        pos = np.minimum(pos, len(self.ids) - 1)
        hit = self.ids[pos] == raw
        return np.where(hit, pos, missing).astype(np.int32)

    def raw(self, index: np.ndarray | int) -> Any:
        return self.ids[index]

    def to_list(self) -> list:
        return self.ids.tolist()


@dataclass(frozen=True, eq=False, kw_only=True)
class Ratings:
    """A set of ratings over fixed user and item vocabularies.

    Subsets made by ``take`` (train/test/validation splits) share the id maps of the whole
    dataset, so an index means the same user or movie everywhere.
    """

    users: np.ndarray  # int32 user index per rating
    items: np.ndarray  # int32 item index per rating
    ratings: np.ndarray  # float32 rating per rating
    timestamps: np.ndarray | None  # int64 seconds since the epoch, or None
    user_map: IdMap
    item_map: IdMap
    scale: tuple[float, float]  # (min, max) rating
    name: str = "ratings"
    item_info: pd.DataFrame | None = None  # indexed by raw item id: title, genres
    source: dict = field(default_factory=dict)  # where it came from: path, md5, duplicates

    def __post_init__(self) -> None:
        n = len(self.ratings)
        for name in ("users", "items", "ratings") + (("timestamps",) if self.timestamps is not None else ()):
            arr = getattr(self, name)
            if len(arr) != n:
                raise DataError(f"{name} has {len(arr)} rows, ratings has {n}")
            object.__setattr__(self, name, _frozen(arr))
        if n and (self.users.max() >= len(self.user_map) or self.items.max() >= len(self.item_map)):
            raise DataError("an index is out of range of its id map")

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        scale: tuple[float, float] | None = None,
        name: str = "ratings",
        item_info: pd.DataFrame | None = None,
        source: dict | None = None,
    ) -> Ratings:
        """Encode a frame with user, item, rating (and optional timestamp) columns.

        Indices are assigned over the whole frame in sorted raw-id order, as LabelEncoder does.
        """
        if len(frame) == 0:
            raise DataError(f"{name}: no ratings")
        user_ids, users = np.unique(frame["user"].to_numpy(), return_inverse=True)
        item_ids, items = np.unique(frame["item"].to_numpy(), return_inverse=True)
        ratings = frame["rating"].to_numpy(dtype=np.float32)
        if scale is None:
            scale = (float(ratings.min()), float(ratings.max()))
        ts = frame["timestamp"].to_numpy(dtype=np.int64) if "timestamp" in frame else None
        return cls(
            users=users.astype(np.int32), items=items.astype(np.int32), ratings=ratings,
            timestamps=ts, user_map=IdMap(user_ids), item_map=IdMap(item_ids),
            scale=(float(scale[0]), float(scale[1])), name=name, item_info=item_info,
            source=dict(source or {}),
        )

    # ---- views ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ratings)

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def take(self, rows: np.ndarray) -> Ratings:
        """A subset of rows (in the given order) with the same id maps."""
        rows = np.asarray(rows)
        return Ratings(
            users=self.users[rows], items=self.items[rows], ratings=self.ratings[rows],
            timestamps=None if self.timestamps is None else self.timestamps[rows],
            user_map=self.user_map, item_map=self.item_map, scale=self.scale, name=self.name,
            item_info=self.item_info, source=self.source,
        )

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    def to_frame(self, raw_ids: bool = True) -> pd.DataFrame:
        cols = {
            "user": self.user_map.raw(self.users) if raw_ids else self.users,
            "item": self.item_map.raw(self.items) if raw_ids else self.items,
            "rating": self.ratings,
        }
        if self.timestamps is not None:
            cols["timestamp"] = self.timestamps
        return pd.DataFrame(cols)

    def title(self, raw_item: Any) -> str:
        if self.item_info is not None and raw_item in self.item_info.index:
            return str(self.item_info.at[raw_item, "title"])
        return f"item {raw_item}"
