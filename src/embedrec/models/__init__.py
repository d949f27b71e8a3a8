"""Models: one module per model type, each registering a ``ModelSpec`` (see ``spec``), plus the
numpy scorer protocol and the one cold-start fallback composition.

Names are imported on first use, so that loading a saved model and recommending never imports
torch.
"""

from importlib import import_module

_WHERE = {
    "BiasBaseline": "baselines", "GlobalMean": "baselines", "Popular": "baselines",
    "EmbeddingModel": "base", "initialise": "init", "init_reference": "init",
    "ModelSpec": "spec", "Capabilities": "spec", "Shape": "spec", "UserParams": "spec",
    "Scorer": "scorer", "WithFallback": "fallback",
    "register": "registry", "get": "registry", "names": "registry", "specs": "registry",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"embedrec.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'embedrec.models' has no attribute {name!r}")
