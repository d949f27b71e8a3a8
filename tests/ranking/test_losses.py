"""The ranking losses against hand-computed values, positives selection, and what a model
trained with a ranking loss is: ranking scores, no rating metrics, /predict refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from embedrec.errors import EmbedrecError, TrainingError
from embedrec.experiment import train_bundle
from embedrec.foldin import top_for_new_user
from embedrec.models.outputs import RANKING_LOSSES, loss_predicts_ratings
from embedrec.persistence import load_model, save_model
from embedrec.presets import get_preset
from embedrec.recommender import predict, recommend_all, similar_items
from embedrec.training.losses import LOSSES, make_objective
from embedrec.training.ranking_losses import (
    PopularityNegatives, alias_table, popularity, sampled_softmax, select_positives,
)
from embedrec.models.spec import Shape
from embedrec.training import TrainConfig
from tests.conftest import make_ratings

PRESET = get_preset("default").with_overrides(epochs=2, batch_size=32, n_factors=4, patience=None)


class Fixed(torch.nn.Module):
    """score(u, i) = table[u, i]."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.tensor(table, dtype=torch.float32)

    def forward(self, batch):
        return self.table[batch["users"], batch["items"]]


def test_every_ranking_loss_is_known_as_one_without_torch():
    for name, make in LOSSES.items():
        objective = make(Shape(3, 4))
        assert getattr(objective, "ranks", False) == (name in RANKING_LOSSES)
        assert loss_predicts_ratings(name) == (name not in RANKING_LOSSES)
    assert loss_predicts_ratings(None)


def test_bpr_by_hand():
    model = Fixed([[2.0, 0.0, 1.0]])
    batch = {"users": torch.tensor([0, 0]), "items": torch.tensor([0, 2]),
             "negatives": torch.tensor([1, 0])}
    # -mean(log sigmoid(2 - 0), log sigmoid(1 - 2))
    want = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 / (1 + math.exp(1)))) / 2
    for name in ("bpr", "bpr_pop"):
        assert float(make_objective(name, Shape(1, 3))(model, batch)) == pytest.approx(want, rel=1e-6)


def test_sampled_softmax_with_log_q_by_hand():
    pos, neg = torch.tensor([2.0]), torch.tensor([[1.0, 0.0]])
    pos_items, neg_items = torch.tensor([0]), torch.tensor([1, 2])
    uniform = torch.log(torch.full((4,), 0.25))
    # uniform Q: the correction shifts every logit alike -> plain softmax over [2, 1, 0]
    want = math.log(math.exp(2) + math.exp(1) + 1) - 2
    got = sampled_softmax(pos, neg, pos_items, neg_items, uniform, 2)
    assert float(got) == pytest.approx(want, rel=1e-6)
    # Q = (0.1, 0.6, 0.2, 0.1): logits s - log(2 q): 2 - log .2, 1 - log 1.2, 0 - log .4
    q = torch.log(torch.tensor([0.1, 0.6, 0.2, 0.1]))
    logits = [2 - math.log(0.2), 1 - math.log(1.2), -math.log(0.4)]
    want = math.log(sum(math.exp(v) for v in logits)) - logits[0]
    assert float(sampled_softmax(pos, neg, pos_items, neg_items, q, 2)) == pytest.approx(want, rel=1e-6)
    # a sampled item equal to the positive is not a negative
    got = sampled_softmax(pos, torch.tensor([[2.0, 0.0]]), pos_items, torch.tensor([0, 2]), uniform, 2)
    assert float(got) == pytest.approx(math.log(math.exp(2) + 1) - 2, rel=1e-6)


def test_softmax_objective_scores_shared_negatives():
    table = [[2.0, 1.0, 0.0, 0.5], [0.0, 3.0, 1.0, 1.0]]
    objective = make_objective("softmax", Shape(2, 4))
    data = make_ratings(n_users=2, n_items=4, density=1.0, seed=0)
    objective.setup(data)
    batch = {"users": torch.tensor([0, 1]), "items": torch.tensor([0, 1]),
             "ratings": torch.tensor([5.0, 5.0]), "negatives": torch.tensor([2, 3])}
    log_q = objective.log_q
    want = np.mean([float(sampled_softmax(torch.tensor([table[u][i]]),
                                          torch.tensor([[table[u][2], table[u][3]]]),
                                          torch.tensor([i]), torch.tensor([2, 3]), log_q,
                                          objective.n_negatives))
                    for u, i in ((0, 0), (1, 1))])
    assert float(objective(Fixed(table), batch)) == pytest.approx(want, rel=1e-6)


def test_popularity_sampler_by_hand():
    data = make_ratings(n_users=4, n_items=3, density=1.0, seed=0)  # every user rates every item
    probs = popularity(data, power=1.0)
    np.testing.assert_allclose(probs, [1 / 3] * 3)
    counts = np.bincount(data.items[:5], minlength=3)
    sub = data.take(np.arange(5))
    np.testing.assert_allclose(popularity(sub, 0.75), (counts + 1.0) ** 0.75 / ((counts + 1.0) ** 0.75).sum())
    draws = PopularityNegatives(np.array([0.0, 1.0, 0.0]))(
        {"users": torch.zeros(6, dtype=torch.long)}, torch.Generator().manual_seed(0))
    assert draws.tolist() == [1] * 6
    shared = PopularityNegatives(np.array([0.5, 0.5, 0.0]), shared=9)(
        {"users": torch.zeros(2, dtype=torch.long)}, torch.Generator().manual_seed(0))
    assert len(shared) == 9 and set(shared.tolist()) <= {0, 1}


def test_alias_table_by_hand():
    """[0.5, 0.25, 0.25] scaled by 3 is [1.5, 0.75, 0.75]: items 2 then 1 (under 1) each keep
    0.75 and lend the rest to item 0, which is left with exactly 1."""
    accept, alias = alias_table(np.array([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(accept, [1.0, 0.75, 0.75])
    assert alias.tolist() == [0, 0, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alias_table_gives_every_item_its_probability(seed):
    rng = np.random.default_rng(seed)
    probs = rng.random(50) ** 3
    probs[rng.choice(50, 10, replace=False)] = 0.0  # never drawn
    probs /= probs.sum()
    accept, alias = alias_table(probs)
    implied = accept.copy()  # each uniform pick j gives j with accept[j], alias[j] otherwise
    np.add.at(implied, alias, 1.0 - accept)
    np.testing.assert_allclose(implied / len(probs), probs, atol=1e-12)
    draws = PopularityNegatives(probs).draw(200_000, torch.Generator().manual_seed(seed)).numpy()
    assert set(np.flatnonzero(probs == 0)).isdisjoint(draws)
    np.testing.assert_allclose(np.bincount(draws, minlength=50) / len(draws), probs, atol=5e-3)


def test_positives_are_good_ratings_unless_implicit():
    data = make_ratings(n_users=10, n_items=6, seed=1)
    good = select_positives(data, 4.0, False)
    assert len(good) == int((data.ratings >= 4.0).sum()) and (good.ratings >= 4.0).all()
    assert len(select_positives(data, 4.0, True)) == len(data)
    objective = make_objective("bpr", Shape(data.n_users, data.n_items))
    with pytest.raises(TrainingError, match="no positives"):
        objective.prepare(data, None, TrainConfig(loss="bpr", relevant=9.0))


@pytest.mark.parametrize("loss", ["bpr", "bpr_pop", "softmax", "full_softmax"])
def test_a_model_trained_for_ranking_ranks_and_refuses_to_predict(loss, tmp_path):
    data = make_ratings(n_users=30, n_items=20, seed=2)
    preset = PRESET.with_overrides(loss=loss)
    bundle = train_bundle(data, "biased", preset, seed=0, split="random")
    assert not bundle.scored.predicts_ratings
    metrics = bundle.manifest["metrics"]
    assert metrics["rmse"] is None and metrics["ndcg_at_k"] is not None
    loaded = load_model(save_model(bundle, tmp_path / loss))
    manifest = json.loads((tmp_path / loss / "manifest.json").read_text())
    assert manifest["loss"] == loss and manifest["positives"] == "ratings >= 4"
    assert manifest["protocol"]["split"] == "random"
    assert not loaded.scored.predicts_ratings
    with pytest.raises(EmbedrecError, match=f"trained with the {loss} ranking loss"):
        predict(loaded, [(data.user_map.ids[0], data.item_map.ids[0])])
    recs, _ = recommend_all(loaded, k=3)
    assert (recs[1:] >= 0).all()  # user 0 rated nearly every movie
    assert len(similar_items(loaded, data.item_map.ids[0], k=3)) == 3
    best, _, fit = top_for_new_user(loaded, [(data.item_map.ids[1], 5.0), (data.item_map.ids[2], 4.0)], k=4)
    assert len(best) == 4 and not {1, 2} & set(best.tolist())


def test_mse_models_still_predict_ratings():
    data = make_ratings(n_users=20, n_items=10, seed=3)
    bundle = train_bundle(data, "dot", PRESET, seed=0)
    assert bundle.scored.predicts_ratings and bundle.manifest["loss"] == "mse"
    assert bundle.manifest["positives"] is None


@pytest.mark.parametrize("loss", ["mse", "bpr", "softmax", "full_softmax"])
def test_a_model_trained_to_rank_outputs_its_logits(loss):
    """Under a ranking loss V2's output is dot + biases, not the sigmoid-scaled rating (which
    would cap every score difference at the rating range)."""
    from embedrec.models.registry import get
    from embedrec.training.trainer import train_model

    data = make_ratings(n_users=12, n_items=9, seed=4)
    spec = get("biased")
    shape = Shape(data.n_users, data.n_items, data.scale)
    model, _ = train_model(spec, spec.config(n_factors=3), shape, data,
                           TrainConfig(epochs=1, batch_size=16, loss=loss, implicit=True), seed=0)
    users, items = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    with torch.no_grad():
        out = model({"users": users, "items": items})
        logits = ((model.user_factors(users) * model.item_factors(items)).sum(-1)
                  + model.user_bias(users)[:, 0] + model.item_bias(items)[:, 0])
    expected = logits if loss != "mse" else torch.sigmoid(logits) * 4.5 + 0.5
    assert model.raw_scores == (loss != "mse")
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("name", ["dot", "biased", "mlp"])
def test_sampled_softmax_scores_the_same_grid_by_broadcasting_or_pairs(name):
    """dot and biased score the (rows x shared negatives) grid by broadcasting, mlp through
    one flat batch of every pair; either way each cell is the model's score of that pair."""
    from embedrec.models.registry import get
    from embedrec.training.ranking_losses import score_grid

    spec = get(name)
    model = spec.build(spec.config(n_factors=4), Shape(5, 7, (0.5, 5.0)))
    model.raw_scores = True
    model.eval()
    batch = {"users": torch.tensor([0, 3, 4]), "items": torch.tensor([1, 2, 6])}
    negatives = torch.tensor([5, 0, 2, 2])
    assert getattr(model, "broadcasts", False) == (name != "mlp")
    with torch.no_grad():
        grid = score_grid(model, batch, negatives)
        for r, u in enumerate(batch["users"].tolist()):
            for c, j in enumerate(negatives.tolist()):
                one = model({"users": torch.tensor([u]), "items": torch.tensor([j])})
                torch.testing.assert_close(grid[r, c], one[0])


@pytest.mark.parametrize("name", ["dot", "biased"])
def test_the_broadcast_grid_has_the_flat_batchs_gradients(name):
    """A matrix product scores the grid; its gradients on every table equal those of scoring
    each (row, negative) pair as one flat batch, duplicate negatives included."""
    from embedrec.models.registry import get
    from embedrec.training.ranking_losses import _expand, score_grid

    spec = get(name)
    model = spec.build(spec.config(n_factors=4), Shape(5, 7, (0.5, 5.0)))
    model.raw_scores = True
    batch = {"users": torch.tensor([0, 3, 4, 3]), "items": torch.tensor([1, 2, 6, 0])}
    negatives = torch.tensor([5, 0, 2, 2])
    weights = torch.linspace(-1.0, 2.0, 16).reshape(4, 4)
    grads = []
    for grid in (lambda: score_grid(model, batch, negatives),
                 lambda: model(_expand(batch, negatives)).reshape(4, 4)):
        model.zero_grad()
        (grid() * weights).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6)
    assert grads[0]["item_factors.weight"][2].abs().sum() > 0
