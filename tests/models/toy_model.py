"""A model defined only here, in the tests: the proof that a model is one unit.

``toy`` predicts sigmoid(global + user bias + movie bias) scaled to the rating range. It has an
embedding table per role and a dense parameter, a numpy scorer, a fold-in, and it registers
itself; nothing in ``src/`` knows its name. ``registered()`` adds it to the registry for a test
and takes it out afterwards.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from embedrec.models import registry
from embedrec.models.scorer import Scorer, SigmoidRatings
from embedrec.models.spec import Capabilities, ModelSpec, UserParams


@functools.cache
def module_class():
    import torch
    from torch import nn

    from embedrec.models.base import EmbeddingModel, scale_to_range

    class ToyModel(EmbeddingModel):
        user_tables = ("user_bias",)
        item_tables = ("item_bias",)

        def __init__(self, n_users, n_items, rating_range):
            super().__init__()
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            self.offset = nn.Parameter(torch.zeros(1))
            self.low, self.high = rating_range

        def score(self, user_rows, item_rows, batch):
            x = self.offset + user_rows["user_bias"][:, 0] + item_rows["item_bias"][:, 0]
            return scale_to_range(x, self.low, self.high)

    return ToyModel


class ToyScorer(SigmoidRatings, Scorer):
    def __init__(self, arrays, shape):
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.bu = self.weights["user_bias.weight"][:, 0]
        self.bi = self.weights["item_bias.weight"][:, 0]
        self.offset = float(self.weights["offset"][0])
        self.low, self.high = shape.rating_range

    def predict(self, users, items):
        return self.to_rating(self.offset + self.bu[users] + self.bi[items])

    def rank_scores(self, users):
        return (self.offset + self.bu[np.asarray(users)][:, None] + self.bi[None, :]).astype(np.float32)

    def score_user(self, params: UserParams):
        return (self.offset + params.bias + self.bi).astype(np.float32)

    def item_biases(self):
        return self.bi.astype(np.float64), "logit units"

    def arrays(self):
        return self.weights

    @property
    def n_items(self):
        return len(self.bi)


class ToySpec(ModelSpec):
    name = "toy"
    summary = "global offset + user and movie biases through a sigmoid (a test-only model)"
    capabilities = Capabilities()

    def build(self, config, shape):
        return module_class()(shape.n_users, shape.n_items, shape.rating_range)

    def expected_shapes(self, config, shape):
        return {"user_bias.weight": (shape.n_users, 1), "item_bias.weight": (shape.n_items, 1),
                "offset": (1,)}

    def scorer(self, config, arrays, shape):
        return ToyScorer(arrays, shape)

    def fold_in(self, scorer, items, ratings, *, base_bias, l2, iterations):
        """The logit-space bias that best fits the ratings, shrunk by l2."""
        target = scorer.from_rating(ratings).astype(np.float64) - scorer.offset - scorer.bi[items]
        bias = float(target.sum() / (len(target) + l2))
        return UserParams(vector=None, bias=bias, base_bias=base_bias)


@contextlib.contextmanager
def registered():
    registry.register(ToySpec())
    try:
        yield
    finally:
        registry.unregister("toy")
