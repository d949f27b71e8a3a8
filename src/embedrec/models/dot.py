"""V1 of the reference: prediction = dot(user vector, movie vector), unbounded."""

from __future__ import annotations

import functools

import numpy as np

from embedrec.models.factors import FactorScorer, factor_shapes
from embedrec.models.registry import register
from embedrec.models.solvers import ridge
from embedrec.models.spec import Capabilities, FactorsConfig, ModelSpec, Shape, UserParams


@functools.cache
def module_class():
    """The torch module (defined on first use: recommending never imports torch)."""
    from torch import nn

    from embedrec.models.base import EmbeddingModel, inner

    class DotModel(EmbeddingModel):
        user_tables = ("user_factors",)
        item_tables = ("item_factors",)

        def __init__(self, n_users: int, n_items: int, n_factors: int = 50):
            super().__init__()
            self.user_factors = nn.Embedding(n_users, n_factors)
            self.item_factors = nn.Embedding(n_items, n_factors)

        broadcasts = True

        def score(self, user_rows, item_rows, batch):
            return inner(user_rows["user_factors"], item_rows["item_factors"])

    return DotModel


class DotScorer(FactorScorer):
    def predict(self, users, items):
        return np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])

    def rank_scores(self, users):
        return self.user_factors[np.asarray(users)] @ self.item_factors.T

    def linear_factors(self):
        return self.user_factors, self.item_factors

    def rank_scores_torch(self, users, device):
        w = self.on_device(device)
        rows = w["user_factors.weight"][np.asarray(users)]
        return rows @ w["item_factors.weight"].T

    def score_user(self, params: UserParams):
        return self.item_factors @ np.asarray(params.vector, dtype=np.float32)


class DotSpec(ModelSpec):
    name = "dot"
    summary = "dot product of user and movie vectors (the reference's V1)"
    Config = FactorsConfig
    capabilities = Capabilities(item_vectors=True)
    colour = "#1f77b4"

    def build(self, config: FactorsConfig, shape: Shape):
        return module_class()(shape.n_users, shape.n_items, config.n_factors)

    def kernel(self, module, loss):
        from embedrec.kernels.objectives import factor_kernel
        from embedrec.models.base import weights

        Kernel = factor_kernel(loss)
        return Kernel and Kernel(weights(module.user_factors), weights(module.item_factors))

    def expected_shapes(self, config, shape):
        return factor_shapes(config, shape)

    def scorer(self, config, arrays, shape):
        return DotScorer(config, arrays, shape)

    def fold_in(self, scorer: DotScorer, items, ratings, *, base_bias, l2, iterations):
        """A ridge solve: the model is linear in the user vector."""
        q = scorer.item_factors[items].astype(np.float64)
        vector = ridge(q, np.asarray(ratings, dtype=np.float64), l2)
        return UserParams(vector=vector.astype(np.float32), bias=0.0, base_bias=base_bias)


register(DotSpec())
