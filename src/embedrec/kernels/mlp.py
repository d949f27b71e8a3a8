"""Fused training steps for the reference's network over concatenated embeddings.

``concat(P[u], Q[i]) -> dropout -> W1 x + b1 -> ReLU -> dropout -> w2 . h + b2 -> sigmoid range``.
Dropout masks come from ``counter``: the torch module draws the same ones at the same call, so
the kernel and the torch path train the same network from the same seed. Examples are worked in
fixed blocks whose dense-layer gradients are added in block order: the sums do not depend on the
thread count. Embedding rows are updated as in ``factors`` (lazy, or dense with catch-up); the
dense layers take a plain Adam step (no L2) every step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from embedrec.kernels.adam import catch_up, dot, step_sizes, update_dense, update_row
from embedrec.kernels.counter import call_key, lane, threshold, word
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

BLOCK = 16  # examples per block of dense-layer gradients


def _mlp_steps(order, users, items, ratings, start, n_steps, batch_size,
               P, Q, mP, vP, mQ, vQ, lastU, lastI, dense_w, dense_m, dense_v, shape,
               step0, alphas, hyper, flags, slotU, slotI, work_i, DX, gP, gQ, block_g,
               act, err2):
    """``dense_w``: W1 (h x 2k, row-major), b1 (h), w2 (h), b2 (1), flat; ``shape`` = (h, k).
    ``hyper`` = (b1, b2, eps, l2x2, lo, hi, scale_in, scale_hidden) float32; ``flags`` = (dense,
    threshold_in, threshold_hidden, seed_in, seed_hidden). Returns (sum of squared errors, rows)."""
    b1, b2, eps, l2x2, lo, hi = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5]
    sc_in, sc_h = hyper[6], hyper[7]
    dense = flags[0] != 0
    thr_in, thr_h = np.uint64(flags[1]), np.uint64(flags[2])
    seed_in, seed_h = flags[3], flags[4]
    H, k = shape[0], shape[1]
    K2 = 2 * k
    o_b1, o_w2, o_b2 = H * K2, H * K2 + H, H * K2 + 2 * H
    n_dense = dense_w.shape[0]
    n = order.shape[0]
    B = batch_size
    bu_ids, bi_ids = work_i[0], work_i[1]
    rowsU, ptrU, memU = work_i[2], work_i[4], work_i[5]
    rowsI, ptrI, memI = work_i[6], work_i[8], work_i[9]
    total = 0.0
    seen = 0
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for s in range(n_steps):
        lo_row = start + s * B
        if lo_row >= n:
            break
        nb = min(B, n - lo_row)
        t = step0 + s + 1
        alpha = alphas[t]
        key_in = call_key(seed_in, t - 1)
        key_h = call_key(seed_h, t - 1)
        nu, ni = gather_group(order, users, items, lo_row, nb, work_i, slotU, slotI)
        if dense:
            for a in prange(nu + ni):
                if a < nu:
                    row = rowsU[a]
                    catch_up(P, mP, vP, row, lastU[row] + 1, t, alphas, b1, b2, eps, l2x2)
                else:
                    row = rowsI[a - nu]
                    catch_up(Q, mQ, vQ, row, lastI[row] + 1, t, alphas, b1, b2, eps, l2x2)
        scale = np.float32(2.0) / np.float32(nb)
        n_blocks = (nb + BLOCK - 1) // BLOCK
        for blk in prange(n_blocks):
            g = block_g[blk]
            for q in range(n_dense):
                g[q] = zero
            a_x, a_pre, a_d, a_in = act[blk, 0], act[blk, 1], act[blk, 2], act[blk, 3]
            for j in range(blk * BLOCK, min(nb, (blk + 1) * BLOCK)):
                r = order[lo_row + j]
                u, i = bu_ids[j], bi_ids[j]
                hashed = word(key_in, j * K2)
                for f in range(K2):  # the dropped-out input; a hash gives four draws
                    e = j * K2 + f
                    if f > 0 and e % 4 == 0:
                        hashed = word(key_in, e)
                    x = P[u, f] if f < k else Q[i, f - k]
                    a_in[f] = sc_in if lane(hashed, e) >= thr_in else zero
                    a_x[f] = x * a_in[f]
                hashed = word(key_h, j * H)
                out = dense_w[o_b2]
                for h in range(H):
                    pre = dense_w[o_b1 + h] + dot(dense_w[h * K2:(h + 1) * K2], a_x[:K2])
                    a_pre[h] = pre
                    hid = pre if pre > zero else zero
                    e = j * H + h
                    if h > 0 and e % 4 == 0:
                        hashed = word(key_h, e)
                    keep = lane(hashed, e) >= thr_h
                    a_d[h] = sc_h if keep else zero  # d(dropped hidden)/d(hidden)
                    out += dense_w[o_w2 + h] * (hid * a_d[h])
                sg = one / (one + np.float32(math.exp(-out)))
                err = sg * (hi - lo) + lo - ratings[r]
                err2[j] = err * err
                dout = scale * err * (hi - lo) * sg * (one - sg)
                g[o_b2] += dout
                for f in range(K2):
                    DX[j, f] = zero
                for h in range(H):
                    hid = a_pre[h] if a_pre[h] > zero else zero
                    g[o_w2 + h] += dout * (hid * a_d[h])
                    dpre = dout * dense_w[o_w2 + h] * a_d[h] if a_pre[h] > zero else zero
                    if dpre != zero:
                        g[o_b1 + h] += dpre
                        for f in range(K2):
                            g[h * K2 + f] += dpre * a_x[f]
                            DX[j, f] += dense_w[h * K2 + f] * dpre
                for f in range(K2):  # back through the input dropout
                    DX[j, f] = DX[j, f] * a_in[f]
        for j in range(nb):
            total += err2[j]
        seen += nb
        for a in prange(nu):
            for f in range(k):
                gP[a, f] = zero
            for e in range(ptrU[a], ptrU[a + 1]):
                j = memU[e]
                for f in range(k):
                    gP[a, f] += DX[j, f]
        for b in prange(ni):
            row = rowsI[b]
            for f in range(k):
                gQ[b, f] = zero
            for e in range(ptrI[b], ptrI[b + 1]):
                j = memI[e]
                for f in range(k):
                    gQ[b, f] += DX[j, k + f]
            update_row(Q, mQ, vQ, row, gQ[b], alpha, b1, b2, eps, l2x2)
            if dense:
                lastI[row] = t
        for a in prange(nu):
            row = rowsU[a]
            update_row(P, mP, vP, row, gP[a], alpha, b1, b2, eps, l2x2)
            if dense:
                lastU[row] = t
        g0 = block_g[0]
        for blk in range(1, n_blocks):
            for q in range(n_dense):
                g0[q] += block_g[blk, q]
        update_dense(dense_w, dense_m, dense_v, g0, alpha, b1, b2, eps)
        release(slotU, rowsU, nu)
        release(slotI, rowsI, ni)
    return total, seen


mlp_steps, mlp_steps_parallel = twins(_mlp_steps)


class MLPKernel:
    """The network's weights bound to ``mlp_steps``.

    ``P``/``Q``: the embedding tables (views, updated in place); ``layers``: W1 (h, 2k), b1 (h),
    W2 (1, h), b2 (1), copied into one flat vector for the kernel and back after every run;
    ``dropout``: (p_in, p_hidden); ``seeds()``: the two dropout layers' seeds, read at ``bind``
    (after the trainer has seeded them)."""

    def __init__(self, P, Q, layers, dropout, seeds, rating_range):
        self.P_array, self.Q_array, self.layers = P, Q, layers
        self.dropout, self.seeds, self.rating_range = dropout, seeds, rating_range
        self.step = 0

    def bind(self, settings: Settings) -> None:
        self.settings = settings
        self.P, self.Q = RowTable(self.P_array), RowTable(self.Q_array)
        self.last_u = np.zeros(len(self.P_array), dtype=np.int64)
        self.last_i = np.zeros(len(self.Q_array), dtype=np.int64)
        self.alphas = step_sizes(settings.lr, settings.beta1, settings.beta2, 1, settings.max_steps)
        p_in, p_h = self.dropout
        lo, hi = self.rating_range
        self.hyper = hyper(settings, lo, hi, 1.0 / (1.0 - p_in), 1.0 / (1.0 - p_h))
        seed_in, seed_h = self.seeds()
        self.flags = np.array([settings.dense, threshold(p_in), threshold(p_h), seed_in, seed_h],
                              dtype=np.int64)
        h, k2 = self.layers[0].shape
        self.shape = np.array([h, k2 // 2], dtype=np.int64)
        self.dense_w = np.concatenate([a.reshape(-1) for a in self.layers]).astype(np.float32)
        self.dense_m = np.zeros_like(self.dense_w)
        self.dense_v = np.zeros_like(self.dense_w)
        bs, k = settings.batch_size, k2 // 2
        blocks = -(-bs // BLOCK)
        self.work_i, self.slot_u, self.slot_i = work(bs, len(self.P.w), len(self.Q.w))
        self.buffers = (np.zeros((bs, k2), np.float32), np.zeros((bs, k), np.float32),
                        np.zeros((bs, k), np.float32),
                        np.zeros((blocks, len(self.dense_w)), np.float32),
                        np.zeros((blocks, 4, max(k2, h)), np.float32),
                        np.zeros(bs, np.float32))
        self.twins = Twins(mlp_steps, mlp_steps_parallel, settings)
        self.step = 0

    def run(self, order, users, items, ratings, start: int, n_steps: int) -> tuple[float, int]:
        s = self.settings
        n_steps = min(n_steps, -(-(len(order) - start) // s.batch_size))
        self._load()

        def steps(fn, first_row, count):
            sse, _ = fn(order, users, items, ratings, first_row, count, s.batch_size,
                        self.P.w, self.Q.w, self.P.m, self.P.v, self.Q.m, self.Q.v,
                        self.last_u, self.last_i, self.dense_w, self.dense_m, self.dense_v,
                        self.shape, self.step, self.alphas, self.hyper, self.flags,
                        self.slot_u, self.slot_i, self.work_i, *self.buffers)
            self.step += count
            return sse

        sse = self.twins.run(steps, start, n_steps)
        self._store()
        return sse, n_steps

    def sync(self) -> None:
        catch_up_side(self.P, None, self.last_u, self.settings, self.step, self.alphas)
        catch_up_side(self.Q, None, self.last_i, self.settings, self.step, self.alphas)

    def _load(self) -> None:  # the layers as the torch module holds them now
        at = 0
        for a in self.layers:
            self.dense_w[at:at + a.size] = a.reshape(-1)
            at += a.size

    def _store(self) -> None:
        at = 0
        for a in self.layers:
            a.reshape(-1)[:] = self.dense_w[at:at + a.size]
            at += a.size
