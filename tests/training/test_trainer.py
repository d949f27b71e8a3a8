import math

import numpy as np
import pytest
import torch

from embedrec.errors import ConfigError, TrainingError
from embedrec.evaluation import rmse
from embedrec.models import BiasBaseline, ModelConfig
from embedrec.training import TrainConfig, train_model
from embedrec.training.adam import KerasAdam, KerasFusedAdam


def _cfg(data, name="biased"):
    return ModelConfig(name=name, n_users=data.n_users, n_items=data.n_items, n_factors=4,
                       rating_range=data.scale)


@pytest.mark.parametrize("engine", ["fast", "exact"])
@pytest.mark.parametrize("name", ["dot", "biased", "mlp"])
def test_same_seed_same_numbers(tiny, engine, name):
    tc = TrainConfig(epochs=2, batch_size=16, lr=0.01, engine=engine)
    torch.manual_seed(123)  # global state must not matter
    m1, h1 = train_model(_cfg(tiny, name), tiny, tc, seed=7)
    torch.rand(5)
    m2, h2 = train_model(_cfg(tiny, name), tiny, tc, seed=7)
    m3, _ = train_model(_cfg(tiny, name), tiny, tc, seed=8)
    assert h1.epochs[-1]["train_mse"] == h2.epochs[-1]["train_mse"]
    for (_, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(m1.user_factors.weight, m3.user_factors.weight)


def test_training_learns_more_than_the_bias_baseline(tiny):
    tc = TrainConfig(epochs=40, batch_size=32, lr=0.02, l2=0.0, engine="fast", init="normal")
    model, hist = train_model(_cfg(tiny), tiny, tc, seed=0)
    assert hist.epochs[-1]["train_mse"] < hist.epochs[0]["train_mse"]
    fit = rmse(model.predict(tiny.users, tiny.items), tiny.ratings)
    base = BiasBaseline(user_damping=0, item_damping=0).fit(tiny)
    assert fit < rmse(base.predict(tiny.users, tiny.items), tiny.ratings)


def test_nan_loss_is_a_clear_error(tiny):
    tc = TrainConfig(epochs=1, batch_size=8, lr=1e30, engine="fast")
    with pytest.raises(TrainingError, match="loss became"):
        train_model(_cfg(tiny, "dot"), tiny, tc, seed=0)


def test_early_stopping_restores_best_epoch(tiny):
    valid = tiny.take(np.arange(0, len(tiny), 5))
    train = tiny.take(np.setdiff1d(np.arange(len(tiny)), np.arange(0, len(tiny), 5)))
    tc = TrainConfig(epochs=60, batch_size=8, lr=0.05, l2=0.0, patience=2, engine="fast")
    model, hist = train_model(_cfg(train), train, tc, seed=0, valid=valid)
    valid_mse = [e["valid_mse"] for e in hist.epochs]
    assert hist.stopped_early and len(hist.epochs) < 60
    assert hist.best_epoch == int(np.argmin(valid_mse)) + 1
    kept = float(np.mean((model.predict(valid.users, valid.items) - valid.ratings) ** 2))
    assert kept == pytest.approx(min(valid_mse), rel=1e-5)


def test_keras_adam_one_step_by_hand():
    # t = 1: m = 0.1 g, v = 0.001 g^2, alpha = lr * sqrt(0.001) / 0.1; update = alpha*m/(sqrt(v)+eps)
    param, grad = torch.tensor([1.0]), torch.tensor([0.5])
    opt = KerasAdam(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-7)
    opt.tick()
    opt.step(param, grad)
    alpha = 0.1 * math.sqrt(0.001) / 0.1
    expected = 1.0 - alpha * 0.05 / (math.sqrt(0.001 * 0.25) + 1e-7)
    assert param.item() == pytest.approx(expected, rel=1e-6)


def test_fused_adam_matches_keras_arithmetic():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(20, 3))
    b = a.detach().clone()
    tc = TrainConfig(lr=0.01, eps=1e-3)  # a large eps makes its placement visible
    fused, keras = KerasFusedAdam([a], tc), KerasAdam(0.01, 0.9, 0.999, 1e-3)
    for step in range(5):
        g = torch.randn(20, 3, generator=torch.Generator().manual_seed(step))
        a.grad = g.clone()
        fused.step()
        keras.tick()
        keras.step(b, g)
    assert torch.allclose(a.detach(), b, atol=1e-6)


def test_row_adam_only_touches_rows():
    table = torch.zeros(5, 2)
    opt = KerasAdam(0.1, 0.9, 0.999, 1e-7)
    opt.tick()
    rows = torch.tensor([1, 3])
    opt.step_rows(table, rows, table[rows], torch.ones(2, 2))
    assert torch.all(table[[0, 2, 4]] == 0) and torch.all(table[[1, 3]] < 0)


def test_fast_and_exact_agree_without_l2_at_full_batch(tiny):
    # With no L2 and every row in every batch, lazy Adam is plain Adam: the engines agree.
    kw = dict(epochs=3, batch_size=len(tiny), lr=0.01, l2=0.0)
    mf, _ = train_model(_cfg(tiny, "biased"), tiny, TrainConfig(engine="fast", **kw), seed=3)
    me, _ = train_model(_cfg(tiny, "biased"), tiny, TrainConfig(engine="exact", **kw), seed=3)
    for (_, a), (_, b) in zip(mf.named_parameters(), me.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_config_validation():
    with pytest.raises(ConfigError, match="engine"):
        TrainConfig(engine="turbo")
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    assert TrainConfig.from_dict(TrainConfig(lr=0.5).to_dict()) == TrainConfig(lr=0.5)
