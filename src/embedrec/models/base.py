"""The torch side of the embedding models: one base class so that one trainer serves them all.

A model names its user-indexed and item-indexed ``nn.Embedding`` tables and implements
``score(user_rows, item_rows, batch)``; ``forward(batch)`` looks the rows up and calls it.
Batches are dicts of tensors (``users``, ``items`` and whatever else a model's spec declares).

With ``sparse_rows`` on (the trainer's lazy engine) each table is read only at the distinct
ids of the batch, and its gradient is a sparse, coalesced tensor over those rows, so an
optimizer can update just them. Off (the exact engine), gradients are dense over whole tables.
Either way the step is plain autograd: ``loss.backward()``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

Rows = dict[str, torch.Tensor]
Batch = dict[str, torch.Tensor]


class _GatherRows(torch.autograd.Function):
    """``weight[rows]`` for sorted unique ``rows``, with a sparse coalesced gradient."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.weight_shape = weight.shape
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        sparse = torch.sparse_coo_tensor(rows.unsqueeze(0), grad, ctx.weight_shape,
                                         is_coalesced=True, check_invariants=False)
        return sparse, None


def gather_rows(weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows of a table (``rows`` sorted and unique) whose gradient is sparse over them."""
    return _GatherRows.apply(weight, rows)


class EmbeddingModel(nn.Module):
    """Base class: subclasses set ``user_tables``/``item_tables`` and implement ``score``."""

    user_tables: tuple[str, ...] = ()
    item_tables: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.sparse_rows = False
        # set by the trainer under a ranking loss: the output is the score before the rating
        # link (a sigmoid-scaled output would cap score differences at the rating range)
        self.raw_scores = False

    def rating_link(self, logits: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """The output from the logits: sigmoid-scaled to [low, high], or the logits themselves
        for a model trained to rank (``raw_scores``)."""
        return logits if self.raw_scores else scale_to_range(logits, low, high)

    def score(self, user_rows: Rows, item_rows: Rows, batch: Batch) -> torch.Tensor:
        """Predictions (shape ``(batch,)``) from per-example rows of each table."""
        raise NotImplementedError

    def attach_inputs(self, lookups: dict[str, torch.Tensor]) -> list[str]:
        """Called by the trainer before the first step with the training rows' look-up tables
        (``RowTensors.lookups``). A model that scores rows without their feature columns keeps
        what it needs; returns notes on inputs it switched off. The default keeps nothing."""
        return []

    def forward(self, batch: Batch) -> torch.Tensor:
        user_rows = self.rows(self.user_tables, batch["users"])
        item_rows = self.rows(self.item_tables, batch["items"])
        return self.score(user_rows, item_rows, batch)

    # ``score`` broadcasts: rows shaped (batch, 1, width) against (1, items, width) score a grid
    broadcasts = False

    def score_grid(self, batch: Batch, items: torch.Tensor) -> torch.Tensor:
        """Every row of ``batch`` scored against every one of ``items``: (len(batch), len(items)),
        without repeating the rows (models with ``broadcasts``; sampled softmax uses it)."""
        user_rows = {k: v.unsqueeze(1) for k, v in self.rows(self.user_tables, batch["users"]).items()}
        item_rows = {k: v.unsqueeze(0) for k, v in self.rows(self.item_tables, items).items()}
        return self.score(user_rows, item_rows, batch)

    def rows(self, names: tuple[str, ...], ids: torch.Tensor) -> Rows:
        if not self.sparse_rows:
            return {name: self.table(name)(ids) for name in names}
        uniq, inverse = torch.unique(ids, sorted=True, return_inverse=True)
        return {name: gather_rows(self.table(name).weight, uniq).index_select(0, inverse)
                for name in names}

    def table(self, name: str) -> nn.Embedding:
        module = getattr(self, name)
        assert isinstance(module, nn.Embedding)
        return module

    def tables(self) -> dict[str, nn.Embedding]:
        """All embedding tables by name."""
        return {n: self.table(n) for n in self.user_tables + self.item_tables}

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(embedding table weights, every other parameter): L2 applies to the tables only."""
        tables = [t.weight for t in self.tables().values()]
        ids = {id(p) for p in tables}
        return tables, [p for p in self.parameters() if id(p) not in ids]


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inner products over the last axis. Rows (B, k) against rows (B, k) multiply and sum;
    ``score_grid``'s users (B, 1, k) against items (1, S, k) take one matrix product, whose
    backward is two more, instead of a (B, S, k) product and its gradient."""
    if a.dim() == 3 and b.dim() == 3 and a.shape[1] == 1 and b.shape[0] == 1:
        return a[:, 0] @ b[0].T
    return (a * b).sum(dim=-1)


def weights(x) -> np.ndarray:
    """A table's (or a parameter's) weights as a numpy view: a kernel's writes train the model."""
    tensor = x.weight if isinstance(x, nn.Module) else x
    return tensor.detach().numpy()


def scale_to_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``sigmoid(x)`` scaled to the rating range [low, high]."""
    return torch.sigmoid(x) * (high - low) + low


@torch.no_grad()
def predict_batches(model: nn.Module, batch: Batch, chunk: int = 1 << 16) -> np.ndarray:
    """Eval-mode predictions for a batch dict of any length, in chunks; float32 numpy."""
    was_training = model.training
    model.eval()
    try:
        n = len(next(iter(batch.values())))
        out = torch.empty(n, dtype=torch.float32)
        for start in range(0, n, chunk):
            part = {k: v[start:start + chunk] for k, v in batch.items()}
            out[start:start + chunk] = model(part).float().cpu()
        return out.numpy()
    finally:
        model.train(was_training)
