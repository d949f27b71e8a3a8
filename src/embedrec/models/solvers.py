"""Small numeric solvers shared by the models' fold-ins (numpy only)."""

from __future__ import annotations

import numpy as np


def ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """argmin |x w - y|^2 + l2 |w|^2."""
    return np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), x.T @ y)


def gauss_newton(theta: np.ndarray, residual_jacobian, l2: float, iterations: int) -> np.ndarray:
    """Minimise sum(residual^2) + l2 * |theta|^2 with Levenberg-Marquardt steps.

    ``residual_jacobian(theta)`` returns (r, J) with r = target - prediction and J = d pred /
    d theta.
    """
    damping = 1e-3
    res, jac = residual_jacobian(theta)
    loss = res @ res + l2 * theta @ theta
    for _ in range(iterations):
        a = jac.T @ jac + (l2 + damping) * np.eye(len(theta))
        step = np.linalg.solve(a, jac.T @ res - l2 * theta)
        candidate = theta + step
        res_c, jac_c = residual_jacobian(candidate)
        loss_c = res_c @ res_c + l2 * candidate @ candidate
        if loss_c < loss:
            theta, res, jac, loss = candidate, res_c, jac_c, loss_c
            damping = max(damping / 3, 1e-9)
            if np.abs(step).max() < 1e-7:
                break
        else:
            damping *= 5
    return theta


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), written with tanh so that no input overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))
