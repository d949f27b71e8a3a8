"""The numbers behind every figure of the report, read from a results folder.

Each entry is plain JSON (written as ``figures.json`` beside the report) so tests can check the
data a figure shows instead of its pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

def load_results(folder: Path) -> dict:
    """results.json, settings.json, summary.json, analysis.json and data.json of a folder."""
    from embedrec.errors import EmbedrecError

    out = {}
    for name in ("results", "settings", "summary", "analysis", "data"):
        path = Path(folder) / f"{name}.json"
        if not path.is_file():
            if name in ("analysis", "data"):
                out[name] = {}
                continue
            raise EmbedrecError(f"{folder}: no {name}.json (run `embedrec compare --out DIR`)")
        try:
            out[name] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EmbedrecError(f"{path}: not valid JSON ({exc})") from exc
    return out


def _models(results: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in results))


def learning_curves(results: list[dict]) -> dict:
    """model -> list of {seed, fold, loss, epoch, train, valid} series: the training loss
    (``train_<loss>`` in the history: mse, bpr, softmax) and its validation value per epoch."""
    curves: dict = {}
    for rec in results:
        history = rec.get("history")
        if not history:
            continue
        loss = next((k[len("train_"):] for k in history[0] if k.startswith("train_")), None)
        if loss is None:
            continue
        curves.setdefault(rec["model"], []).append({
            "seed": rec["seed"], "fold": rec.get("fold", 1), "loss": loss,
            "epoch": [e["epoch"] for e in history],
            "train": [e.get(f"train_{loss}") for e in history],
            "valid": [e.get(f"valid_{loss}") for e in history],
            "best_epoch": rec.get("best_epoch"),
        })
    return curves


def metric_spread(results: list[dict], key: str) -> dict:
    """model -> the metric's value for every seed (and fold)."""
    spread = {}
    for model in _models(results):
        values = [r[key] for r in results if r["model"] == model and r.get(key) is not None]
        if values:
            spread[model] = values
    return spread


def _mean_buckets(runs: list[list[dict]]) -> list[dict]:
    rows = []
    for i, first in enumerate(runs[0]):
        vals = [run[i]["rmse"] for run in runs if run[i]["rmse"] is not None]
        rows.append({"bucket": first["bucket"], "n": first["n"],
                     "rmse": float(np.mean(vals)) if vals else None})
    return rows


def error_analysis(analysis: dict) -> dict:
    """Per model: RMSE by user activity / movie popularity (mean over seeds), warm vs cold,
    and the predicted vs true distribution of the first seed."""
    errors = analysis.get("errors", {})
    by_model: dict = {}
    for key, value in errors.items():
        by_model.setdefault(key.split("/")[0], []).append(value)
    out = {"by_user_activity": {}, "by_item_popularity": {}, "warm_cold": {}, "distribution": {}}
    for model, runs in by_model.items():
        out["by_user_activity"][model] = _mean_buckets([r["by_user_activity"] for r in runs])
        out["by_item_popularity"][model] = _mean_buckets([r["by_item_popularity"] for r in runs])
        out["warm_cold"][model] = {
            part: {"n": runs[0][part]["n"],
                   "rmse": (float(np.mean([r[part]["rmse"] for r in runs]))
                            if runs[0][part]["rmse"] is not None else None)}
            for part in ("warm", "cold")}
        out["distribution"][model] = {"predicted": runs[0]["predicted"], "true": runs[0]["true"]}
    return out


def learned(analysis: dict, summary: list[dict] | None = None) -> dict:
    """Biases and embedding map of the most accurate model that has them (by mean RMSE; models
    without an RMSE last, in run order)."""
    items = analysis.get("learned", {})
    rmse = {row["model"]: row.get("rmse") for row in summary or []}
    order = sorted(items, key=lambda m: (rmse.get(m) is None, rmse.get(m) or 0.0))
    out = {}
    for model in order:
        if "highest_bias" in items[model]:
            out["bias"] = {"model": model, "highest": items[model]["highest_bias"],
                           "lowest": items[model]["lowest_bias"],
                           "unit": items[model].get("bias_unit", "stars")}
            break
    for model in order:
        if "pca" in items[model]:
            out["map"] = {"model": model} | items[model]["pca"]
            break
    return out


def figure_data(folder: Path) -> dict:
    """Everything the report draws, keyed by figure name."""
    res = load_results(folder)
    data = res["data"]
    figures = {
        "learning_curves": learning_curves(res["results"]),
        "rmse_spread": metric_spread(res["results"], "rmse"),
        "ndcg_spread": metric_spread(res["results"], "ndcg_at_k"),
    }
    figures |= {f"errors_{k}": v for k, v in error_analysis(res["analysis"]).items()}
    if data:
        figures["rating_histogram"] = data["summary"]["ratings"]
        figures["ratings_per_user"] = data["ratings_per_user"]
        figures["ratings_per_item"] = data["ratings_per_item"]
        figures["crosstab"] = data["crosstab"]
    figures |= {f"learned_{k}": v for k, v in learned(res["analysis"], res["summary"]).items()}
    return figures
