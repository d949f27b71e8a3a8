"""One trainer for every torch model: standard PyTorch steps, seeded, on a chosen device.

A step is ``loss = objective(model, batch)``, ``loss.backward()``, ``optimizer.step()``. Lazy
updates turn on the models' sparse row look-ups, so the gradients of embedding tables are
sparse and Keras-Adam updates only the rows a batch touched; dense updates keep dense gradients
over whole tables (the reference's arithmetic). A model whose spec has a compiled kernel may
take the same steps, on the same batches, through it instead (``embedrec.training.steps``).
Shuffling, dropout masks and negative samples draw from generators seeded by the run's seed;
global RNG state and the process's thread count are left as they were.
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
from embedrec.training.steps import KernelSteps, LossNotFinite, TorchSteps

log = logging.getLogger(__name__)

StepProgress = Callable[[int, int], None]  # (steps done, steps in all)
EpochCallback = Callable[[int, dict], None]  # (epoch, that epoch's record in History.epochs)
PROGRESS_EVERY = 200  # steps between progress reports (and the kernel's runs)


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
    engine: str = "torch"  # who took the steps: torch or kernel

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "monitor": self.monitor,
                "stopped_early": self.stopped_early, "seconds": self.seconds, "steps": self.steps,
                "notes": self.notes, "engine": self.engine}


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
        on_epoch: EpochCallback | None = None, kernel=None, checkpoints=None) -> History:
    """Train ``model`` in place on ``train``; validation rows (if any) only monitor and stop.

    ``kernel``: the model's compiled kernel (``ModelSpec.kernel``), which then takes the steps
    instead of torch (see ``embedrec.training.steps``); the batches are the same either way.
    ``on_epoch(epoch, record)``, when given, is called after every epoch with that epoch's
    record (train loss, validation metrics); an exception it raises (``StopTraining``, or a
    tuner's own pruning exception) ends training and propagates to the caller.

    Under torchrun (``embedrec.training.distributed``) every rank calls ``fit`` with the same
    rows (or its own shard of them): ``config.batch_size`` is then the global batch, each rank
    takes its part of every step, and gradients are averaged over the ranks. ``checkpoints``
    (a ``training.checkpoint.Checkpoints``) writes a checkpoint after every epoch and, when
    resuming, continues from the latest one. Both need the torch engine.
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
    ctx = distributed.active()  # -- distributed: this rank's device and threads --
    device = ctx.device if ctx is not None else resolve_device(config.device)
    if kernel is not None and device.type != "cpu":
        raise ConfigError("the kernel engine runs on the CPU; use --engine torch for "
                          f"--device {config.device}")
    if kernel is not None and (ctx is not None or checkpoints is not None):
        raise ConfigError("the kernel engine trains in one process without checkpoints; use "
                          "--engine torch (or auto) under torchrun, --nproc or --checkpoints")
    history = History(monitor=monitor)
    with torch_threads(distributed.threads_per_rank(config.threads)), \
            torch.random.fork_rng(devices=[]):
        model.to(device)
        model.sparse_rows = kernel is None and config.updates == "lazy"
        model.raw_scores = bool(getattr(objective, "ranks", False))  # ranking: scores, not ratings
        # rows of ratings, or what the objective trains on instead (users, for full_softmax)
        rows = (objective.rows(train, needs=needs, uses=uses, device=device)
                if hasattr(objective, "rows") else
                RowTensors(train, needs=needs, uses=uses, device=device))
        history.notes = [f"{name}: off, the data has none" for name in rows.missing]
        history.notes += model.attach_inputs(rows.lookups)
        for note in history.notes:
            log.info("%s", note)
        valid_batch = (RowTensors(valid, needs=needs, uses=uses, reference=train,
                                  device=device).all()
                       if valid is not None and len(valid) else None)
        shuffle = torch.Generator().manual_seed(seed)
        # dropout masks and negative samples: seeded from ``seed``, per rank (rank 0: as alone)
        for i, module in enumerate(model.modules()):
            if hasattr(module, "reseed"):
                module.reseed(distributed.rank_seed(seed * 1000 + i))
        n, bs = len(rows), config.batch_size
        # -- distributed: the steps of an epoch, and this rank's part of each --
        plan = distributed.EpochPlan(n, bs, ctx, sharded=is_shard(train))
        steps_per_epoch = plan.steps
        total_steps = steps_per_epoch * config.epochs
        sampling = torch.Generator().manual_seed(distributed.rank_seed(seed + 104_729))
        if kernel is not None:
            steps = KernelSteps(kernel, rows, config, total_steps, objective.sampler, sampling)
        else:
            steps = (TorchSteps(model, objective, make_optimizer(model, config), rows, sampling)
                     if ctx is None else distributed.ShardSteps(
                         model, objective, make_optimizer(model, config), rows, sampling, plan))
        best_valid, best_state, bad_epochs = math.inf, None, 0
        first_epoch = 1  # -- checkpoints: continue from the latest one --
        if checkpoints is not None:
            generators = {"shuffle": shuffle, "sampling": steps.sampling}
            checkpoints.bind(seed=seed, n_rows=n, config=config.to_dict(),
                             world=distributed.world())
            resumed = checkpoints.restore(model, steps.optimizer, generators, history)
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
                for first in range(0, steps_per_epoch, PROGRESS_EVERY):
                    n_steps = min(PROGRESS_EVERY, steps_per_epoch - first)
                    try:
                        total += steps.run(perm, epoch, first, n_steps, bs)
                    except LossNotFinite as exc:
                        raise TrainingError(f"{exc}: lower the learning rate (now {config.lr}) "
                                            "or check the ratings") from None
                    history.steps += n_steps
                    if progress:
                        progress(history.steps, total_steps)
                steps.sync()
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
                    checkpoints.save(epoch=epoch, model=model, optimizer=steps.optimizer,
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
    history.engine = "kernel" if kernel is not None else "torch"
    return history


def choose_kernel(spec: ModelSpec, model, config: TrainConfig):
    """The kernel that trains ``model`` under ``config``, or None for the torch engine.

    ``auto`` takes the spec's kernel where it has one for the loss and the device is the CPU,
    in a run of one process; ``kernel`` insists on it."""
    if config.engine == "torch" or (config.engine == "auto" and distributed.active()):
        return None
    on_cpu = resolve_device(config.device).type == "cpu"
    kernel = spec.kernel(model, config.loss) if on_cpu else None
    if kernel is None and config.engine == "kernel":
        where = "" if on_cpu else f" on {config.device}"
        raise ConfigError(f"the {spec.name} model has no compiled kernel for the "
                          f"{config.loss} loss{where}; use --engine torch or auto")
    return kernel


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
                  progress=progress, on_epoch=on_epoch, checkpoints=checkpoints,
                  kernel=None if checkpoints is not None and config.engine == "auto"
                  else choose_kernel(spec, model, config))
    return model, history
