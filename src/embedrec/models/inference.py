"""Numpy inference for trained neural models: what recommending and serving need, without torch.

A trained ``nn.Module`` is turned into an ``EmbeddingScorer`` holding plain float32 arrays
(the same names as the module's ``state_dict``). Scoring a user against the whole catalogue is a
matrix product; for the MLP the first layer is split into a user half and an item half, so each
user-item pair costs a hidden-size add, ReLU and dot product instead of a full layer.
"""

from __future__ import annotations

import numpy as np

NEURAL_NAMES = ("dot", "biased", "mlp")


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """The weight names and shapes a neural model of this config has."""
    name, n_u, n_i, k = config["name"], config["n_users"], config["n_items"], config["n_factors"]
    shapes = {"user_factors.weight": (n_u, k), "item_factors.weight": (n_i, k)}
    if name == "biased":
        shapes |= {"user_bias.weight": (n_u, 1), "item_bias.weight": (n_i, 1)}
    elif name == "mlp":
        h = config["hidden"]
        shapes |= {"head.1.weight": (h, 2 * k), "head.1.bias": (h,), "head.4.weight": (1, h),
                   "head.4.bias": (1,)}
    elif name != "dot":
        raise ValueError(f"unknown neural model {name!r}")
    return shapes


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class EmbeddingScorer:
    """A trained dot, biased or mlp model as numpy arrays; predicts and scores catalogues."""

    predicts_ratings = True

    def __init__(self, config: dict, arrays: dict[str, np.ndarray]):
        shapes = expected_shapes(config)
        if set(arrays) != set(shapes):
            missing, extra = set(shapes) - set(arrays), set(arrays) - set(shapes)
            raise ValueError(f"weights do not fit a {config['name']} model: missing "
                             f"{sorted(missing)}, unexpected {sorted(extra)}")
        for key, shape in shapes.items():
            if tuple(arrays[key].shape) != shape:
                raise ValueError(f"{key} has shape {tuple(arrays[key].shape)}, expected {shape}")
        self.config = dict(config)
        self.name = config["name"]
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.low, self.high = (float(x) for x in config.get("rating_range", (0.5, 5.0)))
        a = self.weights
        self.user_factors, self.item_factors = a["user_factors.weight"], a["item_factors.weight"]
        if self.name == "mlp":
            k = self.user_factors.shape[1]
            w1 = a["head.1.weight"]
            self.user_hidden = self.user_factors @ w1[:, :k].T  # (n_users, hidden)
            self.item_hidden = self.item_factors @ w1[:, k:].T + a["head.1.bias"]
            self.user_projection = w1[:, :k]  # (hidden, k): maps a user vector into the hidden layer
            self.w2, self.b2 = a["head.4.weight"][0], float(a["head.4.bias"][0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights by ``state_dict`` name (what a model file stores)."""
        return self.weights

    @classmethod
    def from_module(cls, config: dict, module) -> EmbeddingScorer:
        arrays = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
        return cls(config, arrays)

    # ---- scoring -----------------------------------------------------------------------
    def to_rating(self, x: np.ndarray) -> np.ndarray:
        """Ranking scores (logits) to ratings; the identity for the unbounded dot model."""
        if self.name == "dot":
            return np.asarray(x, dtype=np.float32)
        return (_sigmoid(x) * (self.high - self.low) + self.low).astype(np.float32)

    def from_rating(self, r: np.ndarray) -> np.ndarray:
        """Ratings to ranking scores (the inverse of ``to_rating``, clipped inside the range)."""
        if self.name == "dot":
            return np.asarray(r, dtype=np.float32)
        frac = np.clip((np.asarray(r, dtype=np.float64) - self.low) / (self.high - self.low),
                       1e-6, 1 - 1e-6)
        return np.log(frac / (1 - frac)).astype(np.float32)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users, items = np.asarray(users), np.asarray(items)
        if self.name == "mlp":
            h = np.maximum(self.user_hidden[users] + self.item_hidden[items], 0.0)
            return self.to_rating(h @ self.w2 + self.b2)
        x = np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])
        if self.name == "biased":
            x += self.weights["user_bias.weight"][users, 0] + self.weights["item_bias.weight"][items, 0]
        return self.to_rating(x)

    def logits_users(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) ranking scores: monotonic in the predicted rating, but free of
        the ties a saturated sigmoid makes, and cheaper (no exp over the whole catalogue)."""
        users = np.asarray(users)
        if self.name == "mlp":
            out = np.empty((len(users), self.n_items), dtype=np.float32)
            for start in range(0, len(users), 16):  # (16, n_items, hidden) at a time
                hidden = self.user_hidden[users[start:start + 16]][:, None, :]
                h = np.maximum(self.item_hidden[None, :, :] + hidden, 0.0)
                out[start:start + 16] = h @ self.w2 + self.b2
            return out
        x = self.user_factors[users] @ self.item_factors.T
        if self.name == "biased":
            x += self.weights["user_bias.weight"][users] + self.weights["item_bias.weight"][:, 0]
        return x

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) predicted ratings."""
        return self.to_rating(self.logits_users(users))

    def score_vector(self, vector: np.ndarray, bias: float = 0.0) -> np.ndarray:
        """Predictions for every item from one user vector (and bias), e.g. a folded-in user."""
        vector = np.asarray(vector, dtype=np.float32)
        if self.name == "mlp":
            h = np.maximum(self.item_hidden + self.user_projection @ vector, 0.0)
            return self.to_rating(h @ self.w2 + self.b2)
        x = self.item_factors @ vector
        if self.name == "dot":
            return x
        return self.to_rating(x + bias + self.weights["item_bias.weight"][:, 0])

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]
