"""Run the comparison: every model, every seed, one split, the test rows touched once at the end."""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedrec import __version__
from embedrec.data.dataset import Ratings
from embedrec.data.split import kfold, make_split, validation_rows
from embedrec.data.explore import data_profile
from embedrec.evaluation.analysis import error_breakdown, learned_items
from embedrec.evaluation.scoring import n_params, score_model
from embedrec.models.baselines import BiasBaseline
from embedrec.models.registry import check_model_names
from embedrec.presets import Preset
from embedrec.training.pipeline import fit_model

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("dot", "biased", "mlp", "mean", "bias", "pop")
Progress = Callable[[str, int, int], None]  # (label, done, total)
SUMMARY_METRICS = ("rmse", "mae", "rmse_warm", "rmse_model_all", "precision_at_k", "recall_at_k",
                   "ndcg_at_k", "map_at_k", "hit_rate_at_k", "coverage_at_k", "popularity_at_k",
                   "train_seconds", "n_params")


@dataclass
class Comparison:
    """Records (one per model and seed) and the settings that produced them."""

    records: list[dict]
    settings: dict
    extras: dict = field(default_factory=dict)

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
    models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
    seeds: int = 3,
    first_seed: int = 0,
    split: str | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Train and score each model for seeds ``first_seed .. first_seed + seeds - 1``.

    The split (and its seed) is the preset's and stays fixed across model seeds; ``kfold`` runs
    every fold (k = 1 / test_fraction) and the summary pools folds and seeds. Validation rows
    are carved from the training rows and only monitor training (and drive early stopping).
    """
    models = check_model_names(list(models))
    kind = split or preset.split
    if kind == "kfold":  # every fold, each scored once; records carry their fold number
        splits = list(kfold(len(data), max(2, round(1 / preset.test_fraction)), preset.split_seed))
    else:
        splits = [make_split(data, kind, preset.test_fraction, preset.split_seed)]
    records = []
    analysis: dict = {"errors": {}, "learned": {}}
    for fold, sp in enumerate(splits, start=1):
        test, train_part = data.take(sp.test), data.take(sp.train)
        for seed in range(first_seed, first_seed + seeds):
            fit_idx, valid_idx = validation_rows(sp.train, preset.valid_fraction, seed)
            fit_rows = data.take(fit_idx)
            valid = data.take(valid_idx) if len(valid_idx) else None
            fallback = BiasBaseline(user_damping=preset.bias_damping,
                                    item_damping=preset.bias_damping).fit(fit_rows)
            for name in models:
                log.info("training %s, seed %d, fold %d of %d", name, seed, fold, len(splits))
                model, config, history, seconds = fit_model(name, data, fit_rows, valid, preset, seed,
                                                       fallback, progress)
                rec, pred, bundle = score_model(name, model, config, fit_rows, test, preset,
                                                fallback, seen=train_part)
                key = f"{name}/seed{seed}/fold{fold}"
                if pred is not None:
                    analysis["errors"][key] = error_breakdown(fit_rows, test, pred)
                if seed == first_seed and fold == 1:
                    analysis["learned"][name] = learned_items(bundle, fit_rows)
                records.append({
                    "model": name, "seed": seed, "fold": fold, "n_train": len(fit_rows),
                    "n_valid": 0 if valid is None else len(valid),
                } | rec | {
                    "n_params": n_params(model), "train_seconds": seconds,
                    "history": [] if history is None else history.epochs,
                    "best_epoch": None if history is None else history.best_epoch,
                    "stopped_early": False if history is None else history.stopped_early,
                })
    settings = {
        "dataset": data.name,
        "dataset_md5": data.source.get("md5"),
        "dataset_path": data.source.get("path"),
        "n_ratings": len(data), "n_users": data.n_users, "n_items": data.n_items,
        "scale": list(data.scale), "scale_inferred": data.source.get("scale_inferred", False),
        "duplicates": data.source.get("duplicates", 0),
        "duplicate_policy": data.source.get("duplicate_policy", "last"),
        "split": kind, "test_fraction": preset.test_fraction, "split_seed": preset.split_seed,
        "k": preset.top_k, "relevance_threshold": preset.relevance_threshold,
        "folds": len(splits), "n_train": len(splits[0].train), "n_test": len(splits[0].test),
        "seeds": list(range(first_seed, first_seed + seeds)),
        "models": list(models),
        "preset": preset.to_dict(),
        "versions": versions(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
    }
    return Comparison(records=records, settings=settings,
                      extras={"analysis": analysis, "data": data_profile(data)})


def versions() -> dict:
    import pandas
    import torch

    return {"embedrec": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "pandas": pandas.__version__, "torch": torch.__version__,
            "platform": platform.platform()}


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


CSV_COLUMNS = ("model", "seed", "fold", "rmse", "mae", "mse", "rmse_warm", "rmse_cold", "rmse_model_all",
               "k", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k",
               "coverage_at_k", "popularity_at_k", "n_users_ranked",
               "n_train", "n_valid", "n_test", "n_cold", "n_cold_users", "n_cold_items", "n_params",
               "train_seconds", "best_epoch", "stopped_early")


def write_results(comparison: Comparison, out: Path) -> None:
    """results.json (records), results.csv (flat records), summary.json, settings.json, and
    analysis.json + data.json (the numbers behind the report's figures)."""
    out = Path(out)
    for name in ("analysis", "data"):
        if name in comparison.extras:
            atomic_write(out / f"{name}.json", json.dumps(comparison.extras[name], indent=1))
    atomic_write(out / "results.json", json.dumps(comparison.records, indent=1))
    atomic_write(out / "settings.json", json.dumps(comparison.settings, indent=1))
    atomic_write(out / "summary.json", json.dumps(comparison.summary(), indent=1))
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(comparison.records)
    atomic_write(out / "results.csv", buf.getvalue())
