"""Rows as dicts of tensors: what the trainer feeds a model.

``users``, ``items`` and ``ratings`` always; ``timestamps`` and the item feature arrays when the
data has them and the model's spec needs them. A ``RowTensors`` holds whole columns once;
``take(idx)`` slices a batch.
"""

from __future__ import annotations

import numpy as np
import torch

from embedrec.data.dataset import Ratings
from embedrec.errors import TrainingError


class RowTensors:
    def __init__(self, data: Ratings, *, needs: frozenset[str] = frozenset(),
                 device: torch.device | str = "cpu"):
        cols = {"users": data.users.astype(np.int64), "items": data.items.astype(np.int64),
                "ratings": data.ratings.astype(np.float32)}
        if "timestamps" in needs:
            if data.timestamps is None:
                raise TrainingError("the model needs rating timestamps and the data has none")
            cols["timestamps"] = data.timestamps.astype(np.int64)
        self.columns = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device)
                        for k, v in cols.items()}
        self.n = len(data)

    def __len__(self) -> int:
        return self.n

    def take(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.columns.items()}

    def all(self) -> dict[str, torch.Tensor]:
        return dict(self.columns)
