"""Fused BPR steps for the dot-product models (issue 14): ``dot`` and ``biased`` trained to rank.

For every positive (u, i) of a batch and its drawn negative j the loss is
``-log sigmoid(s(u, i) - s(u, j))``, where ``s`` is the model's score ``dot(P[u], Q[i])``
[+ ``bu[u] + bi[i]``] (a model trained to rank outputs its logits, without V2's rating link:
``EmbeddingModel.raw_scores``), exactly what the torch objective
(``embedrec.training.losses.BPR``) differentiates; ``link`` keeps the sigmoid-scaled case.
Batch semantics and Adam are the MSE kernel's (``embedrec.kernels.factors``): the mean loss
over the batch, every touched row (the users, the positives and the negatives) updated once
with its summed gradient, Keras-placement L2 on it, and in dense mode the L2-only steps a row
missed applied before it is read.

Item rows are grouped over the batch's *occurrences*: occurrence ``2j`` is example j's positive,
``2j + 1`` its negative. The serial twin adds each example's terms in that order, the parallel
twin sums each row over its occurrences in the same order, so both give the same bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from embedrec.kernels.adam import JIT, catch_up_pair, dot, update_pair
from embedrec.kernels.factors import FactorKernel
from embedrec.kernels.tables import Twins, group, release, twins

# the losses this kernel trains: BPR with any per-row negative sampler
LOSSES = frozenset({"bpr", "bpr_pop"})


@njit(**JIT)
def link(x, use_sigmoid, lo, hi):
    """(the model's output, its derivative) at logit ``x``."""
    if use_sigmoid:
        one = np.float32(1.0)
        sg = one / (one + np.float32(math.exp(-x)))
        return sg * (hi - lo) + lo, (hi - lo) * sg * (one - sg)
    return x, np.float32(1.0)


@njit(**JIT)
def pair_gradient(P, Q, BU, BI, u, i, j, use_bias, use_sigmoid, lo, hi, scale):
    """(d loss / d logit of the positive, of the negative, the loss) of one triple;
    ``scale`` = 1 / batch length."""
    xp = dot(P[u], Q[i])
    xn = dot(P[u], Q[j])
    if use_bias:
        xp += BU[u, 0] + BI[i, 0]
        xn += BU[u, 0] + BI[j, 0]
    sp, dp = link(xp, use_sigmoid, lo, hi)
    sn, dn = link(xn, use_sigmoid, lo, hi)
    z = sp - sn
    # loss = softplus(-z) and d loss / dz = -sigmoid(-z), both without overflow
    if z >= 0:
        e = math.exp(-z)
        loss, g = math.log1p(e), -e / (1.0 + e)
    else:
        e = math.exp(z)
        loss, g = -z + math.log1p(e), -1.0 / (1.0 + e)
    g32 = np.float32(g) * scale
    return g32 * dp, -g32 * dn, loss


def _pair_steps(order, users, items, negatives, start, n_steps, batch_size,
                P, Q, BU, BI, mP, vP, mQ, vQ, mBU, vBU, mBI, vBI, lastU, lastI,
                step0, alphas, hyper, flags, slotU, slotI, wu, wi, dx, losses, gP, gBU, gQ, gBI):
    """Run ``n_steps`` BPR steps from row ``start`` of ``order`` (``negatives[r]``: the negative
    drawn for row ``r`` of ``order``); returns (sum of the losses, rows seen). ``wu``/``wi``:
    ids, rows, cursor, ptr and members of the users (B + 1 wide) and item occurrences (2B + 1);
    ``hyper``/``flags`` as ``factors.factor_steps``."""
    b1, b2, eps, l2x2, lo, hi = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5]
    use_bias, use_sigmoid, dense = flags[0] != 0, flags[1] != 0, flags[2] != 0
    fused = flags[3] != 0  # the serial twin only (the caller sets it)
    n = order.shape[0]
    k = P.shape[1]
    B = batch_size
    uid, iid = wu[0], wi[0]
    rowsU, ptrU, memU = wu[1], wu[3], wu[4]
    rowsI, ptrI, memI = wi[1], wi[3], wi[4]
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
        for j in range(nb):
            r = order[lo_row + j]
            uid[j] = users[r]
            iid[2 * j] = items[r]
            iid[2 * j + 1] = negatives[lo_row + j]
        nu = group(uid[:nb], slotU, rowsU, wu[2], ptrU, memU)
        ni = group(iid[:2 * nb], slotI, rowsI, wi[2], ptrI, memI)
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
        scale = np.float32(1.0) / np.float32(nb)
        if fused:  # one pass over the examples, each term added to its row in occurrence order
            for a in range(nu):
                gP[a, :] = zero
                gBU[a, 0] = zero
            for b in range(ni):
                gQ[b, :] = zero
                gBI[b, 0] = zero
            for j in range(nb):
                u, i, m = uid[j], iid[2 * j], iid[2 * j + 1]
                gp, gn, loss = pair_gradient(P, Q, BU, BI, u, i, m, use_bias, use_sigmoid,
                                             lo, hi, scale)
                total += loss
                a, b, c = slotU[u], slotI[i], slotI[m]
                for f in range(k):
                    gP[a, f] += gp * Q[i, f] + gn * Q[m, f]
                for f in range(k):
                    gQ[b, f] += gp * P[u, f]
                for f in range(k):
                    gQ[c, f] += gn * P[u, f]
                gBU[a, 0] += gp + gn
                gBI[b, 0] += gp
                gBI[c, 0] += gn
        else:  # examples in parallel, then each row's sum over its occurrences, in order
            for j in prange(nb):
                dx[2 * j], dx[2 * j + 1], losses[j] = pair_gradient(
                    P, Q, BU, BI, uid[j], iid[2 * j], iid[2 * j + 1], use_bias, use_sigmoid,
                    lo, hi, scale)
            for j in range(nb):
                total += losses[j]
            for a in prange(nu):  # users' gradients, from Q as it was
                g, gb = gP[a], gBU[a]
                g[:] = zero
                gb[0] = zero
                for e in range(ptrU[a], ptrU[a + 1]):
                    j = memU[e]
                    qi, qm = Q[iid[2 * j]], Q[iid[2 * j + 1]]
                    dp, dn = dx[2 * j], dx[2 * j + 1]
                    for f in range(k):
                        g[f] += dp * qi[f] + dn * qm[f]
                    gb[0] += dp + dn
            for b in prange(ni):  # items' gradients, from P as it was
                g, gb = gQ[b], gBI[b]
                g[:] = zero
                gb[0] = zero
                for e in range(ptrI[b], ptrI[b + 1]):
                    o = memI[e]
                    pu = P[uid[o // 2]]
                    d = dx[o]
                    for f in range(k):
                        g[f] += d * pu[f]
                    gb[0] += d
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


pair_steps, pair_steps_parallel = twins(_pair_steps)


class PairKernel(FactorKernel):
    """A dot-product model's tables bound to ``pair_steps``: BPR with the negatives the
    trainer draws (``needs_negatives``)."""

    needs_negatives = True

    def __init__(self, P, Q, BU=None, BI=None, rating_range=None):
        # a model trained to rank outputs its logits (``EmbeddingModel.raw_scores``)
        super().__init__(P, Q, BU, BI, rating_range=None)

    def bind(self, settings) -> None:
        super().bind(settings)
        self.twins = Twins(pair_steps, pair_steps_parallel, settings)
        bs, k = settings.batch_size, self.arrays[0].shape[1]
        self.wu = np.zeros((5, bs + 1), dtype=np.int64)
        self.wi = np.zeros((5, 2 * bs + 1), dtype=np.int64)
        self.dx = np.zeros(2 * bs, dtype=np.float32)
        self.losses = np.zeros(bs, dtype=np.float64)
        self.grads = (np.zeros((bs, k), np.float32), np.zeros((bs, 1), np.float32),
                      np.zeros((2 * bs, k), np.float32), np.zeros((2 * bs, 1), np.float32))

    def run(self, order, users, items, ratings, start: int, n_steps: int, *,
            negatives: np.ndarray) -> tuple[float, int]:
        """Steps from row ``start`` of ``order``: (sum of the BPR losses, steps taken)."""
        s = self.settings
        n_steps = min(n_steps, -(-(len(order) - start) // s.batch_size))
        P, Q, BU, BI = self.tables

        def steps(fn, first_row, count):
            self.flags[3] = fn is pair_steps  # the serial twin sums in one fused pass
            total, _ = fn(order, users, items, negatives, first_row, count, s.batch_size,
                          P.w, Q.w, BU.w, BI.w, P.m, P.v, Q.m, Q.v, BU.m, BU.v, BI.m, BI.v,
                          self.last_u, self.last_i, self.step, self.alphas, self.hyper,
                          self.flags, self.slot_u, self.slot_i, self.wu, self.wi, self.dx,
                          self.losses, *self.grads)
            self.step += count
            return total

        return self.twins.run(steps, start, n_steps), n_steps
