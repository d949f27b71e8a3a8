"""The one experiment runner: split, validation carve-out, fit, bundle and score.

``compare`` loops it over models, seeds and folds; ``train`` runs it once. A model is fitted
the way its spec declares (the torch trainer, or the spec's own closed-form ``fit``), becomes a
numpy scorer, and is packaged with the cold-start fallback into a ``ModelBundle``; scoring goes
through the bundle, so evaluation sees exactly what recommending and the service see.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.data.shards import is_shard
from embedrec.errors import ConfigError
from embedrec.data.split import Split, carve_validation, check_size, kfold, make_split
from embedrec.evaluation.scoring import score_bundle
from embedrec.recommender import topn_device
from embedrec.models.baselines import BiasBaseline
from embedrec.models.registry import get as get_spec
from embedrec.models.spec import Shape
from embedrec.persistence import ModelBundle
from embedrec.presets import Preset

log = logging.getLogger(__name__)

StepProgress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/test split with its validation carve-out for one seed."""

    number: int
    train: Ratings  # rows the models are fitted on
    valid: Ratings | None  # carved from the training part; monitors training only
    seen: Ratings  # the whole training part (train + valid): never recommended back
    test: Ratings | None  # scored once, at the end


@dataclass(eq=False)
class Fitted:
    """A trained model as its numpy scorer, with how it was trained."""

    name: str
    config: Any
    scorer: Any
    history: Any  # training History, or None for closed-form models
    seconds: float
    n_params: int
    training: dict | None = None  # torch models: {"loss", "positives"} (stored in the manifest)


def splits(data: Ratings, preset: Preset, kind: str | None = None) -> list[Split]:
    """The split(s) a run scores: one, or every fold of ``kfold`` (k = 1 / test fraction)."""
    kind = kind or preset.split.kind
    check_size(len(data), str(data.source.get("path") or data.name))
    if kind == "kfold":
        return list(kfold(len(data), max(2, round(1 / preset.split.test_fraction)),
                          preset.split.seed))
    return [make_split(data, kind, preset.split.test_fraction, preset.split.seed)]


def make_fold(data: Ratings, train_rows: np.ndarray, test_rows: np.ndarray | None, *,
              valid_fraction: float, seed: int, number: int = 1, kind: str = "random") -> Fold:
    """A fold; its validation carve-out is shaped like the split ``kind``'s test part (per user
    for the per-user splits, see ``data.split.carve_validation``)."""
    fit_idx, valid_idx = carve_validation(data, train_rows, valid_fraction, seed, kind)
    return Fold(number=number, train=data.take(fit_idx),
                valid=data.take(valid_idx) if len(valid_idx) else None,
                seen=data.take(train_rows),
                test=None if test_rows is None else data.take(test_rows))


def fit_fallback(fold: Fold, preset: Preset) -> BiasBaseline:
    damping = preset.evaluation.fallback_damping
    return BiasBaseline(user_damping=damping, item_damping=damping).fit(fold.train)


def fit_model(name: str, fold: Fold, preset: Preset, *, seed: int,
              progress: StepProgress | None = None, on_epoch=None, checkpoints=None) -> Fitted:
    """Train one model on ``fold.train`` (``fold.valid`` monitors it; ``on_epoch`` is the
    trainer's per-epoch callback, for torch models; ``checkpoints``, a
    ``training.checkpoint.Checkpoints``, checkpoints a torch model's training and resumes it)."""
    spec = get_spec(name)
    config = preset.model_config(spec)
    data = fold.train
    shape = Shape(data.n_users, data.n_items, data.scale)
    if spec.capabilities.trained_by == "torch":
        from embedrec.training.trainer import train_model

        if checkpoints is not None:
            checkpoints.bind(model=name, model_config=dataclasses.asdict(config),
                             n_valid=0 if fold.valid is None else len(fold.valid))
        module, history = train_model(spec, config, shape, fold.train, preset.train_config(name),
                                      seed=seed, valid=fold.valid, progress=progress,
                                      on_epoch=on_epoch, checkpoints=checkpoints)
        scorer = spec.load_scorer(config, spec.module_arrays(module), shape)
        n_params = int(sum(p.numel() for p in module.parameters()))
        return Fitted(name, config, scorer, history, history.seconds, n_params,
                      training=training_record(preset.train))
    t0 = time.perf_counter()
    scorer = spec.fit(config, fold.train, shape)
    seconds = time.perf_counter() - t0
    n_params = int(sum(np.size(v) for v in scorer.arrays().values()))
    return Fitted(name, config, scorer, None, seconds, n_params)


def training_record(train) -> dict:
    """The loss a torch model was trained with and, for a ranking loss, its positives."""
    from embedrec.models.outputs import loss_predicts_ratings

    positives = None if loss_predicts_ratings(train.loss) else (
        "every rating" if train.implicit else f"ratings >= {train.relevant:g}")
    return {"loss": train.loss, "positives": positives}


def bundle_of(fitted: Fitted, fold: Fold, fallback: BiasBaseline,
              manifest: dict | None = None) -> ModelBundle:
    """The fitted model as a bundle: movies of the whole training part are never recommended
    back, validation carve-out included. The manifest records the training loss, which decides
    (with the spec) whether the model's scores are ratings."""
    manifest = dict(fitted.training or {"loss": None}) | dict(manifest or {})
    return ModelBundle.from_training(fitted.name, fitted.scorer, fold.train, fallback,
                                     config=fitted.config, seen=fold.seen, manifest=manifest)


def refits(fold: Fold, preset: Preset) -> bool:
    """Whether the models of this fold learn from its whole training part (``--refit``)."""
    return preset.split.refit and fold.valid is not None


def learning_fold(fold: Fold, preset: Preset) -> Fold:
    """The fold whose training rows the final models learn from: the whole training part
    (validation rows included) under ``--refit``, else ``fold``. Its ``train`` is what the
    fallback fits on and what decides which test rows are cold."""
    if not refits(fold, preset):
        return fold
    return Fold(number=fold.number, train=fold.seen, valid=None, seen=fold.seen, test=fold.test)


def refit_model(name: str, fold: Fold, preset: Preset, *, seed: int,
                progress: StepProgress | None = None, checkpoints=None) -> Fitted:
    """``name`` learning from the whole training part of ``fold``. A model fitted in closed
    form has no use for validation rows and fits on every training row. A torch model first
    trains as usual (validation rows stop it and pick its best epoch), then trains again from
    its seed on every training row for that many epochs; its history is the first run's."""
    whole = learning_fold(fold, preset)
    if get_spec(name).capabilities.trained_by != "torch":
        return fit_model(name, whole, preset, seed=seed, progress=progress)
    first = fit_model(name, fold, preset, seed=seed, progress=progress, checkpoints=checkpoints)
    epochs = first.history.best_epoch or len(first.history.epochs)
    own = dict(preset.train_by_model.get(name) or {}) | {"epochs": epochs, "patience": None}
    again = dataclasses.replace(preset, train_by_model=preset.train_by_model | {name: own})
    second = fit_model(name, whole, again, seed=seed, progress=progress)
    history = first.history
    history.notes.append(f"refit: trained again on all {len(whole.train):,} training rows "
                         f"for {epochs} epoch(s), the best on validation")
    return dataclasses.replace(second, history=history, seconds=first.seconds + second.seconds)


def run_one(name: str, fold: Fold, preset: Preset, *, seed: int, fallback: BiasBaseline,
            progress: StepProgress | None = None, checkpoints=None
            ) -> tuple[Fitted, ModelBundle, dict, np.ndarray | None]:
    """Fit (under ``--refit``, on the whole training part: ``refit_model``), bundle, and (when
    the fold has test rows) score one model. ``fallback`` is fitted on
    ``learning_fold(fold, preset).train``."""
    if refits(fold, preset):
        fitted = refit_model(name, fold, preset, seed=seed, progress=progress,
                             checkpoints=checkpoints)
        fold = learning_fold(fold, preset)
    else:
        fitted = fit_model(name, fold, preset, seed=seed, progress=progress,
                           checkpoints=checkpoints)
    bundle = bundle_of(fitted, fold, fallback)
    metrics, pred = ({}, None) if fold.test is None else score_bundle(
        bundle, fold.test, preset.evaluation, device=topn_device(preset.train.device))
    return fitted, bundle, metrics, pred


def train_bundle(data: Ratings, name: str, preset: Preset, *, seed: int = 0,
                 split: str | None = None, progress: StepProgress | None = None,
                 checkpoints=None) -> ModelBundle:
    """Train ``name`` on all rows (``split=None``) or on the train part of a named split.

    With a split, the test part is scored once and its metrics go into the manifest.
    ``checkpoints`` (``training.checkpoint.Checkpoints``): checkpoint every epoch, resume.
    """
    get_spec(name)  # an unknown name fails before any work
    if is_shard(data):
        return _train_shard(data, name, preset, seed=seed, split=split, progress=progress,
                            checkpoints=checkpoints)
    rows, test_rows = np.arange(len(data)), None
    if split is not None:
        sp = splits(data, preset, split)[0]
        rows, test_rows = sp.train, sp.test
    fold = make_fold(data, rows, test_rows, valid_fraction=preset.split.valid_fraction, seed=seed,
                     kind=split or "random")
    fallback = fit_fallback(learning_fold(fold, preset), preset)
    if checkpoints is not None:
        checkpoints.bind(dataset=data.name, dataset_md5=data.source.get("md5"),
                         n_ratings=len(data), split=split)
    fitted, bundle, metrics, _ = run_one(name, fold, preset, seed=seed, fallback=fallback,
                                         progress=progress, checkpoints=checkpoints)
    _describe(bundle, data, fold, fitted, preset, seed=seed, split=split, metrics=metrics)
    return bundle


def _train_shard(data: Ratings, name: str, preset: Preset, *, seed: int, split: str | None,
                 progress: StepProgress | None, checkpoints) -> ModelBundle | None:
    """``train_bundle`` on this rank's Parquet row groups (``data.shards``): every rank trains
    on its rows (each carves its own validation rows; rank 0 validates on its own), then rank
    0 gathers every rank's rows and builds the model folder's bundle (fallback biases, movies
    seen) from all of them. Returns the bundle on rank 0, None elsewhere."""
    from embedrec.data.shards import gather_rows
    from embedrec.training.distributed import gather_to_writer

    if split is not None:
        raise ConfigError("--split needs every row in one process; a Parquet folder read by "
                          "rank trains on all its rows")
    if preset.split.refit:
        raise ConfigError("--refit needs every row in one process; a Parquet folder read by "
                          "rank trains on all its rows")
    fold = make_fold(data, np.arange(len(data)), None,
                     valid_fraction=preset.split.valid_fraction, seed=seed)
    if checkpoints is not None:
        checkpoints.bind(dataset=data.name, n_ratings_this_rank=len(data), split=None)
    fitted = fit_model(name, fold, preset, seed=seed, progress=progress, checkpoints=checkpoints)
    empty = data.take(np.zeros(0, dtype=np.int64))
    train = gather_rows(fold.train, gather_to_writer)  # every rank sends, rank 0 receives
    valid = gather_rows(fold.valid if fold.valid is not None else empty, gather_to_writer)
    if train is None:
        return None
    seen = _concat(train, valid)
    whole = Fold(number=1, train=train, valid=valid if len(valid) else None, seen=seen, test=None)
    bundle = bundle_of(fitted, whole, fit_fallback(whole, preset))
    _describe(bundle, seen, whole, fitted, preset, seed=seed, split=None, metrics={})
    return bundle


def _concat(a: Ratings, b: Ratings) -> Ratings:
    """The rows of ``a`` then those of ``b`` (the same id maps) as one Ratings."""
    stamps = (None if a.timestamps is None or b.timestamps is None
              else np.concatenate([a.timestamps, b.timestamps]))
    return Ratings(users=np.concatenate([a.users, b.users]), items=np.concatenate([a.items, b.items]),
                   ratings=np.concatenate([a.ratings, b.ratings]), timestamps=stamps,
                   user_map=a.user_map, item_map=a.item_map, scale=a.scale, name=a.name,
                   item_info=a.item_info, source=a.source)


def _describe(bundle: ModelBundle, data: Ratings, fold: Fold, fitted: Fitted, preset: Preset, *,
              seed: int, split: str | None, metrics: dict) -> None:
    history = fitted.history
    bundle.manifest |= {
        "dataset": data.name, "dataset_md5": data.source.get("md5"), "split": split,
        "seed": seed, "preset": preset.to_dict(),
        "n_train": len(learning_fold(fold, preset).train),  # validation rows too under --refit
        "n_valid": 0 if fold.valid is None else len(fold.valid),
        "train_seconds": fitted.seconds,
        "history": None if history is None else history.epochs, "metrics": metrics,
        "notes": [] if history is None else history.notes,
        "engine": None if history is None else history.engine,
        "fallback_damping": preset.evaluation.fallback_damping,
        "loss": preset.train.loss if history is not None else None,
        "protocol": {"split": split, "test_fraction": None if split is None
                     else preset.split.test_fraction,
                     "relevance_threshold": preset.evaluation.relevance_threshold},
    }
