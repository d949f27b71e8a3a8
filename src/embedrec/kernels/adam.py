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

import math

import numpy as np
from numba import njit, prange


def step_sizes(lr: float, beta1: float, beta2: float, first: int, last: int) -> np.ndarray:
    """alpha_t for t = 0..last (entries before ``first`` unused), as float32."""
    t = np.arange(last + 1, dtype=np.float64)
    t[:first] = 1.0
    return (lr * np.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)).astype(np.float32)


@njit(cache=True)
def update_row(w, m, v, row, g, alpha, b1, b2, eps, l2x2):
    """One Adam step of ``w[row]`` with gradient ``g`` (plus the L2 term)."""
    one = np.float32(1.0)
    for j in range(w.shape[1]):
        gj = g[j] + l2x2 * w[row, j]
        mj = b1 * m[row, j] + (one - b1) * gj
        vj = b2 * v[row, j] + (one - b2) * gj * gj
        m[row, j] = mj
        v[row, j] = vj
        w[row, j] = w[row, j] - alpha * mj / (np.float32(math.sqrt(vj)) + eps)


@njit(cache=True)
def catch_up(w, m, v, row, start, stop, alphas, b1, b2, eps, l2x2):
    """Steps ``start .. stop - 1`` of ``w[row]`` with the L2 gradient alone (dense engine)."""
    one = np.float32(1.0)
    for t in range(start, stop):
        alpha = alphas[t]
        for j in range(w.shape[1]):
            gj = l2x2 * w[row, j]
            mj = b1 * m[row, j] + (one - b1) * gj
            vj = b2 * v[row, j] + (one - b2) * gj * gj
            m[row, j] = mj
            v[row, j] = vj
            w[row, j] = w[row, j] - alpha * mj / (np.float32(math.sqrt(vj)) + eps)


@njit(cache=True)
def update_dense(w, m, v, g, alpha, b1, b2, eps):
    """One Adam step of a whole flat parameter (no L2: the networks' dense layers)."""
    one = np.float32(1.0)
    for j in range(w.shape[0]):
        gj = g[j]
        mj = b1 * m[j] + (one - b1) * gj
        vj = b2 * v[j] + (one - b2) * gj * gj
        m[j] = mj
        v[j] = vj
        w[j] = w[j] - alpha * mj / (np.float32(math.sqrt(vj)) + eps)


@njit(cache=True, parallel=True)
def catch_up_all(w, m, v, last, stop, alphas, b1, b2, eps, l2x2):
    """Bring every row of a table from step ``last[row]`` to step ``stop`` (dense engine,
    before the table is read whole). ``last`` is left as it was: tables of one side (user
    vectors and biases) share it, and the caller moves it on when all are done."""
    for row in prange(w.shape[0]):
        catch_up(w, m, v, row, last[row] + 1, stop + 1, alphas, b1, b2, eps, l2x2)
