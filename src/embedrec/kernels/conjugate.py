"""Implicit ALS's conjugate-gradient solves, one row per thread (``embedrec.models.ials``).

Row r of one side solves ``(Y'Y + alpha Y_r'Y_r + reg_r I) x = (1 + alpha) Y_r' 1``, where Y_r
holds the fixed side's rows of r's interactions, by ``steps`` conjugate-gradient steps started
from its current factors (Takacs et al. 2011; Rendle et al. 2021). The product with the matrix
is applied without forming it: ``G v + reg_r v + alpha sum_j y_j (y_j . v)``, so a step costs
k^2 + 2 n_r k. Rows are independent: each thread takes whole rows, and a row's arithmetic does
not depend on the thread count. Locals are float64; the factors stay float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from embedrec.kernels.adam import JIT


@njit(**JIT)
def _apply(gram, fixed, cols, lo, hi, alpha, reg, v, out):
    """out = (G + reg I) v + alpha sum over the row's columns j of y_j (y_j . v)."""
    k = v.shape[0]
    for a in range(k):
        s = reg * v[a]
        for b in range(k):
            s += gram[a, b] * v[b]
        out[a] = s
    for e in range(lo, hi):
        y = fixed[cols[e]]
        d = 0.0
        for a in range(k):
            d += y[a] * v[a]
        d *= alpha
        for a in range(k):
            out[a] += d * y[a]


@njit(parallel=True, **JIT)
def cg_side(fixed, current, indptr, cols, gram, regs, alpha, steps):
    """New factors of every row of one side (a CSR ``indptr``/``cols`` over ``fixed``'s rows)."""
    n, k = current.shape
    out = np.empty_like(current)
    for r in prange(n):
        lo, hi = indptr[r], indptr[r + 1]
        x = current[r].astype(np.float64)
        b = np.zeros(k)
        for e in range(lo, hi):
            y = fixed[cols[e]]
            for a in range(k):
                b[a] += y[a]
        b *= 1.0 + alpha
        ap = np.empty(k)
        _apply(gram, fixed, cols, lo, hi, alpha, regs[r], x, ap)
        res = b - ap
        p = res.copy()
        rs = np.dot(res, res)
        for _ in range(steps):
            _apply(gram, fixed, cols, lo, hi, alpha, regs[r], p, ap)
            denom = np.dot(p, ap)
            step = rs / denom if denom > 1e-20 else 0.0
            x += step * p
            res -= step * ap
            rs_new = np.dot(res, res)
            p = res + (rs_new / rs if rs > 1e-20 else 0.0) * p
            rs = rs_new
        for a in range(k):
            out[r, a] = x[a]
    return out
