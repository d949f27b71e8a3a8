"""The reference's neural network over concatenated user and movie embeddings.

concat(user, movie) -> Dropout -> Dense(hidden) -> ReLU -> Dropout -> Dense(1) -> sigmoid range.
The reference uses 50 factors each, dropout 0.05 and 0.5, and 10 hidden units.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from embedrec.errors import ConfigError
from embedrec.models.factors import FactorScorer, factor_shapes
from embedrec.models.registry import register
from embedrec.models.scorer import SigmoidRatings
from embedrec.models.solvers import gauss_newton, sigmoid
from embedrec.models.spec import Capabilities, ModelSpec, Shape, UserParams


@dataclass(frozen=True)
class MLPConfig:
    n_factors: int = 50  # width of the user and the movie embedding
    hidden: int = 10  # hidden units
    dropout_in: float = 0.05  # dropout on the concatenated embeddings
    dropout_hidden: float = 0.5  # dropout after the hidden layer

    def __post_init__(self) -> None:
        for key in ("n_factors", "hidden"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"mlp: {key} must be a whole number >= 1, got {value!r}")
        if not (0 <= self.dropout_in < 1 and 0 <= self.dropout_hidden < 1):
            raise ConfigError("mlp: dropout must be in [0, 1)")


@functools.cache
def module_class():
    """The torch modules (defined on first use: recommending never imports torch)."""
    import torch
    from torch import nn

    from embedrec.kernels import counter
    from embedrec.models.base import EmbeddingModel

    class Dropout(nn.Module):
        """Inverted dropout with counter-based masks (``embedrec.kernels.counter``).

        Same semantics as ``nn.Dropout`` (keep with probability 1 - p, scale by 1 / (1 - p)),
        with p resolved to 1/65536. The mask of the ``calls``-th training forward pass is a pure
        function of (seed, calls, element), so the compiled kernel draws the same masks; the
        trainer sets the seed through ``reseed``.
        """

        def __init__(self, p: float):
            super().__init__()
            self.p = float(p)
            self.threshold = counter.threshold(self.p)
            self.seed, self.calls = 0, 0

        def reseed(self, seed: int) -> None:
            self.seed, self.calls = int(seed), 0

        def random_state(self) -> dict:
            """Where the masks are (a checkpoint saves it, ``set_random_state`` restores it)."""
            return {"seed": self.seed, "calls": self.calls}

        def set_random_state(self, state: dict) -> None:
            self.seed, self.calls = int(state["seed"]), int(state["calls"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.threshold == 0:
                return x
            keep = counter.keep_mask(self.seed, self.calls, x.numel(), self.p)
            self.calls += 1
            keep = torch.from_numpy(keep).view(x.shape).to(x.device)
            return x * keep * (1.0 / (1.0 - self.p))

        def extra_repr(self) -> str:
            return f"p={self.p}"

    class MLPModel(EmbeddingModel):
        user_tables = ("user_factors",)
        item_tables = ("item_factors",)

        def __init__(self, n_users: int, n_items: int, config: MLPConfig,
                     rating_range: tuple[float, float]):
            super().__init__()
            k = config.n_factors
            self.user_factors = nn.Embedding(n_users, k)
            self.item_factors = nn.Embedding(n_items, k)
            self.head = nn.Sequential(
                Dropout(config.dropout_in),
                nn.Linear(2 * k, config.hidden),
                nn.ReLU(),
                Dropout(config.dropout_hidden),
                nn.Linear(config.hidden, 1),
            )
            self.low, self.high = float(rating_range[0]), float(rating_range[1])

        def score(self, user_rows, item_rows, batch):
            x = torch.cat([user_rows["user_factors"], item_rows["item_factors"]], dim=-1)
            return self.rating_link(self.head(x)[..., 0], self.low, self.high)

    return MLPModel


class MLPScorer(SigmoidRatings, FactorScorer):
    """The first layer is split into a user half and an item half, so each user-item pair
    costs a hidden-size add, ReLU and dot product instead of a full layer."""

    def __init__(self, config, arrays, shape):
        super().__init__(config, arrays, shape)
        a, k = self.weights, self.user_factors.shape[1]
        w1 = a["head.1.weight"]
        self.user_hidden = self.user_factors @ w1[:, :k].T  # (n_users, hidden)
        self.item_hidden = self.item_factors @ w1[:, k:].T + a["head.1.bias"]
        self.user_projection = w1[:, :k]  # (hidden, k): a user vector into the hidden layer
        self.w2, self.b2 = a["head.4.weight"][0], float(a["head.4.bias"][0])

    def predict(self, users, items):
        h = np.maximum(self.user_hidden[users] + self.item_hidden[items], 0.0)
        return self.to_rating(h @ self.w2 + self.b2)

    def rank_scores(self, users):
        users = np.asarray(users)
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        for start in range(0, len(users), 16):  # (16, n_items, hidden) at a time
            hidden = self.user_hidden[users[start:start + 16]][:, None, :]
            h = np.maximum(self.item_hidden[None, :, :] + hidden, 0.0)
            out[start:start + 16] = h @ self.w2 + self.b2
        return out

    def score_user(self, params: UserParams):
        h = np.maximum(self.item_hidden + self.user_projection @ np.asarray(params.vector,
                                                                            dtype=np.float32), 0.0)
        return h @ self.w2 + self.b2


class MLPSpec(ModelSpec):
    name = "mlp"
    summary = "a neural network over concatenated user and movie embeddings (the reference's NN)"
    Config = MLPConfig
    capabilities = Capabilities(item_vectors=True)
    colour = "#2ca02c"

    def search_space(self, trial, train):
        """The shared knobs, plus hidden units (up to a network 25 times the reference's width)
        and both dropouts."""
        model_values, train_values = super().search_space(trial, train)
        model_values |= {
            "hidden": trial.suggest_categorical("hidden", [10, 32, 64, 128, 256]),
            "dropout_in": trial.suggest_float("dropout_in", 0.0, 0.5),
            "dropout_hidden": trial.suggest_float("dropout_hidden", 0.0, 0.6),
        }
        return model_values, train_values

    def build(self, config: MLPConfig, shape: Shape):
        return module_class()(shape.n_users, shape.n_items, config, shape.rating_range)

    def kernel(self, module, loss):
        """The fused kernel, with the same counter-based dropout masks as ``Dropout``."""
        if loss != "mse":
            return None
        from embedrec.kernels.mlp import MLPKernel
        from embedrec.models.base import weights

        drop_in, first, _, drop_hidden, second = module.head
        layers = [weights(p) for p in (first.weight, first.bias, second.weight, second.bias)]
        return MLPKernel(weights(module.user_factors), weights(module.item_factors), layers,
                         dropout=(drop_in.p, drop_hidden.p),
                         seeds=lambda: (drop_in.seed, drop_hidden.seed),
                         rating_range=(module.low, module.high))

    def expected_shapes(self, config: MLPConfig, shape):
        h, k = config.hidden, config.n_factors
        return factor_shapes(config, shape) | {
            "head.1.weight": (h, 2 * k), "head.1.bias": (h,), "head.4.weight": (1, h),
            "head.4.bias": (1,)}

    def scorer(self, config, arrays, shape):
        return MLPScorer(config, arrays, shape)

    def fold_in(self, scorer: MLPScorer, items, ratings, *, base_bias, l2, iterations):
        """Gauss-Newton steps through the network, from the mean user vector."""
        lo, hi = scorer.low, scorer.high
        r = np.asarray(ratings, dtype=np.float64)
        proj = scorer.user_projection.astype(np.float64)  # (hidden, k)
        item_hidden = scorer.item_hidden[items].astype(np.float64)  # (n, hidden)
        w2, b2 = scorer.w2.astype(np.float64), scorer.b2

        def residual_jacobian(p):
            pre = item_hidden + proj @ p
            active = pre > 0
            s = sigmoid(np.where(active, pre, 0.0) @ w2 + b2)
            jac = ((hi - lo) * s * (1 - s))[:, None] * ((active * w2) @ proj)
            return r - (lo + (hi - lo) * s), jac

        start = scorer.user_factors.mean(axis=0).astype(np.float64)
        vector = gauss_newton(start, residual_jacobian, l2, iterations)
        return UserParams(vector=vector.astype(np.float32), bias=0.0, base_bias=base_bias)


register(MLPSpec())
