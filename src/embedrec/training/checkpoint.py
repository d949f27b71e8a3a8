"""Checkpoints that survive a crash: one atomic file per run, rewritten after every epoch.

A checkpoint holds what the next epoch needs to continue exactly as an uninterrupted run
would: the model's weights, the optimizer's state (Adam moments and step counts), every
generator's state (shuffling, negative sampling, dropout masks; one set per rank), the epoch
and step reached, the history so far and early stopping's state (best score and weights,
epochs without improvement, whether it decided to stop).

It is written by rank 0 alone (the other ranks send it their generator states and wait),
through ``embedrec.io.atomic_write_bytes``: a crash while writing leaves the previous
checkpoint. ``--resume`` loads it on every rank; a checkpoint written by another run (another
model, seed, data, settings or number of ranks) is refused rather than silently mixed in.
Files are read with ``torch.load(weights_only=True)``: tensors and plain values only.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from embedrec.errors import ConfigError
from embedrec.io import atomic_write_bytes
from embedrec.training import distributed

log = logging.getLogger(__name__)

FILE = "checkpoint.pt"
FORMAT = 1


@dataclass
class Resumed:
    """What ``Checkpoints.restore`` hands back to the trainer."""

    epoch: int  # the last finished epoch
    best_valid: float
    best_state: dict | None
    bad_epochs: int
    stopped: bool  # early stopping had decided to stop


@dataclass
class Checkpoints:
    """Where a run's checkpoint lives, whether to resume from it, and what identifies the run
    (``key``: model, seed, data fingerprint, settings; the trainer adds rows and ranks)."""

    folder: Path
    resume: bool = False
    key: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.key = _plain(self.key)

    @property
    def path(self) -> Path:
        return self.folder / FILE

    def bind(self, **more) -> None:
        """Add what the trainer knows about the run to its key. Of the training settings,
        threads, device and the number of epochs may change between a run and its resumption."""
        if isinstance(more.get("config"), dict):
            more["config"] = {k: v for k, v in more["config"].items()
                              if k not in ("threads", "device", "epochs")}
        self.key = {**self.key, **{k: _plain(v) for k, v in more.items()}}

    # ---- writing ----------------------------------------------------------------------------
    def save(self, *, epoch: int, model, optimizer, generators: dict, history,
             best_valid: float, best_state: dict | None, bad_epochs: int, stopped: bool) -> None:
        """Rank 0 writes; every rank calls this (it gathers the ranks' generator states)."""
        states = generator_states(model, generators)
        ctx = distributed.active()
        if ctx is not None:
            gathered: list = [None] * ctx.world
            dist.all_gather_object(gathered, states, group=ctx.control)
        else:
            gathered = [states]

        def write() -> None:
            payload = {
                "format": FORMAT, "key": self.key, "epoch": epoch, "steps": history.steps,
                "model": _cpu(model.state_dict()), "optimizer": _cpu(optimizer.state_dict()),
                "generators": gathered, "history": history.to_dict(),
                "early_stopping": {"best_valid": best_valid, "bad_epochs": bad_epochs,
                                   "stopped": stopped,
                                   "best_state": None if best_state is None else _cpu(best_state)},
            }
            buffer = io.BytesIO()
            torch.save(payload, buffer)
            atomic_write_bytes(self.path, buffer.getvalue())
            log.info("checkpoint after epoch %d written to %s", epoch, self.path)

        distributed.writer_only(write, f"the checkpoint {self.path}")

    # ---- reading ----------------------------------------------------------------------------
    def load(self) -> dict | None:
        """The checkpoint to resume from, checked against this run; None when there is none
        (or ``resume`` is off)."""
        if not self.resume:
            return None
        if not self.path.is_file():
            log.warning("no checkpoint in %s: training from the start", self.folder)
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem
            raise ConfigError(f"{self.path}: not a readable embedrec checkpoint ({exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ConfigError(f"{self.path}: not an embedrec checkpoint (format {FORMAT})")
        theirs = payload.get("key") or {}
        differ = sorted(k for k in set(theirs) | set(self.key) if theirs.get(k) != self.key.get(k))
        if differ:
            raise ConfigError(f"{self.path} was written by another run (it differs in "
                              f"{', '.join(differ)}): remove it, or drop --resume")
        return payload

    def restore(self, model, optimizer, generators: dict, history) -> Resumed | None:
        """Load the checkpoint (if resuming and there is one) into the model, optimizer,
        generators and history; return where to continue."""
        payload = self.load()
        if payload is None:
            return None
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        set_generator_states(model, generators, payload["generators"][distributed.rank()])
        past = payload["history"]
        history.epochs = list(past["epochs"])
        history.best_epoch = past["best_epoch"]
        history.stopped_early = past["stopped_early"]
        history.steps = int(payload["steps"])
        stop = payload["early_stopping"]
        log.info("resuming from %s after epoch %d", self.path, payload["epoch"])
        return Resumed(epoch=int(payload["epoch"]), best_valid=float(stop["best_valid"]),
                       best_state=stop["best_state"], bad_epochs=int(stop["bad_epochs"]),
                       stopped=bool(stop["stopped"]))


def _cpu(tree):
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {k: _cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cpu(v) for v in tree)
    return tree


def _plain(value) -> Any:
    """A JSON-like copy (what ``weights_only`` loading accepts and ``==`` compares)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def generator_states(model, generators: dict[str, torch.Generator]) -> dict:
    """The states of the trainer's generators and of every source of random numbers in
    ``model``'s modules (dropout masks, sampled inputs): a module's own ``random_state()`` when
    it has one, else every generator it holds (torch ones as byte tensors, numpy ones as their
    bit generator's state)."""
    out: dict = {name: g.get_state() for name, g in generators.items()}
    for i, module in enumerate(model.modules()):
        if hasattr(module, "random_state"):
            out[f"module{i}"] = _plain(module.random_state())
            continue
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                out[f"module{i}.{attr}"] = value.get_state()
            elif isinstance(value, np.random.Generator):
                out[f"module{i}.{attr}"] = _plain(value.bit_generator.state)
    return out


def set_generator_states(model, generators: dict[str, torch.Generator], states: dict) -> None:
    for name, g in generators.items():
        g.set_state(states[name])
    for i, module in enumerate(model.modules()):
        if hasattr(module, "set_random_state") and f"module{i}" in states:
            module.set_random_state(states[f"module{i}"])
            continue
        for attr, value in vars(module).items():
            key = f"module{i}.{attr}"
            if key not in states:
                continue
            if isinstance(value, torch.Generator):
                value.set_state(states[key])
            elif isinstance(value, np.random.Generator):
                value.bit_generator.state = states[key]
