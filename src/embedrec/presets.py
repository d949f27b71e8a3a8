"""Named bundles of settings. ``reference`` is the reference experiment, exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from embedrec.errors import ConfigError
from embedrec.training.config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class Preset:
    """Model shape, training settings and the validation carve-out, under one name."""

    name: str
    description: str
    train: TrainConfig
    n_factors: int = 50  # embedding width of every neural model
    valid_fraction: float = 0.0  # share of the training rows held out for validation
    split: str = "random"  # default split kind
    test_fraction: float = 0.1
    split_seed: int = 42  # the reference's random_state
    bias_damping: float = 5.0  # damping of the bias baseline (and the cold-start fallback)
    top_k: int = 10  # length of the recommendation lists scored by the top-N metrics
    relevance_threshold: float = 4.0  # a test rating at least this is a relevant item

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> Preset:
        """A copy with training settings (epochs, batch_size, lr, l2, engine, ...) replaced."""
        train_keys = set(TrainConfig.__dataclass_fields__)
        train_changes = {k: v for k, v in changes.items() if k in train_keys and v is not None}
        own = {k: v for k, v in changes.items() if k not in train_keys and v is not None}
        unknown = set(own) - set(Preset.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, train=replace(self.train, **train_changes), **own)


PRESETS: dict[str, Preset] = {
    "reference": Preset(
        name="reference",
        description=(
            "The reference experiment: Keras he_normal (fan_in = rows), L2 1e-6 on whole tables, "
            "Adam 1e-3 (eps 1e-7, Keras placement), batch 64, 5 epochs, all 90,752 training rows, "
            "exact arithmetic"
        ),
        train=TrainConfig(epochs=5, batch_size=64, lr=1e-3, l2=1e-6, engine="exact",
                          init="keras_he_normal"),
    ),
    "default": Preset(
        name="default",
        description=(
            "embedrec's default: the reference's models and initialiser, lazy (fast) Adam at batch "
            "256 (lr 2e-3, L2 3e-4 on the rows in each batch), up to 30 epochs with early "
            "stopping (patience 2) on a 5% validation split of the training rows"
        ),
        train=TrainConfig(epochs=30, batch_size=256, lr=2e-3, l2=3e-4, engine="fast", patience=2,
                          init="keras_he_normal"),
        valid_fraction=0.05,
    ),
    "large": Preset(
        name="large",
        description=(
            "For millions of ratings: lazy (fast) Adam at batch 4,096 with lr 5e-3 and L2 3e-5 "
            "on the rows in each batch, up to 10 epochs with early stopping (patience 2) on a 2% "
            "validation split"
        ),
        train=TrainConfig(epochs=10, batch_size=4_096, lr=5e-3, l2=3e-5, engine="fast",
                          patience=2, init="keras_he_normal"),
        valid_fraction=0.02,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}") from None
