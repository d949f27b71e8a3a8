"""Data-parallel training on PyTorch's own runtime: torchrun, DistributedDataParallel, gloo/NCCL.

A process started by ``torchrun`` (or ``embedrec train --nproc N``, which starts torchrun's
elastic launcher) finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in its environment; ``session()`` joins the process group from them and makes
the context ``active()`` for the trainer. Without those variables nothing here does anything:
one process trains as it always did.

How a run is split between ranks (see ``docs/scaling.md``):

- **Batches.** ``TrainConfig.batch_size`` is the *global* batch, the rows of one optimizer
  step summed over ranks; each rank takes ``batch_size / world`` of them. Every rank draws the
  same seeded permutation of the training rows each epoch and keeps its strided shard
  ``perm[rank::world]``, so step ``s`` of all ranks together covers exactly the rows of step
  ``s`` of one process at the same global batch. Each rank's loss is weighted by its share of
  the step's rows (or, for an objective that averages over other terms, ``terms``, such as
  the full softmax's positives, its share of those), so DDP's average of the ranks' gradients
  is the one-process gradient.
- **Gradients.** ``sync="ddp"`` wraps the step in ``DistributedDataParallel``; the lazy
  engine's embedding tables have sparse gradients, which DDP all-reduces as sparse tensors
  (gloo gathers every rank's rows and values, table by table). ``sync="rows"`` instead
  gathers the ids the ranks touched and all-reduces one dense buffer: the union of the
  touched rows of every table plus the dense layers' gradients (three collectives a step).
  Both give the same update, bit for bit; ``rows`` was faster on 2 ranks
  (``benchmarks/distributed.py``), and NCCL has no sparse all-reduce, so ``sync="auto"`` (the
  default, ``EMBEDREC_GRAD_SYNC``) takes ``rows`` for lazy updates and on GPUs, DDP for
  dense updates on CPUs. Distributed runs take the torch engine (``TorchSteps``' rank form,
  ``ShardSteps``); the compiled kernel engine trains in one process.
- **Randomness.** Dropout masks and negative samples draw from generators seeded per rank
  (``rank_seed``); rank 0 uses the one-process seeds.
- **Decisions.** Validation runs on rank 0 only and its metrics are broadcast; the
  early-stopping decision is taken on rank 0 and broadcast, so ranks never disagree.
- **One writer.** Rank 0 alone writes files (``writer_first``, ``writer_only``); the others
  wait at a barrier on a control group with a long timeout.
- **Failures.** Collectives run with a short timeout (``EMBEDREC_DIST_TIMEOUT``, 30 s): a rank
  that dies closes its connections and the others fail at once; a rank that hangs is noticed
  at the timeout. Either way ``session`` turns the backend's error into ``DistributedError``,
  one line, and the process exits non-zero.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from embedrec.errors import ConfigError, EmbedrecError

log = logging.getLogger(__name__)

SYNCS = ("auto", "ddp", "rows")
DEFAULT_TIMEOUT_S = 30.0  # collectives during training: a hung rank is noticed this fast
WAIT_TIMEOUT_S = 4 * 3600.0  # waiting for rank 0 to load data or write files
_ERROR_WORDS = ("connection", "timed out", "timeout", "gloo", "nccl", "broken pipe", "peer",
                "socket", "barrier", "closed")


class DistributedError(EmbedrecError):
    """A rank died or stopped answering: the others stop too."""


@dataclass(frozen=True)
class Context:
    """This process's place in a data-parallel run."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    backend: str
    device: torch.device
    sync: str
    control: Any  # a gloo group with a long timeout, for barriers around rank 0's work

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


_active: Context | None = None


def active() -> Context | None:
    """The run's context when this process is one rank of several, else None."""
    return _active


def launched() -> bool:
    """Whether torchrun (or a launcher like it) started this process as one of several."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return _active.rank if _active else 0


def world() -> int:
    return _active.world if _active else 1


def is_writer() -> bool:
    return _active is None or _active.is_writer


def _timeout(name: str, default: float) -> timedelta:
    raw = os.environ.get(name)
    try:
        seconds = float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected seconds") from None
    return timedelta(seconds=seconds)


def _device_for(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here (use cpu or auto)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


def init(device: str = "cpu", sync: str | None = None) -> Context | None:
    """Join the process group described by the environment (torchrun's variables); None when
    this process runs alone. gloo on the CPU, NCCL on GPUs."""
    global _active
    if not launched():
        return None
    if _active is not None:
        return _active
    rank_, world_ = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank_))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_))
    dev = _device_for(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    sync = sync or os.environ.get("EMBEDREC_GRAD_SYNC") or "auto"
    if sync not in SYNCS:
        raise ConfigError(f"unknown gradient sync {sync!r}; use {' or '.join(SYNCS)}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    timeout = _timeout("EMBEDREC_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)
    try:
        dist.init_process_group(backend, rank=rank_, world_size=world_, timeout=timeout)
        control = dist.new_group(backend="gloo",
                                 timeout=_timeout("EMBEDREC_DIST_WAIT", WAIT_TIMEOUT_S))
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(f"rank {rank_} of {world_}: cannot join the process group at "
                               f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
                               f" ({_first_line(exc)})") from exc
    _active = Context(rank_, world_, local_rank, local_world, backend, dev, sync, control)
    log.info("rank %d of %d (%s on %s), gradients by %s", rank_, world_, backend, dev, sync)
    return _active


def shutdown() -> None:
    global _active
    _active = None
    if dist.is_initialized():
        dist.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def translate(exc: BaseException) -> DistributedError | None:
    """The backend's error (a rank died, a collective timed out) as one line, or None when
    ``exc`` is something else."""
    if isinstance(exc, DistributedError):
        return exc
    if not isinstance(exc, (RuntimeError, getattr(dist, "DistError", RuntimeError))):
        return None
    text = str(exc).lower()
    if not any(word in text for word in _ERROR_WORDS):
        return None
    who = f"rank {rank()} of {world()}"
    what = ("timed out waiting for the other ranks" if "timed out" in text or "timeout" in text
            else "lost contact with the other ranks (one of them died)")
    return DistributedError(f"{who}: {what}; stopping. Rerun with --resume to continue from the "
                            f"last checkpoint [{_first_line(exc)[:160]}]")


@contextmanager
def session(device: str = "cpu", sync: str | None = None) -> Iterator[Context | None]:
    """``init`` for the block, then leave the group; backend errors become DistributedError."""
    ctx = init(device, sync)
    failed = False
    try:
        yield ctx
    except BaseException as exc:
        failed = True
        mapped = translate(exc) if ctx is not None else None
        if mapped is not None and mapped is not exc:
            raise mapped from exc
        raise
    finally:
        if ctx is not None:
            if failed:  # peers may be gone: leave without a goodbye that could wait on them
                global _active
                _active = None
            else:
                shutdown()


# ---- batches -------------------------------------------------------------------------------
def per_rank_batch(global_batch: int, world_size: int) -> int:
    """Rows per step on each rank: the global batch shared by the ranks."""
    if global_batch % world_size:
        raise ConfigError(f"batch size {global_batch} is the global batch: it must be a multiple "
                          f"of the {world_size} ranks (e.g. "
                          f"{global_batch - global_batch % world_size or world_size})")
    return global_batch // world_size


class EpochPlan:
    """Which rows each step of an epoch takes on this rank, and its loss weight.

    ``batch_size`` is the global batch. Alone: steps of ``batch_size`` rows of the permutation,
    weight 1. As rank r of W: the shard ``perm[r::W]`` in steps of ``batch_size / W`` rows; a
    step's weight is this rank's share of the step's rows times W (1 except in the last, short
    step), so the average of the ranks' gradients is the gradient of the whole step. A rank
    left without rows in the last step runs one row at weight 0, so that every rank takes part
    in every step's all-reduce.
    """

    def __init__(self, n: int, batch_size: int, ctx: Context | None = None, *,
                 sharded: bool = False):
        """``n`` rows on every rank (the same rows), or, ``sharded``, this rank's own ``n``
        rows (a collective: the ranks share their row counts)."""
        self.n, self.global_batch = n, batch_size
        self.rank, self.world = (ctx.rank, ctx.world) if ctx else (0, 1)
        self.batch = per_rank_batch(batch_size, self.world)
        self.sizes = [int(x) for x in gather(n)] if sharded and self.world > 1 else None
        self.n_global = sum(self.sizes) if self.sizes else n  # rows of an epoch, all ranks
        self.steps = (math.ceil(max(self.sizes) / self.batch) if self.sizes
                      else math.ceil(n / batch_size))

    def shard(self, perm: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch's permutation (of its own rows, when sharded)."""
        return perm if self.world == 1 or self.sizes else perm[self.rank::self.world]

    def rows(self, shard: torch.Tensor, step: int) -> tuple[torch.Tensor, float]:
        idx = shard[step * self.batch:(step + 1) * self.batch]
        if self.world == 1:
            return idx, 1.0
        if self.sizes:
            lo = step * self.batch
            in_step = sum(min(max(size - lo, 0), self.batch) for size in self.sizes)
        else:
            in_step = min(self.global_batch, self.n - step * self.global_batch)
        if len(idx) == 0:
            return shard[:1], 0.0
        return idx, len(idx) * self.world / in_step

    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed over ranks (one all-reduce); alone, as given."""
        return all_sum(values)

    def share(self, terms: int) -> float:
        """The weight of a rank's loss when it is a mean over ``terms`` terms of its part of the
        step (e.g. the positives of its users): its share of the step's terms times the world
        (one all-reduce a step), so that the ranks' average gradient is the whole step's."""
        if self.world == 1:
            return 1.0
        (total,) = self.sum([float(terms)])
        return terms * self.world / total if total else 0.0


def gather(value: Any) -> list:
    """Every rank's (picklable) ``value``, in rank order; alone, ``[value]``."""
    if _active is None:
        return [value]
    out: list = [None] * _active.world
    dist.all_gather_object(out, value, group=_active.control)
    return out


def gather_to_writer(value: Any) -> list | None:
    """Every rank's (picklable) ``value`` on rank 0, in rank order; None on the others."""
    if _active is None:
        return [value]
    out: list | None = [None] * _active.world if _active.is_writer else None
    dist.gather_object(value, out, dst=0, group=_active.control)
    return out


def all_sum(values: list[float]) -> list[float]:
    if _active is None:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, group=_active.control)
    return t.tolist()


def rank_seed(seed: int) -> int:
    """A seed of this rank's own: ``seed`` on rank 0 (and alone), distinct on every other."""
    return seed + rank() * 1_000_003


def threads_per_rank(threads: int) -> int:
    """torch threads for this rank: the run's threads shared by the ranks on this machine."""
    return max(1, threads // _active.local_world) if _active else threads


# ---- decisions, barriers, one writer -------------------------------------------------------
def from_writer(compute: Callable[[], Any]) -> Any:
    """``compute()`` on rank 0, its (picklable) result broadcast to every rank."""
    if _active is None:
        return compute()
    box = [compute() if _active.is_writer else None]
    dist.broadcast_object_list(box, src=0, group=_active.control)
    return box[0]


def agree(decision: bool) -> bool:
    """Rank 0's ``decision``, the same on every rank."""
    return bool(from_writer(lambda: bool(decision)))


def barrier() -> None:
    if _active is not None:
        dist.barrier(group=_active.control)


def writer_only(write: Callable[[], Any], what: str = "files") -> Any:
    """Run ``write`` on rank 0 while the other ranks wait; a failure on rank 0 stops every rank
    with its message. Returns ``write()``'s result on rank 0, None elsewhere."""
    if _active is None:
        return write()
    result, error = None, None
    if _active.is_writer:
        try:
            result = write()
        except Exception as exc:  # noqa: BLE001 - passed on to the other ranks, then re-raised
            error = exc
    box = [None if error is None else _first_line(error)]
    dist.broadcast_object_list(box, src=0, group=_active.control)
    if error is not None:
        raise error
    if box[0] is not None:
        raise DistributedError(f"rank {_active.rank}: rank 0 failed on {what}: {box[0]}")
    return result


def writer_first(work: Callable[[], Any], what: str = "data") -> Any:
    """Run ``work`` on rank 0 first (downloads, caches), then on the other ranks (which then
    read what rank 0 wrote); returns ``work()``'s result on every rank."""
    if _active is None:
        return work()
    result = writer_only(work, what) if _active.is_writer else None
    if not _active.is_writer:
        writer_only(lambda: None, what)  # the matching broadcast: wait for rank 0
        result = work()
    return result


# ---- gradient synchronisation --------------------------------------------------------------
class _Step(nn.Module):
    """The objective as a module: one forward per backward, whatever the loss calls inside
    (a ranking loss scores positives and negatives), which is what DDP expects."""

    def __init__(self, model: nn.Module, objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, batch: dict) -> torch.Tensor:
        return self.objective(self.model, batch)


def make_step(model: nn.Module, objective, ctx: Context | None = None) -> Callable:
    """``batch -> loss``, with the gradients of ``loss.backward()`` averaged over the ranks.

    Alone: ``objective(model, batch)``. ``sync="ddp"``: DistributedDataParallel (the lazy
    engine's sparse table gradients become sparse all-reduces). ``sync="rows"``: at the end of
    every backward, one fused all-reduce of all gradients, sparse ones over the union of the
    rows the ranks touched (``RowSync``).
    """
    if ctx is None:
        return lambda batch: objective(model, batch)
    step = _Step(model, objective)
    sparse = bool(getattr(model, "sparse_rows", False))
    if ctx.sync == "rows" or (ctx.sync == "auto" and (sparse or ctx.backend == "nccl")):
        RowSync(model, ctx).attach()
        return step
    tables = {id(p) for p in getattr(model, "parameter_groups", lambda: ([], []))()[0]}
    for module in model.modules():  # DDP gives tables with sparse gradients their own buckets
        if isinstance(module, nn.Embedding) and id(module.weight) in tables:
            module.sparse = sparse
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(step, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
               forward_sync_buffers=False)


class ShardSteps:
    """The torch steps of one rank (``training.steps.TorchSteps``' interface): each step takes
    this rank's rows (``EpochPlan.rows``), the objective runs through ``make_step`` (DDP or
    the row all-reduce), and the loss is weighted by the rank's share of the step's rows.
    Still ``loss.backward()`` and ``optimizer.step()``."""

    def __init__(self, model, objective, optimizer, rows, sampling: torch.Generator,
                 plan: EpochPlan):
        self.model, self.objective, self.optimizer = model, objective, optimizer
        self.rows, self.sampling, self.plan = rows, sampling, plan
        self.step = make_step(model, objective, _active)

    def run(self, perm: torch.Tensor, epoch: int, first: int, n_steps: int,
            batch_size: int) -> float:
        from embedrec.training.steps import LossNotFinite

        total = 0.0
        for s in range(first, first + n_steps):
            idx, weight = self.plan.rows(perm, s)
            batch = self.rows.take(idx)
            if hasattr(self.objective, "terms"):  # a mean over other terms than rows
                weight = self.plan.share(self.objective.terms(batch) if weight else 0)
            if self.objective.sampler is not None:
                batch["negatives"] = self.objective.sampler(batch, self.sampling)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.step(batch)
            (loss if weight == 1.0 else loss * weight).backward()
            self.optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                raise LossNotFinite(f"loss became {value} at epoch {epoch}, step {s + 1}")
            total += value * len(batch["users"]) * (weight != 0.0)
        return total

    def sync(self) -> None:
        pass


def unwrap(model: nn.Module) -> None:
    """Undo ``make_step``'s changes to ``model`` (its tables' ``sparse`` flags, row hooks)."""
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            module.sparse = False
    for handle in getattr(model, "_row_sync_handles", []):
        handle.remove()
    if hasattr(model, "_row_sync_handles"):
        del model._row_sync_handles


class RowSync:
    """All-reduce of every gradient once backward has finished, in three collectives a step.

    Sparse gradients (rows ``r``, values ``v``) are grouped by their rows (a user's factor and
    bias tables touch the same rows). One all-gather shares every group's row count, a second
    the rows themselves (padded to the longest); each group's union ``U`` of the ranks' rows is
    then the same on every rank. The groups' values, scattered into dense ``|U| x width``
    blocks, and the dense gradients go into one flat all-reduce, and are divided by the world
    size. Each table gets a coalesced sparse gradient over ``U``: lazy Adam updates exactly the
    rows that one process at the same global batch would. ``seconds`` adds up this rank's time
    in it (communication, waiting included); ``steps`` counts the steps.
    """

    def __init__(self, model: nn.Module, ctx: Context):
        self.model, self.ctx, self.seconds, self.steps = model, ctx, 0.0, 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._queued = False

    def attach(self) -> None:
        self.model._row_sync_handles = [p.register_post_accumulate_grad_hook(self._ready)
                                        for p in self.params]
        self.model._row_sync = self

    def _ready(self, p: torch.Tensor) -> None:
        if not self._queued:  # the first gradient of this backward: sync them all at its end
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._sync)

    @torch.no_grad()
    def _sync(self) -> None:
        self._queued = False
        t0 = time.perf_counter()
        with_grad = [p for p in self.params if p.grad is not None]
        sparse = [p for p in with_grad if p.grad.is_sparse]
        dense = [p for p in with_grad if not p.grad.is_sparse]
        out_sparse, out_dense = allreduce_rows([p.grad for p in sparse],
                                               [p.grad for p in dense], self.ctx.world)
        for p, g in zip(sparse, out_sparse):
            p.grad = g
        for p, g in zip(dense, out_dense):
            p.grad.copy_(g)
        self.seconds += time.perf_counter() - t0
        self.steps += 1


def allreduce_rows(sparse: list[torch.Tensor], dense: list[torch.Tensor], world_size: int
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The mean over ranks of sparse row gradients (as coalesced sparse tensors over the union
    of the ranks' rows) and of dense gradients: a collective, in three calls (see RowSync)."""
    sparse = [g.coalesce() for g in sparse]
    groups: list[tuple[torch.Tensor, list[int]]] = []  # (rows, positions in ``sparse``)
    for i, g in enumerate(sparse):
        rows = g.indices()[0]
        for known, members in groups:
            if len(known) == len(rows) and torch.equal(known, rows):
                members.append(i)
                break
        else:
            groups.append((rows, [i]))
    device = sparse[0].device if sparse else (dense[0].device if dense else torch.device("cpu"))
    counts = torch.zeros(world_size * len(groups), dtype=torch.long, device=device)
    unions: list[torch.Tensor] = []
    if groups:
        local = torch.tensor([len(rows) for rows, _ in groups], device=device)
        _all_gather(counts, local)
        longest = counts.view(world_size, len(groups)).max(0).values.tolist()
        padded = torch.full((sum(longest),), -1, dtype=torch.long, device=device)
        offsets = [0]
        for (rows, _), n in zip(groups, longest):
            padded[offsets[-1]:offsets[-1] + len(rows)] = rows
            offsets.append(offsets[-1] + n)
        gathered = torch.empty(world_size * len(padded), dtype=torch.long, device=device)
        _all_gather(gathered, padded)
        gathered = gathered.view(world_size, -1)
        for k in range(len(groups)):
            ids = gathered[:, offsets[k]:offsets[k + 1]].reshape(-1)
            unions.append(torch.unique(ids[ids >= 0], sorted=True))
    blocks = []
    for (rows, members), union in zip(groups, unions):
        values = torch.cat([sparse[i].values().reshape(len(rows), -1) for i in members], 1)
        block = torch.zeros((len(union), values.shape[1]), dtype=values.dtype, device=device)
        block.index_copy_(0, torch.searchsorted(union, rows), values)
        blocks.append(block)
    flat = torch.cat([b.reshape(-1) for b in blocks] + [d.reshape(-1) for d in dense]) \
        if blocks or dense else None
    if flat is not None and len(flat):
        dist.all_reduce(flat)
        flat.div_(world_size)
    out_sparse: list = [None] * len(sparse)
    at = 0
    for (rows, members), union, block in zip(groups, unions, blocks):
        block = flat[at:at + block.numel()].view(block.shape)
        at += block.numel()
        col = 0
        for i in members:
            width = math.prod(sparse[i].shape[1:])
            values = block[:, col:col + width].reshape((len(union),) + tuple(sparse[i].shape[1:]))
            col += width
            out_sparse[i] = torch.sparse_coo_tensor(union.unsqueeze(0), values, sparse[i].shape,
                                                    is_coalesced=True, check_invariants=False)
    out_dense = []
    for d in dense:
        out_dense.append(flat[at:at + d.numel()].view(d.shape))
        at += d.numel()
    return out_sparse, out_dense


def _all_gather(output: torch.Tensor, value: torch.Tensor) -> None:
    """Every rank's ``value`` concatenated into ``output`` (torch's current name for it)."""
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(output, value)


def sync_rows(grad: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean over ranks of one sparse row gradient (``allreduce_rows`` of it alone)."""
    return allreduce_rows([grad], [], world_size)[0][0]


# ---- launching -----------------------------------------------------------------------------
def launch(nproc: int, args: list[str], *, max_restarts: int = 0) -> int:
    """Run ``python -m embedrec ARGS`` as ``nproc`` ranks on this machine under torchrun's
    elastic launcher (a c10d rendezvous on a free local port, as ``torchrun --standalone``).

    Returns 0 when every rank succeeded. When one fails the launcher stops the others, and this
    raises DistributedError naming the rank and how it ended."""
    import sys
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # one line below
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc,
                          run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                          rdzv_endpoint="127.0.0.1:0", max_restarts=max_restarts,
                          monitor_interval=0.1, start_method="spawn")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch threads are set per rank anyway
    try:
        elastic_launch(config, sys.executable)("-m", "embedrec", *args)
    except SignalException as exc:  # Ctrl-C or SIGTERM: the launcher stopped the ranks
        raise KeyboardInterrupt(str(exc)) from None
    except ChildFailedError as exc:
        failures = sorted(exc.failures.items())
        first_rank, failure = failures[0]
        how = (f"signal {failure.signal_name()}" if failure.exitcode < 0
               else f"exit code {failure.exitcode}")
        hint = ("; rerun with --resume to continue from the last checkpoint"
                if any(a.startswith(("--checkpoints", "--resume")) for a in args) else "")
        raise DistributedError(
            f"rank {first_rank} of {nproc} failed ({how}); "
            f"{'the other ranks stopped' if nproc > 1 else 'stopped'}"
            f"{'' if len(failures) == 1 else f' ({len(failures)} ranks failed)'}{hint}") from None
    return 0


def without_option(args: list[str], name: str) -> list[str]:
    """``args`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out
