"""One trainer for every torch model: standard PyTorch steps, seeded, on a chosen device.

A step is ``loss = objective(model, batch)``, ``loss.backward()``, ``optimizer.step()``. The
fast engine turns on the models' sparse row look-ups, so the gradients of embedding tables are
sparse and Keras-Adam updates only the rows a batch touched; the exact engine keeps dense
gradients over whole tables (the reference's arithmetic). Shuffling, dropout masks and negative
samples draw from generators seeded by the run's seed; global RNG state and the process's
thread count are left as they were.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from embedrec.data.dataset import Ratings
from embedrec.data.shards import is_shard
from embedrec.errors import ConfigError, TrainingError
from embedrec.models.init import initialise
from embedrec.models.spec import ModelSpec, Shape
from embedrec.training import distributed
from embedrec.training.batches import RowTensors
from embedrec.training.config import TrainConfig
from embedrec.training.losses import make_objective
from embedrec.training.optim import KerasAdam

log = logging.getLogger(__name__)

StepProgress = Callable[[int, int], None]  # (steps done, steps in all)
EpochCallback = Callable[[int, dict], None]  # (epoch, that epoch's record in History.epochs)


class StopTraining(Exception):
    """Raised by an ``on_epoch`` callback to stop training early (e.g. a pruned tuning trial).

    ``fit`` lets it propagate after putting the model back on the CPU in eval mode."""


@dataclass
class History:
    """Per-epoch losses and what early stopping decided."""

    epochs: list[dict] = field(default_factory=list)  # {epoch, train_<loss>, valid_<..>, seconds}
    best_epoch: int | None = None  # epoch whose weights were kept (1-based)
    stopped_early: bool = False
    seconds: float = 0.0
    steps: int = 0
    monitor: str | None = None
    notes: list[str] = field(default_factory=list)  # inputs switched off, and why

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "monitor": self.monitor,
                "stopped_early": self.stopped_early, "seconds": self.seconds, "steps": self.steps,
                "notes": self.notes}


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here (use cpu or auto)")
    return torch.device(name)


def make_optimizer(model, config: TrainConfig) -> KerasAdam:
    """Keras-Adam with L2 on the embedding tables (not on dense layers)."""
    tables, dense = model.parameter_groups()
    groups = [{"params": tables, "l2": config.l2}]
    if dense:
        groups.append({"params": dense, "l2": 0.0})
    return KerasAdam(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)


def fit(model, train: Ratings, config: TrainConfig, *, seed: int, shape: Shape | None = None,
        valid: Ratings | None = None, needs: frozenset[str] = frozenset(),
        uses: frozenset[str] = frozenset(), progress: StepProgress | None = None,
        on_epoch: EpochCallback | None = None, checkpoints=None) -> History:
    """Train ``model`` in place on ``train``; validation rows (if any) only monitor and stop.

    ``on_epoch(epoch, record)``, when given, is called after every epoch with that epoch's
    record (train loss, validation metrics); an exception it raises (``StopTraining``, or a
    tuner's own pruning exception) ends training and propagates to the caller.

    Under torchrun (``embedrec.training.distributed``) every rank calls ``fit`` with the same
    rows: ``config.batch_size`` is then the global batch, each rank trains on its shard of
    every step, and gradients are averaged by DDP. ``checkpoints`` (a
    ``training.checkpoint.Checkpoints``) writes a checkpoint after every epoch and, when
    resuming, continues from the latest one.
    """
    if len(train) == 0:
        raise TrainingError("no training rows")
    shape = shape or Shape(train.n_users, train.n_items, train.scale)
    objective = make_objective(config.loss, shape)
    if hasattr(objective, "prepare"):  # ranking losses: positives only, samplers from them
        train, valid = objective.prepare(train, valid, config)
    monitor = config.monitor or objective.metrics[0]
    if monitor not in objective.metrics:
        raise ConfigError(f"the {objective.name} loss reports {', '.join(objective.metrics)}, "
                          f"not {monitor!r}")
    # -- distributed: this rank's device and threads --
    ctx = distributed.active()
    device = ctx.device if ctx is not None else resolve_device(config.device)
    history = History(monitor=monitor)
    with torch_threads(distributed.threads_per_rank(config.threads)), \
            torch.random.fork_rng(devices=[]):
        model.to(device)
        model.sparse_rows = config.engine == "fast"
        rows = RowTensors(train, needs=needs, uses=uses, device=device)
        history.notes = [f"{name}: off, the data has none" for name in rows.missing]
        history.notes += model.attach_inputs(rows.lookups)
        for note in history.notes:
            log.info("%s", note)
        valid_batch = (RowTensors(valid, needs=needs, uses=uses, reference=train,
                                  device=device).all()
                       if valid is not None and len(valid) else None)
        optimizer = make_optimizer(model, config)
        shuffle = torch.Generator().manual_seed(seed)
        # sampling and dropout: seeded from ``seed``, per rank (rank 0: as one process)
        sampling = torch.Generator().manual_seed(distributed.rank_seed(seed + 104_729))
        for i, module in enumerate(model.modules()):
            if hasattr(module, "reseed"):
                module.reseed(distributed.rank_seed(seed * 1000 + i))
        n = len(rows)
        # -- distributed: this rank's shard of each step; DDP around the objective --
        plan = distributed.EpochPlan(n, config.batch_size, ctx, sharded=is_shard(train))
        step = distributed.make_step(model, objective, ctx)
        steps_per_epoch = plan.steps
        total_steps = steps_per_epoch * config.epochs
        best_valid, best_state, bad_epochs = math.inf, None, 0
        # -- checkpoints: continue from the latest one --
        first_epoch, generators = 1, {"shuffle": shuffle, "sampling": sampling}
        if checkpoints is not None:
            checkpoints.bind(seed=seed, n_rows=n, config=config.to_dict(),
                             world=distributed.world())
            resumed = checkpoints.restore(model, optimizer, generators, history)
            if resumed is not None:
                first_epoch = config.epochs + 1 if resumed.stopped else resumed.epoch + 1
                best_valid, best_state = resumed.best_valid, resumed.best_state
                bad_epochs = resumed.bad_epochs
        start = time.perf_counter()
        try:
            model.train()
            for epoch in range(first_epoch, config.epochs + 1):
                t0 = time.perf_counter()
                perm = plan.shard(torch.randperm(n, generator=shuffle)).to(device)
                total = 0.0
                for s in range(steps_per_epoch):
                    idx, weight = plan.rows(perm, s)
                    batch = rows.take(idx)
                    if objective.sampler is not None:
                        batch["negatives"] = objective.sampler(batch, sampling)
                    optimizer.zero_grad(set_to_none=True)
                    loss = step(batch)
                    (loss if weight == 1.0 else loss * weight).backward()
                    optimizer.step()
                    value = loss.item()
                    if not math.isfinite(value):
                        raise TrainingError(
                            f"loss became {value} at epoch {epoch}, step {s + 1}: lower the "
                            f"learning rate (now {config.lr}) or check the ratings")
                    total += value * len(batch["users"]) * (weight != 0.0)
                    history.steps += 1
                    if progress and (s % 200 == 0 or s == steps_per_epoch - 1):
                        progress(history.steps, total_steps)
                (total,) = plan.sum([total])  # -- distributed: every rank's rows --
                record = {"epoch": epoch, f"train_{objective.name}": total / plan.n_global}
                record |= distributed.from_writer(  # -- distributed: rank 0 validates --
                    lambda: {k: None for k in objective.metrics} if valid_batch is None
                    else objective.validate(model, valid_batch))
                record["seconds"] = time.perf_counter() - t0
                history.epochs.append(record)
                log.info("epoch %d: %s", epoch, ", ".join(
                    f"{k} {v:.4f}" for k, v in record.items() if isinstance(v, float)))
                if on_epoch is not None:
                    on_epoch(epoch, record)
                score = record.get(monitor)
                stop = False
                if score is not None and config.patience is not None:
                    if score < best_valid:
                        best_valid, bad_epochs, history.best_epoch = score, 0, epoch
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        bad_epochs += 1
                        stop = distributed.agree(bad_epochs >= config.patience)  # rank 0 decides
                        history.stopped_early = stop and epoch < config.epochs
                if checkpoints is not None:  # -- checkpoints: after every epoch --
                    checkpoints.save(epoch=epoch, model=model, optimizer=optimizer,
                                     generators=generators, history=history,
                                     best_valid=best_valid, best_state=best_state,
                                     bad_epochs=bad_epochs, stopped=stop)
                if stop:
                    break
            if best_state is not None:
                model.load_state_dict(best_state)
            else:
                history.best_epoch = len(history.epochs)
        finally:
            distributed.unwrap(model)
            model.sparse_rows = False
            model.eval()
            model.to("cpu")
        history.seconds = time.perf_counter() - start
    return history


def train_model(spec: ModelSpec, model_config, shape: Shape, train: Ratings, config: TrainConfig,
                *, seed: int, valid: Ratings | None = None,
                progress: StepProgress | None = None, on_epoch: EpochCallback | None = None,
                checkpoints=None):
    """Build (from ``spec``), initialise (from ``seed``) and fit a model; return it and its
    history."""
    model = spec.build(model_config, shape)
    initialise(model, config.init, torch.Generator().manual_seed(seed))
    history = fit(model, train, config, seed=seed + 1, shape=shape, valid=valid,
                  needs=spec.capabilities.needs, uses=spec.capabilities.uses,
                  progress=progress, on_epoch=on_epoch, checkpoints=checkpoints)
    return model, history
