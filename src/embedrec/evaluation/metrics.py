"""Rating-prediction metrics as pure functions on arrays."""

from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"predictions have shape {pred.shape}, truth {truth.shape}")
    if pred.size == 0:
        raise ValueError("no predictions to score")
    return pred, truth


def mse(pred: np.ndarray, truth: np.ndarray) -> float:
    pred, truth = _check(pred, truth)
    return float(np.mean((pred - truth) ** 2))


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(mse(pred, truth)))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    pred, truth = _check(pred, truth)
    return float(np.mean(np.abs(pred - truth)))
