"""Run the comparison: every model, every seed, one split, the test rows touched once at the end."""

from __future__ import annotations

import csv
import json
import logging
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedrec import __version__
from embedrec.data.dataset import Ratings
from embedrec.data.explore import data_profile
from embedrec.io import RESULTS_MARKER, atomic_write_text, check_results_out
from embedrec.evaluation.analysis import error_breakdown, learned_items
from embedrec.experiment import fit_fallback, learning_fold, make_fold, run_one, splits
from embedrec.errors import ConfigError
from embedrec.models.registry import check_model_names, names
from embedrec.models.registry import get as get_spec
from embedrec.presets import Preset

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (label, done, total)
SUMMARY_METRICS = ("rmse", "mae", "rmse_warm", "rmse_cold", "rmse_cold_fallback", "rmse_model_all",
                   "precision_at_k",
                   "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k", "coverage_at_k",
                   "popularity_at_k", "long_tail_at_k", "train_seconds", "n_params")


def default_models() -> tuple[str, ...]:
    """Every registered model, in registry order."""
    return names()


@dataclass(frozen=True)
class Variant:
    """A model run under a label with settings of its own (an ablation: one input off)."""

    label: str
    model: str
    settings: dict = field(default_factory=dict)


def ablation_variants(name: str, preset: Preset) -> list[Variant]:
    """The model as configured, then once with each of its inputs switched off in turn
    (``ModelSpec.ablations``)."""
    spec = get_spec(name)
    base = preset.model_config(spec)
    return [Variant(name, name)] + [Variant(f"{name} {suffix}", name, settings)
                                    for suffix, settings in spec.ablations(base)]


@dataclass
class Comparison:
    """Records (one per model and seed) and the settings that produced them."""

    records: list[dict]
    settings: dict
    extras: dict = field(default_factory=dict)
    # per-row test predictions and per-user NDCG of every run (embedrec.evaluation.stats)
    predictions: dict = field(default_factory=dict)

    def stats(self, *, n_boot: int = 2000) -> dict:
        """Paired statistics between every pair of models (``stats.json``)."""
        from embedrec.evaluation.stats import stats_of

        return stats_of(self.predictions, self.records, list(self.settings["models"]),
                        k=self.settings["k"], n_boot=n_boot)

    def summary(self) -> list[dict]:
        """Mean and std over seeds of each metric, per model, in the order models were run."""
        rows = []
        for model in dict.fromkeys(r["model"] for r in self.records):
            group = [r for r in self.records if r["model"] == model]
            row = {"model": model, "n_seeds": len(group)}
            for key in SUMMARY_METRICS:
                vals = np.array([r[key] for r in group if r.get(key) is not None], dtype=float)
                row[key] = float(vals.mean()) if len(vals) else None
                row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            rows.append(row)
        return rows


def run_comparison(
    data: Ratings,
    *,
    preset: Preset,
    models: tuple[str, ...] | list[str] | None = None,
    variants: list[Variant] | None = None,
    seeds: int = 3,
    first_seed: int = 0,
    split: str | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Train and score each model for seeds ``first_seed .. first_seed + seeds - 1``.

    The split (and its seed) is the preset's and stays fixed across model seeds; ``kfold`` runs
    every fold (k = 1 / test_fraction) and the summary pools folds and seeds. Validation rows
    are carved from the training rows and only monitor training (and drive early stopping).
    ``variants`` run after ``models`` (default: every model, unless variants are given), each
    recorded under its label.
    """
    if models is None and variants:
        models = []
    models = check_model_names(list(models if models is not None else default_models()))
    runs = [Variant(name, name) for name in models] + list(variants or [])
    labels = [v.label for v in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"a model is named twice in {', '.join(labels)}")
    if not runs:
        raise ConfigError("no models to compare")
    kind = split or preset.split.kind
    folds = splits(data, preset, kind)
    from embedrec.evaluation.stats import add_run, per_user_ndcg

    records = []
    predictions: dict = {}
    analysis: dict = {"errors": {}, "learned": {}}
    for number, sp in enumerate(folds, start=1):
        for seed in range(first_seed, first_seed + seeds):
            fold = make_fold(data, sp.train, sp.test, valid_fraction=preset.split.valid_fraction,
                             seed=seed, number=number, kind=kind)
            learned = learning_fold(fold, preset)  # the rows the final models learn from
            fallback = fit_fallback(learned, preset)
            for run in runs:
                name = run.label
                log.info("training %s, seed %d, fold %d of %d", name, seed, number, len(folds))
                step = ((lambda done, total, label=f"{name} seed {seed}": progress(label, done, total))
                        if progress else None)
                chosen = preset.with_model_settings({run.model: run.settings}) if run.settings else preset
                fitted, bundle, rec, pred = run_one(run.model, fold, chosen, seed=seed,
                                                    fallback=fallback, progress=step)
                key = f"{name}/seed{seed}/fold{number}"
                ndcg_users, ndcg = per_user_ndcg(bundle, fold.test, preset.evaluation)
                add_run(predictions, model=name, fold=number, seed=seed, test=fold.test,
                        pred=pred, ndcg_users=ndcg_users, ndcg=ndcg)
                if pred is not None:
                    analysis["errors"][key] = error_breakdown(learned.train, fold.test, pred)
                if seed == first_seed and number == 1:
                    analysis["learned"][name] = learned_items(bundle, learned.train)
                history = fitted.history
                records.append({
                    "model": name, "spec": run.model, "settings": run.settings,
                    "seed": seed, "fold": number, "n_train": len(learned.train),
                    "n_valid": 0 if fold.valid is None else len(fold.valid),
                } | rec | {
                    "n_params": fitted.n_params, "train_seconds": fitted.seconds,
                    "history": [] if history is None else history.epochs,
                    "best_epoch": None if history is None else history.best_epoch,
                    "stopped_early": False if history is None else history.stopped_early,
                    "engine": None if history is None else history.engine,
                    "notes": [] if history is None else history.notes,
                    "config": bundle.config_dict(),
                })
    settings = {
        "dataset": data.name,
        "dataset_md5": data.source.get("md5"),
        "dataset_path": data.source.get("path"),
        "n_ratings": len(data), "n_users": data.n_users, "n_items": data.n_items,
        "scale": list(data.scale), "scale_inferred": data.source.get("scale_inferred", False),
        "duplicates": data.source.get("duplicates", 0),
        "duplicate_policy": data.source.get("duplicate_policy", "last"),
        "split": kind, "test_fraction": preset.split.test_fraction,
        "split_seed": preset.split.seed,
        "k": preset.evaluation.top_k, "relevance_threshold": preset.evaluation.relevance_threshold,
        "folds": len(folds), "n_train": len(folds[0].train), "n_test": len(folds[0].test),
        "seeds": list(range(first_seed, first_seed + seeds)),
        "models": labels,
        "preset": preset.to_dict(),
        "versions": versions(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
    }
    return Comparison(records=records, settings=settings,
                      extras={"analysis": analysis, "data": data_profile(data)},
                      predictions=predictions)


def versions() -> dict:
    import pandas
    import torch

    return {"embedrec": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "pandas": pandas.__version__, "torch": torch.__version__,
            "platform": platform.platform()}


CSV_COLUMNS = ("model", "seed", "fold", "rmse", "mae", "mse", "rmse_warm", "rmse_cold",
               "rmse_cold_fallback", "rmse_model_all",
               "k", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k",
               "coverage_at_k", "popularity_at_k", "long_tail_at_k", "n_users_ranked",
               "n_train", "n_valid", "n_test", "n_cold", "n_cold_users", "n_cold_items", "n_params",
               "train_seconds", "engine", "best_epoch", "stopped_early", "spec")


def write_results(comparison: Comparison, out: Path) -> None:
    """results.json (records), results.csv (flat records), summary.json, settings.json,
    analysis.json + data.json (the numbers behind the report's figures), and predictions.npz +
    stats.json (per-row test predictions and the paired statistics between models)."""
    out = check_results_out(out)  # absent, empty, or an earlier results folder: nothing else
    settings = dict(comparison.settings) | {RESULTS_MARKER: __version__}
    for name in ("analysis", "data"):
        if name in comparison.extras:
            atomic_write_text(out / f"{name}.json", json.dumps(comparison.extras[name], indent=1))
    atomic_write_text(out / "results.json", json.dumps(comparison.records, indent=1))
    atomic_write_text(out / "settings.json", json.dumps(settings, indent=1))
    atomic_write_text(out / "summary.json", json.dumps(comparison.summary(), indent=1))
    if comparison.predictions:
        from embedrec.evaluation.stats import save_predictions

        save_predictions(comparison.predictions, out / "predictions.npz")
        stats = comparison.extras.get("stats") or comparison.stats()
        comparison.extras["stats"] = stats
        atomic_write_text(out / "stats.json", json.dumps(stats, indent=1))
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(comparison.records)
    atomic_write_text(out / "results.csv", buf.getvalue())
