"""The reference's neural network over concatenated user and movie embeddings."""

from __future__ import annotations

import torch
from torch import nn

from embedrec.models.base import EmbeddingModel, Rows, scale_to_range


class MLPModel(EmbeddingModel):
    """concat(user, movie) -> Dropout -> Dense(hidden) -> ReLU -> Dropout -> Dense(1) -> sigmoid range.

    The reference uses 50 factors each, dropout 0.05 and 0.5, and 10 hidden units.
    """

    user_tables = ("user_factors",)
    item_tables = ("item_factors",)

    def __init__(self, n_users: int, n_items: int, n_factors: int = 50, *, hidden: int = 10,
                 dropout_in: float = 0.05, dropout_hidden: float = 0.5,
                 rating_range: tuple[float, float] = (0.5, 5.0)):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.head = nn.Sequential(
            nn.Dropout(dropout_in),
            nn.Linear(2 * n_factors, hidden),
            nn.ReLU(),
            nn.Dropout(dropout_hidden),
            nn.Linear(hidden, 1),
        )
        self.low, self.high = float(rating_range[0]), float(rating_range[1])

    def score(self, user_rows: Rows, item_rows: Rows) -> torch.Tensor:
        x = torch.cat([user_rows["user_factors"], item_rows["item_factors"]], dim=-1)
        return scale_to_range(self.head(x)[..., 0], self.low, self.high)
