"""Train one model of any kind, and package it as a ModelBundle ready to save."""

from __future__ import annotations

import time

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.data.split import make_split, validation_rows
from embedrec.evaluation.scoring import score_model
from embedrec.models.baselines import BiasBaseline, GlobalMean, Popular
from embedrec.models.registry import NEURAL, ModelConfig, check_model_names
from embedrec.persistence import ModelBundle
from embedrec.presets import Preset
from embedrec.training.trainer import StepProgress, train_model


def fit_model(name: str, data: Ratings, fit_rows: Ratings, valid: Ratings | None, preset: Preset,
              seed: int, fallback: BiasBaseline, progress=None):
    """Train one model; returns (model, config dict, history or None, seconds)."""
    if name in NEURAL:
        cfg = ModelConfig(name=name, n_users=data.n_users, n_items=data.n_items,
                          n_factors=preset.n_factors, rating_range=data.scale)
        step = (lambda done, total: progress(f"{name} seed {seed}", done, total)) if progress else None
        model, history = train_model(cfg, fit_rows, preset.train, seed=seed, valid=valid,
                                     progress=step)
        return model, cfg.to_dict(), history, history.seconds
    t0 = time.perf_counter()
    if name == "mean":
        model = GlobalMean().fit(fit_rows)
    elif name == "pop":
        model = Popular().fit(fit_rows)
    else:
        model = BiasBaseline(user_damping=preset.bias_damping,
                             item_damping=preset.bias_damping).fit(fit_rows)
    return model, {}, None, time.perf_counter() - t0


def train_bundle(data: Ratings, name: str, preset: Preset, *, seed: int = 0,
                 split: str | None = None, progress: StepProgress | None = None) -> ModelBundle:
    """Train ``name`` on all rows (``split=None``) or on the train part of a named split.

    With a split, the test part is scored once and its metrics go into the manifest.
    """
    check_model_names([name])
    rows, test = np.arange(len(data)), None
    if split is not None:
        sp = make_split(data, split, preset.test_fraction, preset.split_seed)
        rows, test = sp.train, data.take(sp.test)
    fit_idx, valid_idx = validation_rows(rows, preset.valid_fraction, seed)
    train = data.take(fit_idx)
    valid = data.take(valid_idx) if len(valid_idx) else None
    fallback = BiasBaseline(user_damping=preset.bias_damping,
                            item_damping=preset.bias_damping).fit(train)
    labelled = (lambda _label, done, total: progress(done, total)) if progress else None
    model, config, history, seconds = fit_model(name, data, train, valid, preset, seed, fallback,
                                                labelled)
    seen = data.take(rows)  # training part of the split, validation carve-out included
    metrics = (score_model(name, model, config, train, test, preset, fallback, seen=seen)[0]
               if test is not None else {})
    manifest = {
        "dataset": data.name, "dataset_md5": data.source.get("md5"), "split": split,
        "seed": seed, "preset": preset.to_dict(), "n_train": len(train),
        "n_valid": 0 if valid is None else len(valid), "train_seconds": seconds,
        "history": None if history is None else history.epochs, "metrics": metrics,
        "fallback_damping": preset.bias_damping,
    }
    # movies rated in the validation carve-out are the user's too: never recommend them back
    return ModelBundle.from_training(name, model, train, fallback, seen=seen, config=config,
                                     manifest=manifest)
