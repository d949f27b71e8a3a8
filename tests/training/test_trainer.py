import math

import numpy as np
import pytest
import torch

from embedrec.errors import ConfigError, TrainingError
from embedrec.evaluation import rmse
from embedrec.models import BiasBaseline, registry
from embedrec.models.base import predict_batches
from embedrec.models.spec import Shape
from embedrec.training import TrainConfig, train_model
from embedrec.training.losses import BPR, MSE, make_objective
from embedrec.training.optim import KerasAdam
from embedrec.training.trainer import fit, make_optimizer, torch_threads


def _train(data, name="biased", tc=None, seed=0, valid=None, **settings):
    spec = registry.get(name)
    config = spec.config(**({"n_factors": 4} | settings))
    return train_model(spec, config, Shape(data.n_users, data.n_items, data.scale), data,
                       tc or TrainConfig(), seed=seed, valid=valid)


def _predict(model, data):
    return predict_batches(model, {"users": torch.from_numpy(data.users.astype(np.int64)),
                                   "items": torch.from_numpy(data.items.astype(np.int64))})


@pytest.mark.parametrize("engine", ["fast", "exact"])
@pytest.mark.parametrize("name", ["dot", "biased", "mlp"])
def test_same_seed_same_numbers(tiny, engine, name):
    tc = TrainConfig(epochs=2, batch_size=16, lr=0.01, engine=engine)
    torch.manual_seed(123)  # global state must not matter
    m1, h1 = _train(tiny, name, tc, seed=7)
    torch.rand(5)
    m2, h2 = _train(tiny, name, tc, seed=7)
    m3, _ = _train(tiny, name, tc, seed=8)
    assert h1.epochs[-1]["train_mse"] == h2.epochs[-1]["train_mse"]
    for (_, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(m1.user_factors.weight, m3.user_factors.weight)


def test_training_learns_more_than_the_bias_baseline(tiny):
    tc = TrainConfig(epochs=40, batch_size=32, lr=0.02, l2=0.0, engine="fast", init="normal")
    model, hist = _train(tiny, tc=tc)
    assert hist.epochs[-1]["train_mse"] < hist.epochs[0]["train_mse"]
    fit_ = rmse(_predict(model, tiny), tiny.ratings)
    base = BiasBaseline(user_damping=0, item_damping=0).fit(tiny)
    assert fit_ < rmse(base.predict(tiny.users, tiny.items), tiny.ratings)


def test_nan_loss_is_a_clear_error(tiny):
    tc = TrainConfig(epochs=1, batch_size=8, lr=1e30, engine="fast")
    with pytest.raises(TrainingError, match="loss became"):
        _train(tiny, "dot", tc)


def test_early_stopping_restores_best_epoch(tiny):
    valid = tiny.take(np.arange(0, len(tiny), 5))
    train = tiny.take(np.setdiff1d(np.arange(len(tiny)), np.arange(0, len(tiny), 5)))
    tc = TrainConfig(epochs=60, batch_size=8, lr=0.05, l2=0.0, patience=2, engine="fast")
    model, hist = _train(train, tc=tc, valid=valid)
    valid_mse = [e["valid_mse"] for e in hist.epochs]
    assert hist.monitor == "valid_mse"
    assert hist.stopped_early and len(hist.epochs) < 60
    assert hist.best_epoch == int(np.argmin(valid_mse)) + 1
    kept = float(np.mean((_predict(model, valid) - valid.ratings) ** 2))
    assert kept == pytest.approx(min(valid_mse), rel=1e-5)


def test_monitor_must_be_a_metric_of_the_loss(tiny):
    with pytest.raises(ConfigError, match="reports valid_mse"):
        _train(tiny, tc=TrainConfig(epochs=1, monitor="valid_ndcg"))


def _keras_reference(param, grads, lr, b1, b2, eps, l2=0.0):
    """Keras's Adam written out by hand, in float64."""
    p, m, v = param.double().clone(), torch.zeros_like(param).double(), torch.zeros_like(param).double()
    for t, g in enumerate(grads, start=1):
        g = g.double() + 2 * l2 * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + eps)
    return p


def test_keras_adam_one_step_by_hand():
    # t = 1: m = 0.1 g, v = 0.001 g^2, alpha = lr * sqrt(0.001) / 0.1; update = alpha*m/(sqrt(v)+eps)
    param = torch.nn.Parameter(torch.tensor([1.0]))
    opt = KerasAdam([param], lr=0.1, betas=(0.9, 0.999), eps=1e-7)
    param.grad = torch.tensor([0.5])
    opt.step()
    alpha = 0.1 * math.sqrt(0.001) / 0.1
    expected = 1.0 - alpha * 0.05 / (math.sqrt(0.001 * 0.25) + 1e-7)
    assert param.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_dense_adam_matches_keras_arithmetic(l2):
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(20, 3))
    start = a.detach().clone()
    opt = KerasAdam([a], lr=0.01, eps=1e-3, l2=l2)  # a large eps makes its placement visible
    grads = [torch.randn(20, 3, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    for g in grads:
        a.grad = g.clone()
        opt.step()
    expected = _keras_reference(start, grads, 0.01, 0.9, 0.999, 1e-3, l2)
    assert torch.allclose(a.detach().double(), expected, atol=1e-6)


def test_sparse_adam_touches_only_the_rows_of_the_gradient():
    table = torch.nn.Parameter(torch.zeros(5, 2))
    opt = KerasAdam([table], lr=0.1, l2=0.5)
    rows = torch.tensor([1, 3])
    table.grad = torch.sparse_coo_tensor(rows[None], torch.ones(2, 2), (5, 2), check_invariants=True)
    opt.step()
    assert torch.all(table[[0, 2, 4]] == 0) and torch.all(table[[1, 3]] < 0)
    # moments of untouched rows stay zero: lazy Adam
    assert torch.all(opt.state[table]["exp_avg"][[0, 2, 4]] == 0)


def test_sparse_adam_sums_duplicate_rows_and_equals_dense_on_those_rows():
    torch.manual_seed(1)
    start = torch.randn(6, 3)
    grad_rows = torch.randn(3, 3)
    rows = torch.tensor([4, 1, 4])  # a duplicate: summed, as a coalesced gradient would be
    sparse = torch.nn.Parameter(start.clone())
    opt = KerasAdam([sparse], lr=0.05, l2=0.1)
    sparse.grad = torch.sparse_coo_tensor(rows[None], grad_rows, (6, 3), check_invariants=True)
    opt.step()
    dense_grad = torch.zeros(6, 3).index_add_(0, rows, grad_rows)
    touched = torch.tensor([1, 4])
    expected = _keras_reference(start[touched], [dense_grad[touched]], 0.05, 0.9, 0.999, 1e-7, 0.1)
    assert torch.allclose(sparse.detach()[touched].double(), expected, atol=1e-6)
    assert torch.equal(sparse.detach()[[0, 2, 3, 5]], start[[0, 2, 3, 5]])


def test_fast_engine_gradients_are_sparse_and_equal_dense_ones(tiny):
    spec = registry.get("biased")
    model = spec.build(spec.config(n_factors=3), Shape(tiny.n_users, tiny.n_items, tiny.scale))
    batch = {"users": torch.tensor([0, 3, 0, 5]), "items": torch.tensor([2, 2, 7, 1]),
             "ratings": torch.tensor([4.0, 3.0, 5.0, 1.0])}
    MSE()(model, batch).backward()
    dense = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.sparse_rows = True
    MSE()(model, batch).backward()
    for n, p in model.named_parameters():
        assert p.grad.is_sparse
        assert torch.allclose(p.grad.to_dense(), dense[n], atol=1e-6)


def test_fast_and_exact_agree_without_l2_at_full_batch(tiny):
    # With no L2 and every row in every batch, lazy Adam is plain Adam: the engines agree.
    kw = dict(epochs=3, batch_size=len(tiny), lr=0.01, l2=0.0)
    mf, _ = _train(tiny, tc=TrainConfig(engine="fast", **kw), seed=3)
    me, _ = _train(tiny, tc=TrainConfig(engine="exact", **kw), seed=3)
    for (_, a), (_, b) in zip(mf.named_parameters(), me.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_l2_reaches_only_embedding_tables(tiny):
    spec = registry.get("mlp")
    model = spec.build(spec.config(n_factors=3), Shape(tiny.n_users, tiny.n_items, tiny.scale))
    opt = make_optimizer(model, TrainConfig(l2=0.01))
    tables, dense = opt.param_groups
    assert tables["l2"] == 0.01 and dense["l2"] == 0.0
    assert {id(p) for p in tables["params"]} == {id(model.user_factors.weight),
                                                 id(model.item_factors.weight)}


def test_thread_count_is_restored_after_training(tiny):
    before = torch.get_num_threads()
    _train(tiny, tc=TrainConfig(epochs=1, threads=1))
    assert torch.get_num_threads() == before
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cuda_without_a_gpu_is_a_clear_error(tiny):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA device"):
        _train(tiny, tc=TrainConfig(epochs=1, device="cuda"))
    _, hist = _train(tiny, tc=TrainConfig(epochs=1, device="auto"))  # auto falls back to cpu
    assert len(hist.epochs) == 1


def test_bpr_loss_by_hand_and_it_learns_to_rank(tiny):
    shape = Shape(tiny.n_users, tiny.n_items, tiny.scale)
    bpr = make_objective("bpr", shape)
    assert isinstance(bpr, BPR)

    class Fixed(torch.nn.Module):  # scores = item id: positives 3, negatives 1 -> diff 2
        def forward(self, batch):
            return batch["items"].float()

    batch = {"users": torch.tensor([0, 0]), "items": torch.tensor([3, 3]),
             "negatives": torch.tensor([1, 1])}
    assert bpr(Fixed(), batch).item() == pytest.approx(-math.log(1 / (1 + math.exp(-2))), rel=1e-6)
    # trained with BPR on the rows rated >= 4, a dot model ranks those above random movies
    liked = tiny.take(np.flatnonzero(tiny.ratings >= 4))
    spec = registry.get("dot")
    model = spec.build(spec.config(n_factors=4), shape)
    from embedrec.models.init import initialise

    initialise(model, "normal", torch.Generator().manual_seed(0))
    hist = fit(model, liked, TrainConfig(epochs=30, batch_size=16, lr=0.02, l2=0.0, loss="bpr"),
               seed=0, shape=shape, valid=liked)
    assert hist.monitor == "valid_bpr"
    assert hist.epochs[-1]["valid_bpr"] < hist.epochs[0]["valid_bpr"] < math.log(2) + 0.05
    assert "train_bpr" in hist.epochs[0]


def test_config_validation():
    with pytest.raises(ConfigError, match="engine"):
        TrainConfig(engine="turbo")
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="tpu")
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="unknown loss"):
        make_objective("hinge", Shape(1, 1))
    assert TrainConfig.from_dict(TrainConfig(lr=0.5).to_dict()) == TrainConfig(lr=0.5)
