"""Rows as dicts of tensors: what the trainer feeds a model.

Always ``users``, ``items`` and ``ratings``. Further inputs when the model's spec needs them
(``Capabilities.needs``):

- ``item_features``: ``item_genres`` (row's movie genre indices, padded with -1) and
  ``item_year`` (release year, -1 unknown), from the items table;
- ``timestamps``: ``timestamps`` (seconds), ``rating_year`` and ``days_since_first`` (since
  the user's first training rating);
- ``history``: the movies each row's user rated in training, in ``nn.EmbeddingBag`` form:
  ``history_items`` (flat) and ``history_offsets`` (where each row's list starts).

A ``RowTensors`` holds whole columns once; ``take(idx)`` slices a batch.
"""

from __future__ import annotations

import numpy as np
import torch

from embedrec.data.dataset import Ratings
from embedrec.data.features import item_features, time_features
from embedrec.errors import TrainingError


class RowTensors:
    def __init__(self, data: Ratings, *, needs: frozenset[str] = frozenset(),
                 reference: Ratings | None = None, device: torch.device | str = "cpu"):
        """``reference``: the training rows, from which user histories and first-rating times
        are taken (default ``data`` itself)."""
        reference = data if reference is None else reference
        cols = {"users": data.users.astype(np.int64), "items": data.items.astype(np.int64),
                "ratings": data.ratings.astype(np.float32)}
        if "item_features" in needs:
            features = item_features(data.item_map, data.item_info)
            if features is None:
                raise TrainingError("the model needs item features and the data has no items "
                                    "table (genres, titles)")
            cols["item_genres"] = features.padded_genres()[data.items]
            cols["item_year"] = features.year.astype(np.int64)[data.items]
        if "timestamps" in needs:
            time = time_features(data, reference)
            if time is None:
                raise TrainingError("the model needs rating timestamps and the data has none")
            cols["timestamps"] = data.timestamps.astype(np.int64)
            cols["rating_year"] = time["year"].astype(np.int64)
            cols["days_since_first"] = time["days_since_first"].astype(np.int64)
        self.columns = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device)
                        for k, v in cols.items()}
        self.history = None
        if "history" in needs:
            order = np.argsort(reference.users, kind="stable")
            counts = np.bincount(reference.users, minlength=reference.n_users)
            indptr = np.concatenate(([0], np.cumsum(counts)))
            self.history = (torch.from_numpy(indptr.astype(np.int64)).to(device),
                            torch.from_numpy(reference.items[order].astype(np.int64)).to(device))
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
        indptr, items = self.history
        starts, lengths = indptr[users], indptr[users + 1] - indptr[users]
        offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        position = torch.arange(total, device=users.device)
        source = torch.repeat_interleave(starts - offsets, lengths) + position
        return items[source], offsets
