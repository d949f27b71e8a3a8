"""Tune every model with the same budget, on validation rows only, with Optuna.

For each model one Optuna study (TPE sampling, percentile pruning on the per-epoch validation
loss) lives in ``OUT/study.db`` (SQLite). A trial trains the model on the training part of the
split minus the validation carve-out, watching (for pruning and early stopping) the validation
rows whose user and movie have training ratings; its value is the validation MSE of the kept
(best) epoch's weights scored the way the test rows will be, cold rows by the fallback unless
the model can score them. The test rows of the split are never taken from the data. The first
trial of a new study is the preset's own settings, so tuning never picks settings that validate
worse than where it started. Every model gets the same number of trials and the same wall-clock
cap. Rerunning the same command resumes each study: finished trials are kept and only the
missing ones run.

Outputs in ``OUT``: ``best.json`` (a preset file: ``compare --preset-file`` / ``--tuned OUT``
and ``train --preset-file``), ``tuning.json`` (every trial, the best settings, parameter
importances, seconds per model) and ``study.db``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError, EmbedrecError
from embedrec.evaluation.evaluate import evaluate_ranking, evaluate_ratings
from embedrec.experiment import bundle_of, fit_fallback, fit_model, make_fold, splits
from embedrec.models.registry import check_model_names
from embedrec.models.registry import get as get_spec
from embedrec.presets import Preset
from embedrec.training.config import TrainConfig

log = logging.getLogger(__name__)

# Pruning compares a trial's best validation MSE so far with earlier trials' at the same epoch
# and stops it when it is worse than PRUNE_PERCENTILE of them. It waits PRUNE_WARMUP_EPOCHS
# epochs and prunes only the worst quarter: pruned at epoch 1 against the median, the
# well-regularised settings that converge slowly but end best (the preset's own, for biased MF
# and the hybrids) lost to fast learners that overfit from epoch 2 on.
PRUNE_STARTUP_TRIALS = 5
PRUNE_PERCENTILE = 75.0
PRUNE_WARMUP_EPOCHS = 4
TrialProgress = Callable[[str, int, int, float | None], None]  # (model, done, total, best)
SPACE_KINDS = ("float", "int", "categorical")


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        raise EmbedrecError("tuning needs Optuna: pip install optuna") from None
    # errors only: a failed trial is logged here, in one line with its reason
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


@dataclass(frozen=True)
class Budget:
    """The same for every model: trials and a wall-clock cap (seconds, per model)."""

    trials: int = 50
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError("--trials must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError("--timeout must be > 0 seconds")


# ---- search spaces ---------------------------------------------------------------------------
def load_space_file(path) -> dict:
    """A search-space override file: {model or "*": {param: spec}}, where spec is
    {"low": x, "high": y, "log": bool} (float), {"low": m, "high": n, "int": true} (int),
    {"choices": [...]} (categorical), or a single value (fixed). Only data is read."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such search-space file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON search-space file ({exc})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{path}: expected {{model: {{parameter: range}}}}")
    for model, params in raw.items():
        if model != "*":
            get_spec(model)
        for name, spec in params.items():
            _check_range(f"{path}: {model}.{name}", spec)
    return raw


def _check_range(where: str, spec) -> None:
    if not isinstance(spec, dict):
        if not isinstance(spec, (int, float, str, bool)):
            raise ConfigError(f"{where}: a fixed value must be a number, string or boolean")
        return
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        return
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: give low and high (numbers), or choices") from None
    if not low < high or (spec.get("log") and low <= 0):
        raise ConfigError(f"{where}: need low < high (and low > 0 with log)")


class SpaceTrial:
    """An Optuna trial whose ranges are replaced by a search-space file's where it names a
    parameter (so a spec's ``search_space`` needs no knowledge of the file)."""

    def __init__(self, trial, overrides: dict):
        self.trial, self.overrides = trial, overrides
        self.asked: set[str] = set()  # the names the spec drew (e.g. a depth that sets widths)

    def _override(self, name: str):
        spec = self.overrides[name]
        if not isinstance(spec, dict):
            return self.trial.suggest_categorical(name, [spec])
        if "choices" in spec:
            return self.trial.suggest_categorical(name, list(spec["choices"]))
        if spec.get("int"):
            return self.trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                          log=bool(spec.get("log")))
        return self.trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                        log=bool(spec.get("log")))

    def suggest_float(self, name, low, high, *, log=False, step=None):
        self.asked.add(name)
        if name in self.overrides:
            return self._override(name)
        return self.trial.suggest_float(name, low, high, log=log, step=step)

    def suggest_int(self, name, low, high, *, log=False, step=1):
        self.asked.add(name)
        if name in self.overrides:
            return self._override(name)
        return self.trial.suggest_int(name, low, high, log=log, step=step)

    def suggest_categorical(self, name, choices):
        self.asked.add(name)
        if name in self.overrides:
            return self._override(name)
        return self.trial.suggest_categorical(name, choices)


def trial_settings(spec, trial, train: TrainConfig, overrides: dict) -> tuple[dict, dict]:
    """(model settings, training settings) of one trial: the spec's space, with the file's
    overrides, plus any parameter the file adds (routed by name to the model's Config or to
    TrainConfig)."""
    wrapped = SpaceTrial(trial, overrides)
    model_values, train_values = spec.search_space(wrapped, train)
    model_fields = {f.name for f in dataclasses.fields(spec.Config)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in overrides:
        if name in model_values or name in train_values or name in wrapped.asked:
            continue
        if name in model_fields:
            model_values[name] = wrapped._override(name)
        elif name in train_fields:
            train_values[name] = wrapped._override(name)
        else:
            raise ConfigError(f"search space of {spec.name}: {name!r} is neither a {spec.name} "
                              f"setting nor a training setting")
    return model_values, train_values


class _StartProbe:
    """Stands in for an Optuna trial to read a search space once: each draw takes the starting
    value of the same name when it lies in the draw's range (or among its choices) and records
    it; any other draw is left to the sampler."""

    def __init__(self, values: dict):
        self.values, self.params, self.outside = values, {}, []

    def _take(self, name, fits, placeholder):
        value = self.values.get(name)
        if isinstance(value, list):
            value = tuple(value)
        if value is not None and fits(value):
            self.params[name] = value
            return value
        self.outside.append(name)
        return placeholder

    @staticmethod
    def _number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def suggest_float(self, name, low, high, *, log=False, step=None):
        return self._take(name, lambda v: self._number(v) and low <= v <= high, low)

    def suggest_int(self, name, low, high, *, log=False, step=1):
        return self._take(name, lambda v: isinstance(v, int) and not isinstance(v, bool)
                          and low <= v <= high, low)

    def suggest_categorical(self, name, choices):
        return self._take(name, lambda v: any(type(v) is type(c) and v == c for c in choices),
                          choices[0])


def start_params(spec, preset: Preset, overrides: dict) -> dict:
    """The drawn parameters that reproduce the preset's settings of ``spec`` (those the search
    space can express): the study's first trial, so that tuning never picks settings that
    validate worse than where it started."""
    config, train = preset.model_config(spec), preset.train_config(spec.name)
    values = dataclasses.asdict(train) | dataclasses.asdict(config) | spec.search_start(config)
    probe = _StartProbe(values)
    trial_settings(spec, probe, train, overrides)
    if probe.outside:
        log.info("%s: the first trial draws %s (the preset's value is outside the search "
                 "space)", spec.name, ", ".join(probe.outside))
    return probe.params


# ---- one study per model ---------------------------------------------------------------------
@dataclass
class ModelTuning:
    model: str
    best_value: float | None
    best_model_settings: dict
    best_train_settings: dict
    trials: list[dict]
    importances: dict
    seconds: float  # wall time of this invocation's trials
    n_complete: int
    n_pruned: int
    settings_keys: dict = field(default_factory=dict)  # param -> "model" | "train"
    objective: str = "validation MSE"  # what best_value measures (lower is better)
    error: str | None = None  # why every trial failed, when they all did


def tuning_fold(data: Ratings, preset: Preset, seed: int):
    """The rows a trial may see: the training part of the preset's split, with its validation
    carve-out. The test part is never taken from ``data``."""
    if preset.split.valid_fraction <= 0:
        raise ConfigError("tuning needs validation rows: use a preset with a validation "
                          "fraction or --valid-fraction X (e.g. 0.05)")
    sp = splits(data, preset)[0]
    return make_fold(data, sp.train, None, valid_fraction=preset.split.valid_fraction, seed=seed,
                     kind=preset.split.kind)


def warm_rows(valid: Ratings, train: Ratings) -> Ratings:
    """The validation rows whose user and movie have training ratings: what a trial's
    per-epoch loss (pruning, early stopping) watches. A cold row would be scored by untrained
    embeddings there, while the trial's result, like the test, hands it to the fallback."""
    users, items = train.user_counts() > 0, train.item_counts() > 0  # the same id maps
    return valid.take(np.flatnonzero(users[valid.users] & items[valid.items]))


def validation_value(fitted, fold, fallback, preset: Preset) -> float:
    """A trial's value, scored the way the test rows will be (lower is better).

    A model that predicts ratings: the MSE of its kept (best) epoch's weights on the
    validation rows, a row it cannot score by the fallback. A ranking model (EASE, iALS,
    kNN, a ranking loss): 1 - NDCG@k over the validation rows, a rating at least the relevance
    threshold relevant, with only the movies of the rows it was fitted on masked."""
    bundle = bundle_of(fitted, replace(fold, seen=fold.train), fallback)
    if bundle.scored.predicts_ratings:
        metrics, _ = evaluate_ratings(bundle.scored, fold.valid)
        return float(metrics["mse"])
    from embedrec.recommender import recommend_all

    k, threshold = preset.evaluation.top_k, preset.evaluation.relevance_threshold
    metrics = evaluate_ranking(lambda users: recommend_all(bundle, k, users=users)[0],
                               fold.valid, k=k, threshold=threshold,
                               item_counts=bundle.item_counts)
    if not metrics["n_users_ranked"]:
        raise EmbedrecError(f"no validation rating reaches {threshold:g}: nothing to rank")
    return 1.0 - float(metrics["ndcg_at_k"])


def objective_name(name: str, preset: Preset) -> str:
    """What ``validation_value`` computes for model ``name`` under ``preset``."""
    from embedrec.models.outputs import predicts_ratings

    spec = get_spec(name)
    loss = preset.train_config(name).loss if spec.capabilities.trained_by == "torch" else None
    if predicts_ratings(spec.capabilities, loss):
        return "validation MSE"
    return f"1 - validation NDCG@{preset.evaluation.top_k}"


def _storage_url(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"


def tune_model(name: str, fold, preset: Preset, budget: Budget, out: Path, *, seed: int = 0,
               overrides: dict | None = None, progress: TrialProgress | None = None,
               on_trial: Callable | None = None) -> ModelTuning:
    """Run (or resume) the study of one model up to ``budget.trials`` finished trials."""
    optuna = _optuna()
    spec = get_spec(name)
    overrides = dict(overrides or {})
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.PercentilePruner(PRUNE_PERCENTILE,
                                             n_startup_trials=PRUNE_STARTUP_TRIALS,
                                             n_warmup_steps=PRUNE_WARMUP_EPOCHS)
    study = optuna.create_study(study_name=name, storage=_storage_url(out), sampler=sampler,
                                pruner=pruner, direction="minimize", load_if_exists=True)
    if not study.get_trials(deepcopy=False):  # a new study starts from the preset's settings
        start = start_params(spec, preset, overrides)
        if start:
            study.enqueue_trial(start, user_attrs={"start": True})
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    fallback = fit_fallback(fold, preset)
    monitored = replace(fold, valid=warm_rows(fold.valid, fold.train))
    keys: dict[str, str] = {}

    def objective(trial) -> float:
        model_values, train_values = trial_settings(spec, trial, preset.train, overrides)
        keys.update({k: "model" for k in model_values} | {k: "train" for k in train_values})
        trial.set_user_attr("model_settings", model_values)
        trial.set_user_attr("train_settings", train_values)
        run = preset.with_model_settings({name: model_values})
        run = replace(run, train_by_model={**run.train_by_model, name: {
            **run.train_by_model.get(name, {}), **train_values}})

        best_so_far = [math.inf]

        def report(epoch: int, record: dict) -> None:
            value = next((v for k, v in record.items() if k.startswith("valid_")
                          and v is not None), None)  # the loss's own validation metric
            if value is None or not math.isfinite(value):
                return
            best_so_far[0] = min(best_so_far[0], value)  # the objective: the best epoch's
            trial.report(best_so_far[0], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            fitted = fit_model(name, monitored, run, seed=seed, on_epoch=report)
            return validation_value(fitted, fold, fallback, preset)
        except EmbedrecError as exc:  # this trial's settings fail (e.g. a diverging lr)
            trial.set_user_attr("error", str(exc))
            log.warning("%s, trial %d failed: %s", name, trial.number, exc)
            return math.nan  # optuna records a failed trial, without a traceback

    def count() -> int:
        return sum(t.state in finished for t in study.get_trials(deepcopy=False))

    def best() -> float | None:
        done = [t.value for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
        return min(done) if done else None

    def callback(study_, trial) -> None:
        if progress:
            progress(name, count(), budget.trials, best())
        if on_trial:
            on_trial(name, trial)

    remaining = budget.trials - count()
    if progress:
        progress(name, count(), budget.trials, best())
    t0 = time.perf_counter()
    if remaining > 0:
        log.info("tuning %s: %d trial(s) to run", name, remaining)
        study.optimize(objective, n_trials=remaining, timeout=budget.timeout,
                       callbacks=[callback], catch=(EmbedrecError,), gc_after_trial=False)
    seconds = time.perf_counter() - t0
    result = summarise(study, name, seconds, keys)
    result.objective = objective_name(name, preset)
    errors = [t["error"] for t in result.trials if t["error"]]
    if result.trials and len(errors) == len(result.trials):
        result.error = f"every trial failed: {errors[-1]}"
    return result


def summarise(study, name: str, seconds: float, keys: dict | None = None) -> ModelTuning:
    optuna = _optuna()
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             "params": t.params, "epochs": len(t.intermediate_values),
             "error": t.user_attrs.get("error"),
             "seconds": (t.duration.total_seconds() if t.duration else None)} for t in trials]
    if not complete:
        return ModelTuning(name, None, {}, {}, rows, {}, seconds, 0,
                           sum(t.state == optuna.trial.TrialState.PRUNED for t in trials))
    top = min(complete, key=lambda t: t.value)
    importances = {}
    if len(complete) >= 3 and top.params:
        try:
            importances = {k: float(v) for k, v in optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
                if hasattr(optuna.importance, "PedAnovaImportanceEvaluator") else None).items()}
        except Exception as exc:  # importances are a nicety; never fail a run over them
            log.warning("%s: no parameter importances (%s)", name, exc)
    return ModelTuning(
        name, float(top.value), dict(top.user_attrs.get("model_settings", {})),
        dict(top.user_attrs.get("train_settings", {})), rows, importances, seconds,
        len(complete), sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        dict(keys or {}))


# ---- the whole run ---------------------------------------------------------------------------
def best_preset(preset: Preset, results: list[ModelTuning]) -> Preset:
    """The base preset with each model's best settings (models) and training settings
    (train_by_model)."""
    chosen = preset
    by_model = {k: dict(v) for k, v in preset.train_by_model.items()}
    for res in results:
        if res.best_value is None:
            continue
        chosen = chosen.with_model_settings({res.model: res.best_model_settings})
        by_model[res.model] = by_model.get(res.model, {}) | res.best_train_settings
    return replace(chosen, name=f"tuned-{preset.name}",
                   description=(f"{preset.name} with each model's settings tuned on validation "
                                "rows (embedrec tune)"),
                   train_by_model=by_model)


def run_tuning(data: Ratings, *, preset: Preset, models: list[str], budget: Budget, out,
               seed: int = 0, space: dict | None = None, progress: TrialProgress | None = None,
               on_trial: Callable | None = None, protocol: str | None = None) -> dict:
    """Tune ``models`` one after another with the same budget; write best.json and
    tuning.json into ``out``; return what tuning.json holds."""
    from embedrec.compare import versions
    from embedrec.io import atomic_write_text as atomic_write

    models = check_model_names(list(models))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fold = tuning_fold(data, preset, seed)
    space = space or {}
    results = []
    for name in models:
        overrides = dict(space.get("*", {})) | dict(space.get(name, {}))
        results.append(tune_model(name, fold, preset, budget, out, seed=seed,
                                  overrides=overrides, progress=progress, on_trial=on_trial))
    failed = [r for r in results if r.error]
    if len(failed) < len(results):  # a best.json only with something tuned in it
        chosen = best_preset(preset, results)
        atomic_write(out / "best.json", json.dumps(chosen.to_dict(), indent=1))
    report = {
        "dataset": data.name, "dataset_md5": data.source.get("md5"),
        "protocol": protocol, "split": preset.split.kind, "split_seed": preset.split.seed,
        "relevance_threshold": preset.evaluation.relevance_threshold,
        "n_train": len(fold.train), "n_valid": len(fold.valid), "seed": seed,
        "budget": {"trials": budget.trials, "timeout": budget.timeout},
        "objective": ("per model (its objective): the validation MSE of the best epoch's "
                      "weights, cold rows scored as on the test rows, for a model that "
                      "predicts ratings; 1 - validation NDCG@k for a ranking model (lower is "
                      "better)"),
        "sampler": "TPE",
        "pruner": (f"percentile {PRUNE_PERCENTILE:g} after {PRUNE_WARMUP_EPOCHS} epochs, on the "
                   "best per-epoch validation loss so far"),
        "base_preset": preset.to_dict(), "space_overrides": space,
        "models": {r.model: dataclasses.asdict(r) for r in results},
        "versions": versions(),
    }
    atomic_write(out / "tuning.json", json.dumps(report, indent=1, default=str))
    if failed:  # after the others' results are written: the setup, not the settings, failed
        raise EmbedrecError("; ".join(f"tuning {r.model}: {r.error}" for r in failed)
                            + (f" (the other models' results are in {out})"
                               if len(failed) < len(results) else ""))
    return report
