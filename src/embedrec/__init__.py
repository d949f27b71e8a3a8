"""embedrec: embedding recommenders for explicit ratings, compared fairly.

The Python API mirrors the CLI::

    import embedrec
    data = embedrec.load_movielens("ml-latest-small")
    result = embedrec.run_comparison(data, preset=embedrec.get_preset("reference"), seeds=3)
    result.summary()
"""

__version__ = "0.1.0"

from embedrec.compare import Comparison, run_comparison, write_results
from embedrec.data import (
    Ratings, Split, load_movielens, load_ratings_file, make_split, random_split,
)
from embedrec.errors import ConfigError, DataError, DownloadError, EmbedrecError, TrainingError
from embedrec.evaluation import evaluate_ratings
from embedrec.models import BiasBaseline, GlobalMean, ModelConfig, build_model
from embedrec.presets import PRESETS, Preset, get_preset
from embedrec.training import TrainConfig, fit, train_model

__all__ = [
    "BiasBaseline", "Comparison", "ConfigError", "DataError", "DownloadError", "EmbedrecError",
    "GlobalMean", "ModelConfig", "PRESETS", "Preset", "Ratings", "Split", "TrainConfig",
    "TrainingError", "build_model", "evaluate_ratings", "fit", "get_preset", "load_movielens",
    "load_ratings_file", "make_split", "random_split", "run_comparison", "train_model",
    "write_results",
]
