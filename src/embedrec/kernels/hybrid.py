"""Fused training steps for the hybrid's MF head over ids, genres and release year.

A movie's side is its own row plus a weighted sum of feature rows (its genres, each weighted
1 / its number of genres, and its release-year bucket); every row carries its bias in the last
column. ``pred = sigmoid(u . v + u_b + v_b + offset)`` scaled to [lo, hi]. One call runs
``n_steps`` batches of the epoch's ``order`` with the torch trainer's batch semantics: the mean
squared error over the batch; the id rows touched by a batch take one Keras-placement Adam step
with their summed gradient and L2 (lazy), or every id row does (dense, by catching up the skipped
L2-only steps when a row is next read); the feature table and the offset are dense parameters
without L2, as in torch, and take an Adam step at every step. Serial: the feature rows are
shared by most examples of a batch, so their gradient is one running sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from embedrec.kernels.adam import JIT, catch_up, dot, step_sizes, update_dense, update_row
from embedrec.kernels.tables import (RowTable, Settings, catch_up_side, gather_group, hyper,
                                     release, work)


@njit(**JIT)
def hybrid_steps(order, users, items, ratings, start, n_steps, batch_size,
                 U, mU, vU, V, mV, vV, F, mF, vF, off, m_off, v_off,
                 known, fptr, fcol, fweight, lastU, lastV, step0, alphas, hyper, dense,
                 slotU, slotV, work_i, gU, gV, gF, g_off, side):
    """Run ``n_steps`` steps from row ``start`` of ``order``; returns the sum of squared
    errors. ``hyper`` = (b1, b2, eps, l2x2, lo, hi) as float32."""
    b1, b2, eps, l2x2, lo, hi = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5]
    n = order.shape[0]
    d = U.shape[1] - 1
    zero, one = np.float32(0.0), np.float32(1.0)
    rowsU, rowsV = work_i[2], work_i[6]
    total = 0.0
    for s in range(n_steps):
        lo_row = start + s * batch_size
        if lo_row >= n:
            break
        nb = min(batch_size, n - lo_row)
        t = step0 + s + 1
        alpha = alphas[t]
        nu, ni = gather_group(order, users, items, lo_row, nb, work_i, slotU, slotV)
        if dense:  # the L2-only steps these rows missed, then they are current
            for a in range(nu):
                catch_up(U, mU, vU, rowsU[a], lastU[rowsU[a]] + 1, t, alphas, b1, b2, eps, l2x2)
            for b in range(ni):
                catch_up(V, mV, vV, rowsV[b], lastV[rowsV[b]] + 1, t, alphas, b1, b2, eps, l2x2)
        gU[:nu] = zero
        gV[:ni] = zero
        gF[:, :] = zero
        g_off[0] = zero
        scale = np.float32(2.0) / np.float32(nb)
        for j in range(nb):
            u, i = work_i[0, j], work_i[1, j]
            kn = known[i]
            for f in range(d + 1):  # the movie's side: its own row, then its features
                side[f] = V[i, f] * kn
            for e in range(fptr[i], fptr[i + 1]):
                c, w = fcol[e], fweight[e]
                for f in range(d + 1):
                    side[f] += w * F[c, f]
            x = dot(U[u, :d], side[:d]) + U[u, d] + side[d] + off[0]
            sg = one / (one + np.float32(math.exp(-x)))
            err = sg * (hi - lo) + lo - ratings[order[lo_row + j]]
            total += err * err
            dx = scale * err * (hi - lo) * sg * (one - sg)
            a, b = slotU[u], slotV[i]
            for f in range(d):
                gU[a, f] += dx * side[f]
                gV[b, f] += dx * kn * U[u, f]
            gU[a, d] += dx
            gV[b, d] += dx * kn
            for e in range(fptr[i], fptr[i + 1]):
                c, wd = fcol[e], dx * fweight[e]
                for f in range(d):
                    gF[c, f] += wd * U[u, f]
                gF[c, d] += wd
            g_off[0] += dx
        for b in range(ni):
            update_row(V, mV, vV, rowsV[b], gV[b], alpha, b1, b2, eps, l2x2)
            if dense:
                lastV[rowsV[b]] = t
        for a in range(nu):
            update_row(U, mU, vU, rowsU[a], gU[a], alpha, b1, b2, eps, l2x2)
            if dense:
                lastU[rowsU[a]] = t
        update_dense(F.reshape(-1), mF.reshape(-1), vF.reshape(-1), gF.reshape(-1), alpha,
                     b1, b2, eps)
        update_dense(off, m_off, v_off, g_off, alpha, b1, b2, eps)
        release(slotU, rowsU, nu)
        release(slotV, rowsV, ni)
    return total


class HybridKernel:
    """The hybrid MF head's arrays bound to ``hybrid_steps``.

    ``arrays()`` returns, when training starts (after the model has seen its training rows):
    ``user`` and ``item`` (n x (d + 1), vector and bias), ``features`` (the feature table,
    n_features x (d + 1), possibly empty), ``offset`` (1,), ``known`` (n_items,: 1 for movies
    with training ratings) and ``feature_weights`` (n_items x n_features). The first four are
    the model's own weights as numpy views: training updates them in place."""

    def __init__(self, arrays: Callable[[], dict], rating_range: tuple[float, float]):
        self.arrays = arrays
        self.rating_range = rating_range
        self.step = 0

    def bind(self, settings: Settings) -> None:
        a = self.arrays()
        self.settings = settings
        self.user, self.item = RowTable(a["user"]), RowTable(a["item"])
        d1 = self.user.w.shape[1]
        features = a["features"] if a["features"] is not None else np.zeros((0, d1), np.float32)
        self.features = RowTable(features)
        self.offset = a["offset"]
        self.m_off, self.v_off = np.zeros_like(self.offset), np.zeros_like(self.offset)
        self.known = np.ascontiguousarray(a["known"], dtype=np.float32)
        weights = np.asarray(a["feature_weights"], dtype=np.float32)
        rows, cols = np.nonzero(weights)  # row-major: each movie's features in column order
        self.fptr = np.searchsorted(rows, np.arange(len(self.known) + 1)).astype(np.int64)
        self.fcol = cols.astype(np.int64)
        self.fweight = weights[rows, cols].astype(np.float32)
        self.last_u = np.zeros(len(self.user.w), dtype=np.int64)
        self.last_i = np.zeros(len(self.item.w), dtype=np.int64)
        self.alphas = step_sizes(settings.lr, settings.beta1, settings.beta2, 1, settings.max_steps)
        self.hyper = hyper(settings, *self.rating_range)
        bs = settings.batch_size
        self.work_i, self.slot_u, self.slot_i = work(bs, len(self.user.w), len(self.item.w))
        self.g_user = np.zeros((bs, d1), np.float32)
        self.g_item = np.zeros((bs, d1), np.float32)
        self.g_features = np.zeros_like(features)
        self.g_off = np.zeros(1, np.float32)
        self.side = np.zeros(d1, np.float32)
        self.step = 0

    def run(self, order, users, items, ratings, start: int, n_steps: int) -> tuple[float, int]:
        """Steps from row ``start`` of ``order``: (sum of squared errors, steps taken)."""
        s = self.settings
        n_steps = min(n_steps, -(-(len(order) - start) // s.batch_size))
        U, V, F = self.user, self.item, self.features
        sse = hybrid_steps(order, users, items, ratings, start, n_steps, s.batch_size,
                           U.w, U.m, U.v, V.w, V.m, V.v, F.w, F.m, F.v, self.offset,
                           self.m_off, self.v_off, self.known, self.fptr,
                           self.fcol, self.fweight, self.last_u, self.last_i, self.step,
                           self.alphas, self.hyper, s.dense, self.slot_u, self.slot_i,
                           self.work_i, self.g_user, self.g_item, self.g_features, self.g_off,
                           self.side)
        self.step += n_steps
        return sse, n_steps

    def sync(self) -> None:
        """Bring every id row up to date (dense updates) before the weights are read whole."""
        catch_up_side(self.user, None, self.last_u, self.settings, self.step, self.alphas)
        catch_up_side(self.item, None, self.last_i, self.settings, self.step, self.alphas)
