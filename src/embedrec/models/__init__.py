"""Models: plain ``nn.Module``s (no training inside) and numpy baselines."""

from embedrec.models.baselines import BiasBaseline, GlobalMean, Popular
from embedrec.models.base import EmbeddingModel
from embedrec.models.init import initialise, init_reference
from embedrec.models.mf import BiasedModel, DotModel
from embedrec.models.mlp import MLPModel
from embedrec.models.registry import ALL_MODELS, BASELINES, NEURAL, ModelConfig, build_model

__all__ = [
    "ALL_MODELS", "BASELINES", "NEURAL", "BiasBaseline", "BiasedModel", "DotModel",
    "EmbeddingModel", "GlobalMean", "MLPModel", "Popular", "ModelConfig", "build_model", "init_reference",
    "initialise",
]
