"""iALS's per-row conjugate-gradient kernel against a hand-computed system."""

import numba
import numpy as np

from embedrec.kernels.conjugate import cg_side


def _one_user(steps, start=(0.0, 0.0)):
    # items Y = [[1, 0], [1, 1]], the user took item 1, alpha 1, reg 0:
    # A = Y'Y + Y_1'Y_1 = [[2, 1], [1, 1]] + [[1, 1], [1, 1]] = [[3, 2], [2, 2]], b = 2 (1, 1)
    y = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    gram = (y.T @ y).astype(np.float64)
    return cg_side(y, np.array([start], np.float32), np.array([0, 1]), np.array([1]), gram,
                   np.zeros(1), 1.0, steps)[0]


def test_cg_steps_by_hand():
    # from 0: r = b = (2, 2), Ar = (10, 8), step = r.r / r.Ar = 8 / 36 -> x1 = (4/9, 4/9)
    np.testing.assert_allclose(_one_user(1), [4 / 9, 4 / 9], rtol=1e-6)
    # two steps solve a 2 x 2 system exactly: A^-1 b = (0, 1)
    np.testing.assert_allclose(_one_user(2), [0.0, 1.0], atol=1e-6)
    # zero steps keep the start; a start at the solution stays there
    np.testing.assert_array_equal(_one_user(0, (0.5, -1.0)), [0.5, -1.0])
    np.testing.assert_allclose(_one_user(3, (0.0, 1.0)), [0.0, 1.0], atol=1e-7)


def test_cg_rows_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(3)
    fixed = rng.normal(size=(40, 8)).astype(np.float32)
    counts = rng.integers(0, 9, size=25)
    counts[0] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)])
    cols = rng.integers(0, 40, size=indptr[-1])
    current = rng.normal(size=(25, 8)).astype(np.float32)
    gram = fixed.T.astype(np.float64) @ fixed
    regs = rng.uniform(0.1, 1.0, size=25)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = cg_side(fixed, current, indptr, cols, gram, regs, 3.0, 4)
        numba.set_num_threads(before)
        many = cg_side(fixed, current, indptr, cols, gram, regs, 3.0, 4)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    # a row with no interactions solves (G + reg I) x = 0 from its start: it shrinks towards 0
    empty = np.flatnonzero(counts == 0)
    assert np.all(np.linalg.norm(many[empty], axis=1) < np.linalg.norm(current[empty], axis=1))


def _row_cg(fixed, x, ids, gram, reg, alpha, steps):
    """One row's CG on the matrix it stands for, formed in full (the definition)."""
    y = fixed[ids].astype(np.float64)
    a = gram + alpha * y.T @ y + reg * np.eye(len(x))
    b = (1.0 + alpha) * y.sum(0)
    x = x.astype(np.float64)
    r = b - a @ x
    p, rs = r.copy(), r @ r
    for _ in range(steps):
        ap = a @ p
        step = rs / (p @ ap) if p @ ap > 1e-20 else 0.0
        x, r = x + step * p, r - step * ap
        p, rs = r + (r @ r / rs if rs > 1e-20 else 0.0) * p, r @ r
    return x


def test_cg_rows_solved_together_match_each_row_alone(monkeypatch):
    import embedrec.kernels.conjugate as conjugate

    rng = np.random.default_rng(4)
    fixed = rng.normal(size=(30, 6)).astype(np.float32)
    counts = rng.integers(0, 7, size=11)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    cols = rng.integers(0, 30, size=indptr[-1])
    current = rng.normal(size=(11, 6)).astype(np.float32)
    gram = fixed.T.astype(np.float64) @ fixed
    regs = rng.uniform(0.1, 2.0, size=11)
    whole = cg_side(fixed, current, indptr, cols, gram, regs, 2.0, 3)
    expected = np.stack([_row_cg(fixed, current[r], cols[indptr[r]:indptr[r + 1]], gram,
                                 regs[r], 2.0, 3) for r in range(11)])
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-6)
    for chunk in (1, 4):  # Gram products of 1 row, or of 4, 4 and 3 rows: the same rows
        np.testing.assert_allclose(cg_side(fixed, current, indptr, cols, gram, regs, 2.0, 3,
                                           chunk=chunk), whole, rtol=1e-6, atol=1e-7)
    # blocks of 4, 4 and 3 rows (chunks of 4), or of 8 and 3 (chunks of 8): the same rows
    monkeypatch.setattr(conjugate, "BLOCK_ROWS", 4)
    for chunk in (4, 8):
        np.testing.assert_allclose(cg_side(fixed, current, indptr, cols, gram, regs, 2.0, 3,
                                           chunk=chunk), whole, rtol=1e-6, atol=1e-7)
