"""Rows as dicts of tensors: what the trainer feeds a model.

Always ``users``, ``items`` and ``ratings``. Further inputs when the model's spec needs them
(``Capabilities.needs``):

- ``item_features``: ``item_genres`` (row's movie genre indices, padded with -1) and
  ``item_year`` (release year, -1 unknown), from the items table;
- ``timestamps``: ``timestamps`` (seconds), ``rating_year`` and ``days_since_first`` (since
  the user's first training rating);
- ``history``: the movies each row's user rated in training, in ``nn.EmbeddingBag`` form:
  ``history_items`` (flat) and ``history_offsets`` (where each row's list starts).

Inputs a spec only ``uses`` are added when the data has them and left out (listed in
``missing``) when it has not. A ``RowTensors`` holds whole columns once; ``take(idx)`` slices a
batch. ``lookups`` holds the tables behind those columns, over every item and user, taken from
the training rows: ``item_counts`` and ``user_counts`` (always), ``item_genres`` (every movie's
genre indices, padded with -1) and ``item_year``, ``user_first_time`` (-1 for none) and
``last_time`` (the latest training rating), ``history_indptr`` and ``history_items`` (CSR over
users). A model that must score rows without those columns (new movies, every user at
export) keeps what it needs from them (``EmbeddingModel.attach_inputs``).
"""

from __future__ import annotations

import numpy as np
import torch

from embedrec.data.dataset import Ratings
from embedrec.data.features import item_features, time_features
from embedrec.errors import TrainingError


class RowTensors:
    def __init__(self, data: Ratings, *, needs: frozenset[str] = frozenset(),
                 uses: frozenset[str] = frozenset(), reference: Ratings | None = None,
                 device: torch.device | str = "cpu"):
        """``reference``: the training rows, from which user histories and first-rating times
        are taken (default ``data`` itself)."""
        reference = data if reference is None else reference
        wanted = set(needs) | set(uses)
        cols = {"users": data.users.astype(np.int64), "items": data.items.astype(np.int64),
                "ratings": data.ratings.astype(np.float32)}
        lookups = {"item_counts": np.bincount(reference.items, minlength=reference.n_items),
                   "user_counts": np.bincount(reference.users, minlength=reference.n_users)}
        missing = []
        features = (item_features(data.item_map, data.item_info) if "item_features" in wanted
                    else None)
        if "item_features" in wanted and features is None:
            if "item_features" in needs:
                raise TrainingError("the model needs item features and the data has no items "
                                    "table (genres, titles)")
            missing.append("item_features")
        elif features is not None:
            padded = features.padded_genres()
            cols["item_genres"] = padded[data.items]
            cols["item_year"] = features.year.astype(np.int64)[data.items]
            lookups |= {"item_genres": padded, "item_year": features.year.astype(np.int64)}
        time = time_features(data, reference) if "timestamps" in wanted else None
        if "timestamps" in wanted and (time is None or reference.timestamps is None):
            if "timestamps" in needs:
                raise TrainingError("the model needs rating timestamps and the data has none")
            missing.append("timestamps")
        elif time is not None:
            cols["timestamps"] = data.timestamps.astype(np.int64)
            cols["rating_year"] = time["year"].astype(np.int64)
            cols["days_since_first"] = time["days_since_first"].astype(np.int64)
            ts = reference.timestamps.astype(np.int64)
            first = np.full(reference.n_users, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first, reference.users, ts)
            first[first == np.iinfo(np.int64).max] = -1
            lookups |= {"user_first_time": first,
                        "last_time": np.array([ts.max() if len(ts) else -1], dtype=np.int64)}
        self.columns = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device)
                        for k, v in cols.items()}
        self.history = None
        if "history" in wanted:
            order = np.argsort(reference.users, kind="stable")
            counts = np.bincount(reference.users, minlength=reference.n_users)
            indptr = np.concatenate(([0], np.cumsum(counts)))
            lookups |= {"history_indptr": indptr, "history_items": reference.items[order]}
            if "history" in needs:
                self.history = (torch.from_numpy(indptr.astype(np.int64)).to(device),
                                torch.from_numpy(reference.items[order].astype(np.int64)).to(device))
        self.lookups = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)).to(device)
                        for k, v in lookups.items()}
        self.missing = tuple(missing)
        self.n = len(data)

    def __len__(self) -> int:
        return self.n

    def take(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = {k: v[idx] for k, v in self.columns.items()}
        if self.history is not None:
            batch["history_items"], batch["history_offsets"] = self._history(batch["users"])
        return batch

    def all(self) -> dict[str, torch.Tensor]:
        return self.take(torch.arange(self.n, device=self.columns["users"].device))

    def _history(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return csr_rows(*self.history, users)


def csr_rows(indptr: torch.Tensor, items: torch.Tensor,
             users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``users`` of a CSR matrix (``indptr``, ``items``), flat, and where each row
    starts in the flat list (``nn.EmbeddingBag``'s offsets)."""
    starts, lengths = indptr[users], indptr[users + 1] - indptr[users]
    offsets = torch.cumsum(lengths, 0) - lengths
    position = torch.arange(int(lengths.sum()), device=users.device)
    source = torch.repeat_interleave(starts - offsets, lengths) + position
    return items[source], offsets


def entry_rows(offsets: torch.Tensor, total: int) -> torch.Tensor:
    """For a flat list of ``total`` entries whose rows start at ``offsets``: each entry's row."""
    lengths = torch.diff(offsets, append=offsets.new_tensor([total]))
    return torch.repeat_interleave(torch.arange(len(offsets), device=offsets.device), lengths)


class UserRows:
    """Users as the unit of training, for losses over a user's whole row of the catalogue
    (``ranking_losses.FullSoftmax``): ``take(idx)`` gives a batch of users (``users``) and,
    flat, the items each one interacted with (``items``) and where each user's list starts
    (``offsets``). Only users with at least one row take part; ``len`` counts them. The
    look-up tables a model keeps (``lookups``: counts, and the features and histories it
    ``uses``) are ``RowTensors``' own."""

    def __init__(self, data: Ratings, *, uses: frozenset[str] = frozenset(),
                 device: torch.device | str = "cpu"):
        order = np.argsort(data.users, kind="stable")
        counts = np.bincount(data.users, minlength=data.n_users)
        indptr = np.concatenate(([0], np.cumsum(counts)))
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device)  # noqa: E731
        self.user_ids = to_tensor(np.flatnonzero(counts))
        self.indptr, self.items = to_tensor(indptr), to_tensor(data.items[order])
        # the look-up tables alone (taken from ``data`` as the reference): no row columns
        tables = RowTensors(data.take(np.arange(0)), uses=uses, reference=data, device=device)
        self.lookups, self.missing = tables.lookups, tables.missing
        self.columns = {"users": self.user_ids}
        self.n = len(self.user_ids)

    def __len__(self) -> int:
        return self.n

    def take(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        users = self.user_ids[idx]
        items, offsets = csr_rows(self.indptr, self.items, users)
        return {"users": users, "items": items, "offsets": offsets}
