"""Evaluation: pure metric functions and scoring with explicit cold-start accounting."""

from embedrec.evaluation.evaluate import cold_mask, evaluate_ranking, evaluate_ratings
from embedrec.evaluation.metrics import mae, mse, rmse

__all__ = ["cold_mask", "evaluate_ranking", "evaluate_ratings", "mae", "mse", "rmse"]
