"""The hybrid MF head's kernel trains what torch's steps train (ids, genres, release year)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from embedrec.models.init import initialise
from embedrec.models.registry import get
from embedrec.models.spec import Shape
from embedrec.training.config import TrainConfig
from embedrec.training.trainer import choose_kernel, fit
from tests.models.test_hybrid import fold_of, make_data


@pytest.fixture(scope="module")
def train():
    return fold_of(make_data()).train


def trained(train, config, **settings):
    spec = get("hybrid_mf")
    shape = Shape(train.n_users, train.n_items, train.scale)
    model = spec.build(spec.config(n_factors=8, **settings), shape)
    initialise(model, "keras_he_normal", torch.Generator().manual_seed(0))
    history = fit(model, train, config, seed=1, shape=shape, needs=spec.capabilities.needs,
                  uses=spec.capabilities.uses, kernel=choose_kernel(spec, model, config))
    return model, history


@pytest.mark.parametrize("updates", ["lazy", "dense"])
@pytest.mark.parametrize("inputs", [{}, {"use_genres": False}, {"use_genres": False,
                                                                 "use_year": False}])
def test_kernel_matches_torch_steps(train, updates, inputs):
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, l2=1e-3, updates=updates)
    torch_model, torch_history = trained(train, replace(config, engine="torch"), **inputs)
    kernel_model, kernel_history = trained(train, replace(config, engine="kernel"), **inputs)
    assert (torch_history.engine, kernel_history.engine) == ("torch", "kernel")
    assert kernel_history.steps == torch_history.steps
    expected, got = torch_model.state_dict(), kernel_model.state_dict()
    assert set(expected) == set(got)
    for key, value in expected.items():
        a, b = value.numpy(), got[key].numpy()
        scale = max(float(np.abs(a).max()), 1e-3)
        assert float(np.abs(a - b).max()) / scale < 1e-4, key
    if inputs == {}:  # the feature table was trained too
        assert float(np.abs(got["item_feature_table.weight"].numpy()).max()) > 0
    for a, b in zip(torch_history.epochs, kernel_history.epochs):
        assert a["train_mse"] == pytest.approx(b["train_mse"], rel=1e-4)


def test_time_implicit_and_unequal_widths_stay_with_torch(train):
    spec = get("hybrid_mf")
    shape = Shape(train.n_users, train.n_items, train.scale)
    for settings in ({"use_time": True}, {"use_implicit": True},
                     {"user_factors": 8, "item_factors": 4}):
        model = spec.build(spec.config(**settings), shape)
        assert spec.kernel(model, "mse") is None, settings
    model = spec.build(spec.config(), shape)
    assert spec.kernel(model, "bpr") is None and spec.kernel(model, "mse") is not None
    assert get("hybrid_nn").kernel(get("hybrid_nn").build(get("hybrid_nn").config(), shape),
                                   "mse") is None
