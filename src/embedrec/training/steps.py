"""How the trainer takes its steps: standard PyTorch, or a model's compiled kernel.

Both run a range of batches of one epoch's permutation and return the summed loss over their
rows (the loss times each batch's length), so the epoch loop, validation and early stopping
around them are one and the same.

- ``TorchSteps``: ``optimizer.zero_grad(); loss = objective(model, batch); loss.backward();
  optimizer.step()``: any model, loss and device, and what distributed training wraps.
- ``KernelSteps``: a model spec's fused kernel (``ModelSpec.kernel``, numba, CPU; MSE, and BPR
  and sampled softmax for the dot-product models): the same batches, the same negatives (a
  run's worth drawn in one call, on both engines), the same batch semantics and Adam
  arithmetic, in one compiled pass per run of steps. It trains the model's own weights in place.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from embedrec.errors import TrainingError
from embedrec.training.batches import RowTensors
from embedrec.training.config import TrainConfig


class LossNotFinite(TrainingError):
    """The loss became NaN or infinite."""


class TorchSteps:
    def __init__(self, model, objective, optimizer, rows: RowTensors, sampling: torch.Generator):
        self.model, self.objective, self.optimizer = model, objective, optimizer
        self.rows, self.sampling = rows, sampling

    def run(self, perm: torch.Tensor, epoch: int, first: int, n_steps: int,
            batch_size: int) -> float:
        total = 0.0
        sampler = self.objective.sampler
        negatives = run_negatives(sampler, perm, first, n_steps, batch_size, self.sampling)
        for s in range(first, first + n_steps):
            batch = self.rows.take(perm[s * batch_size:(s + 1) * batch_size])
            if negatives is not None:
                batch["negatives"] = step_negatives(sampler, negatives, s - first, batch_size,
                                                    len(batch["users"]))
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.objective(self.model, batch)
            loss.backward()
            self.optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                raise LossNotFinite(f"loss became {value} at epoch {epoch}, step {s + 1}")
            total += value * len(batch["users"])
        return total

    def sync(self) -> None:
        pass


def run_negatives(sampler, perm: torch.Tensor, first: int, n_steps: int, batch_size: int,
                  generator: torch.Generator) -> torch.Tensor | None:
    """The negatives of a run of steps drawn in one call, on ``perm``'s device: one per row
    (a ``per_row`` sampler) or ``shared`` per batch; None without a sampler."""
    if sampler is None:
        return None
    rows = max(0, min(len(perm), (first + n_steps) * batch_size) - first * batch_size)
    count = rows if sampler.per_row else -(-rows // batch_size) * sampler.shared
    return sampler.draw(count, generator).to(perm.device)


def step_negatives(sampler, negatives: torch.Tensor, step: int, batch_size: int,
                   rows: int) -> torch.Tensor:
    """The negatives of the ``step``-th batch (of ``rows`` rows) of a run."""
    if sampler.per_row:
        return negatives[step * batch_size:step * batch_size + rows]
    return negatives[step * sampler.shared:(step + 1) * sampler.shared]


class KernelSteps:
    def __init__(self, kernel, rows: RowTensors, config: TrainConfig, max_steps: int,
                 sampler=None, sampling: torch.Generator | None = None):
        from embedrec.kernels.tables import Settings

        self.kernel, self.sampler, self.sampling = kernel, sampler, sampling
        self.negatives = None
        if getattr(kernel, "needs_negatives", False):
            if sampler is None:
                raise TrainingError("this kernel trains with drawn negatives; the loss has none")
            # indexed like ``order`` (one per row), or S per step of the epoch (shared)
            per_epoch = (len(rows) if sampler.per_row
                         else -(-len(rows) // config.batch_size) * sampler.shared)
            self.negatives = np.zeros(per_epoch, dtype=np.int64)
        if hasattr(kernel, "use_sampler"):
            kernel.use_sampler(sampler)
        self.users = rows.columns["users"].numpy()
        self.items = rows.columns["items"].numpy()
        self.ratings = rows.columns["ratings"].numpy()
        kernel.bind(Settings(lr=config.lr, beta1=config.beta1, beta2=config.beta2, eps=config.eps,
                             l2=config.l2, dense=config.updates == "dense",
                             batch_size=config.batch_size, threads=config.threads,
                             max_steps=max_steps))

    def run(self, perm: torch.Tensor, epoch: int, first: int, n_steps: int,
            batch_size: int) -> float:
        order = np.ascontiguousarray(perm.numpy())
        extra = {}
        if self.negatives is not None:
            drawn = run_negatives(self.sampler, perm, first, n_steps, batch_size, self.sampling)
            at = first * (batch_size if self.sampler.per_row else self.sampler.shared)
            self.negatives[at:at + len(drawn)] = drawn.numpy()
            extra["negatives"] = self.negatives
        sse, _ = self.kernel.run(order, self.users, self.items, self.ratings,
                                 first * batch_size, n_steps, **extra)
        if not math.isfinite(sse):
            raise LossNotFinite(f"loss became {sse} at epoch {epoch}, between steps {first + 1} "
                                f"and {first + n_steps}")
        return sse

    def sync(self) -> None:
        self.kernel.sync()
