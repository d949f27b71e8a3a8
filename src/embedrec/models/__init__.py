"""Models: plain ``nn.Module``s (no training inside), numpy baselines and numpy inference.

Names are imported on first use, so that loading a saved model and recommending never imports
torch.
"""

from importlib import import_module

_WHERE = {
    "BiasBaseline": "baselines", "GlobalMean": "baselines", "Popular": "baselines",
    "EmbeddingModel": "base", "BiasedModel": "mf", "DotModel": "mf", "MLPModel": "mlp",
    "initialise": "init", "init_reference": "init", "EmbeddingScorer": "inference",
    "ALL_MODELS": "registry", "BASELINES": "registry", "NEURAL": "registry",
    "ModelConfig": "registry", "build_model": "registry",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"embedrec.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'embedrec.models' has no attribute {name!r}")
