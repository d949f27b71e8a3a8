import math

import numpy as np
import pytest
import torch

from embedrec.errors import ConfigError
from embedrec.models import init_reference, registry
from embedrec.models.base import predict_batches
from embedrec.models.init import keras_he_normal_
from embedrec.models.spec import Shape


def build_model(name, n_users, n_items, rating_range=(0.5, 5.0), **settings):
    spec = registry.get(name)
    return spec.build(spec.config(**settings), Shape(n_users, n_items, rating_range))


def batch(users, items):
    return {"users": torch.as_tensor(users), "items": torch.as_tensor(items)}


@pytest.mark.parametrize("name", ["dot", "biased", "mlp"])
@pytest.mark.parametrize("batch", [1, 7])
def test_output_shape_and_range(name, batch):
    model = build_model(name, 5, 9, (1.0, 5.0), n_factors=4)
    init_reference(model, torch.Generator().manual_seed(0))
    with torch.no_grad():  # push logits far out: the sigmoid models must still stay in range
        for table in model.tables().values():
            table.weight.mul_(1000)
    model.eval()
    out = model({"users": torch.zeros(batch, dtype=torch.long), "items": torch.arange(batch) % 9})
    assert out.shape == (batch,)
    if name != "dot":
        assert torch.all(out >= 1.0) and torch.all(out <= 5.0)


def test_dot_model_is_a_dot_product():
    model = build_model("dot", 2, 2, n_factors=2)
    with torch.no_grad():
        model.user_factors.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
        model.item_factors.weight.copy_(torch.tensor([[3.0, 4.0], [5.0, -1.0]]))
    out = model(batch([0, 1, 0], [0, 1, 1]))
    assert out.tolist() == [11.0, -1.0, 3.0]


def test_biased_model_scales_sigmoid_to_range():
    model = build_model("biased", 1, 1, (0.5, 5.0), n_factors=1)
    with torch.no_grad():
        model.user_factors.weight.fill_(1.0)
        model.item_factors.weight.fill_(2.0)
        model.user_bias.weight.fill_(0.5)
        model.item_bias.weight.fill_(-2.5)
    # x = 1*2 + 0.5 - 2.5 = 0 -> sigmoid 0.5 -> 0.5 + 4.5 * 0.5 = 2.75
    assert model(batch([0], [0])).item() == pytest.approx(2.75)


def test_keras_he_normal_uses_rows_as_fan_in():
    # the reference's measured stds: 0.0144 for 9,724 movies, 0.0572 for 610 users
    g = torch.Generator().manual_seed(0)
    movies, users = torch.empty(9724, 50), torch.empty(610, 50)
    keras_he_normal_(movies, 9724, g)
    keras_he_normal_(users, 610, g)
    assert movies.std().item() == pytest.approx(0.0144, abs=0.0003)
    assert users.std().item() == pytest.approx(0.0572, abs=0.001)
    limit = 2 * math.sqrt(2 / 610) / 0.87962566103423978
    assert users.abs().max().item() <= limit + 1e-6  # truncated at two raw stds


def test_init_reference_applies_fan_in_per_layer():
    model = build_model("mlp", 610, 9724)
    init_reference(model, torch.Generator().manual_seed(1))
    assert model.item_factors.weight.std().item() == pytest.approx(0.0144, abs=0.0003)
    assert model.head[1].weight.std().item() == pytest.approx(math.sqrt(2 / 100), rel=0.1)
    assert torch.all(model.head[1].bias == 0) and torch.all(model.head[4].bias == 0)


def test_same_generator_seed_same_init():
    a = build_model("biased", 3, 4)
    b = build_model("biased", 3, 4)
    init_reference(a, torch.Generator().manual_seed(5))
    init_reference(b, torch.Generator().manual_seed(5))
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb)


def test_config_round_trip_and_validation():
    spec = registry.get("mlp")
    cfg = spec.config(hidden=7, dropout_hidden=0.25)
    assert spec.config_from_dict(spec.config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown model"):
        registry.get("svd")
    with pytest.raises(ConfigError, match="has no setting"):
        spec.config(width=3)
    with pytest.raises(ConfigError, match="dropout"):
        spec.config(dropout_in=1.5)
    with pytest.raises(ConfigError, match="rating range"):
        Shape(1, 1, (5, 1))
    assert spec.parse_setting("hidden", "32") == 32
    assert spec.parse_setting("dropout_in", "0.1") == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="not a valid int"):
        spec.parse_setting("hidden", "wide")


def test_predict_batches_is_eval_mode_and_chunked():
    model = build_model("mlp", 4, 4, n_factors=3)
    init_reference(model, torch.Generator().manual_seed(0))
    model.train()
    users, items = np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4)
    a = predict_batches(model, batch(users, items), chunk=3)
    b = predict_batches(model, batch(users, items), chunk=100)
    # no dropout in eval mode: chunking changes nothing beyond the matmul kernels' rounding,
    # which may differ between shapes on some CPUs
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert model.training  # mode restored
