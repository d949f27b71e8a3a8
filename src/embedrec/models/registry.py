"""The one registry of model types: name -> ``ModelSpec``.

Every built-in model lives in its own module, which registers its spec when imported; the tuple
below is the one line a new built-in model adds. Code outside ``embedrec.models`` asks the
registry (``get``, ``names``, ``specs``) and the spec, never a model's name. A model defined
elsewhere (a plug-in, or a test) calls ``register`` itself.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from embedrec.errors import ConfigError

if TYPE_CHECKING:
    from embedrec.models.spec import ModelSpec

# the built-in models, in the order compare runs and reports them
BUILTIN = (
    "embedrec.models.dot",
    "embedrec.models.biased",
    "embedrec.models.mlp",
    "embedrec.models.baselines",  # mean, bias, pop
    "embedrec.models.hybrid",  # hybrid_mf, hybrid_nn
    "embedrec.models.ease",  # ranking baselines (issue 14): ease, ials, knn
    "embedrec.models.ials",
    "embedrec.models.knn",
)

_SPECS: dict[str, ModelSpec] = {}
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            import_module(module)


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model type; a second spec under a registered name is refused unless ``replace``."""
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a model name must be an identifier, got {name!r}")
    if name in _SPECS and not replace and type(_SPECS[name]) is not type(spec):
        raise ConfigError(f"model {name!r} is already registered")
    _SPECS[name] = spec
    return spec


def unregister(name: str) -> None:
    _SPECS.pop(name, None)


def get(name: str) -> ModelSpec:
    _load_builtins()
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; use one of {', '.join(_SPECS)}") from None


def names(*, trained_by: str | None = None) -> tuple[str, ...]:
    """Registered model names (optionally only those trained by 'torch' or 'fit')."""
    _load_builtins()
    return tuple(n for n, s in _SPECS.items()
                 if trained_by is None or s.capabilities.trained_by == trained_by)


def specs() -> tuple[ModelSpec, ...]:
    _load_builtins()
    return tuple(_SPECS.values())


def check_model_names(requested: list[str]) -> list[str]:
    known = names()
    unknown = [n for n in requested if n not in known]
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; use {', '.join(known)}")
    if len(set(requested)) != len(requested):
        raise ConfigError(f"a model is named twice in {', '.join(requested)}")
    return list(requested)
