"""Preset files: every part of a preset round-trips, per-model training settings apply to
that model only, and bad files are one clear error."""

import json

import numpy as np
import pytest

from embedrec.errors import EmbedrecError
from embedrec.experiment import fit_model, make_fold
from embedrec.presets import PRESETS, get_preset, load_preset_file, preset_from_dict
from tests.conftest import make_ratings


@pytest.mark.parametrize("name", list(PRESETS))
def test_named_presets_round_trip_through_a_file(name, tmp_path):
    preset = PRESETS[name].with_model_settings({"mlp": {"hidden": 32}})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(preset.to_dict()))
    assert load_preset_file(path) == preset


def test_train_by_model_applies_to_that_model_only():
    preset = preset_from_dict(get_preset("default").to_dict() | {
        "train_by_model": {"mlp": {"lr": 0.01, "batch_size": 512}}})
    assert preset.train_config("mlp").lr == 0.01 and preset.train_config("mlp").batch_size == 512
    assert preset.train_config("biased") == get_preset("default").train
    assert preset.train_config("mlp").epochs == get_preset("default").train.epochs


def test_fit_model_trains_with_the_model_s_own_settings():
    data = make_ratings(n_users=20, n_items=15, seed=3)
    fold = make_fold(data, np.arange(len(data)), None, valid_fraction=0.1, seed=0)
    base = get_preset("default").with_overrides(epochs=2, patience=None)
    steps = {}
    for batch in (16, 64):
        preset = preset_from_dict(base.to_dict() | {"train_by_model": {"biased": {
            "batch_size": batch}}})
        steps[batch] = fit_model("biased", fold, preset, seed=0).history.steps
    n = len(fold.train)
    assert steps == {16: 2 * -(-n // 16), 64: 2 * -(-n // 64)}


@pytest.mark.parametrize("raw, message", [
    ({"trian": {}}, "unknown key"),
    ({"train": {"epochz": 3}}, "epochz"),
    ({"train_by_model": {"biased": {"learning_rate": 1}}}, "learning_rate"),
    ({"train_by_model": {"nosuch": {"lr": 1}}}, "nosuch"),
    ({"models": {"mlp": {"hidden": 0}}}, "hidden"),
    ({"models": []}, "models"),
    ([1, 2], "JSON object"),
])
def test_bad_preset_files(raw, message):
    with pytest.raises(Exception, match=message) as info:
        preset_from_dict(raw)
    assert isinstance(info.value, EmbedrecError)
