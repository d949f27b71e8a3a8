"""--refit: after validation, every model learns from the whole training part. A fitted model
fits on it directly; a torch model trains again from its seed for the epochs that were best."""

import dataclasses

import numpy as np
import pytest

from embedrec.errors import ConfigError
from embedrec.experiment import fit_fallback, fit_model, learning_fold, make_fold, run_one
from embedrec.presets import get_preset, preset_from_dict
from tests.conftest import make_ratings


@pytest.fixture
def fold():
    data = make_ratings(n_users=30, n_items=20, seed=5)
    rows = np.arange(len(data))
    return make_fold(data, rows[:-40], rows[-40:], valid_fraction=0.2, seed=0)


def _preset(refit: bool):
    # a fast learner that overfits: validation stops it at epoch 4 of 12
    return get_preset("default").with_overrides(epochs=12, patience=2, lr=0.02, l2=0.0,
                                                refit=refit)


def test_learning_fold_is_the_whole_training_part_only_under_refit(fold):
    assert learning_fold(fold, _preset(False)) is fold
    whole = learning_fold(fold, _preset(True))
    assert len(whole.train) == len(fold.train) + len(fold.valid) == len(fold.seen)
    assert whole.valid is None and whole.test is fold.test and whole.seen is fold.seen
    # no validation rows: nothing to refit from, the fold is the fold
    bare = dataclasses.replace(fold, valid=None)
    assert learning_fold(bare, _preset(True)) is bare


def test_a_fitted_model_fits_on_every_training_row(fold):
    preset = _preset(True)
    whole = learning_fold(fold, preset)
    fitted, bundle, _, _ = run_one("pop", fold, preset, seed=0,
                                   fallback=fit_fallback(whole, preset))
    by_all = fit_model("pop", whole, preset, seed=0).scorer
    by_train = fit_model("pop", fold, preset, seed=0).scorer
    users = np.arange(3)
    np.testing.assert_array_equal(fitted.scorer.rank_scores(users), by_all.rank_scores(users))
    assert not np.array_equal(by_all.rank_scores(users), by_train.rank_scores(users))


def test_a_torch_model_trains_again_for_its_best_epoch_count(fold):
    preset = _preset(True)
    first = fit_model("biased", fold, preset, seed=0)
    fitted, _, _, _ = run_one("biased", fold, preset, seed=0,
                              fallback=fit_fallback(learning_fold(fold, preset), preset))
    best = first.history.best_epoch
    assert 1 <= best < len(first.history.epochs) < 12  # stopped early, the best before the end
    # the same weights as training on every row for exactly the best epoch count, no stopping
    again = preset_from_dict(preset.to_dict() | {"train_by_model": {"biased": {
        "epochs": best, "patience": None}}})
    direct = fit_model("biased", learning_fold(fold, preset), again, seed=0)
    for name, array in direct.scorer.arrays().items():
        np.testing.assert_array_equal(fitted.scorer.arrays()[name], array)
    # its history is the validated run's, with a note of the refit
    drop = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    assert drop(fitted.history.epochs) == drop(first.history.epochs)
    assert any(f"for {best} epoch(s)" in note and f"{len(fold.seen):,}" in note
               for note in fitted.history.notes)
    assert direct.history.steps == best * -(-len(fold.seen) // preset.train.batch_size)


def test_refit_is_a_checked_preset_setting(fold):
    assert preset_from_dict({"split": {"refit": True}}).split.refit is True
    with pytest.raises(ConfigError, match="refit"):
        preset_from_dict({"split": {"refit": "yes"}})


def test_a_saved_model_says_it_learned_from_every_row():
    from embedrec.experiment import train_bundle

    data = make_ratings(n_users=30, n_items=20, seed=5)
    preset = _preset(True).with_overrides(valid_fraction=0.2)
    refitted = train_bundle(data, "pop", preset, seed=0).manifest
    plain = train_bundle(data, "pop", _preset(False).with_overrides(valid_fraction=0.2),
                         seed=0).manifest
    assert refitted["n_train"] == len(data) and refitted["n_valid"] == plain["n_valid"] > 0
    assert plain["n_train"] == len(data) - plain["n_valid"]


def test_cli_train_refit_learns_from_every_row(tmp_path, capsys):
    import json

    from embedrec.cli import main

    frame = make_ratings(n_users=30, n_items=20, seed=5).to_frame()
    path = tmp_path / "ratings.csv"
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    saved = {}
    for flag in ([], ["--refit"]):
        out = tmp_path / f"model{len(flag)}"
        assert main(["train", "--data", str(path), "--model", "biased", "--epochs", "3",
                     "--out", str(out), *flag]) == 0
        saved[bool(flag)] = json.loads((out / "manifest.json").read_text())
    assert saved[True]["n_train"] == len(frame) > saved[False]["n_train"]
    assert saved[True]["n_valid"] == saved[False]["n_valid"] > 0
    assert saved[True]["preset"]["split"]["refit"] is True
    assert any("refit" in note for note in saved[True]["notes"])
    assert f"trained on {len(frame):,} ratings" in capsys.readouterr().out
