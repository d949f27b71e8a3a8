"""Training: settings, Keras-style Adam, and the one trainer for every neural model."""

from embedrec.training.config import ENGINES, TrainConfig
from embedrec.training.trainer import History, fit, train_model

__all__ = ["ENGINES", "History", "TrainConfig", "fit", "train_model"]
