"""Keras-placement Adam on rows of a table, and the catch-up that makes dense updates lazy.

Keras's update: ``w -= alpha_t * m / (sqrt(v) + eps)`` with ``alpha_t = lr * sqrt(1 - b2^t) /
(1 - b1^t)``; the L2 term ``l2 * sum(W**2)`` adds ``2 * l2 * w`` to the gradient. All arithmetic is
float32, as in torch.

The dense (exact) engine updates every row at every step. A row outside the batch sees only its
L2 gradient, so its update depends on nothing but its own (w, m, v) and the step's alpha:
``catch_up`` applies those skipped steps, in order and with the same float32 operations, when the
row is next read (or at the end of an epoch). The parameters are then the same as if every row
had been updated at every step, while the table is swept once per epoch instead of once per step.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# cached on disk; float division without Python's ZeroDivisionError check, so that loops vectorise
JIT = {"cache": True, "error_model": "numpy"}



@njit(**JIT)
def dot(a, b):
    """Sum of ``a * b`` in a fixed order (eight running sums, added pairwise): it vectorises
    without letting the compiler reorder floats, so every thread and twin gets the same bits."""
    zero = np.float32(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    n = a.shape[0]
    n8 = n - n % 8
    for f in range(0, n8, 8):
        s0 += a[f] * b[f]
        s1 += a[f + 1] * b[f + 1]
        s2 += a[f + 2] * b[f + 2]
        s3 += a[f + 3] * b[f + 3]
        s4 += a[f + 4] * b[f + 4]
        s5 += a[f + 5] * b[f + 5]
        s6 += a[f + 6] * b[f + 6]
        s7 += a[f + 7] * b[f + 7]
    for f in range(n8, n):
        s0 += a[f] * b[f]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def step_sizes(lr: float, beta1: float, beta2: float, first: int, last: int) -> np.ndarray:
    """alpha_t for t = 0..last (entries before ``first`` unused), as float32."""
    t = np.arange(last + 1, dtype=np.float64)
    t[:first] = 1.0
    return (lr * np.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)).astype(np.float32)


@njit(**JIT)
def update_row(w, m, v, row, g, alpha, b1, b2, eps, l2x2):
    """One Adam step of ``w[row]`` with gradient ``g`` (plus the L2 term)."""
    one = np.float32(1.0)
    wr, mr, vr = w[row], m[row], v[row]
    for j in range(wr.shape[0]):
        gj = g[j] + l2x2 * wr[j]
        mj = b1 * mr[j] + (one - b1) * gj
        vj = b2 * vr[j] + (one - b2) * gj * gj
        mr[j] = mj
        vr[j] = vj
        wr[j] = wr[j] - alpha * mj / (np.sqrt(vj) + eps)


@njit(**JIT)
def catch_up(w, m, v, row, start, stop, alphas, b1, b2, eps, l2x2):
    """Steps ``start .. stop - 1`` of ``w[row]`` with the L2 gradient alone (dense engine)."""
    catch_up_pair(w, m, v, w, m, v, False, row, start, stop, alphas, b1, b2, eps, l2x2)


@njit(**JIT)
def update_pair(w, m, v, bw, bm, bv, with_bias, row, g, gb, alpha, b1, b2, eps, l2x2, dense,
                last, t):
    """``update_row`` of ``w[row]`` and, when ``with_bias``, of its bias ``bw[row]``; in dense
    mode the row is then current at step ``t`` (``last[row] = t``)."""
    update_row(w, m, v, row, g, alpha, b1, b2, eps, l2x2)
    if with_bias:
        update_row(bw, bm, bv, row, gb, alpha, b1, b2, eps, l2x2)
    if dense:
        last[row] = t


@njit(**JIT)
def catch_up_pair(w, m, v, bw, bm, bv, with_bias, row, start, stop, alphas, b1, b2, eps, l2x2):
    """``catch_up`` of ``w[row]`` and, when ``with_bias``, of ``bw[row]`` (its bias column) in
    the same loop over steps: each step depends on the last, so a lone bias row would wait on
    its own chain of square roots and divisions; beside the vector row it costs nothing."""
    one = np.float32(1.0)
    wr, mr, vr = w[row], m[row], v[row]
    br, bmr, bvr = bw[row], bm[row], bv[row]
    for t in range(start, stop):
        alpha = alphas[t]
        for j in range(wr.shape[0]):
            gj = l2x2 * wr[j]
            mj = b1 * mr[j] + (one - b1) * gj
            vj = b2 * vr[j] + (one - b2) * gj * gj
            mr[j] = mj
            vr[j] = vj
            wr[j] = wr[j] - alpha * mj / (np.sqrt(vj) + eps)
        if with_bias:
            gb = l2x2 * br[0]
            mb = b1 * bmr[0] + (one - b1) * gb
            vb = b2 * bvr[0] + (one - b2) * gb * gb
            bmr[0] = mb
            bvr[0] = vb
            br[0] = br[0] - alpha * mb / (np.sqrt(vb) + eps)


@njit(**JIT)
def update_dense(w, m, v, g, alpha, b1, b2, eps):
    """One Adam step of a whole flat parameter (no L2: the networks' dense layers)."""
    one = np.float32(1.0)
    for j in range(w.shape[0]):
        gj = g[j]
        mj = b1 * m[j] + (one - b1) * gj
        vj = b2 * v[j] + (one - b2) * gj * gj
        m[j] = mj
        v[j] = vj
        w[j] = w[j] - alpha * mj / (np.sqrt(vj) + eps)


@njit(parallel=True, **JIT)
def catch_up_all(w, m, v, bw, bm, bv, with_bias, last, stop, alphas, b1, b2, eps, l2x2):
    """Bring every row of a table (and of its bias column) from step ``last[row]`` to step
    ``stop``, then set ``last`` to it (dense engine, before the table is read whole)."""
    for row in prange(w.shape[0]):
        catch_up_pair(w, m, v, bw, bm, bv, with_bias, row, last[row] + 1, stop + 1, alphas,
                      b1, b2, eps, l2x2)
        last[row] = stop
