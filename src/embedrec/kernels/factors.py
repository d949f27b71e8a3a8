"""Fused training steps for dot-product models: the reference's V1 (dot) and V2 (biased).

``pred = dot(P[u], Q[i]) [+ bu[u] + bi[i]]``, sigmoid-scaled to [lo, hi] for V2. One call runs
``n_steps`` batches of the epoch's ``order`` (batch semantics as the torch trainer: the mean
squared error over the batch; each touched row updated once, with the summed gradient, by
Keras-placement Adam with L2 on that row). In dense mode every row also takes the L2-only steps
it missed (``adam.catch_up``) before it is read, so the arithmetic is the exact engine's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from embedrec.kernels.adam import JIT, catch_up_pair, dot, step_sizes, update_pair
from embedrec.kernels.tables import (
    RowTable,
    Settings,
    Twins,
    catch_up_side,
    gather_group,
    hyper,
    release,
    twins,
    work,
)


@njit(**JIT)
def residual(P, Q, BU, BI, u, i, rating, use_bias, use_sigmoid, lo, hi, scale):
    """(d loss / d logit, squared error) of one example; ``scale`` = 2 / batch length."""
    x = dot(P[u], Q[i])
    if use_bias:
        x += BU[u, 0] + BI[i, 0]
    if use_sigmoid:
        one = np.float32(1.0)
        sg = one / (one + np.float32(math.exp(-x)))
        err = sg * (hi - lo) + lo - rating
        return scale * err * (hi - lo) * sg * (one - sg), err * err
    err = x - rating
    return scale * err, err * err


@njit(**JIT)
def row_sum(g, gb, members, other_ids, dx, other):
    """One row's gradient: the sum over its examples (in batch order) of dx times the other
    side's row, and of dx alone for its bias."""
    g[:] = np.float32(0.0)
    gb[0] = np.float32(0.0)
    for j in members:
        row = other[other_ids[j]]
        for f in range(g.shape[0]):
            g[f] += dx[j] * row[f]
        gb[0] += dx[j]


def _factor_steps(order, users, items, ratings, start, n_steps, batch_size,
                  P, Q, BU, BI, mP, vP, mQ, vQ, mBU, vBU, mBI, vBI, lastU, lastI,
                  step0, alphas, hyper, flags, slotU, slotI, work_i, work_f, gP, gBU, gQ, gBI):
    """Run ``n_steps`` steps from row ``start`` of ``order``; returns (sum of squared errors,
    rows seen). ``hyper`` = (b1, b2, eps, l2x2, lo, hi) as float32; ``flags`` = (biases,
    sigmoid, dense, fused). Both ways of summing a row's gradient add its examples in batch
    order, so the serial (fused) and the parallel twin agree."""
    b1, b2, eps, l2x2, lo, hi = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5]
    use_bias, use_sigmoid, dense = flags[0] != 0, flags[1] != 0, flags[2] != 0
    fused = flags[3] != 0  # the serial twin only (the caller sets it)
    n = order.shape[0]
    k = P.shape[1]
    B = batch_size
    bu_ids, bi_ids = work_i[0], work_i[1]
    rowsU, ptrU, memU = work_i[2], work_i[4], work_i[5]
    rowsI, ptrI, memI = work_i[6], work_i[8], work_i[9]
    dx, err2 = work_f[0], work_f[1]
    total = 0.0
    seen = 0
    zero = np.float32(0.0)
    for s in range(n_steps):
        lo_row = start + s * B
        if lo_row >= n:
            break
        nb = min(B, n - lo_row)
        t = step0 + s + 1
        alpha = alphas[t]
        nu, ni = gather_group(order, users, items, lo_row, nb, work_i, slotU, slotI)
        if dense:  # the L2-only steps these rows missed, then they are current
            for a in prange(nu + ni):
                if a < nu:
                    row = rowsU[a]
                    catch_up_pair(P, mP, vP, BU, mBU, vBU, use_bias, row, lastU[row] + 1, t,
                                  alphas, b1, b2, eps, l2x2)
                else:
                    row = rowsI[a - nu]
                    catch_up_pair(Q, mQ, vQ, BI, mBI, vBI, use_bias, row, lastI[row] + 1, t,
                                  alphas, b1, b2, eps, l2x2)
        scale = np.float32(2.0) / np.float32(nb)
        if fused:  # one pass: each example's gradient added to its rows' sums, in batch order
            for a in range(nu):
                gP[a, :] = zero
                gBU[a, 0] = zero
            for b in range(ni):
                gQ[b, :] = zero
                gBI[b, 0] = zero
            for j in range(nb):
                u, i = bu_ids[j], bi_ids[j]
                d, e2 = residual(P, Q, BU, BI, u, i, ratings[order[lo_row + j]], use_bias,
                                 use_sigmoid, lo, hi, scale)
                total += e2
                a, b = slotU[u], slotI[i]
                for f in range(k):
                    gP[a, f] += d * Q[i, f]
                    gQ[b, f] += d * P[u, f]
                gBU[a, 0] += d
                gBI[b, 0] += d
        else:  # examples in parallel, then each row's sum over its examples, in batch order
            for j in prange(nb):
                dx[j], err2[j] = residual(P, Q, BU, BI, bu_ids[j], bi_ids[j],
                                          ratings[order[lo_row + j]], use_bias, use_sigmoid,
                                          lo, hi, scale)
            for j in range(nb):
                total += err2[j]
            for a in prange(nu):  # users' gradients, from Q as it was
                row_sum(gP[a], gBU[a], memU[ptrU[a]:ptrU[a + 1]], bi_ids, dx, Q)
            for b in prange(ni):  # items' gradients, from P as it was
                row_sum(gQ[b], gBI[b], memI[ptrI[b]:ptrI[b + 1]], bu_ids, dx, P)
        seen += nb
        for b in prange(ni):
            update_pair(Q, mQ, vQ, BI, mBI, vBI, use_bias, rowsI[b], gQ[b], gBI[b], alpha, b1,
                        b2, eps, l2x2, dense, lastI, t)
        for a in prange(nu):
            update_pair(P, mP, vP, BU, mBU, vBU, use_bias, rowsU[a], gP[a], gBU[a], alpha, b1,
                        b2, eps, l2x2, dense, lastU, t)
        release(slotU, rowsU, nu)
        release(slotI, rowsI, ni)
    return total, seen


factor_steps, factor_steps_parallel = twins(_factor_steps)


class FactorKernel:
    """A dot-product model's tables bound to ``factor_steps``.

    ``P``/``Q`` (and the bias columns ``BU``/``BI``, shape (n, 1)) are the model's own weights,
    as numpy views: training updates them in place. ``rating_range`` turns on the sigmoid."""

    def __init__(self, P: np.ndarray, Q: np.ndarray, BU: np.ndarray | None = None,
                 BI: np.ndarray | None = None, rating_range: tuple[float, float] | None = None):
        self.arrays = (P, Q, BU, BI)
        self.rating_range = rating_range
        self.step = 0

    def bind(self, settings: Settings) -> None:
        P, Q, BU, BI = self.arrays
        self.settings = settings
        self.biases = BU is not None
        dummy = np.zeros((1, 1), dtype=np.float32)
        self.tables = [RowTable(a if a is not None else dummy.copy()) for a in (P, Q, BU, BI)]
        self.last_u = np.zeros(len(P), dtype=np.int64)  # dense engine: the step each row reached
        self.last_i = np.zeros(len(Q), dtype=np.int64)
        self.alphas = step_sizes(settings.lr, settings.beta1, settings.beta2, 1, settings.max_steps)
        lo, hi = self.rating_range or (0.0, 0.0)
        self.hyper = hyper(settings, lo, hi)
        self.flags = np.array([self.biases, self.rating_range is not None, settings.dense, 1],
                              dtype=np.int64)
        self.twins = Twins(factor_steps, factor_steps_parallel, settings)
        bs, k = settings.batch_size, P.shape[1]
        self.work_i, self.slot_u, self.slot_i = work(bs, len(P), len(Q))
        self.work_f = np.zeros((2, bs), dtype=np.float32)
        self.grads = (np.zeros((bs, k), np.float32), np.zeros((bs, 1), np.float32),
                      np.zeros((bs, k), np.float32), np.zeros((bs, 1), np.float32))
        self.step = 0

    def run(self, order, users, items, ratings, start: int, n_steps: int) -> tuple[float, int]:
        """Steps from row ``start`` of ``order``: (sum of squared errors, steps taken)."""
        s = self.settings
        n_steps = min(n_steps, -(-(len(order) - start) // s.batch_size))
        P, Q, BU, BI = self.tables

        def steps(fn, first_row, count):
            self.flags[3] = fn is factor_steps  # the serial twin sums in one fused pass
            sse, _ = fn(order, users, items, ratings, first_row, count, s.batch_size,
                        P.w, Q.w, BU.w, BI.w, P.m, P.v, Q.m, Q.v, BU.m, BU.v, BI.m, BI.v,
                        self.last_u, self.last_i, self.step, self.alphas, self.hyper,
                        self.flags, self.slot_u, self.slot_i, self.work_i, self.work_f,
                        *self.grads)
            self.step += count
            return sse

        return self.twins.run(steps, start, n_steps), n_steps

    def sync(self) -> None:
        """Bring every row up to date (dense engine) before the weights are read whole."""
        P, Q, BU, BI = self.tables
        catch_up_side(P, BU if self.biases else None, self.last_u, self.settings, self.step,
                      self.alphas)
        catch_up_side(Q, BI if self.biases else None, self.last_i, self.settings, self.step,
                      self.alphas)
