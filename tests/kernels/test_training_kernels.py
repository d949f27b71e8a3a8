"""The compiled kernels train exactly what the torch steps train, from any thread count."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from embedrec.errors import ConfigError, TrainingError
from embedrec.kernels import counter
from embedrec.kernels.factors import FactorKernel
from embedrec.kernels.tables import Settings
from embedrec.models.init import initialise
from embedrec.models.registry import get
from embedrec.models.spec import Shape
from embedrec.training.config import TrainConfig
from embedrec.training.trainer import choose_kernel, fit
from tests.conftest import make_ratings


@pytest.fixture(scope="module")
def data():
    return make_ratings(40, 30, 0.6)


def trained(name, data, config, *, seed=1):
    """A model of ``name`` initialised from seed 0 and trained under ``config``."""
    spec = get(name)
    shape = Shape(data.n_users, data.n_items, data.scale)
    model = spec.build(spec.config(), shape)
    initialise(model, "keras_he_normal", torch.Generator().manual_seed(0))
    history = fit(model, data, config, seed=seed, shape=shape,
                  kernel=choose_kernel(spec, model, config))
    return model, history


def relative_difference(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(a).max())


@pytest.mark.parametrize("name", ["dot", "biased", "mlp"])
@pytest.mark.parametrize("updates", ["lazy", "dense"])
@pytest.mark.parametrize("batch_size", [16, 600])  # 600: the parallel twin on 2 threads
def test_kernel_matches_torch_steps(data, name, updates, batch_size):
    config = TrainConfig(epochs=2, batch_size=batch_size, lr=1e-2, l2=1e-3, updates=updates,
                         threads=2)
    torch_model, torch_history = trained(name, data, replace(config, engine="torch"))
    kernel_model, kernel_history = trained(name, data, replace(config, engine="kernel"))
    assert (torch_history.engine, kernel_history.engine) == ("torch", "kernel")
    assert kernel_history.steps == torch_history.steps
    for key, value in torch_model.state_dict().items():
        other = kernel_model.state_dict()[key]
        assert relative_difference(value.numpy(), other.numpy()) < 1e-4, key
        assert not torch.equal(value, get_initial(name, data)[key]), f"{key} was not trained"
    for a, b in zip(torch_history.epochs, kernel_history.epochs):
        assert a["train_mse"] == pytest.approx(b["train_mse"], rel=1e-4)


@pytest.mark.parametrize("name", ["dot", "biased"])
@pytest.mark.parametrize("loss", ["bpr", "bpr_pop", "softmax"])
@pytest.mark.parametrize("updates", ["lazy", "dense"])
@pytest.mark.parametrize("batch_size", [16, 600])
def test_ranking_kernel_matches_torch_steps(data, name, loss, updates, batch_size):
    """The same negatives (a run's worth drawn in one call on both engines: one per row for
    BPR, 128 shared by each batch for softmax, many of them repeats or the positive itself on
    30 items), the same loss on the model's logits, the same rows updated (users, positives
    and negatives)."""
    config = TrainConfig(epochs=2, batch_size=batch_size, lr=1e-2, l2=1e-3, updates=updates,
                         threads=2, loss=loss, implicit=True)
    torch_model, torch_history = trained(name, data, replace(config, engine="torch"))
    kernel_model, kernel_history = trained(name, data, replace(config, engine="kernel"))
    assert (torch_history.engine, kernel_history.engine) == ("torch", "kernel")
    initial = get_initial(name, data)
    for key, value in torch_model.state_dict().items():
        other = kernel_model.state_dict()[key]
        if loss == "softmax" and key == "user_bias.weight":
            # the softmax does not depend on a user's bias: the kernel's gradient is exactly 0,
            # torch's the rounding of a sum that is 0; both move it by the L2 term alone
            assert relative_difference(value.numpy(), other.numpy()) < 1e-2, key
            continue
        assert relative_difference(value.numpy(), other.numpy()) < 1e-4, key
        assert not torch.equal(value, initial[key]), f"{key} was not trained"
    for a, b in zip(torch_history.epochs, kernel_history.epochs):
        assert a[f"train_{loss}"] == pytest.approx(b[f"train_{loss}"], rel=1e-4)


@pytest.mark.parametrize("loss", ["bpr", "softmax"])
def test_ranking_twins_give_the_same_bits(data, loss):
    from embedrec.kernels.tables import Twins

    config = TrainConfig(epochs=2, batch_size=200, lr=1e-2, l2=1e-3, engine="kernel",
                         loss=loss, implicit=True)
    one, _ = trained("biased", data, replace(config, threads=1))
    original = Twins.run
    try:
        Twins.run = lambda self, steps, start, n_steps: steps(self.parallel, start, n_steps)
        forced, _ = trained("biased", data, replace(config, threads=2))
    finally:
        Twins.run = original
    for key, value in one.state_dict().items():
        assert torch.equal(value, forced.state_dict()[key]), key


# the hand-computed steps' settings: Keras-Adam from zero moments, L2 on the touched rows
HAND = {"lr": 0.1, "b1": 0.9, "b2": 0.999, "eps": 1e-7, "l2": 0.01}


def first_adam_step(w: float, g: float) -> float:
    """``w`` after Keras-Adam's first step with gradient ``g`` (before L2) under ``HAND``."""
    lr, b1, b2, eps, l2 = HAND.values()
    g = g + 2 * l2 * w
    m, v = (1 - b1) * g, (1 - b2) * g * g
    return w - lr * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)


def hand_settings(batch_size: int) -> Settings:
    return Settings(lr=HAND["lr"], beta1=HAND["b1"], beta2=HAND["b2"], eps=HAND["eps"],
                    l2=HAND["l2"], dense=False, batch_size=batch_size, threads=1, max_steps=1)


def test_one_bpr_step_by_hand():
    """V1, one user, two items, one factor: the positive 0 against the negative 1 (and, in the
    same batch, the positive 1 against the negative 1: a drawn negative may be the positive)."""
    from embedrec.kernels.pairwise import PairKernel

    P = np.array([[1.0]], dtype=np.float32)
    Q = np.array([[2.0], [3.0]], dtype=np.float32)
    kernel = PairKernel(P, Q)
    kernel.bind(hand_settings(batch_size=2))
    users, items = np.array([0, 0]), np.array([0, 1])
    total, steps = kernel.run(np.array([0, 1]), users, items, np.ones(2, np.float32), 0, 1,
                              negatives=np.array([1, 1]))
    assert steps == 1
    # z = s(u, pos) - s(u, neg): 2 - 3 = -1 for the first pair, 0 for the second
    assert total == pytest.approx(np.log1p(np.e) + np.log(2.0))
    sig = 1 / (1 + np.exp(-1.0))  # -dloss/dz at z = -1 is sigmoid(1); at z = 0 it is 1/2
    d1, d2 = -sig / 2, -0.5 / 2  # the mean over the batch of 2
    grads = {  # (weight, gradient before L2)
        "P": (1.0, d1 * (2.0 - 3.0) + d2 * (3.0 - 3.0)),
        "Q0": (2.0, d1 * 1.0),
        "Q1": (3.0, -d1 * 1.0 + d2 * 1.0 - d2 * 1.0)}
    for key, out in (("P", P[0, 0]), ("Q0", Q[0, 0]), ("Q1", Q[1, 0])):
        assert out == pytest.approx(first_adam_step(*grads[key]), rel=1e-6), key


def test_one_softmax_step_by_hand():
    """V1, one user, two items, one factor, Q uniform (1/2 each) and S = 2 shared negatives
    [1, 0]: the logQ correction -log(S Q(j)) = -log(2 * 1/2) is 0, so the logits are the scores
    2 (positive 0) and 3 (negative 1); the second negative is the positive itself, masked."""
    from types import SimpleNamespace

    from embedrec.kernels.softmax import SoftmaxKernel

    P = np.array([[1.0]], dtype=np.float32)
    Q = np.array([[2.0], [3.0]], dtype=np.float32)
    kernel = SoftmaxKernel(P, Q)
    kernel.use_sampler(SimpleNamespace(log_probs=lambda: np.log([0.5, 0.5]), shared=2))
    kernel.bind(hand_settings(batch_size=1))
    total, steps = kernel.run(np.array([0]), np.array([0]), np.array([0]), np.ones(1, np.float32),
                              0, 1, negatives=np.array([1, 0]))
    assert steps == 1
    # cross-entropy of logit 2 among [2, 3]: log(e^2 + e^3) - 2 = log(1 + e)
    assert total == pytest.approx(np.log1p(np.e), rel=1e-6)
    p_pos = 1 / (1 + np.e)
    d_pos, d_neg = p_pos - 1, 1 - p_pos  # d loss / d logit: softmax minus the one-hot
    grads = {  # (weight, gradient before L2)
        "P": (1.0, d_pos * 2.0 + d_neg * 3.0),
        "Q0": (2.0, d_pos * 1.0),  # the masked copy adds nothing
        "Q1": (3.0, d_neg * 1.0)}
    for key, out in (("P", P[0, 0]), ("Q0", Q[0, 0]), ("Q1", Q[1, 0])):
        assert out == pytest.approx(first_adam_step(*grads[key]), rel=1e-6), key


def get_initial(name, data):
    spec = get(name)
    model = spec.build(spec.config(), Shape(data.n_users, data.n_items, data.scale))
    initialise(model, "keras_he_normal", torch.Generator().manual_seed(0))
    return model.state_dict()


@pytest.mark.parametrize("name", ["dot", "biased", "mlp"])
@pytest.mark.parametrize("updates", ["lazy", "dense"])
def test_the_twins_give_the_same_bits(data, name, updates):
    """The serial and the parallel twin add the same floats in the same order: one thread or
    two, and whichever twin the timing picks, the same seed gives the same numbers."""
    from embedrec.kernels.tables import Twins

    config = TrainConfig(epochs=2, batch_size=200, lr=1e-2, l2=1e-3, engine="kernel",
                         updates=updates)
    one, _ = trained(name, data, replace(config, threads=1))
    two, _ = trained(name, data, replace(config, threads=2))
    original = Twins.run
    try:  # the parallel twin for every step, probe or not
        def parallel_only(self, steps, start, n_steps):
            return steps(self.parallel, start, n_steps)
        Twins.run = parallel_only
        forced, _ = trained(name, data, replace(config, threads=2))
    finally:
        Twins.run = original
    for key, value in one.state_dict().items():
        assert torch.equal(value, two.state_dict()[key]), key
        assert torch.equal(value, forced.state_dict()[key]), key


def test_same_seed_same_numbers_other_seed_other_numbers(data):
    config = TrainConfig(epochs=1, batch_size=32, engine="kernel")
    a, _ = trained("mlp", data, config, seed=5)
    b, _ = trained("mlp", data, config, seed=5)
    c, _ = trained("mlp", data, config, seed=6)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.head[1].weight, c.head[1].weight)


def test_one_step_by_hand():
    """V1 on 2 users and 2 items with one factor: one batch, Keras-Adam, L2 on the rows."""
    P = np.array([[1.0], [2.0]], dtype=np.float32)
    Q = np.array([[3.0], [4.0]], dtype=np.float32)
    kernel = FactorKernel(P, Q)
    kernel.bind(hand_settings(batch_size=2))
    users, items = np.array([0, 1]), np.array([0, 1])
    ratings = np.array([5.0, 7.0], dtype=np.float32)
    sse, steps = kernel.run(np.array([0, 1]), users, items, ratings, 0, 5)
    assert steps == 1  # only one batch there
    assert sse == pytest.approx((3 - 5) ** 2 + (8 - 7) ** 2)
    # mean loss: d/dpred = 2 * err / 2 = err; gradient of P[u] is err * Q[i] (+ 2 l2 P[u])
    for w, other, err, out in ((1.0, 3.0, -2.0, P[0, 0]), (2.0, 4.0, 1.0, P[1, 0]),
                               (3.0, 1.0, -2.0, Q[0, 0]), (4.0, 2.0, 1.0, Q[1, 0])):
        assert out == pytest.approx(first_adam_step(w, err * other), rel=1e-6)


def test_dense_kernel_moves_rows_outside_the_batch():
    """Dense updates: a row no batch touches still shrinks under L2, exactly as per step."""
    P = np.array([[1.0], [0.5]], dtype=np.float32)
    Q = np.array([[1.0]], dtype=np.float32)
    lr, b1, b2, eps, l2 = 0.01, 0.9, 0.999, 1e-7, 0.1
    kernel = FactorKernel(P, Q)
    kernel.bind(Settings(lr=lr, beta1=b1, beta2=b2, eps=eps, l2=l2, dense=True, batch_size=1,
                         threads=1, max_steps=3))
    kernel.run(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64),
               np.zeros(3, dtype=np.int64), np.ones(3, dtype=np.float32), 0, 3)
    kernel.sync()
    w, m, v = 0.5, 0.0, 0.0
    for t in (1, 2, 3):  # user 1: only its L2 gradient, every step
        g = 2 * l2 * w
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    assert P[1, 0] == pytest.approx(w, rel=1e-6)
    assert P[1, 0] < 0.5


def test_dropout_masks_are_the_counters(data):
    module = get("mlp").build(get("mlp").config(), Shape(3, 3, (0.5, 5.0))).head[3]
    module.reseed(11)
    module.train()
    x = torch.ones(64, 10)
    first, second = module(x), module(x)
    assert module.calls == 2
    expected = counter.keep_mask(11, 1, 640, module.p).reshape(64, 10)
    assert torch.equal(second != 0, torch.from_numpy(expected))
    assert not torch.equal(first, second)
    np.testing.assert_allclose(second[second != 0].numpy(), 1 / (1 - module.p), rtol=1e-6)


def test_counter_draws_agree_between_numpy_and_numba():
    from numba import njit

    @njit
    def masks(seed, call, n, cut):
        key = counter.call_key(seed, call)
        return np.array([counter.draw(key, e) >= cut for e in range(n)])

    for seed, call, p in ((0, 0, 0.5), (123, 7, 0.05), (2**40, 99, 0.3)):
        expected = counter.keep_mask(seed, call, 1001, p)
        np.testing.assert_array_equal(masks(seed, call, 1001, counter.threshold(p)), expected)
    keep = counter.keep_mask(3, 0, 200_000, 0.25)
    assert keep.mean() == pytest.approx(0.75, abs=0.005)


def test_engines_are_chosen_by_the_spec(data):
    shape = Shape(data.n_users, data.n_items, data.scale)
    model = get("biased").build(get("biased").config(), shape)
    assert choose_kernel(get("biased"), model, TrainConfig()) is not None
    assert choose_kernel(get("biased"), model, TrainConfig(engine="torch")) is None
    assert type(choose_kernel(get("biased"), model, TrainConfig(loss="bpr"))).__name__ == "PairKernel"
    assert type(choose_kernel(get("biased"), model, TrainConfig(loss="softmax"))).__name__ == "SoftmaxKernel"
    assert choose_kernel(get("dot"), model, TrainConfig(loss="softmax")) is not None
    mlp = get("mlp")
    assert choose_kernel(mlp, mlp.build(mlp.config(), shape), TrainConfig(loss="bpr")) is None
    hybrid = get("hybrid_mf")
    assert choose_kernel(hybrid, hybrid.build(hybrid.config(), shape), TrainConfig()) is not None
    with_time = hybrid.build(hybrid.config(use_time=True), shape)
    assert choose_kernel(hybrid, with_time, TrainConfig()) is None
    with pytest.raises(ConfigError, match="hybrid_mf model has no compiled kernel"):
        choose_kernel(hybrid, with_time, TrainConfig(engine="kernel"))


def test_old_engine_names_mean_torch_with_their_updates():
    assert (TrainConfig(engine="fast").engine, TrainConfig(engine="fast").updates) == ("torch", "lazy")
    assert (TrainConfig(engine="exact").engine, TrainConfig(engine="exact").updates) == ("torch", "dense")
    assert TrainConfig.from_dict(TrainConfig(engine="exact").to_dict()).updates == "dense"
    with pytest.raises(ConfigError, match="unknown updates"):
        TrainConfig(updates="sometimes")


def test_a_diverging_kernel_says_so(data):
    with pytest.raises(TrainingError, match="loss became .* lower the learning rate"):
        trained("dot", data, TrainConfig(epochs=1, batch_size=8, lr=1e20, engine="kernel"))


def test_twins_choose_by_every_probe_so_far(monkeypatch):
    """A fake clock: probes of epoch 1 find the parallel twin 3x faster, those of epoch 2 find
    it 2x slower. Over both probes it is still faster (3 against 4 units), so it keeps the
    rest of epoch 2; a scheduler's hiccup in one probe does not flip the choice. Every step
    runs exactly once, in order, whichever twin takes it."""
    import numba

    from embedrec.kernels import tables
    from embedrec.kernels.tables import Twins

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one numba thread: the serial twin always runs")
    clock = [0.0]
    monkeypatch.setattr(tables.time, "perf_counter", lambda: clock[0])
    cost = {}
    ran = []

    def serial():
        pass

    def parallel():
        pass

    twins = Twins(serial, parallel, Settings(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-7, l2=0.0,
                                             dense=False, batch_size=10, threads=2,
                                             max_steps=1000))

    def steps(fn, first_row, count):
        clock[0] += cost[fn] * count / Twins.PROBE
        ran.append((fn.__name__, first_row, count))
        return float(count)

    n = 100
    chosen = []
    for epoch_cost in ({serial: 3.0, parallel: 1.0}, {serial: 1.0, parallel: 2.0}):
        cost.update(epoch_cost)
        ran.clear()
        assert twins.run(steps, 0, n) == n
        assert [r[1] for r in ran] == [10 * sum(c for _, _, c in ran[:i]) for i in range(len(ran))]
        chosen.append(ran[-1][0])
    assert twins.probed == {serial: 4.0, parallel: 3.0}
    assert chosen == ["parallel", "parallel"]


def test_one_blas_thread_limits_and_restores():
    from threadpoolctl import threadpool_info

    from embedrec.kernels.tables import one_blas_thread

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with one_blas_thread():
        inside = blas_threads()
    assert inside and set(inside) == {1}
    assert blas_threads() == before
