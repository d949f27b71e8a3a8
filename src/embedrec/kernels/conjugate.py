"""Implicit ALS's conjugate-gradient solves, every row of a side at once (``embedrec.models.ials``).

Row r of one side solves ``(Y'Y + alpha Y_r'Y_r + reg_r I) x = (1 + alpha) Y_r' 1``, where Y_r
holds the fixed side's rows of r's interactions, by ``steps`` conjugate-gradient steps started
from its current factors (Takacs et al. 2011; Rendle et al. 2021). The product with the matrix
is applied without forming it: ``G v + reg_r v + alpha sum_j y_j (y_j . v)``. The rows' CG runs
side by side, each with its own step sizes: a step is one numba loop over chunks of
``CHUNK_ROWS`` rows, each chunk's Gram part one matrix product (BLAS, k^2 per row, where a row
at a time was a scalar loop) and the rest row by row (the interactions' 2 n_r k, the step size
and the updates). A row's arithmetic does not depend on the numba thread count. Locals are
float64 (four block x k arrays, ``BLOCK_ROWS`` rows at a time); the factors stay float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from embedrec.kernels.adam import JIT
from embedrec.kernels.tables import one_blas_thread

CHUNK_ROWS = 64  # rows whose Gram products are one BLAS call (not the thread count: a row's
# result does not depend on how many threads share the chunks)
BLOCK_ROWS = 16_384  # rows solved at a time: the four float64 work arrays stay block-sized


@njit(inline="always", **JIT)
def _complete(fixed, cols, lo_e, hi_e, alpha, reg, v, out):
    """out (holding G v) += reg v + alpha sum over the columns j of y_j (y_j . v)."""
    k = v.shape[0]
    for a in range(k):
        out[a] += reg * v[a]
    for e in range(lo_e, hi_e):
        y = fixed[cols[e]]
        d = 0.0
        for a in range(k):
            d += y[a] * v[a]
        d *= alpha
        for a in range(k):
            out[a] += d * y[a]


@njit(parallel=True, **JIT)
def _start(fixed, indptr, cols, alpha, regs, gram, chunk, x, ax, res, p, rs):
    """res = b - A x, p = res, rs = res . res for every row (b = (1 + alpha) times the sum of
    the row's fixed rows); ``ax`` is scratch."""
    n, k = x.shape
    for c in prange((n + chunk - 1) // chunk):
        first, last = c * chunk, min(n, (c + 1) * chunk)
        np.dot(x[first:last], gram, ax[first:last])  # G is symmetric: row r of X G is G x_r
        for r in range(first, last):
            lo_e, hi_e = indptr[r], indptr[r + 1]
            _complete(fixed, cols, lo_e, hi_e, alpha, regs[r], x[r], ax[r])
            for a in range(k):
                res[r, a] = -ax[r, a]
            for e in range(lo_e, hi_e):
                y = fixed[cols[e]]
                for a in range(k):
                    res[r, a] += (1.0 + alpha) * y[a]
            total = 0.0
            for a in range(k):
                p[r, a] = res[r, a]
                total += res[r, a] * res[r, a]
            rs[r] = total


@njit(parallel=True, **JIT)
def _step(fixed, indptr, cols, alpha, regs, gram, chunk, p, ap, x, res, rs):
    """One CG step of every row: A p, then the row's step size, x, res, p and rs."""
    n, k = p.shape
    for c in prange((n + chunk - 1) // chunk):
        first, last = c * chunk, min(n, (c + 1) * chunk)
        np.dot(p[first:last], gram, ap[first:last])
        for r in range(first, last):
            _complete(fixed, cols, indptr[r], indptr[r + 1], alpha, regs[r], p[r], ap[r])
            denom = 0.0
            for a in range(k):
                denom += p[r, a] * ap[r, a]
            step = rs[r] / denom if denom > 1e-20 else 0.0
            total = 0.0
            for a in range(k):
                x[r, a] += step * p[r, a]
                res[r, a] -= step * ap[r, a]
                total += res[r, a] * res[r, a]
            beta = total / rs[r] if rs[r] > 1e-20 else 0.0
            for a in range(k):
                p[r, a] = res[r, a] + beta * p[r, a]
            rs[r] = total


def cg_side(fixed, current, indptr, cols, gram, regs, alpha, steps, chunk=CHUNK_ROWS):
    """New factors of every row of one side (a CSR ``indptr``/``cols`` over ``fixed``'s rows;
    ``chunk`` rows to a BLAS call)."""
    fixed = np.ascontiguousarray(fixed)
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    gram = np.ascontiguousarray(gram, dtype=np.float64)
    regs = np.ascontiguousarray(regs, dtype=np.float64)
    out = np.empty_like(current)
    block = max(1, BLOCK_ROWS // chunk) * chunk  # whole chunks: the same products as unblocked
    with one_blas_thread():  # numba's threads each call BLAS: one BLAS thread apiece
        for lo in range(0, len(current), block):
            hi = min(lo + block, len(current))
            rows, weights = indptr[lo:hi + 1], regs[lo:hi]  # offsets stay into ``cols``
            x = current[lo:hi].astype(np.float64)
            scratch, res, p, rs = (np.empty_like(x), np.empty_like(x), np.empty_like(x),
                                   np.empty(len(x)))
            _start(fixed, rows, cols, float(alpha), weights, gram, int(chunk), x, scratch, res,
                   p, rs)
            for _ in range(int(steps)):
                _step(fixed, rows, cols, float(alpha), weights, gram, int(chunk), p, scratch, x,
                      res, rs)
            out[lo:hi] = x
    return out
