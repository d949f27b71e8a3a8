"""Objectives the trainer minimises, chosen by name (``TrainConfig.loss``).

An objective turns a model and a batch dict into a scalar loss tensor, names the batch inputs it
needs (``needs``), may bring a negative sampler that adds ``batch["negatives"]`` before each
step, and scores validation rows as named metrics (lower is better) for early stopping.

- ``mse``: mean squared error against ``batch["ratings"]`` (the reference's objective).
- ``bpr``: Bayesian personalised ranking, -log sigmoid(score(u, i) - score(u, j)) with a negative
  item j drawn for every (u, i) by a sampler (uniform here). Its scores rank; they are not ratings.
- ``bpr_pop``, ``softmax`` and ``full_softmax`` (popularity-sampled BPR, sampled softmax with
  the logQ correction, the softmax over the whole catalogue a batch of users at a time): see
  ``embedrec.training.ranking_losses``. Ranking losses learn from positives only.
"""

from __future__ import annotations

import numpy as np
import torch

from embedrec.errors import ConfigError
from embedrec.models.base import predict_batches
from embedrec.models.spec import Shape
from embedrec.training.ranking_losses import BPRPop, FullSoftmax, Pairwise, SampledSoftmax


class UniformNegatives:
    """A uniformly drawn item per row (may hit a positive now and then, as is usual for BPR).

    ``per_row`` samplers can ``draw`` the negatives of many batches at once: the trainer draws
    a run of steps' worth in one call, the same way on either engine."""

    per_row = True

    def __init__(self, n_items: int):
        self.n_items = n_items

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.n_items, (n,), generator=generator)

    def __call__(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        return self.draw(len(batch["users"]), generator).to(batch["users"].device)


class MSE:
    name = "mse"
    needs = ("ratings",)
    metrics = ("valid_mse",)
    sampler = None

    def __call__(self, model, batch: dict) -> torch.Tensor:
        return torch.mean((model(batch) - batch["ratings"]) ** 2)

    def validate(self, model, batch: dict) -> dict[str, float]:
        pred = predict_batches(model, batch)
        truth = batch["ratings"].cpu().numpy()
        return {"valid_mse": float(np.mean((pred - truth) ** 2, dtype=np.float64))}


class BPR(Pairwise):
    """BPR with uniformly drawn negatives."""

    name = "bpr"
    needs = ()

    def __init__(self, shape: Shape):
        self.sampler = UniformNegatives(shape.n_items)
        self._validation_negatives = None


LOSSES = {"mse": lambda shape: MSE(), "bpr": BPR, "bpr_pop": BPRPop, "softmax": SampledSoftmax,
          "full_softmax": FullSoftmax}


def make_objective(name: str, shape: Shape):
    try:
        return LOSSES[name](shape)
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}") from None
