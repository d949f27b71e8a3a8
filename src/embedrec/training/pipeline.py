"""Train one model on a dataset and package it as a ModelBundle ready to save."""

from __future__ import annotations

import time

from embedrec.data.dataset import Ratings
from embedrec.data.split import make_split, validation_rows
from embedrec.evaluation.evaluate import evaluate_ratings
from embedrec.models.baselines import BiasBaseline, GlobalMean
from embedrec.models.registry import NEURAL, ModelConfig, check_model_names
from embedrec.persistence import ModelBundle
from embedrec.presets import Preset
from embedrec.training.trainer import StepProgress, train_model


def train_bundle(data: Ratings, name: str, preset: Preset, *, seed: int = 0,
                 split: str | None = None, progress: StepProgress | None = None) -> ModelBundle:
    """Train ``name`` on all rows (``split=None``) or on the train part of a named split.

    With a split, the test part is scored once and its metrics go into the manifest.
    """
    check_model_names([name])
    rows = None
    test = None
    if split is not None:
        sp = make_split(data, split, preset.test_fraction, preset.split_seed)
        rows, test = sp.train, data.take(sp.test)
    import numpy as np

    all_rows = np.arange(len(data)) if rows is None else rows
    fit_idx, valid_idx = validation_rows(all_rows, preset.valid_fraction, seed)
    train = data.take(fit_idx)
    valid = data.take(valid_idx) if len(valid_idx) else None
    fallback = BiasBaseline(user_damping=preset.bias_damping,
                            item_damping=preset.bias_damping).fit(train)
    t0 = time.perf_counter()
    config: dict = {}
    history = None
    if name in NEURAL:
        cfg = ModelConfig(name=name, n_users=data.n_users, n_items=data.n_items,
                          n_factors=preset.n_factors, rating_range=data.scale)
        model, history = train_model(cfg, train, preset.train, seed=seed, valid=valid,
                                     progress=progress)
        config = cfg.to_dict()
    elif name == "bias":
        model = fallback
    else:
        model = GlobalMean().fit(train)
    seconds = time.perf_counter() - t0
    metrics = evaluate_ratings(model, train, test, fallback)[0] if test is not None else {}
    manifest = {
        "dataset": data.name, "dataset_md5": data.source.get("md5"), "split": split,
        "seed": seed, "preset": preset.to_dict(), "n_train": len(train),
        "n_valid": 0 if valid is None else len(valid), "train_seconds": seconds,
        "history": None if history is None else history.epochs, "metrics": metrics,
        "fallback_damping": preset.bias_damping,
    }
    return ModelBundle.from_training(name, model, train, fallback, config=config, manifest=manifest)
