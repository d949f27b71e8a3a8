"""What every training kernel shares: a batch grouped by table row, and twin compilations.

A step reads each table at the batch's distinct ids. ``group`` lists them (first-seen order)
with, for each, the batch examples that touch it, in batch order: a row's gradient is then a
sum in a fixed order, whichever thread computes it, so results do not depend on the thread count.
"""

from __future__ import annotations

import functools
import time
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
def gather_group(order, users, items, lo_row, nb, work_i, slot_u, slot_i):
    """A batch's user and item ids (``work_i[0]``, ``work_i[1]``), each side grouped by row
    (``work_i[2:6]`` users, ``work_i[6:10]`` items: rows, cursor, ptr, members). Returns the
    number of distinct users and items."""
    for j in range(nb):
        r = order[lo_row + j]
        work_i[0, j] = users[r]
        work_i[1, j] = items[r]
    nu = group(work_i[0, :nb], slot_u, work_i[2], work_i[3], work_i[4], work_i[5])
    ni = group(work_i[1, :nb], slot_i, work_i[6], work_i[7], work_i[8], work_i[9])
    return nu, ni


@njit(**JIT)
def release(slot, rows, n):
    for a in range(n):
        slot[rows[a]] = -1


def twins(fn, **options):
    """``fn`` compiled twice: serial, and with ``prange`` loops run on numba's threads.

    The parallel twin is a copy under its own name, so that numba's on-disk cache keeps the
    two apart. Both add the same floats in the same order, so they give the same bits, and
    ``Twins`` may pick either.
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel",
                              fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + "_parallel"
    copy.__module__ = fn.__module__
    return njit(**JIT, **options)(fn), njit(parallel=True, **JIT, **options)(copy)


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


class Twins:
    """Runs steps with the serial or the parallel twin, whichever is faster here and now.

    A parallel region costs microseconds to start, and far more when another process holds
    the other core, since each waits for every thread. So at the start of each epoch (a run
    from row 0), with more than one thread allowed, a few steps go through each twin, timed,
    and the twin faster over every probe so far takes the rest (one probe lasts a fraction of
    a millisecond on small data, so a single one is at the mercy of the scheduler; the sums
    settle). The twins give the same bits, so the choice never changes a result."""

    WARM = 2  # steps per twin first, untimed: the first call of each loads its code
    PROBE = 8  # steps timed per twin

    def __init__(self, serial, parallel, settings: Settings):
        self.serial, self.parallel, self.settings = serial, parallel, settings
        self.chosen = serial
        self.probed = {serial: 0.0, parallel: 0.0}  # seconds over every probe so far

    def run(self, steps, start: int, n_steps: int) -> float:
        """``steps(fn, first_row, count)`` runs ``count`` steps with ``fn``; returns the sum of
        what it returns over ``n_steps`` steps from row ``start``."""
        threads, bs = self.settings.threads, self.settings.batch_size
        with numba_threads(threads):
            if threads == 1 or numba.config.NUMBA_NUM_THREADS == 1:
                return steps(self.serial, start, n_steps)
            total, done = 0.0, 0
            if start == 0 and n_steps >= 4 * (self.WARM + self.PROBE):
                for count, timed in ((self.WARM, False), (self.PROBE, True)):
                    for fn in (self.serial, self.parallel):
                        t0 = time.perf_counter()
                        total += steps(fn, start + done * bs, count)
                        if timed:
                            self.probed[fn] += time.perf_counter() - t0
                        done += count
                faster = self.probed[self.parallel] < 0.9 * self.probed[self.serial]
                self.chosen = self.parallel if faster else self.serial
            return total + steps(self.chosen, start + done * bs, n_steps - done)


@functools.cache
def _blas_controller():
    """The process's threadpool controller, made once, after the BLAS numba calls is loaded."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread for the block. A kernel's small matrix products (numba calls SciPy's
    BLAS) run between its parallel loops: a multi-threaded BLAS fights numba's threads for the
    cores (sampled softmax at batch 256 ran about 4 times slower than with one BLAS thread)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def numba_threads_now() -> int:
    """The number of threads numba's parallel loops run on now."""
    return numba.get_num_threads()


@contextmanager
def numba_threads(n: int) -> Iterator[None]:
    """numba's thread count set to ``n`` (at most what it started with) for the block."""
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)
