"""The numpy side shared by the embedding models: stored arrays as float32, item vectors."""

from __future__ import annotations

import numpy as np

from embedrec.models.scorer import Scorer
from embedrec.models.spec import Shape


class FactorScorer(Scorer):
    """Holds a model's arrays (named as its torch ``state_dict``) and its factor tables."""

    def __init__(self, config, arrays: dict[str, np.ndarray], shape: Shape):
        self.config = config
        self.shape = shape
        self.low, self.high = shape.rating_range
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.user_factors = self.weights["user_factors.weight"]
        self.item_factors = self.weights["item_factors.weight"]

    def arrays(self) -> dict[str, np.ndarray]:
        return self.weights

    def on_device(self, device) -> dict:
        """The weights as torch tensors on ``device`` (made once per device)."""
        import torch

        cache = self.__dict__.setdefault("_device_weights", {})
        key = str(device)
        if key not in cache:
            cache[key] = {k: torch.from_numpy(v).to(device) for k, v in self.weights.items()}
        return cache[key]

    def item_vectors(self) -> np.ndarray:
        return self.item_factors

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]


def factor_shapes(config, shape: Shape) -> dict[str, tuple[int, ...]]:
    k = config.n_factors
    return {"user_factors.weight": (shape.n_users, k), "item_factors.weight": (shape.n_items, k)}
