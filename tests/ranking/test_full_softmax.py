"""The full-catalogue softmax: user batches, the loss and its validation by hand, and what it
learns on data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.models.registry import get
from embedrec.models.spec import Shape
from embedrec.training import TrainConfig
from embedrec.training.batches import UserRows
from embedrec.training.losses import make_objective
from embedrec.training.trainer import train_model


def ratings(pairs, n_users=None, n_items=None) -> Ratings:
    """Ratings of 5 from (user, item) index pairs; ids are the indices (every one appears)."""
    u, i = (np.array(x) for x in zip(*pairs))
    frame = pd.DataFrame({"user": u, "item": i, "rating": np.full(len(u), 5.0, np.float32)})
    return Ratings.from_frame(frame, scale=(0.5, 5.0), name="hand")


class Grid(torch.nn.Module):
    """score(u, i) = table[u, i], scoring a user against many movies at once."""

    broadcasts = True

    def __init__(self, table):
        super().__init__()
        self.table = torch.tensor(table, dtype=torch.float32)

    def score_grid(self, batch, items):
        return self.table[batch["users"]][:, items]


TABLE = [[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def log_softmax(row, j, masked=()):
    keep = [x for k, x in enumerate(row) if k not in masked]
    return row[j] - math.log(sum(math.exp(x) for x in keep))


def test_user_rows_give_each_users_positives():
    data = ratings([(0, 2), (2, 1), (0, 0), (2, 0), (1, 1)])
    rows = UserRows(data)
    assert len(rows) == 3
    batch = rows.take(torch.tensor([2, 0]))
    assert batch["users"].tolist() == [2, 0]
    assert batch["offsets"].tolist() == [0, 2]
    assert sorted(batch["items"][:2].tolist()) == [0, 1]
    assert sorted(batch["items"][2:].tolist()) == [0, 2]


def test_full_softmax_by_hand():
    """Mean over the batch's positives of -log softmax over the whole catalogue."""
    train = ratings([(0, 0), (0, 2), (1, 1)])
    objective = make_objective("full_softmax", Shape(2, 3))
    rows = objective.rows(train, needs=frozenset(), uses=frozenset(), device="cpu")
    loss = float(objective(Grid(TABLE), rows.take(torch.tensor([1, 0]))))
    want = -(log_softmax(TABLE[0], 0) + log_softmax(TABLE[0], 2) + log_softmax(TABLE[1], 1)) / 3
    assert loss == pytest.approx(want, rel=1e-6)


def test_full_softmax_validation_masks_the_training_positives_by_hand():
    train = ratings([(0, 0), (0, 2), (1, 1)])
    objective = make_objective("full_softmax", Shape(2, 3))
    objective.rows(train, needs=frozenset(), uses=frozenset(), device="cpu")
    valid = {"users": torch.tensor([1, 0, 1]), "items": torch.tensor([0, 1, 2])}
    got = objective.validate(Grid(TABLE), valid)["valid_full_softmax"]
    # user 0 trained on 0 and 2: movie 1 is all that is left; user 1 trained on movie 1
    want = -(log_softmax(TABLE[1], 0, masked={1}) + log_softmax(TABLE[0], 1, masked={0, 2})
             + log_softmax(TABLE[1], 2, masked={1})) / 3
    assert got == pytest.approx(want, rel=1e-6)
    assert got == pytest.approx(math.log(2) * 2 / 3, rel=1e-6)


def test_the_loss_matches_every_pairs_full_softmax_in_value_and_gradient():
    """A user batch's loss is the mean over its (user, positive) pairs of the pair's softmax
    cross-entropy over the catalogue: the same value and gradients as scoring pair by pair."""
    spec = get("biased")
    model = spec.build(spec.config(n_factors=3), Shape(4, 6, (0.5, 5.0)))
    model.raw_scores = True
    train = ratings([(0, 1), (0, 4), (1, 0), (2, 5), (2, 2), (2, 3), (3, 3)])
    objective = make_objective("full_softmax", Shape(4, 6))
    rows = objective.rows(train, needs=frozenset(), uses=frozenset(), device="cpu")
    grads = []
    for loss in (lambda: objective(model, rows.take(torch.tensor([2, 0, 3]))),
                 lambda: torch.stack([
                     -torch.log_softmax(model.score_grid({"users": torch.tensor([u])},
                                                         torch.arange(6))[0], 0)[i]
                     for u, i in [(2, 5), (2, 2), (2, 3), (0, 1), (0, 4), (3, 3)]]).mean()):
        model.zero_grad()
        value = loss()
        value.backward()
        grads.append((float(value.detach()),
                      {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for n in grads[0][1]:
        torch.testing.assert_close(grads[0][1][n], grads[1][1][n], rtol=1e-5, atol=1e-7)
    assert grads[0][1]["user_factors.weight"][1].abs().sum() == 0  # user 1 not in the batch


@pytest.mark.parametrize("name", ["dot", "biased"])
def test_it_learns_which_half_of_the_catalogue_a_user_likes(name):
    """Two groups of users, each interacting only with its own half of the movies (a random
    two-thirds of them): trained with the full softmax, every user's top unseen movies come
    from their group's half."""
    rng = np.random.default_rng(0)
    pairs = [(u, i) for u in range(24) for i in range(20)
             if (i < 10) == (u < 12) and rng.random() < 2 / 3]
    data = ratings(pairs)
    spec = get(name)
    shape = Shape(data.n_users, data.n_items, data.scale)
    model, history = train_model(spec, spec.config(n_factors=4), shape, data,
                                 TrainConfig(epochs=40, batch_size=8, lr=0.05,
                                             loss="full_softmax"), seed=3)
    assert history.engine == "torch"
    first, last = history.epochs[0]["train_full_softmax"], history.epochs[-1]["train_full_softmax"]
    assert last < first - 0.5
    raw_user = data.user_map.ids
    half = np.array([int(x) < 10 for x in data.item_map.ids])
    with torch.no_grad():
        scores = model.score_grid({"users": torch.arange(data.n_users)},
                                  torch.arange(data.n_items)).numpy()
    for u in range(data.n_users):
        seen = data.items[data.users == u]
        mine = half if int(raw_user[u]) < 12 else ~half
        scores[u, seen] = -np.inf
        top = np.argsort(-scores[u])[:2]
        assert mine[top].all(), (u, top)


def test_models_that_cannot_score_the_catalogue_at_once_are_refused():
    data = ratings([(0, 0), (1, 1), (1, 0)])
    spec = get("mlp")
    shape = Shape(data.n_users, data.n_items, data.scale)
    with pytest.raises(ConfigError, match="scores a user against every movie"):
        train_model(spec, spec.config(), shape, data,
                    TrainConfig(epochs=1, batch_size=2, loss="full_softmax"), seed=0)
    with pytest.raises(ConfigError, match="no compiled kernel for the full_softmax loss"):
        train_model(get("dot"), get("dot").config(), shape, data,
                    TrainConfig(epochs=1, loss="full_softmax", engine="kernel"), seed=0)


def test_a_step_too_large_for_memory_is_refused_with_its_size():
    data = ratings([(0, 0), (1, 1), (1, 0)])
    config = TrainConfig(batch_size=8192, loss="full_softmax", implicit=True)
    objective = make_objective("full_softmax", Shape(100_000, 60_000))
    train, _ = objective.prepare(data, None, config)  # a step holds only the 3 users there are
    assert len(train) == 3
    many = ratings([(u, u % 7) for u in range(5000)])
    with pytest.raises(ConfigError, match=r"--batch-size 8192 scores 5,000 users x 60,000 "
                                          r"movies a step: 4.8 GB"):
        objective.prepare(many, None, config)


def test_a_validation_row_that_is_also_a_training_positive_keeps_its_own_place():
    """Unresolved duplicates can put a (user, movie) in both parts: the row is scored among
    itself and the unmasked movies, never against an empty or masked normaliser."""
    train = ratings([(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)])
    objective = make_objective("full_softmax", Shape(2, 3))
    objective.rows(train, needs=frozenset(), uses=frozenset(), device="cpu")
    valid = {"users": torch.tensor([0, 1]), "items": torch.tensor([2, 1])}
    got = objective.validate(Grid(TABLE), valid)["valid_full_softmax"]
    # user 0: movie 2 among {1, 2}; user 1 trained on every movie: movie 1 alone, probability 1
    want = -(log_softmax(TABLE[0], 2, masked={0}) + 0.0) / 2
    assert math.isfinite(got) and got == pytest.approx(want, rel=1e-6)
