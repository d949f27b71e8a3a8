"""What a model is: one ``ModelSpec`` per model type, declared in the model's own module.

A spec says everything the rest of embedrec needs to know about a model, so that persistence,
recommending, fold-in, evaluation, reports, the service and the CLI can iterate the registry
instead of branching on names:

- ``Config``: a frozen dataclass holding every knob the model has (reachable from presets, the
  CLI's ``--set MODEL.KEY=VALUE`` and Python);
- ``capabilities``: whether it predicts ratings or only ranks, how it is trained (by the torch
  trainer or by its own closed-form ``fit``), whether it scores cold items from features, and
  which inputs it needs;
- ``build`` (torch models) or ``fit`` (closed-form models): how it comes to be;
- ``expected_shapes`` and ``scorer``: the arrays a model file stores, checked on load, and the
  numpy scorer built from them (no torch needed to recommend);
- ``fold_in``: how a new user's parameters are fitted from a few ratings.

The shape of the data (number of users and items, rating range) is passed separately as a
``Shape``: it is not a knob.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from embedrec.errors import ConfigError

# inputs a model may need besides user and item ids
INPUTS = ("item_features", "timestamps", "history")
# the losses whose scores rank items but are not ratings (embedrec.training.losses.LOSSES)
RANKING_LOSSES = frozenset({"bpr", "bpr_pop", "softmax", "full_softmax"})
# the embedding widths a tuning trial draws; a ranking loss also tries wider tables (on
# protocol b's validation rows the full softmax's dot model ranked better at 512 than at 64,
# as iALS did)
WIDTHS = (16, 32, 50, 64, 128)
RANKING_WIDTHS = WIDTHS + (256, 512)


def loss_predicts_ratings(loss: str | None) -> bool:
    """False for a ranking loss; True for ``mse``, other rating losses, and no loss at all
    (closed-form models)."""
    return loss not in RANKING_LOSSES


def tuned_widths(train) -> list[int]:
    """The widths a trial of a model trained with ``train`` (a ``TrainConfig``) draws from."""
    return list(WIDTHS if loss_predicts_ratings(train.loss) else RANKING_WIDTHS)


@dataclass(frozen=True)
class Shape:
    """The data a model is built for: vocabulary sizes and the rating range."""

    n_users: int
    n_items: int
    rating_range: tuple[float, float] = (0.5, 5.0)

    def __post_init__(self) -> None:
        lo, hi = (float(x) for x in self.rating_range)
        if not lo < hi:
            raise ConfigError(f"rating range must be increasing, got {self.rating_range}")
        object.__setattr__(self, "rating_range", (lo, hi))


@dataclass(frozen=True)
class Capabilities:
    """What a model can do and what it needs."""

    predicts_ratings: bool = True  # False: scores only rank items (top-N, no RMSE)
    trained_by: str = "torch"  # "torch": the standard trainer; "fit": the spec's own fit()
    cold_items_from_features: bool = False  # scores items without ratings from their features
    item_vectors: bool = False  # has movie vectors (``similar``)
    needs: frozenset[str] = frozenset()  # subset of INPUTS: training fails without them
    uses: frozenset[str] = frozenset()  # subset of INPUTS: used when the data has them, else off

    def __post_init__(self) -> None:
        if self.trained_by not in ("torch", "fit"):
            raise ConfigError(f"trained_by must be 'torch' or 'fit', not {self.trained_by!r}")
        unknown = (set(self.needs) | set(self.uses)) - set(INPUTS)
        if unknown:
            raise ConfigError(f"unknown model inputs {sorted(unknown)}; known: {', '.join(INPUTS)}")


@dataclass(frozen=True)
class UserParams:
    """A (new) user's fitted parameters: what ``Scorer.score_user`` needs."""

    vector: np.ndarray | None = None  # user factors (None for models without them)
    bias: float = 0.0  # user bias on the model's own scale (stars, or logits)
    base_bias: float = 0.0  # damped user bias on the fallback's scale (for cold items)


@dataclass(frozen=True)
class EmptyConfig:
    """A model without knobs."""


class ModelSpec:
    """Base class of every model type. Subclasses set the class attributes and override the
    methods their ``capabilities.trained_by`` calls for."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    Config: ClassVar[type] = EmptyConfig
    capabilities: ClassVar[Capabilities] = Capabilities()
    colour: ClassVar[str | None] = None  # plot colour (reports pick one when None)

    # ---- config -----------------------------------------------------------------------
    def config(self, **values: Any):
        """A config from keyword values, checked (unknown keys are an error)."""
        known = {f.name for f in dataclasses.fields(self.Config)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"model {self.name!r} has no setting(s) {', '.join(sorted(unknown))}; "
                              f"its settings: {', '.join(sorted(known)) or '(none)'}")
        try:
            return self.Config(**values)
        except TypeError as exc:
            raise ConfigError(f"model {self.name!r}: {exc}") from None

    def config_from_dict(self, raw: dict, *, legacy: tuple[str, ...] = ()):
        """The config stored in a model file (``name`` and ``legacy`` keys are dropped)."""
        if not isinstance(raw, dict):
            raise ValueError(f"the {self.name} config must be a JSON object")
        known = {f.name for f in dataclasses.fields(self.Config)}
        values = {k: v for k, v in raw.items()
                  if k != "name" and (k in known or k not in legacy)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return self.config(**values)

    def config_to_dict(self, config) -> dict:
        out = {"name": self.name}
        for key, value in dataclasses.asdict(config).items():
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def parse_setting(self, key: str, text: str):
        """A ``--set MODEL.KEY=VALUE`` value converted to the type of the config field."""
        fields = {f.name: f for f in dataclasses.fields(self.Config)}
        if key not in fields:
            raise ConfigError(f"model {self.name!r} has no setting {key!r}; its settings: "
                              f"{', '.join(sorted(fields)) or '(none)'}")
        kind = typing.get_type_hints(self.Config).get(key, str)
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return text.lower() in ("true", "1", "yes")
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
            if typing.get_origin(kind) is tuple:
                inner = typing.get_args(kind)[0]
                return tuple(inner(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"--set {self.name}.{key}={text!r}: not a valid {getattr(kind, '__name__', kind)}") from None
        return text

    # ---- tuning --------------------------------------------------------------------------
    def search_space(self, trial, train) -> tuple[dict, dict]:
        """One tuning trial's settings: (model settings, training settings), drawn from
        ``trial`` (an Optuna trial: ``suggest_float``/``suggest_int``/``suggest_categorical``).

        The default tunes what every torch model has: the learning rate, L2 and batch size
        (32 to 2,048: small batches are cheap with a compiled kernel and often the most accurate
        on small data; ``train``, the preset's ``TrainConfig``, is the base) and ``n_factors``
        when the Config has it (16 to 128, and up to 512 for a ranking loss: ``tuned_widths``).
        Closed-form models have nothing to tune by default. Override to add a model's own
        knobs; a search-space file (``embedrec tune --space``) can override any of them.
        """
        if self.capabilities.trained_by != "torch":
            return {}, {}
        train_values = {
            "lr": trial.suggest_float("lr", 1e-3, 3e-2, log=True),
            "l2": trial.suggest_float("l2", 1e-6, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size",
                                                    [32, 64, 128, 256, 512, 1024, 2048]),
        }
        return self.width_space(trial, tuned_widths(train)), train_values

    def width_space(self, trial, widths: list[int]) -> dict:
        """The embedding width(s) a trial draws from ``widths``: ``n_factors`` when the Config
        has it."""
        if "n_factors" not in {f.name for f in dataclasses.fields(self.Config)}:
            return {}
        return {"n_factors": trial.suggest_categorical("n_factors", widths)}

    def search_start(self, config) -> dict:
        """Values of drawn parameters that are not ``config`` fields but reproduce it (e.g. a
        depth that sets hidden widths). Tuning's first trial is the preset's own settings:
        every drawn parameter named like a Config or TrainConfig field takes that field's
        value, and these fill in the rest."""
        return {}

    # ---- making it ---------------------------------------------------------------------
    def build(self, config, shape: Shape):
        """An untrained torch module (``trained_by == 'torch'``)."""
        raise NotImplementedError(f"{self.name} is not a torch model")

    def fit(self, config, train, shape: Shape):
        """A fitted numpy scorer (``trained_by == 'fit'``)."""
        raise NotImplementedError(f"{self.name} is not fitted in closed form")

    def kernel(self, module, loss: str):
        """A compiled kernel that trains ``module`` (built by ``build``) with ``loss``, or None.

        A kernel (``embedrec.kernels``) holds the module's weights as numpy views and updates
        them in place; it has ``bind(settings)``, ``run(order, users, items, ratings, start,
        n_steps)`` and ``sync()``; one with ``needs_negatives`` (BPR) also takes
        ``negatives=``, the loss sampler's draw for each row of ``order``. The trainer uses it
        under ``--engine auto|kernel`` on the CPU and takes torch steps otherwise. The default
        has none."""
        return None

    def module_arrays(self, module) -> dict[str, np.ndarray]:
        """A trained torch module's arrays as stored in a model file (its ``state_dict``)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}

    # ---- model files -------------------------------------------------------------------
    def expected_shapes(self, config, shape: Shape) -> dict[str, tuple[int, ...]]:
        """Array name -> shape of everything the model stores."""
        raise NotImplementedError

    def scorer(self, config, arrays: dict[str, np.ndarray], shape: Shape):
        """The numpy scorer from stored arrays (already checked against ``expected_shapes``)."""
        raise NotImplementedError

    def load_scorer(self, config, arrays: dict[str, np.ndarray], shape: Shape):
        """Check names, shapes and finiteness, then build the scorer."""
        check_arrays(self.name, arrays, self.expected_shapes(config, shape))
        return self.scorer(config, arrays, shape)

    # ---- new users ---------------------------------------------------------------------
    def fold_in(self, scorer, items: np.ndarray, ratings: np.ndarray, *, base_bias: float,
                l2: float, iterations: int) -> UserParams:
        """A new user's parameters from item indices and ratings, item parameters fixed.

        ``base_bias`` is the damped user bias of the fallback, which every model may use.
        The default fits only that bias.
        """
        return UserParams(vector=None, bias=base_bias, base_bias=base_bias)

    # ---- ablation ----------------------------------------------------------------------
    def ablations(self, config) -> list[tuple[str, dict]]:
        """(label suffix, settings) pairs, one per input of ``config`` switched in turn: every
        boolean setting named ``use_*``, off (``-genres``) when it is on, on (``+implicit``)
        when it is off."""
        out = []
        for f in dataclasses.fields(self.Config):
            value = getattr(config, f.name)
            if f.name.startswith("use_") and isinstance(value, bool):
                out.append((f"{'-' if value else '+'}{f.name[4:]}", {f.name: not value}))
        return out

    def __repr__(self) -> str:
        return f"<model spec {self.name}>"


def check_arrays(name: str, arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> None:
    """Names, shapes and finiteness of a model's stored arrays; ValueError says what is wrong."""
    if set(arrays) != set(shapes):
        missing, extra = set(shapes) - set(arrays), set(arrays) - set(shapes)
        raise ValueError(f"weights do not fit a {name} model: missing {sorted(missing)}, "
                         f"unexpected {sorted(extra)}")
    for key, want in shapes.items():
        got = tuple(arrays[key].shape)
        if got != tuple(want):
            raise ValueError(f"{key} has shape {got}, expected {tuple(want)}")
        check_values(key, arrays[key])


# No trained model holds values this large; a file that does is corrupt or hostile, and its
# products would overflow float32.
MAX_ABS_VALUE = 1e6


def check_values(key: str, array: np.ndarray) -> None:
    """A stored float array must be finite and within +-MAX_ABS_VALUE (ValueError if not)."""
    if array.dtype.kind != "f" or not array.size:
        return
    if not np.isfinite(array).all():
        raise ValueError(f"{key} holds NaN or infinite values")
    if np.abs(array.astype(np.float64)).max() >= MAX_ABS_VALUE:
        raise ValueError(f"{key} holds values beyond +-{MAX_ABS_VALUE:g} (not a trained model)")


@dataclass(frozen=True)
class FactorsConfig:
    """Shared knob of the embedding models: the embedding width."""

    n_factors: int = 50

    def __post_init__(self) -> None:
        if not isinstance(self.n_factors, int) or self.n_factors < 1:
            raise ConfigError(f"n_factors must be a whole number >= 1, got {self.n_factors!r}")
