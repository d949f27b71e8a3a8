"""One trainer for every torch model: standard PyTorch steps, seeded, on a chosen device.

A step is ``loss = objective(model, batch)``, ``loss.backward()``, ``optimizer.step()``. Lazy
updates turn on the models' sparse row look-ups, so the gradients of embedding tables are
sparse and Keras-Adam updates only the rows a batch touched; dense updates keep dense gradients
over whole tables (the reference's arithmetic). A model whose spec has a compiled kernel may
take the same steps, on the same batches, through it instead (``embedrec.training.steps``). Shuffling, dropout masks and negative
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
from embedrec.errors import ConfigError, TrainingError
from embedrec.models.init import initialise
from embedrec.models.spec import ModelSpec, Shape
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
        on_epoch: EpochCallback | None = None, kernel=None) -> History:
    """Train ``model`` in place on ``train``; validation rows (if any) only monitor and stop.

    ``kernel``: the model's compiled kernel (``ModelSpec.kernel``), which then takes the steps
    instead of torch (see ``embedrec.training.steps``); the batches are the same either way.
    ``on_epoch(epoch, record)``, when given, is called after every epoch with that epoch's
    record (train loss, validation metrics); an exception it raises (``StopTraining``, or a
    tuner's own pruning exception) ends training and propagates to the caller.
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
    device = resolve_device(config.device)
    if kernel is not None and device.type != "cpu":
        raise ConfigError("the kernel engine runs on the CPU; use --engine torch for "
                          f"--device {config.device}")
    history = History(monitor=monitor)
    with torch_threads(config.threads), torch.random.fork_rng(devices=[]):
        model.to(device)
        model.sparse_rows = kernel is None and config.updates == "lazy"
        rows = RowTensors(train, needs=needs, uses=uses, device=device)
        history.notes = [f"{name}: off, the data has none" for name in rows.missing]
        history.notes += model.attach_inputs(rows.lookups)
        for note in history.notes:
            log.info("%s", note)
        valid_batch = (RowTensors(valid, needs=needs, uses=uses, reference=train,
                                  device=device).all()
                       if valid is not None and len(valid) else None)
        shuffle = torch.Generator().manual_seed(seed)
        for i, module in enumerate(model.modules()):  # dropout masks: seeded from ``seed``
            if hasattr(module, "reseed"):
                module.reseed(seed * 1000 + i)
        n, bs = len(rows), config.batch_size
        steps_per_epoch = math.ceil(n / bs)
        total_steps = steps_per_epoch * config.epochs
        if kernel is not None:
            steps = KernelSteps(kernel, rows, config, total_steps)
        else:
            steps = TorchSteps(model, objective, make_optimizer(model, config), rows,
                               torch.Generator().manual_seed(seed + 104_729))
        best_valid, best_state, bad_epochs = math.inf, None, 0
        start = time.perf_counter()
        try:
            model.train()
            for epoch in range(1, config.epochs + 1):
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=shuffle).to(device)
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
                record = {"epoch": epoch, f"train_{objective.name}": total / n}
                record |= ({k: None for k in objective.metrics} if valid_batch is None
                           else objective.validate(model, valid_batch))
                record["seconds"] = time.perf_counter() - t0
                history.epochs.append(record)
                log.info("epoch %d: %s", epoch, ", ".join(
                    f"{k} {v:.4f}" for k, v in record.items() if isinstance(v, float)))
                if on_epoch is not None:
                    on_epoch(epoch, record)
                score = record.get(monitor)
                if score is None or config.patience is None:
                    continue
                if score < best_valid:
                    best_valid, bad_epochs, history.best_epoch = score, 0, epoch
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
            model.sparse_rows = False
            model.eval()
            model.to("cpu")
        history.seconds = time.perf_counter() - start
    history.engine = "kernel" if kernel is not None else "torch"
    return history


def choose_kernel(spec: ModelSpec, model, config: TrainConfig):
    """The kernel that trains ``model`` under ``config``, or None for the torch engine.

    ``auto`` takes the spec's kernel where it has one for the loss and the device is the CPU;
    ``kernel`` insists on it."""
    if config.engine == "torch":
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
                progress: StepProgress | None = None, on_epoch: EpochCallback | None = None):
    """Build (from ``spec``), initialise (from ``seed``) and fit a model; return it and its
    history."""
    model = spec.build(model_config, shape)
    initialise(model, config.init, torch.Generator().manual_seed(seed))
    history = fit(model, train, config, seed=seed + 1, shape=shape, valid=valid,
                  needs=spec.capabilities.needs, uses=spec.capabilities.uses,
                  progress=progress, on_epoch=on_epoch, kernel=choose_kernel(spec, model, config))
    return model, history
