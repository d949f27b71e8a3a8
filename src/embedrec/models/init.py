"""Weight initialisers, each drawing from a generator that the caller passes in."""

from __future__ import annotations

import math

import torch
from torch import nn

from embedrec.errors import ConfigError

# std of a standard normal truncated at +-2: Keras divides by it so the kept values have std 1.
_TRUNC_STD = 0.87962566103423978


def keras_he_normal_(weight: torch.Tensor, fan_in: int, generator: torch.Generator) -> None:
    """Keras ``he_normal``: truncated normal at +-2 std, values with std sqrt(2 / fan_in)."""
    std = math.sqrt(2.0 / fan_in) / _TRUNC_STD
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std, generator=generator)


def _initialise(model: nn.Module, generator: torch.Generator, embedding) -> None:
    """``embedding(weight)`` for every embedding table; Keras he_normal for Dense layers
    (fan_in = inputs) with zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            with torch.no_grad():
                embedding(module.weight)
        elif isinstance(module, nn.Linear):
            keras_he_normal_(module.weight, module.in_features, generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def init_reference(model: nn.Module, generator: torch.Generator) -> None:
    """The reference's initialisation, with Keras's fan-in convention.

    For an embedding of shape (n, k) Keras takes fan_in = n (the number of rows), not k as
    PyTorch's ``kaiming_normal_`` would; for a Dense layer fan_in is its number of inputs.
    Dense biases start at zero.
    """
    _initialise(model, generator, lambda w: keras_he_normal_(w, w.shape[0], generator))


def init_normal(model: nn.Module, generator: torch.Generator, std: float = 0.01) -> None:
    """Small normal embedding vectors (std 0.01) and zero bias tables."""

    def embedding(weight: torch.Tensor) -> None:
        if weight.shape[1] == 1:
            weight.zero_()
        else:
            weight.normal_(0.0, std, generator=generator)

    _initialise(model, generator, embedding)


INITIALISERS = {"keras_he_normal": init_reference, "normal": init_normal}


def initialise(model: nn.Module, name: str, generator: torch.Generator) -> None:
    try:
        INITIALISERS[name](model, generator)
    except KeyError:
        raise ConfigError(f"unknown initialiser {name!r}; use one of {', '.join(INITIALISERS)}") from None
