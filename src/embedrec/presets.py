"""Named bundles of settings. ``reference`` is the reference experiment, exactly.

A preset holds four separate parts: how the data is split (``SplitConfig``), how models are
evaluated (``EvalConfig``), how torch models are trained (``TrainConfig``), and per-model
settings (``models``: model name -> {setting: value}; the key ``"*"`` applies a setting to every
model that has it, e.g. ``n_factors``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, replace

from embedrec.data.split import SPLITS
from embedrec.errors import ConfigError
from embedrec.training.config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    kind: str = "random"  # random | kfold | user-random | user-latest | time
    test_fraction: float = 0.1
    seed: int = 42  # the reference's random_state
    valid_fraction: float = 0.0  # share of the training rows held out for validation
    # after validation, every model learns from the whole training part (validation rows
    # included): fitted ones fit on it, torch ones train again for the epochs that were best
    refit: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SPLITS:
            raise ConfigError(f"unknown split {self.kind!r}; use one of {', '.join(SPLITS)}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test fraction must be in (0, 1), got {self.test_fraction}")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"validation fraction must be in [0, 1), got {self.valid_fraction}")
        if not isinstance(self.refit, bool):
            raise ConfigError(f"refit must be true or false, got {self.refit!r}")


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    top_k: int = 10  # length of the recommendation lists scored by the top-N metrics
    relevance_threshold: float = 4.0  # a test rating at least this is a relevant item
    fallback_damping: float = 5.0  # damping of the cold-start fallback (damped biases)

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"k must be at least 1, got {self.top_k}")
        if self.fallback_damping < 0:
            raise ConfigError("fallback damping must be >= 0")


# old flat names -> (part, field)
_ALIASES = {"split": ("split", "kind"), "split_seed": ("split", "seed"),
            "test_fraction": ("split", "test_fraction"), "valid_fraction": ("split", "valid_fraction"),
            "refit": ("split", "refit"),
            "top_k": ("evaluation", "top_k"), "relevance_threshold": ("evaluation", "relevance_threshold"),
            "fallback_damping": ("evaluation", "fallback_damping"),
            "bias_damping": ("evaluation", "fallback_damping")}


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    description: str
    train: TrainConfig
    split: SplitConfig = field(default_factory=SplitConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    models: dict = field(default_factory=lambda: {"*": {"n_factors": 50}})
    # per-model training overrides (model name -> {TrainConfig field: value}), e.g. the lr and
    # batch size a tuning run chose for each model
    train_by_model: dict = field(default_factory=dict)

    def train_config(self, name: str) -> TrainConfig:
        """The training settings of one model: ``train`` with its own overrides applied."""
        own = self.train_by_model.get(name) or {}
        if not own:
            return self.train
        try:
            return replace(self.train, **own)
        except TypeError as exc:
            raise ConfigError(f"training settings of {name!r}: {exc}") from None

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> Preset:
        """A copy with settings replaced (``None`` values are ignored).

        Training fields (epochs, batch_size, lr, l2, engine, device, ...) go to ``train``;
        ``split``, ``split_seed``, ``test_fraction``, ``valid_fraction``, ``refit`` to the
        split;
        ``top_k``, ``relevance_threshold``, ``fallback_damping`` to the evaluation;
        ``n_factors`` to every model.
        """
        parts = {"train": {}, "split": {}, "evaluation": {}}
        models = {k: dict(v) for k, v in self.models.items()}
        train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
        for key, value in changes.items():
            if value is None:
                continue
            if key in train_keys:
                parts["train"][key] = value
            elif key in _ALIASES:
                part, name = _ALIASES[key]
                parts[part][name] = value
            elif key == "n_factors":
                models.setdefault("*", {})["n_factors"] = value
            else:
                raise ConfigError(f"unknown setting {key!r}")
        try:
            return replace(self, train=replace(self.train, **parts["train"]),
                           split=replace(self.split, **parts["split"]),
                           evaluation=replace(self.evaluation, **parts["evaluation"]),
                           models=models)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def with_model_settings(self, settings: dict[str, dict]) -> Preset:
        """A copy with per-model settings merged in (model name -> {setting: value})."""
        models = {k: dict(v) for k, v in self.models.items()}
        for name, values in settings.items():
            models.setdefault(name, {}).update(values)
        return replace(self, models=models)

    def model_config(self, spec):
        """The config of one model: its defaults, then ``"*"`` settings it has, then its own."""
        fields = {f.name for f in dataclasses.fields(spec.Config)}
        values = {k: v for k, v in self.models.get("*", {}).items() if k in fields}
        values |= self.models.get(spec.name, {})
        return spec.config(**values)


PRESETS: dict[str, Preset] = {
    "reference": Preset(
        name="reference",
        description=(
            "The reference experiment: Keras he_normal (fan_in = rows), L2 1e-6 on whole tables, "
            "Adam 1e-3 (eps 1e-7, Keras placement), batch 64, 5 epochs, all 90,752 training rows, "
            "exact arithmetic"
        ),
        train=TrainConfig(epochs=5, batch_size=64, lr=1e-3, l2=1e-6, updates="dense",
                          init="keras_he_normal"),
    ),
    "default": Preset(
        name="default",
        description=(
            "embedrec's default: the reference's models and initialiser, lazy (fast) Adam at batch "
            "256 (lr 2e-3, L2 3e-4 on the rows in each batch), up to 30 epochs with early "
            "stopping (patience 2) on a 5% validation split of the training rows"
        ),
        train=TrainConfig(epochs=30, batch_size=256, lr=2e-3, l2=3e-4, patience=2,
                          init="keras_he_normal"),
        split=SplitConfig(valid_fraction=0.05),
    ),
    "large": Preset(
        name="large",
        description=(
            "For millions of ratings: lazy (fast) Adam at batch 4,096 with lr 5e-3 and L2 3e-5 "
            "on the rows in each batch, up to 10 epochs with early stopping (patience 2) on a 2% "
            "validation split"
        ),
        train=TrainConfig(epochs=10, batch_size=4_096, lr=5e-3, l2=3e-5, updates="lazy",
                          patience=2, init="keras_he_normal"),
        split=SplitConfig(valid_fraction=0.02),
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}") from None


PRESET_FILE_KEYS = ("name", "description", "split", "evaluation", "train", "models",
                    "train_by_model")


def preset_from_dict(raw: dict, *, origin: str = "preset file") -> Preset:
    """A preset from its JSON form (``Preset.to_dict``), every part checked.

    Missing parts take the ``default`` preset's values; unknown keys are an error.
    """
    from embedrec.models.registry import get as get_spec

    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a JSON object")
    unknown = set(raw) - set(PRESET_FILE_KEYS)
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"a preset file holds {', '.join(PRESET_FILE_KEYS)}")
    base = PRESETS["default"]

    def part(key, cls, default):
        value = raw.get(key)
        if value is None:
            return default
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {key!r} must be a JSON object")
        try:
            return cls(**value)
        except TypeError as exc:
            raise ConfigError(f"{origin}: {key}: {exc}") from None

    train = part("train", TrainConfig, base.train)
    models = raw.get("models", base.models)
    by_model = raw.get("train_by_model", {})
    for key, value in (("models", models), ("train_by_model", by_model)):
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ConfigError(f"{origin}: {key!r} must map model names to JSON objects")
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, values in by_model.items():
        get_spec(name)
        bad = set(values) - train_keys
        if bad:
            raise ConfigError(f"{origin}: train_by_model.{name}: unknown training setting(s) "
                              f"{', '.join(sorted(bad))}")
    preset = Preset(name=str(raw.get("name", "file")),
                    description=str(raw.get("description", f"settings from a {origin}")),
                    train=train, split=part("split", SplitConfig, base.split),
                    evaluation=part("evaluation", EvalConfig, base.evaluation),
                    models={k: dict(v) for k, v in models.items()},
                    train_by_model={k: dict(v) for k, v in by_model.items()})
    for name in set(models) - {"*"}:  # every model's settings and training settings are valid
        spec = get_spec(name)
        preset.model_config(spec)
        preset.train_config(name)
    return preset


def load_preset_file(path) -> Preset:
    """A preset from a JSON file (as ``embedrec tune`` writes it). Only data is read."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such preset file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON preset file ({exc})") from None
    return preset_from_dict(raw, origin=str(path))


def choose_preset(name: str, path=None) -> Preset:
    """``--preset-file`` when given, else the named preset."""
    return load_preset_file(path) if path is not None else get_preset(name)
