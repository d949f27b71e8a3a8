"""Every registered model, and a model defined only in the tests, passes the same checks:
build, one epoch on tiny data, torch vs numpy parity, save/load, fold-in, top-N masking,
the fallback on cold rows, and no NaN. A new model gets all of this by registering."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from embedrec.data.dataset import Ratings
from embedrec.experiment import fit_fallback, fit_model, make_fold, train_bundle
from embedrec.foldin import fold_in, score_new_user, top_for_new_user
from embedrec.models import registry
from embedrec.models.registry import get as spec_of
from embedrec.models.base import predict_batches
from embedrec.persistence import load_model, save_model
from embedrec.presets import get_preset
from embedrec.recommender import recommend_all, score_users
from tests.conftest import make_ratings
from tests.models import toy_model

BUILTIN = registry.names()
ALL = BUILTIN + ("toy",)
TORCH = registry.names(trained_by="torch") + ("toy",)
PRESET = get_preset("default").with_overrides(epochs=1, batch_size=16, n_factors=4, patience=None)


@pytest.fixture(params=ALL)
def name(request):
    with toy_model.registered():
        yield request.param


@pytest.fixture(scope="module")
def data() -> Ratings:
    """Synthetic ratings plus a movie that appears only in the last rows (cold when those rows
    are held out) and movie titles with genres."""
    base = make_ratings(n_users=25, n_items=15, seed=4).to_frame()
    extra = pd.DataFrame({"user": [1, 2], "item": [999, 999], "rating": [4.0, 2.0],
                          "timestamp": [5, 6]})
    frame = pd.concat([base, extra], ignore_index=True)
    items = pd.DataFrame({"item": sorted(frame["item"].unique())})
    items["title"] = [f"Movie {i} ({1990 + k % 20})" for k, i in enumerate(items["item"])]
    items["genres"] = ["Drama|Comedy" if k % 2 else "Action" for k in range(len(items))]
    return Ratings.from_frame(frame, scale=(0.5, 5.0), item_info=items.set_index("item"))


@pytest.fixture(scope="module")
def fold(data):
    test_rows = np.concatenate([np.arange(len(data) - 2, len(data)), np.arange(0, 40, 4)])
    train_rows = np.setdiff1d(np.arange(len(data)), test_rows)
    return make_fold(data, train_rows, test_rows, valid_fraction=0.1, seed=0)


def test_the_registry_lists_every_builtin_and_each_spec_is_complete():
    assert {"dot", "biased", "mlp", "mean", "bias", "pop"} <= set(BUILTIN)
    for spec in registry.specs():
        assert spec.summary and spec.capabilities.trained_by in ("torch", "fit")
        spec.config()  # every knob has a default
        assert spec.config_from_dict(spec.config_to_dict(spec.config())) == spec.config()


def test_fit_and_score_without_nan(name, fold):
    spec = registry.get(name)
    fitted = fit_model(name, fold, PRESET, seed=0)
    users = np.arange(fold.train.n_users)
    scores = fitted.scorer.rank_scores(users)
    assert scores.shape == (fold.train.n_users, fold.train.n_items)
    assert np.isfinite(scores).all()
    if spec.capabilities.trained_by == "torch":
        assert fitted.history is not None and len(fitted.history.epochs) == 1
    assert fitted.n_params > 0


@pytest.mark.parametrize("torch_name", TORCH)
def test_torch_and_numpy_agree(torch_name, fold):
    with toy_model.registered():
        _torch_and_numpy_agree(torch_name, fold)


def _torch_and_numpy_agree(name, fold):
    spec = registry.get(name)
    assert spec.capabilities.trained_by == "torch"
    from embedrec.models.init import initialise
    from embedrec.models.spec import Shape
    from embedrec.training.trainer import fit

    shape = Shape(fold.train.n_users, fold.train.n_items, fold.train.scale)
    module = spec.build(spec.config(), shape)
    initialise(module, "keras_he_normal", torch.Generator().manual_seed(0))
    fit(module, fold.train, PRESET.train, seed=1, shape=shape)
    scorer = spec.load_scorer(spec.config(), spec.module_arrays(module), shape)
    users = np.repeat(np.arange(shape.n_users), shape.n_items)
    items = np.tile(np.arange(shape.n_items), shape.n_users)
    batch = {"users": torch.from_numpy(users), "items": torch.from_numpy(items)}
    expected = predict_batches(module, batch)
    pred = scorer.predict(users, items)
    # NaN (left to the fallback) only from a model that scores cold items from their features,
    # and only on items without training ratings that it cannot score (here: no features)
    declined = np.isnan(pred)
    if declined.any():
        assert spec.capabilities.cold_items_from_features
        trained = np.bincount(fold.train.items, minlength=shape.n_items) > 0
        assert not trained[items[declined]].any()
    np.testing.assert_allclose(pred[~declined], expected[~declined], rtol=1e-5, atol=1e-5)
    # ranking scores order items as the predictions do
    ranked = scorer.to_rating(scorer.rank_scores(np.arange(shape.n_users))).ravel()
    np.testing.assert_array_equal(np.isnan(ranked), declined)
    np.testing.assert_allclose(ranked[~declined], expected[~declined], rtol=1e-5, atol=1e-5)


def test_save_load_round_trip(name, fold, tmp_path):
    fallback = fit_fallback(fold, PRESET)
    from embedrec.experiment import bundle_of

    bundle = bundle_of(fit_model(name, fold, PRESET, seed=0), fold, fallback)
    loaded = load_model(save_model(bundle, tmp_path / name))
    users = np.arange(len(bundle.user_map))
    assert loaded.name == name and loaded.config == bundle.config
    np.testing.assert_array_equal(score_users(bundle, users), score_users(loaded, users))
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    assert manifest["config"]["name"] == name
    assert loaded.features is not None and loaded.features.genres_of(0)


def test_fold_in_and_top_n_masking(name, fold):
    bundle = train_bundle(fold.seen, name, PRESET, seed=0)
    ids = bundle.item_map.ids
    rated = [(ids[0], 5.0), (ids[1], 4.5), (ids[2], 1.0)]
    fit = fold_in(bundle, rated)
    scores = score_new_user(bundle, fit)
    assert scores.shape == (len(ids),) and np.isfinite(scores).all()
    best, best_scores, _ = top_for_new_user(bundle, rated, k=5)
    assert not {0, 1, 2} & set(best.tolist())  # the movies they rated are not recommended
    assert bundle.candidate_items()[best].all()  # nor movies the model cannot score itself
    if bundle.scored.predicts_ratings:
        lo, hi = bundle.scale
        assert ((best_scores >= lo - 1e-4) & (best_scores <= hi + 1e-4)).all() or name == "dot"
    recs, _ = recommend_all(bundle, k=5)
    for u in range(len(bundle.user_map)):
        assert not set(recs[u][recs[u] >= 0].tolist()) & set(bundle.seen(u).tolist())


def test_cold_rows_go_to_the_fallback(name, fold):
    fallback = fit_fallback(fold, PRESET)
    from embedrec.experiment import bundle_of

    bundle = bundle_of(fit_model(name, fold, PRESET, seed=0), fold, fallback)
    cold_item = bundle.item_map.index(999)
    assert not bundle.known_items()[cold_item]
    users = np.array([0, 1, 2])
    items = np.full(3, cold_item)
    pred = bundle.scored.predict(users, items)
    if spec_of(name).capabilities.cold_items_from_features:  # it has genres and a year
        np.testing.assert_allclose(pred, bundle.scorer.predict(users, items), rtol=1e-6)
    elif bundle.scored.predicts_ratings:
        np.testing.assert_allclose(pred, fallback.predict(users, items), rtol=1e-6)
    assert np.isfinite(pred).all()
