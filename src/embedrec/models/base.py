"""The contract every neural model follows, so that one trainer and one scorer serve them all.

A model names its user-indexed and item-indexed ``nn.Embedding`` tables. ``score`` computes
predictions from rows already looked up, and ``forward(users, items)`` looks the rows up and calls
``score``. The fast trainer uses ``score`` to run a batch on just the table rows it touches.
"""

from __future__ import annotations

import torch
from torch import nn

Rows = dict[str, torch.Tensor]


class EmbeddingModel(nn.Module):
    """Base class: subclasses set ``user_tables``/``item_tables`` and implement ``score``."""

    user_tables: tuple[str, ...] = ()
    item_tables: tuple[str, ...] = ()

    def score(self, user_rows: Rows, item_rows: Rows) -> torch.Tensor:
        """Predictions (shape ``(batch,)``) from per-example rows of each table."""
        raise NotImplementedError

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user_rows = {name: self.table(name)(users) for name in self.user_tables}
        item_rows = {name: self.table(name)(items) for name in self.item_tables}
        return self.score(user_rows, item_rows)

    def predict(self, users, items):
        """Numpy in, numpy out, in eval mode: the ``Predictor`` interface of the evaluators."""
        return predict_numpy(self, users, items)

    def table(self, name: str) -> nn.Embedding:
        module = getattr(self, name)
        assert isinstance(module, nn.Embedding)
        return module

    def tables(self) -> dict[str, nn.Embedding]:
        """All embedding tables by name."""
        return {n: self.table(n) for n in self.user_tables + self.item_tables}

    def dense_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters that are not embedding tables (updated densely at every step)."""
        table_weights = {id(t.weight) for t in self.tables().values()}
        return [(n, p) for n, p in self.named_parameters() if id(p) not in table_weights]


def scale_to_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``sigmoid(x)`` scaled to the rating range [low, high]."""
    return torch.sigmoid(x) * (high - low) + low


@torch.no_grad()
def predict_numpy(model: EmbeddingModel, users, items, chunk: int = 1 << 16):
    """Predictions for index arrays, in eval mode (no dropout), in chunks; returns float32 numpy."""
    import numpy as np

    was_training = model.training
    model.eval()
    try:
        users_t = torch.as_tensor(np.asarray(users, dtype=np.int64))
        items_t = torch.as_tensor(np.asarray(items, dtype=np.int64))
        out = torch.empty(len(users_t), dtype=torch.float32)
        for start in range(0, len(users_t), chunk):
            end = start + chunk
            out[start:end] = model(users_t[start:end], items_t[start:end])
        return out.numpy()
    finally:
        model.train(was_training)
