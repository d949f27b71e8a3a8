"""Score one trained model on test rows: rating metrics and top-k metrics, as compare records them."""

from __future__ import annotations

import numpy as np
import torch

from embedrec.evaluation.evaluate import cold_mask, evaluate_ranking, evaluate_ratings
from embedrec.persistence import ModelBundle
from embedrec.recommender import recommend_all


def n_params(model) -> int:
    if isinstance(model, torch.nn.Module):
        return int(sum(p.numel() for p in model.parameters()))
    return int(sum(np.size(v) for v in model.arrays().values()))


def score_model(name, model, config, fit_rows, test, preset, fallback, seen=None
                ) -> tuple[dict, np.ndarray | None, ModelBundle]:
    """Rating metrics (when the model predicts ratings) and top-k metrics on the test rows.

    ``seen`` (default ``fit_rows``) are the rows whose movies are not ranked for their user:
    the training part of the split, validation carve-out included. Returns the metrics, the
    final test predictions (None for a ranking-only model) and the model as a bundle.
    """
    pred = None
    if getattr(model, "predicts_ratings", True):
        metrics, pred = evaluate_ratings(model, fit_rows, test, fallback)
    else:
        cold_u, cold_i, cold = cold_mask(fit_rows, test)
        metrics = {key: None for key in ("rmse", "mae", "mse", "rmse_warm", "rmse_cold",
                                         "rmse_model_all")}
        metrics |= {"n_test": len(test), "n_cold": int(cold.sum()),
                    "n_cold_users": int(cold_u.sum()), "n_cold_items": int(cold_i.sum())}
    bundle = ModelBundle.from_training(name, model, fit_rows, fallback, seen=seen, config=config)
    metrics |= evaluate_ranking(lambda users: recommend_all(bundle, preset.top_k, users=users)[0],
                                test, k=preset.top_k, threshold=preset.relevance_threshold,
                                item_counts=bundle.item_counts)
    return metrics, pred, bundle
