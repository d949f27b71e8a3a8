"""Fused sampled-softmax steps for the dot-product models (issue 14): ``dot`` and ``biased``
trained with ``--loss softmax``.

Each batch shares ``S`` negatives drawn from Q (``embedrec.training.ranking_losses``). For the
positive (u, i) the candidates are i and the S negatives; each logit is the model's score
minus ``log(S Q(j))`` (the logQ correction), a negative equal to the positive is masked, and
the loss is the cross-entropy of the positive: exactly what the torch objective
(``ranking_losses.SampledSoftmax``) differentiates, on the model's logits
(``EmbeddingModel.raw_scores``). Batch semantics and Adam are the MSE kernel's
(``embedrec.kernels.factors``): the mean loss over the batch, every touched row (the users, the
positives and the shared negatives) updated once with its summed gradient, Keras-placement L2
on it, and in dense mode the L2-only steps a row missed applied before it is read.

Item rows are grouped over the batch's *occurrences*: occurrence ``j < B`` is example j's
positive, ``B + c`` the c-th shared negative. A softmax step costs about S times a BPR step's
arithmetic, since each example is scored against every shared negative: that grid and the two
gradients through it are matrix products (SciPy's BLAS, called from numba, on one BLAS thread
while the kernel runs). Every row's gradient is then summed in one fixed order (its
occurrences in turn), whichever twin runs, so the serial and parallel twins give the same bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from embedrec.kernels.adam import JIT, catch_up_pair, dot, update_pair
from embedrec.kernels.factors import FactorKernel
from embedrec.kernels.tables import Twins, group, one_blas_thread, release, twins

# the losses this kernel trains: sampled softmax with negatives shared by the batch
LOSSES = frozenset({"softmax"})


@njit(**JIT)
def example_gradient(row, lp, i, negs, col, scale):
    """One example's softmax over its positive's logit ``lp`` and the negatives' logits in
    ``row`` (the inner products, to which ``col`` adds each negative's bias and logQ term);
    a negative equal to the positive ``i`` is masked. ``row`` receives d loss / d logit of
    each negative, times ``scale`` = 1 / batch length (0 where masked); returns that of the
    positive and the loss. Logits in float32 as the torch objective forms them, their
    softmax in float64."""
    m = lp
    for c in range(negs.shape[0]):
        if negs[c] != i:
            x = row[c] + col[c]
            row[c] = x
            if x > m:
                m = x
    total = math.exp(lp - m)
    for c in range(negs.shape[0]):
        if negs[c] != i:
            total += math.exp(row[c] - m)
    lse = m + math.log(total)
    for c in range(negs.shape[0]):
        row[c] = np.float32(math.exp(row[c] - lse)) * scale if negs[c] != i else np.float32(0.0)
    return np.float32(math.exp(lp - lse) - 1.0) * scale, lse - lp


def _softmax_steps(order, users, items, negatives, log_q, shift, start, n_steps, batch_size,
                   P, Q, BU, BI, mP, vP, mQ, vQ, mBU, vBU, mBI, vBI, lastU, lastI,
                   step0, alphas, hyper, flags, slotU, slotI, wu, wi, dpos, G, losses,
                   gP, gBU, gQ, gBI, Pu, Qp, Qn, dPu, dQn, col):
    """Run ``n_steps`` sampled-softmax steps from row ``start`` of ``order``; the step at
    ``order[s B:(s + 1) B]`` uses ``negatives[s S:(s + 1) S]``. Returns (sum of the losses,
    rows seen). ``wu``/``wi``: ids, rows, cursor, ptr and members of the users (B + 1 wide) and
    the item occurrences (B + S + 1); ``hyper``/``flags`` as ``factors.factor_steps``.

    The batch's user rows ``Pu`` (B x k), positives ``Qp`` and shared negatives ``Qn`` (S x k)
    are copied out, as they are before the step; the (B x S) grid of inner products and the two
    gradients through it, ``G Qn`` and ``G' Pu``, are three matrix products (BLAS), and the rest
    is per example or per row."""
    b1, b2, eps, l2x2 = hyper[0], hyper[1], hyper[2], hyper[3]
    use_bias, dense = flags[0] != 0, flags[2] != 0
    n = order.shape[0]
    k = P.shape[1]
    B = batch_size
    S = G.shape[1]
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
        base = (lo_row // B) * S
        for j in range(nb):
            r = order[lo_row + j]
            uid[j] = users[r]
            iid[j] = items[r]
        for c in range(S):
            iid[nb + c] = negatives[base + c]
        negs = iid[nb:nb + S]
        nu = group(uid[:nb], slotU, rowsU, wu[2], ptrU, memU)
        ni = group(iid[:nb + S], slotI, rowsI, wi[2], ptrI, memI)
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
        for j in prange(nb):
            Pu[j, :] = P[uid[j]]
            Qp[j, :] = Q[iid[j]]
        for c in range(S):
            jn = negs[c]
            Qn[c, :] = Q[jn]
            col[c] = (BI[jn, 0] if use_bias else zero) - (log_q[jn] + shift)
        Gb = G[:nb]
        np.dot(Pu[:nb], Qn.T, Gb)  # every example's inner product with every negative
        scale = np.float32(1.0) / np.float32(nb)
        for j in prange(nb):
            i = iid[j]
            lp = dot(Pu[j], Qp[j])
            if use_bias:  # the user's bias shifts every logit of the row alike: it cancels
                lp += BI[i, 0]
            dpos[j], losses[j] = example_gradient(G[j], lp - (log_q[i] + shift), i, negs, col,
                                                  scale)
        for j in range(nb):
            total += losses[j]
        np.dot(Gb, Qn, dPu[:nb])  # users' gradients through the negatives, from Q as it was
        np.dot(Gb.T, Pu[:nb], dQn)  # the negatives' gradients, from P as it was
        for a in prange(nu):
            g, gb = gP[a], gBU[a]
            g[:] = zero
            gb[0] = zero  # the softmax does not depend on a user's bias: only L2 moves it
            for e in range(ptrU[a], ptrU[a + 1]):
                j = memU[e]
                d = dpos[j]
                for f in range(k):
                    g[f] += dPu[j, f] + d * Qp[j, f]
        for b in prange(ni):
            g, gb = gQ[b], gBI[b]
            g[:] = zero
            gb[0] = zero
            for e in range(ptrI[b], ptrI[b + 1]):
                o = memI[e]
                if o < nb:
                    d = dpos[o]
                    for f in range(k):
                        g[f] += d * Pu[o, f]
                    gb[0] += d
                else:
                    c = o - nb
                    for f in range(k):
                        g[f] += dQn[c, f]
                    for j in range(nb):
                        gb[0] += G[j, c]
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


softmax_steps, softmax_steps_parallel = twins(_softmax_steps)


class SoftmaxKernel(FactorKernel):
    """A dot-product model's tables bound to ``softmax_steps``: sampled softmax with the shared
    negatives the trainer draws (``needs_negatives``) and the sampler's log-probabilities
    (``use_sampler``)."""

    needs_negatives = True

    def __init__(self, P, Q, BU=None, BI=None, rating_range=None):
        # a model trained to rank outputs its logits (``EmbeddingModel.raw_scores``)
        super().__init__(P, Q, BU, BI, rating_range=None)
        self.log_q = None
        self.shared = 0

    def use_sampler(self, sampler) -> None:
        """The logQ correction and the number of shared negatives, from the loss's sampler."""
        self.log_q = np.ascontiguousarray(sampler.log_probs(), dtype=np.float32)
        self.shared = int(sampler.shared)

    def bind(self, settings) -> None:
        if self.log_q is None:
            raise RuntimeError("SoftmaxKernel.use_sampler must come before bind")
        super().bind(settings)
        self.twins = Twins(softmax_steps, softmax_steps_parallel, settings)
        bs, k, S = settings.batch_size, self.arrays[0].shape[1], self.shared
        self.wu = np.zeros((5, bs + 1), dtype=np.int64)
        self.wi = np.zeros((5, bs + S + 1), dtype=np.int64)
        self.dpos = np.zeros(bs, dtype=np.float32)
        self.grid = np.zeros((bs, S), dtype=np.float32)  # inner products, then d loss / d logit
        self.losses = np.zeros(bs, dtype=np.float64)
        self.grads = (np.zeros((bs, k), np.float32), np.zeros((bs, 1), np.float32),
                      np.zeros((bs + S, k), np.float32), np.zeros((bs + S, 1), np.float32))
        # rows copied out of the tables, and the two products' results
        self.copies = (np.zeros((bs, k), np.float32), np.zeros((bs, k), np.float32),
                       np.zeros((S, k), np.float32), np.zeros((bs, k), np.float32),
                       np.zeros((S, k), np.float32), np.zeros(S, np.float32))

    def run(self, order, users, items, ratings, start: int, n_steps: int, *,
            negatives: np.ndarray) -> tuple[float, int]:
        """Steps from row ``start`` of ``order`` (``negatives``: S per step of the epoch, by
        step): (sum of the losses, steps taken)."""
        s = self.settings
        n_steps = min(n_steps, -(-(len(order) - start) // s.batch_size))
        P, Q, BU, BI = self.tables
        shift = np.float32(math.log(self.shared))

        def steps(fn, first_row, count):
            total, _ = fn(order, users, items, negatives, self.log_q, shift, first_row, count,
                          s.batch_size, P.w, Q.w, BU.w, BI.w, P.m, P.v, Q.m, Q.v, BU.m, BU.v,
                          BI.m, BI.v, self.last_u, self.last_i, self.step, self.alphas,
                          self.hyper, self.flags, self.slot_u, self.slot_i, self.wu, self.wi,
                          self.dpos, self.grid, self.losses, *self.grads, *self.copies)
            self.step += count
            return total

        with one_blas_thread():
            return self.twins.run(steps, start, n_steps), n_steps
