"""Model names -> classes, and building a neural model from a plain, JSON-able config."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from typing import TYPE_CHECKING

from embedrec.errors import ConfigError

if TYPE_CHECKING:
    from embedrec.models.base import EmbeddingModel

NEURAL = ("dot", "biased", "mlp")
BASELINES = ("mean", "bias", "pop")
ALL_MODELS = tuple(NEURAL) + BASELINES


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Everything needed to rebuild a neural model's shape (weights come separately)."""

    name: str  # dot | biased | mlp
    n_users: int
    n_items: int
    n_factors: int = 50  # embedding width
    rating_range: tuple[float, float] = (0.5, 5.0)  # sigmoid output range (biased, mlp)
    hidden: int = 10  # mlp: hidden units
    dropout_in: float = 0.05  # mlp: dropout on the concatenated embeddings
    dropout_hidden: float = 0.5  # mlp: dropout after the hidden layer

    def __post_init__(self) -> None:
        if self.name not in NEURAL:
            raise ConfigError(f"unknown model {self.name!r}; neural models: {', '.join(NEURAL)}")
        if self.n_factors < 1 or self.hidden < 1:
            raise ConfigError("n_factors and hidden must be at least 1")
        if not (0 <= self.dropout_in < 1 and 0 <= self.dropout_hidden < 1):
            raise ConfigError("dropout must be in [0, 1)")
        lo, hi = self.rating_range
        if not lo < hi:
            raise ConfigError(f"rating range must be increasing, got {self.rating_range}")
        object.__setattr__(self, "rating_range", (float(lo), float(hi)))

    def to_dict(self) -> dict:
        return asdict(self) | {"rating_range": list(self.rating_range)}

    @classmethod
    def from_dict(cls, raw: dict) -> ModelConfig:
        raw = dict(raw)
        raw["rating_range"] = tuple(raw.get("rating_range", (0.5, 5.0)))
        return cls(**raw)


def build_model(config: ModelConfig) -> EmbeddingModel:
    """An untrained module of the configured shape (initialise it separately)."""
    from embedrec.models.mf import BiasedModel, DotModel
    from embedrec.models.mlp import MLPModel

    if config.name == "dot":
        return DotModel(config.n_users, config.n_items, config.n_factors)
    if config.name == "biased":
        return BiasedModel(config.n_users, config.n_items, config.n_factors,
                           rating_range=config.rating_range)
    return MLPModel(config.n_users, config.n_items, config.n_factors, hidden=config.hidden,
                    dropout_in=config.dropout_in, dropout_hidden=config.dropout_hidden,
                    rating_range=config.rating_range)


def check_model_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in ALL_MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; use {', '.join(ALL_MODELS)}")
    return names
