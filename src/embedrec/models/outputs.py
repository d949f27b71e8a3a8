"""Whether a trained model's scores are ratings: its spec's capability AND its training loss.

A model that can predict ratings (``Capabilities.predicts_ratings``) only does so when it was
trained on them (``mse``); trained with a ranking loss its scores only rank. The loss is
recorded in the model's manifest (``loss``), so this is decided the same way in evaluation,
recommending and the service, without importing torch and without branching on model names.
"""

from __future__ import annotations

from embedrec.models.spec import RANKING_LOSSES, Capabilities, loss_predicts_ratings

__all__ = ["RANKING_LOSSES", "loss_predicts_ratings", "predicts_ratings", "why_no_ratings"]


def predicts_ratings(capabilities: Capabilities, loss: str | None) -> bool:
    return bool(capabilities.predicts_ratings) and loss_predicts_ratings(loss)


def why_no_ratings(name: str, capabilities: Capabilities, loss: str | None) -> str:
    """One line saying why a model does not predict ratings."""
    if not capabilities.predicts_ratings:
        return f"the {name} model ranks movies but does not predict ratings"
    return (f"this {name} model was trained with the {loss} ranking loss: its scores rank "
            "movies but are not ratings (train it with --loss mse to predict ratings)")
