"""Collaborative filtering as embedding dot products (the reference's V1 and V2)."""

from __future__ import annotations

import torch
from torch import nn

from embedrec.models.base import EmbeddingModel, Rows, scale_to_range


class DotModel(EmbeddingModel):
    """V1: prediction = dot(user vector, movie vector), unbounded."""

    user_tables = ("user_factors",)
    item_tables = ("item_factors",)

    def __init__(self, n_users: int, n_items: int, n_factors: int = 50):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)

    def score(self, user_rows: Rows, item_rows: Rows) -> torch.Tensor:
        return (user_rows["user_factors"] * item_rows["item_factors"]).sum(dim=-1)


class BiasedModel(EmbeddingModel):
    """V2: sigmoid(dot + user bias + movie bias), scaled to the rating range."""

    user_tables = ("user_factors", "user_bias")
    item_tables = ("item_factors", "item_bias")

    def __init__(self, n_users: int, n_items: int, n_factors: int = 50, *,
                 rating_range: tuple[float, float] = (0.5, 5.0)):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.low, self.high = float(rating_range[0]), float(rating_range[1])

    def logits(self, user_rows: Rows, item_rows: Rows) -> torch.Tensor:
        dot = (user_rows["user_factors"] * item_rows["item_factors"]).sum(dim=-1)
        return dot + user_rows["user_bias"][..., 0] + item_rows["item_bias"][..., 0]

    def score(self, user_rows: Rows, item_rows: Rows) -> torch.Tensor:
        return scale_to_range(self.logits(user_rows, item_rows), self.low, self.high)
