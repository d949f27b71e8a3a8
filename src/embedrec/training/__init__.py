"""Training: settings, Keras-style Adam as a torch optimizer, objectives, and the one trainer."""

from embedrec.training.config import ENGINES, TrainConfig
from embedrec.training.trainer import History, fit, train_model

__all__ = ["ENGINES", "History", "TrainConfig", "fit", "train_model"]
