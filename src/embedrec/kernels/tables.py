"""What every training kernel shares: a batch grouped by table row, and twin compilations.

A step reads each table at the batch's distinct ids. ``group`` lists them (first-seen order)
with, for each, the batch examples that touch it, in batch order: a row's gradient is then a
sum in a fixed order, whichever thread computes it, so results do not depend on the thread count.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

from embedrec.kernels.adam import JIT, catch_up_all


@njit(**JIT)
def group(ids, slot, rows, cursor, ptr, members):
    """Group the examples of a batch by id.

    ``ids``: the batch's ids; ``slot``: -1 for every id on entry, and each distinct id's slot
    on return (``release`` resets it). Fills ``rows[:n]`` (the distinct ids), ``ptr[:n + 1]``
    and ``members`` (example positions grouped by slot). Returns n.
    """
    n = 0
    for j in range(len(ids)):
        x = ids[j]
        if slot[x] < 0:
            slot[x] = n
            rows[n] = x
            cursor[n] = 0
            n += 1
        cursor[slot[x]] += 1
    ptr[0] = 0
    for a in range(n):
        ptr[a + 1] = ptr[a] + cursor[a]
        cursor[a] = ptr[a]
    for j in range(len(ids)):
        a = slot[ids[j]]
        members[cursor[a]] = j
        cursor[a] += 1
    return n


@njit(**JIT)
def release(slot, rows, n):
    for a in range(n):
        slot[rows[a]] = -1


def twins(fn):
    """``fn`` compiled twice: serial, and with ``prange`` loops run on numba's threads.

    The parallel twin is a copy under its own name, so that numba's on-disk cache keeps the
    two apart. Small batches run serially: a parallel region costs microseconds to start.
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel",
                              fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + "_parallel"
    copy.__module__ = fn.__module__
    return njit(**JIT)(fn), njit(parallel=True, **JIT)(copy)


@dataclass(frozen=True)
class Settings:
    """How a kernel trains: Adam (Keras placement), L2 on the tables, lazy or dense updates."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    l2: float
    dense: bool  # every row at every step (the exact engine), or the batch's rows only
    batch_size: int
    threads: int  # numba threads for a run (results do not depend on it)
    max_steps: int  # steps the run may take in all (step sizes are computed up front)

    def parallel(self) -> bool:
        """Whether the parallel twin pays: a dense step, or a large batch, on several threads."""
        return self.threads > 1 and (self.dense or self.batch_size >= 512)


class RowTable:
    """One embedding table as a kernel trains it: the weights (a view, updated in place) and
    Adam's moments."""

    def __init__(self, weight: np.ndarray):
        if weight.dtype != np.float32 or not weight.flags.c_contiguous or weight.ndim != 2:
            raise ValueError("a kernel's tables must be C-contiguous float32 matrices")
        self.w = weight
        self.m = np.zeros_like(weight)
        self.v = np.zeros_like(weight)


def catch_up_side(table: RowTable, bias: RowTable | None, last: np.ndarray, settings: Settings,
                  step: int, alphas: np.ndarray) -> None:
    """Dense engine: every row of one side's table (and its bias column) brought to ``step``;
    ``last`` holds the step each row has reached."""
    if settings.dense:
        b = bias or table
        catch_up_all(table.w, table.m, table.v, b.w, b.m, b.v, bias is not None, last, step,
                     alphas, *_adam32(settings))


def _adam32(settings: Settings):
    return (np.float32(settings.beta1), np.float32(settings.beta2), np.float32(settings.eps),
            np.float32(2.0 * settings.l2))


def hyper(settings: Settings, *extra: float) -> np.ndarray:
    """(b1, b2, eps, 2 * l2, *extra) as float32: the constants a kernel reads."""
    return np.array([*_adam32(settings), *extra], dtype=np.float32)


def work(batch_size: int, n_users: int, n_items: int):
    """Index buffers for ``group`` (ids of the batch, then per side: rows, cursor, ptr,
    members) and each side's slot map."""
    work_i = np.zeros((10, batch_size + 1), dtype=np.int64)
    return (work_i, np.full(n_users, -1, dtype=np.int64), np.full(n_items, -1, dtype=np.int64))


@contextmanager
def numba_threads(n: int) -> Iterator[None]:
    """numba's thread count set to ``n`` (at most what it started with) for the block."""
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)
