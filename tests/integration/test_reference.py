"""The reference experiment on the real ml-latest-small rows (needs $EMBEDREC_DATA)."""

import json

import numpy as np
import pytest

from embedrec.compare import run_comparison, write_results
from embedrec.data import random_split
from embedrec.presets import get_preset

pytestmark = pytest.mark.realdata


def test_reference_split_matches_scikit_learn(ml_small):
    from sklearn.model_selection import train_test_split

    X = np.column_stack([ml_small.users, ml_small.items])
    X_tr, X_te, y_tr, y_te = train_test_split(X, ml_small.ratings, test_size=0.1, random_state=42)
    sp = random_split(len(ml_small), 0.1, 42)
    assert (len(sp.train), len(sp.test)) == (90_752, 10_084)
    assert np.array_equal(X[sp.train], X_tr) and np.array_equal(X[sp.test], X_te)
    assert np.array_equal(ml_small.ratings[sp.test], y_te)


def test_encoding_matches_label_encoder(ml_small):
    assert (ml_small.n_users, ml_small.n_items, len(ml_small)) == (610, 9_724, 100_836)
    assert ml_small.scale == (0.5, 5.0)
    assert ml_small.users.dtype == np.int32 and ml_small.ratings.dtype == np.float32


@pytest.mark.slow
def test_reference_preset_reproduces_the_reference(ml_small, tmp_path):
    """One seed of the exact reference: the figures of REFERENCE.md within seed noise."""
    comp = run_comparison(ml_small, preset=get_preset("reference"),
                          models=["dot", "biased", "mlp", "bias"], seeds=1)
    by = {r["model"]: r for r in comp.records}
    assert by["biased"]["n_train"] == 90_752 and by["biased"]["n_test"] == 10_084
    assert by["biased"]["n_cold"] == 369 and by["biased"]["n_cold_items"] == 369
    # the reference scores cold rows with untrained embeddings: V1 1.109, V2 0.866, NN 0.883
    assert by["dot"]["rmse_model_all"] == pytest.approx(1.109, abs=0.02)
    assert by["biased"]["rmse_model_all"] == pytest.approx(0.866, abs=0.01)
    assert by["mlp"]["rmse_model_all"] == pytest.approx(0.883, abs=0.01)
    assert by["dot"]["rmse_warm"] == pytest.approx(0.91, abs=0.02)
    assert by["bias"]["rmse"] <= 0.89
    # with the bias fallback on cold rows, V1 is far better than the reference reported
    assert by["dot"]["rmse"] < by["dot"]["rmse_model_all"] - 0.1
    assert [e["epoch"] for e in by["mlp"]["history"]] == [1, 2, 3, 4, 5]
    write_results(comp, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    required = {"model", "seed", "rmse", "mae", "mse", "rmse_warm", "n_train", "n_test", "n_cold",
                "n_params", "train_seconds", "history"}
    assert all(required <= set(r) for r in saved)
    assert (tmp_path / "results.csv").read_text().splitlines()[0].startswith("model,seed,fold,rmse")
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["split_seed"] == 42 and settings["preset"]["train"]["batch_size"] == 64


@pytest.mark.slow
def test_lazy_updates_match_dense_within_tolerance(ml_small):
    """On the reference settings lazy Adam changes RMSE by less than 0.01 for biased and mlp
    (measured over 3 seeds: -0.003 and 0.000; the README reports it). The dot model is the
    documented exception: it relies on the dense L2 steps to shrink rarely seen movies."""
    rmse = {}
    for updates in ("lazy", "dense"):
        preset = get_preset("reference").with_overrides(updates=updates)
        comp = run_comparison(ml_small, preset=preset, models=["biased", "mlp"], seeds=1)
        rmse[updates] = {r["model"]: r["rmse"] for r in comp.records}
    for model in ("biased", "mlp"):
        assert abs(rmse["lazy"][model] - rmse["dense"][model]) < 0.01


@pytest.mark.slow
def test_kernel_and_torch_engines_agree_on_the_reference(ml_small):
    """The compiled kernel (the reference preset's engine) and torch's steps: the same RMSE on
    the reference's rows, from the same seed, to well within the issue's 0.002."""
    rmse = {}
    for engine in ("kernel", "torch"):
        preset = get_preset("reference").with_overrides(engine=engine)
        comp = run_comparison(ml_small, preset=preset, models=["biased"], seeds=1)
        rmse[engine] = comp.records[0]["rmse"]
        assert comp.records[0]["history"]  # trained for its epochs
    assert rmse["kernel"] == pytest.approx(rmse["torch"], abs=0.002)
