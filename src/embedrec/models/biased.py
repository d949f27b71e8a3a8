"""V2 of the reference: sigmoid(dot + user bias + movie bias), scaled to the rating range."""

from __future__ import annotations

import functools

import numpy as np

from embedrec.models.factors import FactorScorer, factor_shapes
from embedrec.models.registry import register
from embedrec.models.scorer import SigmoidRatings
from embedrec.models.solvers import gauss_newton, ridge, sigmoid
from embedrec.models.spec import Capabilities, FactorsConfig, ModelSpec, Shape, UserParams


@functools.cache
def module_class():
    """The torch module (defined on first use: recommending never imports torch)."""
    from torch import nn

    from embedrec.models.base import EmbeddingModel, inner

    class BiasedModel(EmbeddingModel):
        user_tables = ("user_factors", "user_bias")
        item_tables = ("item_factors", "item_bias")

        def __init__(self, n_users: int, n_items: int, n_factors: int = 50, *,
                     rating_range: tuple[float, float] = (0.5, 5.0)):
            super().__init__()
            self.user_factors = nn.Embedding(n_users, n_factors)
            self.item_factors = nn.Embedding(n_items, n_factors)
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            self.low, self.high = float(rating_range[0]), float(rating_range[1])

        broadcasts = True

        def score(self, user_rows, item_rows, batch):
            dot = inner(user_rows["user_factors"], item_rows["item_factors"])
            logits = dot + user_rows["user_bias"][..., 0] + item_rows["item_bias"][..., 0]
            return self.rating_link(logits, self.low, self.high)

    return BiasedModel


class BiasedScorer(SigmoidRatings, FactorScorer):
    """Ranks by logits: monotonic in the rating, free of a saturated sigmoid's ties, and cheaper."""

    def __init__(self, config, arrays, shape):
        super().__init__(config, arrays, shape)
        self.user_b = self.weights["user_bias.weight"][:, 0]
        self.item_b = self.weights["item_bias.weight"][:, 0]

    def logits(self, users, items):
        x = np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])
        return x + self.user_b[users] + self.item_b[items]

    def predict(self, users, items):
        return self.to_rating(self.logits(np.asarray(users), np.asarray(items)))

    def rank_scores(self, users):
        users = np.asarray(users)
        x = self.user_factors[users] @ self.item_factors.T
        x += self.user_b[users][:, None] + self.item_b[None, :]
        return x

    def linear_factors(self):
        """The logits as one product: [P, bu, 1] . [Q, 1, bi] (made once)."""
        if "_linear" not in self.__dict__:
            nu, ni = len(self.user_b), len(self.item_b)
            self._linear = (
                np.hstack([self.user_factors, self.user_b[:, None], np.ones((nu, 1), np.float32)]),
                np.hstack([self.item_factors, np.ones((ni, 1), np.float32), self.item_b[:, None]]))
        return self._linear

    def rank_scores_torch(self, users, device):
        w = self.on_device(device)
        users = np.asarray(users)
        x = w["user_factors.weight"][users] @ w["item_factors.weight"].T
        return x + w["user_bias.weight"][users] + w["item_bias.weight"][:, 0][None, :]

    def score_user(self, params: UserParams):
        return self.item_factors @ np.asarray(params.vector, dtype=np.float32) + params.bias + self.item_b

    def item_biases(self):
        return self.item_b.astype(np.float64), "logit units"


class BiasedSpec(ModelSpec):
    name = "biased"
    summary = "dot product plus user and movie biases, sigmoid-scaled (the reference's V2)"
    Config = FactorsConfig
    capabilities = Capabilities(item_vectors=True)
    colour = "#d62728"

    def build(self, config: FactorsConfig, shape: Shape):
        return module_class()(shape.n_users, shape.n_items, config.n_factors,
                              rating_range=shape.rating_range)

    def kernel(self, module, loss):
        from embedrec.kernels.objectives import factor_kernel
        from embedrec.models.base import weights

        Kernel = factor_kernel(loss)
        return Kernel and Kernel(weights(module.user_factors), weights(module.item_factors),
                                     weights(module.user_bias), weights(module.item_bias),
                                     rating_range=(module.low, module.high))

    def expected_shapes(self, config, shape):
        return factor_shapes(config, shape) | {"user_bias.weight": (shape.n_users, 1),
                                               "item_bias.weight": (shape.n_items, 1)}

    def scorer(self, config, arrays, shape):
        return BiasedScorer(config, arrays, shape)

    def fold_in(self, scorer: BiasedScorer, items, ratings, *, base_bias, l2, iterations):
        """A ridge solve in logit space, refined by Gauss-Newton steps through the sigmoid."""
        lo, hi = scorer.low, scorer.high
        r = np.asarray(ratings, dtype=np.float64)
        q = scorer.item_factors[items].astype(np.float64)
        bi = scorer.item_b[items].astype(np.float64)
        frac = np.clip((r - lo) / (hi - lo), 0.05, 0.95)
        x = np.hstack([q, np.ones((len(items), 1))])
        theta = ridge(x, np.log(frac / (1 - frac)) - bi, l2)

        def residual_jacobian(t):
            s = sigmoid(x @ t + bi)
            return r - (lo + (hi - lo) * s), ((hi - lo) * s * (1 - s))[:, None] * x

        theta = gauss_newton(theta, residual_jacobian, l2, iterations)
        return UserParams(vector=theta[:-1].astype(np.float32), bias=float(theta[-1]),
                          base_bias=base_bias)


register(BiasedSpec())
