"""embedrec tune: equal budgets, validation rows only, resumable studies, a preset file that
compare and train accept, and search spaces declared by specs (overridable by a file)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from embedrec.cli import main  # noqa: E402
from embedrec.experiment import splits  # noqa: E402
from embedrec.models.registry import get, names  # noqa: E402
from embedrec.presets import get_preset, load_preset_file  # noqa: E402
from embedrec.tune import Budget, run_tuning, tuning_fold  # noqa: E402
from tests.conftest import make_ratings  # noqa: E402

PRESET = get_preset("default").with_overrides(epochs=3, valid_fraction=0.1)


@pytest.fixture(scope="module")
def data():
    return make_ratings(n_users=40, n_items=30, seed=2)


@pytest.fixture
def ratings_csv(tmp_path):
    frame = make_ratings(n_users=40, n_items=30, seed=2).to_frame()
    path = tmp_path / "ratings.csv"
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    return path


def _values(report, model):
    return [(t["number"], t["state"], t["value"]) for t in report["models"][model]["trials"]]


def test_test_rows_are_never_read(data, tmp_path):
    """The test part of the split is poisoned with NaN: tuning gives exactly the same trials."""
    test_rows = splits(data, PRESET)[0].test
    ratings = data.ratings.copy()
    ratings[test_rows] = np.nan
    poisoned = dataclasses.replace(data, ratings=ratings)
    clean = run_tuning(data, preset=PRESET, models=["biased", "bias"], budget=Budget(trials=3),
                       out=tmp_path / "clean")
    dirty = run_tuning(poisoned, preset=PRESET, models=["biased", "bias"],
                       budget=Budget(trials=3), out=tmp_path / "dirty")
    assert _values(clean, "biased") == _values(dirty, "biased")
    assert _values(clean, "bias") == _values(dirty, "bias")
    values = [v for _, state, v in _values(dirty, "biased") if state == "COMPLETE"]
    assert values and np.isfinite(values).all()
    fold = tuning_fold(data, PRESET, 0)
    assert len(fold.train) + len(fold.valid) == len(data) - len(test_rows)
    assert fold.test is None


def test_tuning_needs_validation_rows(data, tmp_path):
    from embedrec.errors import ConfigError

    with pytest.raises(ConfigError, match="validation"):
        run_tuning(data, preset=PRESET.with_overrides(valid_fraction=0.0), models=["biased"],
                   budget=Budget(trials=1), out=tmp_path)


def test_every_model_gets_the_same_budget_and_epochs_are_reported(data, tmp_path):
    report = run_tuning(data, preset=PRESET, models=["dot", "mlp"], budget=Budget(trials=2),
                        out=tmp_path)
    assert report["budget"] == {"trials": 2, "timeout": None}
    for model in ("dot", "mlp"):
        res = report["models"][model]
        assert res["n_complete"] + res["n_pruned"] == 2
        # every trial reported its per-epoch validation loss to the pruner
        assert all(1 <= t["epochs"] <= 3 for t in res["trials"])
    assert set(report["models"]["mlp"]["best_model_settings"]) >= {"hidden", "dropout_in",
                                                                   "dropout_hidden", "n_factors"}
    assert (tmp_path / "study.db").is_file()


def test_interrupted_study_resumes(data, tmp_path):
    seen = []

    def interrupt(model, trial):
        seen.append(trial.number)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tuning(data, preset=PRESET, models=["biased"], budget=Budget(trials=4), out=tmp_path,
                   on_trial=interrupt)
    before = optuna.load_study(study_name="biased", storage=f"sqlite:///{tmp_path}/study.db")
    first = [(t.number, t.value) for t in before.trials]
    assert len(first) == 2
    report = run_tuning(data, preset=PRESET, models=["biased"], budget=Budget(trials=4),
                        out=tmp_path)
    trials = report["models"]["biased"]["trials"]
    assert len(trials) == 4  # two kept, two more run
    assert [(t["number"], t["value"]) for t in trials[:2]] == first
    again = run_tuning(data, preset=PRESET, models=["biased"], budget=Budget(trials=4),
                       out=tmp_path)
    assert len(again["models"]["biased"]["trials"]) == 4  # complete: nothing more runs


@pytest.mark.slow
def test_killed_study_resumes(ratings_csv, tmp_path):
    """A tune process killed with SIGKILL mid-study: rerunning keeps its finished trials."""
    out = tmp_path / "tuned"
    args = ["tune", "--data", str(ratings_csv), "--models", "biased", "--epochs", "2",
            "--valid-fraction", "0.1", "--out", str(out)]
    with (tmp_path / "stderr").open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", "import sys; from embedrec.cli import main; "
                                 "sys.exit(main(sys.argv[1:]))", *args, "--trials", "500"],
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                cwd=Path(__file__).resolve().parents[1])
        storage = f"sqlite:///{out}/study.db"
        finished = []
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                if not (out / "study.db").is_file():
                    continue
                try:
                    study = optuna.load_study(study_name="biased", storage=storage)
                except Exception:  # the study is being created
                    continue
                finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
                if len(finished) >= 2:
                    break
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    errors = (tmp_path / "stderr").read_text()[-2000:]
    assert len(finished) >= 2, (f"the tuning process ended (exit {proc.returncode}) before two "
                                f"trials finished: {errors}")
    study = optuna.load_study(study_name="biased", storage=storage)
    kept = {t.number: t.value for t in study.trials if t.state.is_finished()}
    assert main([*args, "--trials", str(len(kept) + 1)]) == 0
    report = json.loads((out / "tuning.json").read_text())
    trials = report["models"]["biased"]["trials"]
    done = {t["number"]: t["value"] for t in trials if t["state"] in ("COMPLETE", "PRUNED")}
    assert len(done) == len(kept) + 1
    assert all(done[n] == v for n, v in kept.items())


def test_preset_file_from_tune_drives_compare_and_train(ratings_csv, tmp_path, capsys):
    tuned = tmp_path / "tuned"
    assert main(["tune", "--data", str(ratings_csv), "--models", "biased,bias", "--trials", "2",
                 "--epochs", "2", "--valid-fraction", "0.1", "--out", str(tuned)]) == 0
    assert "best.json" in capsys.readouterr().out
    preset = load_preset_file(tuned / "best.json")
    report = json.loads((tuned / "tuning.json").read_text())
    best = report["models"]["biased"]
    assert preset.train_by_model["biased"] == best["best_train_settings"]
    assert preset.model_config(get("biased")).n_factors == best["best_model_settings"]["n_factors"]
    assert preset.train_config("biased").lr == best["best_train_settings"]["lr"]
    assert preset.train_config("bias") == preset.train  # nothing tuned for a closed-form model
    assert preset.split.valid_fraction == 0.1

    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(ratings_csv), "--tuned", str(tuned), "--models",
                 "biased,bias", "--seeds", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(Holm)" in printed
    results = json.loads((out / "results.json").read_text())
    assert {r["config"]["n_factors"] for r in results if r["model"] == "biased"} == {
        best["best_model_settings"]["n_factors"]}
    page = (out / "report.html").read_text()
    assert "<h2>Tuning</h2>" in page and "Optimisation history" not in page.split("Tuning")[0]
    assert "clearly ahead" not in page

    model = tmp_path / "model"
    assert main(["train", "--data", str(ratings_csv), "--model", "biased", "--preset-file",
                 str(tuned / "best.json"), "--out", str(model)]) == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["preset"]["train_by_model"]["biased"]["lr"] == best["best_train_settings"]["lr"]


def test_search_space_file_overrides_a_spec(data, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"biased": {"n_factors": 8, "lr": {"low": 0.001, "high": 0.002,
                                                                   "log": True}},
                                 "*": {"epochs": {"choices": [2]}}}))
    from embedrec.tune import load_space_file

    report = run_tuning(data, preset=PRESET, models=["biased"], budget=Budget(trials=3),
                        out=tmp_path / "out", space=load_space_file(space))
    for trial in report["models"]["biased"]["trials"]:
        assert trial["params"]["n_factors"] == 8
        assert 0.001 <= trial["params"]["lr"] <= 0.002
        assert trial["params"]["epochs"] == 2 and trial["epochs"] <= 2


def test_bad_search_space_and_preset_files_are_one_line_errors(ratings_csv, tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"biased": {"lr": {"low": 1}}}))
    assert main(["tune", "--data", str(ratings_csv), "--space", str(space), "--out",
                 str(tmp_path / "o")]) == 1
    assert "give low and high" in capsys.readouterr().err
    bad = tmp_path / "preset.json"
    bad.write_text(json.dumps({"train_by_model": {"biased": {"learning_rate": 1}}}))
    assert main(["compare", "--data", str(ratings_csv), "--preset-file", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "learning_rate" in err and "Traceback" not in err
    bad.write_text("{not json")
    assert main(["train", "--data", str(ratings_csv), "--model", "biased", "--preset-file",
                 str(bad), "--out", str(tmp_path / "m")]) == 1
    assert "not a JSON preset file" in capsys.readouterr().err


@pytest.mark.parametrize("name", names())
def test_every_spec_declares_a_usable_search_space(name):
    """The default (or overridden) space of every registered model gives settings its Config
    and TrainConfig accept."""
    spec = get(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        model_values, train_values = spec.search_space(trial, PRESET.train)
        spec.config(**model_values)
        dataclasses.replace(PRESET.train, **train_values)
        if spec.capabilities.trained_by == "torch":
            assert {"lr", "l2", "batch_size"} <= set(train_values)
        else:
            assert train_values == {}


def test_hybrid_spaces_draw_widths_inputs_and_depth():
    """hybrid_mf draws the user and movie widths independently and switches each input; the NN
    head draws a depth and a width, halved per layer; a file may fix the depth by name."""
    from embedrec.tune import trial_settings

    mf, nn = get("hybrid_mf"), get("hybrid_nn")
    fixed = optuna.trial.FixedTrial({
        "lr": 0.01, "l2": 1e-4, "batch_size": 64, "n_factors": 32, "user_factors": 16,
        "item_factors": 128, "use_genres": True, "use_year": False, "use_time": False,
        "use_implicit": True, "depth": 3, "width": 64, "dropout": 0.2})
    values, train = mf.search_space(fixed, PRESET.train)
    config = mf.config(**values)
    assert (config.du, config.di) == (16, 128)
    assert (config.use_genres, config.use_year, config.use_implicit) == (True, False, True)
    assert train["batch_size"] == 64
    values, _ = nn.search_space(fixed, PRESET.train)
    assert nn.config(**values).hidden == (64, 32, 16)
    # an override of the drawn depth is accepted (it is no Config field, but the spec asks it)
    trial = optuna.trial.FixedTrial(dict(fixed.params) | {"depth": 2})
    values, _ = trial_settings(nn, trial, PRESET.train, {"depth": 2})
    assert values["hidden"] == (64, 32)
    with pytest.raises(Exception, match="neither"):
        trial_settings(nn, optuna.trial.FixedTrial(fixed.params | {"layers": 2}), PRESET.train,
                       {"layers": 2})


@pytest.mark.parametrize("name", ["biased", "mlp", "hybrid_mf", "hybrid_nn"])
def test_the_first_trial_is_the_presets_own_settings(name):
    """Tuning starts where the preset stands: the start parameters, drawn through the spec's
    space, give back the preset's model and training settings."""
    from embedrec.tune import start_params, trial_settings

    spec = get(name)
    preset = PRESET.with_model_settings({"hybrid_nn": {"hidden": (128, 64)}})
    start = start_params(spec, preset, {})
    values, train = trial_settings(spec, optuna.trial.FixedTrial(start), preset.train, {})
    config = preset.model_config(spec)
    drawn = spec.config(**dataclasses.asdict(config) | values)
    if name.startswith("hybrid"):  # 0 means "n_factors": the same widths, spelled out
        assert (drawn.du, drawn.di) == (config.du, config.di)
        drawn = dataclasses.replace(drawn, user_factors=0, item_factors=0)
    assert drawn == config
    assert dataclasses.replace(preset.train, **train) == preset.train_config(name)
    if name == "hybrid_nn":
        assert (start["depth"], start["width"]) == (2, 128)
    if name.startswith("hybrid"):  # the widths, and no n_factors, which does nothing there
        assert (start["user_factors"], start["item_factors"]) == (config.du, config.di)
        assert "n_factors" not in start


def test_a_start_value_outside_the_space_is_left_to_the_sampler():
    from embedrec.tune import start_params

    preset = PRESET.with_overrides(batch_size=100, lr=0.5).with_model_settings(
        {"biased": {"n_factors": 50}})
    start = start_params(get("biased"), preset, {"lr": {"low": 0.1, "high": 1.0}})
    assert "batch_size" not in start  # 100 is not among the choices
    assert start["lr"] == 0.5 and start["n_factors"] == 50 and start["l2"] == preset.train.l2


def test_a_new_study_runs_the_start_trial_first(data, tmp_path):
    from embedrec.tune import start_params

    report = run_tuning(data, preset=PRESET, models=["biased"], budget=Budget(trials=2),
                        out=tmp_path)
    first = report["models"]["biased"]["trials"][0]
    assert first["params"] == start_params(get("biased"), PRESET, {})
    again = run_tuning(data, preset=PRESET, models=["biased"], budget=Budget(trials=3),
                       out=tmp_path)  # resuming enqueues nothing more
    assert [t["params"] for t in again["models"]["biased"]["trials"][:2]] == \
        [t["params"] for t in report["models"]["biased"]["trials"]]


def test_warm_rows_are_those_whose_user_and_movie_have_training_ratings():
    from embedrec.data.dataset import Ratings
    from embedrec.tune import warm_rows

    import pandas as pd

    frame = pd.DataFrame({"user": [1, 1, 2, 2, 1, 3, 2, 2], "item": [1, 2, 1, 2, 1, 1, 3, 2],
                          "rating": [4.0, 3, 2, 5, 1, 2, 3, 4]})
    whole = Ratings.from_frame(frame, scale=(0.5, 5.0))
    train, valid = whole.take(np.arange(4)), whole.take(np.arange(4, 8))
    warm = warm_rows(valid, train)
    # (1, 1) and (2, 2) are warm; user 3 and movie 3 have no training ratings
    assert list(zip(warm.users, warm.items)) == [(valid.users[0], valid.items[0]),
                                                 (valid.users[3], valid.items[3])]


def test_a_trials_value_scores_cold_rows_as_the_test_does(tmp_path):
    """A sparse set with movies whose only ratings fell into validation: the trial's value is
    the MSE of the bundle (fallback for those rows) at the best epoch, not the model's own
    guess from untrained embeddings."""
    from embedrec.evaluation.evaluate import evaluate_ratings
    from embedrec.experiment import bundle_of, fit_fallback, fit_model
    from embedrec.tune import start_params, warm_rows

    sparse = make_ratings(n_users=40, n_items=80, density=0.04, seed=5)
    preset = PRESET.with_overrides(valid_fraction=0.3)
    report = run_tuning(sparse, preset=preset, models=["dot"], budget=Budget(trials=1),
                        out=tmp_path)
    value = report["models"]["dot"]["trials"][0]["value"]
    fold = tuning_fold(sparse, preset, 0)
    monitored = dataclasses.replace(fold, valid=warm_rows(fold.valid, fold.train))
    assert len(monitored.valid) < len(fold.valid)  # there are cold rows
    run = preset.with_model_settings({"dot": {}})
    assert start_params(get("dot"), preset, {})  # the one trial ran the preset's settings
    fitted = fit_model("dot", monitored, run, seed=0)
    metrics, _ = evaluate_ratings(bundle_of(fitted, fold, fit_fallback(fold, preset)).scored,
                                  fold.valid)
    assert metrics["n_cold"] > 0
    assert value == pytest.approx(metrics["mse"], rel=1e-6)
    assert value != pytest.approx(metrics["rmse_model_all"] ** 2, rel=1e-3)


def test_ranking_models_are_tuned_on_validation_ndcg(data, tmp_path):
    """iALS ranks only: a trial's value is 1 - NDCG@k over the validation rows (a rating >= the
    threshold relevant), with only the movies it was fitted on masked."""
    from embedrec.evaluation.evaluate import evaluate_ranking
    from embedrec.experiment import bundle_of, fit_fallback, fit_model
    from embedrec.recommender import recommend_all

    report = run_tuning(data, preset=PRESET, models=["ials"], budget=Budget(trials=2),
                        out=tmp_path)
    res = report["models"]["ials"]
    assert res["objective"] == "1 - validation NDCG@10"
    first = res["trials"][0]
    assert first["params"] == {"n_factors": 50, "alpha": 10.0, "reg": 5.0,
                               "reg_exponent": 0.0}  # the preset's
    fold = tuning_fold(data, PRESET, 0)
    fitted = fit_model("ials", fold, PRESET, seed=0)
    bundle = bundle_of(fitted, dataclasses.replace(fold, seen=fold.train),
                       fit_fallback(fold, PRESET))
    metrics = evaluate_ranking(lambda u: recommend_all(bundle, 10, users=u)[0], fold.valid,
                               k=10, threshold=4.0, item_counts=bundle.item_counts)
    assert metrics["n_users_ranked"] > 0 and 0 < metrics["ndcg_at_k"] < 1
    assert first["value"] == pytest.approx(1 - metrics["ndcg_at_k"], abs=1e-12)
    assert len({t["value"] for t in res["trials"]}) == 2  # the second trial drew other settings


def test_a_ranking_loss_is_pruned_on_its_own_loss_and_tuned_on_ndcg(data, tmp_path):
    preset = PRESET.with_overrides(loss="bpr")
    report = run_tuning(data, preset=preset, models=["dot"], budget=Budget(trials=2),
                        out=tmp_path)
    res = report["models"]["dot"]
    assert res["objective"] == "1 - validation NDCG@10"
    for trial in res["trials"]:
        assert trial["state"] == "COMPLETE" and 0 <= trial["value"] <= 1
        assert trial["epochs"] >= 1  # the per-epoch valid_bpr reached the pruner


def test_tune_for_protocol_b_uses_its_split_and_relevance(ratings_csv, tmp_path):
    out = tmp_path / "b"
    assert main(["tune", "--data", str(ratings_csv), "--models", "ials", "--trials", "2",
                 "--valid-fraction", "0.1", "--protocol", "b", "--holdout-fraction", "0.25",
                 "--out", str(out)]) == 0
    report = json.loads((out / "tuning.json").read_text())
    assert report["protocol"] == "b" and report["split"] == "user-random"
    assert report["relevance_threshold"] == 0.5  # every held-out rating is relevant
    assert report["base_preset"]["split"]["test_fraction"] == 0.25
    assert report["models"]["ials"]["objective"] == "1 - validation NDCG@10"
    assert main(["tune", "--data", str(ratings_csv), "--protocol", "c", "--out",
                 str(tmp_path / "c")]) == 1


def test_a_setup_every_trial_fails_on_is_one_error_and_writes_no_best(data, tmp_path):
    """mlp cannot train with the full softmax: each trial fails with that reason (logged, no
    traceback) and the tuning ends with it, leaving no best.json to mislead a compare."""
    from embedrec.errors import EmbedrecError

    preset = PRESET.with_overrides(loss="full_softmax")
    with pytest.raises(EmbedrecError, match="tuning mlp: every trial failed: the full_softmax "
                                            "loss needs a model that scores"):
        run_tuning(data, preset=preset, models=["mlp"], budget=Budget(trials=2), out=tmp_path)
    assert not (tmp_path / "best.json").exists()


def test_a_model_that_fails_everywhere_does_not_lose_the_others_results(data, tmp_path):
    from embedrec.errors import EmbedrecError

    preset = PRESET.with_overrides(loss="full_softmax", epochs=2)
    with pytest.raises(EmbedrecError, match=r"tuning mlp: every trial failed: .*\(the other "
                                            r"models' results are in"):
        run_tuning(data, preset=preset, models=["dot", "mlp"], budget=Budget(trials=2),
                   out=tmp_path)
    report = json.loads((tmp_path / "tuning.json").read_text())
    assert report["models"]["dot"]["n_complete"] == 2 and report["models"]["dot"]["error"] is None
    assert report["models"]["mlp"]["error"].startswith("every trial failed")
    best = load_preset_file(tmp_path / "best.json")
    assert "dot" in best.models and "mlp" not in best.models


def test_a_trial_that_fails_is_recorded_with_its_reason_and_the_others_go_on(data, tmp_path,
                                                                            monkeypatch):
    import embedrec.tune as tune
    from embedrec.errors import TrainingError

    real, calls = tune.fit_model, []

    def fails_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise TrainingError("loss became nan at epoch 1")
        return real(*args, **kwargs)

    monkeypatch.setattr(tune, "fit_model", fails_first)
    report = run_tuning(data, preset=PRESET, models=["dot"], budget=Budget(trials=2),
                        out=tmp_path)
    trials = report["models"]["dot"]["trials"]
    assert [t["state"] for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0]["error"] == "loss became nan at epoch 1"
    assert trials[1]["error"] is None and (tmp_path / "best.json").is_file()


class _Choices:
    """A stand-in trial that records each categorical's choices and takes the first."""

    def __init__(self):
        self.choices = {}

    def suggest_categorical(self, name, choices):
        self.choices[name] = list(choices)
        return choices[0]

    def suggest_float(self, name, low, high, log=False):
        return low

    def suggest_int(self, name, low, high):
        return low


@pytest.mark.parametrize("name, keys", [("dot", ["n_factors"]),
                                        ("hybrid_mf", ["user_factors", "item_factors"])])
def test_a_ranking_loss_draws_wider_tables(name, keys):
    from embedrec.presets import get_preset

    widths = {}
    for loss in ("mse", "full_softmax", "bpr"):
        trial = _Choices()
        get(name).search_space(trial, dataclasses.replace(get_preset("default").train, loss=loss))
        widths[loss] = [trial.choices[key] for key in keys]
    assert all(max(w) == 128 for w in widths["mse"])
    assert all(max(w) == 512 and 256 in w for w in widths["full_softmax"] + widths["bpr"])
