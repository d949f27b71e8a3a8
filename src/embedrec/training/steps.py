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
        if negatives is not None:  # where the run's draws start in the epoch's
            base, _ = negative_span(sampler, len(perm), first, n_steps, batch_size)
        for s in range(first, first + n_steps):
            batch = self.rows.take(perm[s * batch_size:(s + 1) * batch_size])
            if negatives is not None:
                lo, hi = negative_span(sampler, len(perm), s, 1, batch_size)
                batch["negatives"] = negatives[lo - base:hi - base]
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


def negative_span(sampler, n_rows: int, first: int, n_steps: int,
                  batch_size: int) -> tuple[int, int]:
    """Where steps ``first .. first + n_steps - 1`` of an epoch of ``n_rows`` rows find their
    negatives in the epoch's sequence of draws: one per row (a ``per_row`` sampler, indexed
    like the epoch's order) or ``shared`` per step."""
    stop = min(first + n_steps, -(-n_rows // batch_size))
    if sampler.per_row:
        start = first * batch_size
        return start, max(start, min(n_rows, stop * batch_size))
    start = first * sampler.shared
    return start, max(start, stop * sampler.shared)


def run_negatives(sampler, perm: torch.Tensor, first: int, n_steps: int, batch_size: int,
                  generator: torch.Generator) -> torch.Tensor | None:
    """The negatives of a run of steps drawn in one call, on ``perm``'s device; None without a
    sampler."""
    if sampler is None:
        return None
    start, stop = negative_span(sampler, len(perm), first, n_steps, batch_size)
    return sampler.draw(stop - start, generator).to(perm.device)


class KernelSteps:
    def __init__(self, kernel, rows: RowTensors, config: TrainConfig, max_steps: int,
                 sampler=None, sampling: torch.Generator | None = None):
        from embedrec.kernels.tables import Settings

        self.kernel, self.sampler, self.sampling = kernel, sampler, sampling
        self.negatives = None
        if getattr(kernel, "needs_negatives", False):
            if sampler is None:
                raise TrainingError("this kernel trains with drawn negatives; the loss has none")
            _, per_epoch = negative_span(sampler, len(rows), 0, len(rows), config.batch_size)
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
            at, _ = negative_span(self.sampler, len(order), first, n_steps, batch_size)
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
