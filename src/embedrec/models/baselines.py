"""Baselines without torch: the global mean, damped user + item biases, and most-popular.

``BiasBaseline`` is also the documented cold-start fallback (see ``embedrec.models.fallback``):
a user or movie with no training ratings gets bias 0, so a cold row is predicted from whatever
part of it is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.models.registry import register
from embedrec.models.scorer import Scorer
from embedrec.models.spec import Capabilities, ModelSpec, Shape, UserParams


def _safe_ratio(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count, and 0 where count is 0 (no ratings and no damping)."""
    out = np.zeros(len(total))
    np.divide(total, count, out=out, where=count > 0)
    return out


class GlobalMean(Scorer):
    """Predicts the mean training rating for every pair."""

    name = "mean"

    def __init__(self, n_items: int = 0) -> None:
        self.mean = 0.0
        self._n_items = n_items

    def fit(self, train: Ratings) -> GlobalMean:
        self.mean = float(np.mean(train.ratings, dtype=np.float64))
        self._n_items = train.n_items
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.mean, dtype=np.float32)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return np.full((len(users), self._n_items), self.mean, dtype=np.float32)

    def score_user(self, params: UserParams) -> np.ndarray:
        return np.full(self._n_items, self.mean, dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": np.array([self.mean], dtype=np.float64)}

    @property
    def n_items(self) -> int:
        return self._n_items


class BiasBaseline(Scorer):
    """mean + b_user + b_item, fitted by alternating damped averages (a few ALS sweeps).

    b_item = sum(r - mean - b_user) / (n_item + item_damping), then
    b_user = sum(r - mean - b_item) / (n_user + user_damping), repeated ``sweeps`` times.
    Damping shrinks the biases of users and items with few ratings toward zero.
    """

    name = "bias"

    def __init__(self, *, user_damping: float = 5.0, item_damping: float = 5.0, sweeps: int = 3,
                 clip: tuple[float, float] | None = None):
        self.user_damping, self.item_damping, self.sweeps = user_damping, item_damping, sweeps
        self.clip = clip
        self.mean = 0.0
        self.user_bias = np.zeros(0)
        self.item_bias = np.zeros(0)

    def fit(self, train: Ratings) -> BiasBaseline:
        u, i = train.users, train.items
        r = train.ratings.astype(np.float64)
        self.mean = float(r.mean())
        n_u = np.bincount(u, minlength=train.n_users)
        n_i = np.bincount(i, minlength=train.n_items)
        bu, bi = np.zeros(train.n_users), np.zeros(train.n_items)
        resid = r - self.mean
        for _ in range(max(1, self.sweeps)):
            bi = _safe_ratio(np.bincount(i, resid - bu[u], minlength=train.n_items),
                             n_i + self.item_damping)
            bu = _safe_ratio(np.bincount(u, resid - bi[i], minlength=train.n_users),
                             n_u + self.user_damping)
        self.user_bias, self.item_bias = bu, bi
        if self.clip is None:
            self.clip = train.scale
        return self

    def _clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, *self.clip) if self.clip is not None else x

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        pred = self.mean + self.user_bias[users] + self.item_bias[items]
        return self._clip(pred).astype(np.float32)

    def ratings_block(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(len(users), len(items)) predictions."""
        return self._clip(self.mean + self.user_bias[users][:, None]
                          + self.item_bias[items][None, :]).astype(np.float32)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return self.ratings_block(np.asarray(users), np.arange(self.n_items))

    def score_user(self, params: UserParams) -> np.ndarray:
        return self._clip(self.mean + params.bias + self.item_bias).astype(np.float32)

    def user_bias_for(self, items: np.ndarray, ratings: np.ndarray) -> float:
        """The damped bias of a new user who gave ``ratings`` to ``items``."""
        resid = np.asarray(ratings, dtype=np.float64) - self.mean - self.item_bias[items]
        return float(resid.sum() / (len(resid) + self.user_damping))

    def item_biases(self) -> tuple[np.ndarray, str]:
        return np.asarray(self.item_bias, dtype=np.float64), "stars"

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": np.array([self.mean]), "user_bias": self.user_bias,
                "item_bias": self.item_bias}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> BiasBaseline:
        self.mean = float(arrays["mean"][0])
        self.user_bias = np.asarray(arrays["user_bias"], dtype=np.float64)
        self.item_bias = np.asarray(arrays["item_bias"], dtype=np.float64)
        return self

    @property
    def n_items(self) -> int:
        return len(self.item_bias)


class Popular(Scorer):
    """Most-popular recommender: ranks items by their number of training ratings.

    A top-N baseline only: it does not predict ratings.
    """

    name = "pop"
    predicts_ratings = False

    def __init__(self) -> None:
        self.counts = np.zeros(0)

    def fit(self, train: Ratings) -> Popular:
        self.counts = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The popularity of each item (a ranking score, not a rating)."""
        return self.counts[items].astype(np.float32)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts.astype(np.float32), (len(users), self.n_items)).copy()

    def score_user(self, params: UserParams) -> np.ndarray:
        return self.counts.astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    @property
    def n_items(self) -> int:
        return len(self.counts)


# ------------------------------------------------------------------ specs ---------------------
class MeanSpec(ModelSpec):
    name = "mean"
    summary = "the mean training rating for every pair"
    capabilities = Capabilities(trained_by="fit")
    colour = "#7f7f7f"

    def fit(self, config, train: Ratings, shape: Shape) -> GlobalMean:
        return GlobalMean().fit(train)

    def expected_shapes(self, config, shape: Shape) -> dict:
        return {"mean": (1,)}

    def scorer(self, config, arrays, shape: Shape) -> GlobalMean:
        model = GlobalMean(shape.n_items)
        model.mean = float(arrays["mean"][0])
        return model


@dataclass(frozen=True)
class BiasConfig:
    user_damping: float = 5.0  # pseudo-ratings at the mean added to every user
    item_damping: float = 5.0  # pseudo-ratings at the mean added to every movie
    sweeps: int = 3  # alternating passes

    def __post_init__(self) -> None:
        if self.user_damping < 0 or self.item_damping < 0 or self.sweeps < 1:
            raise ConfigError("bias: dampings must be >= 0 and sweeps >= 1")


class BiasSpec(ModelSpec):
    name = "bias"
    summary = "global mean + damped user and movie biases (also the cold-start fallback)"
    Config = BiasConfig
    capabilities = Capabilities(trained_by="fit")
    colour = "#9467bd"

    def fit(self, config: BiasConfig, train: Ratings, shape: Shape) -> BiasBaseline:
        return BiasBaseline(user_damping=config.user_damping, item_damping=config.item_damping,
                            sweeps=config.sweeps, clip=shape.rating_range).fit(train)

    def expected_shapes(self, config, shape: Shape) -> dict:
        return {"mean": (1,), "user_bias": (shape.n_users,), "item_bias": (shape.n_items,)}

    def scorer(self, config: BiasConfig, arrays, shape: Shape) -> BiasBaseline:
        return BiasBaseline(user_damping=config.user_damping, item_damping=config.item_damping,
                            sweeps=config.sweeps, clip=shape.rating_range).load_arrays(arrays)


class PopSpec(ModelSpec):
    name = "pop"
    summary = "most rated movies first (ranks only)"
    capabilities = Capabilities(trained_by="fit", predicts_ratings=False)
    colour = "#ff7f0e"

    def fit(self, config, train: Ratings, shape: Shape) -> Popular:
        return Popular().fit(train)

    def expected_shapes(self, config, shape: Shape) -> dict:
        return {"counts": (shape.n_items,)}

    def scorer(self, config, arrays, shape: Shape) -> Popular:
        model = Popular()
        model.counts = np.asarray(arrays["counts"], dtype=np.float64)
        if (model.counts < 0).any():
            raise ValueError("pop counts must not be negative")
        return model


register(MeanSpec())
register(BiasSpec())
register(PopSpec())
