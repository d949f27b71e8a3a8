"""Score one bundled model on test rows: rating metrics and top-k metrics, as compare records
them. The bundle's scorer with its fallback is what is scored, as recommending and the service
use it."""

from __future__ import annotations

import numpy as np

from embedrec.evaluation.evaluate import cold_counts, evaluate_ranking, evaluate_ratings
from embedrec.recommender import recommend_all

RATING_KEYS = ("rmse", "mae", "mse", "rmse_warm", "rmse_cold", "rmse_cold_fallback",
               "rmse_model_all")


def score_bundle(bundle, test, evaluation, device=None) -> tuple[dict, np.ndarray | None]:
    """Rating metrics (when the model predicts ratings) and top-k metrics on the test rows.

    Returns the metrics and the final test predictions (None for a ranking-only model, whose
    rating metrics are None). ``device``: where top-N runs (None: numpy; see
    ``recommender.top_for_users``).
    """
    scored = bundle.scored
    pred = None
    if scored.predicts_ratings:
        metrics, pred = evaluate_ratings(scored, test)
    else:
        metrics = dict.fromkeys(RATING_KEYS) | cold_counts(scored, test)[0]
    k = evaluation.top_k
    metrics |= evaluate_ranking(lambda users: recommend_all(bundle, k, users=users,
                                                            device=device)[0], test,
                                k=k, threshold=evaluation.relevance_threshold,
                                item_counts=bundle.item_counts)
    return metrics, pred
