"""One trainer for every neural model: seeded shuffling, Keras-style Adam, fast or exact steps.

Work per step in the fast engine is proportional to the batch: only the table rows a batch
touches are gathered, regularised and updated. The exact engine reproduces the reference's
arithmetic (L2 over the whole tables, Adam over every row, every step).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from embedrec.data.dataset import Ratings
from embedrec.errors import TrainingError
from embedrec.models.base import EmbeddingModel, predict_numpy
from embedrec.models.init import initialise
from embedrec.models.registry import ModelConfig, build_model
from embedrec.training.adam import KerasAdam, KerasFusedAdam
from embedrec.training.config import TrainConfig

log = logging.getLogger(__name__)

StepProgress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass
class History:
    """Per-epoch losses and what early stopping decided."""

    epochs: list[dict] = field(default_factory=list)  # {epoch, train_mse, valid_mse, seconds}
    best_epoch: int | None = None  # epoch whose weights were kept (1-based)
    stopped_early: bool = False
    seconds: float = 0.0
    steps: int = 0

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "seconds": self.seconds, "steps": self.steps}


def _tensors(data: Ratings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(data.users.astype(np.int64)),
            torch.from_numpy(data.items.astype(np.int64)),
            torch.from_numpy(data.ratings.copy()))


class _Stepper:
    """Runs one optimisation step on a batch, fast (row-wise) or exact (whole tables)."""

    def __init__(self, model: EmbeddingModel, config: TrainConfig):
        self.model, self.config = model, config
        self.opt = KerasAdam(config.lr, config.beta1, config.beta2, config.eps)
        self.tables = model.tables()
        self.dense = [p for _, p in model.dense_parameters()]
        self.params = list(model.parameters())
        self.table_ids = {id(t.weight) for t in self.tables.values()}
        first_user, first_item = model.user_tables[0], model.item_tables[0]
        self._slots = {"user": torch.zeros(self.tables[first_user].num_embeddings, dtype=torch.long),
                       "item": torch.zeros(self.tables[first_item].num_embeddings, dtype=torch.long)}
        if config.engine == "exact":
            self.dense_adam = KerasFusedAdam(self.params, config)

    def _unique(self, role: str, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(unique ids, inverse) in O(batch) with a table-sized scratch array instead of a sort.

        The unique ids come out in no particular order; that changes nothing, since each row's
        update is independent and gradients are summed in example order.
        """
        slot = self._slots[role]
        positions = torch.arange(len(idx))
        slot[idx] = positions  # one representative position per distinct id
        first = slot[idx]
        is_rep = first == positions
        rank = torch.cumsum(is_rep, 0) - 1
        return idx[is_rep], rank[first]

    def fast(self, users: torch.Tensor, items: torch.Tensor, y: torch.Tensor) -> float:
        model, l2 = self.model, self.config.l2
        uu, uinv = self._unique("user", users)
        ii, iinv = self._unique("item", items)
        leaves, rows = [], []
        user_rows, item_rows = {}, {}
        for names, uniq, inv, out in ((model.user_tables, uu, uinv, user_rows),
                                      (model.item_tables, ii, iinv, item_rows)):
            for name in names:
                leaf = self.tables[name].weight.detach().index_select(0, uniq).requires_grad_()
                leaves.append(leaf)
                rows.append(uniq)
                out[name] = leaf.index_select(0, inv)  # backward: index_add_, fast
        mse = torch.mean((model.score(user_rows, item_rows) - y) ** 2)
        loss = mse + l2 * sum((leaf * leaf).sum() for leaf in leaves) if l2 else mse
        grads = torch.autograd.grad(loss, leaves + self.dense)
        self.opt.tick()
        tables = [self.tables[n].weight for n in model.user_tables + model.item_tables]
        for table, uniq, leaf, grad in zip(tables, rows, leaves, grads):
            self.opt.step_rows(table, uniq, leaf.detach(), grad)
        for param, grad in zip(self.dense, grads[len(leaves):]):
            self.opt.step(param, grad)
        return mse.item()

    def exact(self, users: torch.Tensor, items: torch.Tensor, y: torch.Tensor) -> float:
        mse = torch.mean((self.model(users, items) - y) ** 2)
        grads = torch.autograd.grad(mse, self.params)
        with torch.no_grad():
            for param, grad in zip(self.params, grads):
                if id(param) in self.table_ids:  # d/dW of l2 * sum(W**2), over every row
                    grad.add_(param, alpha=2.0 * self.config.l2)
                param.grad = grad
        self.dense_adam.step()
        return mse.item()


def fit(
    model: EmbeddingModel,
    train: Ratings,
    config: TrainConfig,
    *,
    seed: int,
    valid: Ratings | None = None,
    progress: StepProgress | None = None,
) -> History:
    """Train ``model`` in place on ``train``; validation rows (if any) only monitor and stop.

    Shuffling and dropout draw from generators seeded by ``seed``; global RNG state is untouched,
    so the same seed gives the same numbers whatever ran before.
    """
    if len(train) == 0:
        raise TrainingError("no training rows")
    users, items, ratings = _tensors(train)
    n, bs = len(train), config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    total_steps = steps_per_epoch * config.epochs
    shuffle = torch.Generator().manual_seed(seed)
    stepper = _Stepper(model, config)
    step_fn = stepper.fast if config.engine == "fast" else stepper.exact
    history = History()
    best_valid, best_state, bad_epochs = math.inf, None, 0
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    start = time.perf_counter()
    try:
        for i, module in enumerate(model.modules()):  # dropout masks: seeded from ``seed``
            if hasattr(module, "reseed"):
                module.reseed(seed * 1000 + i)
        with torch.random.fork_rng(devices=[]):  # any other torch draw leaves global state alone
            model.train()
            for epoch in range(1, config.epochs + 1):
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=shuffle)
                total = 0.0
                for s in range(steps_per_epoch):
                    idx = perm[s * bs:(s + 1) * bs]
                    batch_mse = step_fn(users[idx], items[idx], ratings[idx])
                    if not math.isfinite(batch_mse):
                        raise TrainingError(
                            f"loss became {batch_mse} at epoch {epoch}, step {s + 1}: lower the "
                            f"learning rate (now {config.lr}) or check the ratings"
                        )
                    total += batch_mse * len(idx)
                    history.steps += 1
                    if progress and (s % 200 == 0 or s == steps_per_epoch - 1):
                        progress(history.steps, total_steps)
                record = {"epoch": epoch, "train_mse": total / n, "valid_mse": None,
                          "seconds": time.perf_counter() - t0}
                if valid is not None and len(valid):
                    pred = predict_numpy(model, valid.users, valid.items)
                    record["valid_mse"] = float(np.mean((pred - valid.ratings) ** 2, dtype=np.float64))
                history.epochs.append(record)
                log.info("epoch %d: train mse %.4f, valid mse %s, %.1fs", epoch, record["train_mse"],
                         "-" if record["valid_mse"] is None else f"{record['valid_mse']:.4f}",
                         record["seconds"])
                if record["valid_mse"] is None or config.patience is None:
                    continue
                if record["valid_mse"] < best_valid:
                    best_valid, bad_epochs, history.best_epoch = record["valid_mse"], 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_epochs += 1
                    if bad_epochs >= config.patience:
                        history.stopped_early = epoch < config.epochs
                        break
            if best_state is not None:
                model.load_state_dict(best_state)
            else:
                history.best_epoch = len(history.epochs)
    finally:
        torch.set_num_threads(threads)
        model.eval()
    history.seconds = time.perf_counter() - start
    return history


def train_model(
    model_config: ModelConfig,
    train: Ratings,
    config: TrainConfig,
    *,
    seed: int,
    valid: Ratings | None = None,
    progress: StepProgress | None = None,
) -> tuple[EmbeddingModel, History]:
    """Build, initialise (from ``seed``) and fit a model; return it with its history."""
    model = build_model(model_config)
    initialise(model, config.init, torch.Generator().manual_seed(seed))
    history = fit(model, train, config, seed=seed + 1, valid=valid, progress=progress)
    return model, history
