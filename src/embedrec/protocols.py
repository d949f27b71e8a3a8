"""Two evaluation protocols, run side by side, and a verdict per task.

- ``a`` (ratings): the preset's split (a random share of the ratings), a test rating at or above
  the relevance threshold (4) is relevant, the movies a user rated in training are masked. Ranking
  losses learn from training ratings at or above the same threshold.
- ``b`` (implicit): a per-user holdout of a fraction of each user's interactions (``random`` or
  their ``latest``), every held-out interaction relevant, the full catalogue ranked (minus the
  user's training movies). Ranking losses learn from every training rating.

Both report NDCG, recall, MAP and hit rate @k, catalogue coverage and popularity bias (mean
popularity of the recommended movies and the share of them in the long tail). The verdict names
the best model for rating prediction (lowest RMSE; only models that predict ratings) and the
best for top-N under each protocol (highest NDCG@k), separately.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from embedrec.compare import Comparison, run_comparison, write_results
from embedrec.io import atomic_write_text as atomic_write
from embedrec.io import holds_results
from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.presets import Preset

log = logging.getLogger(__name__)

PROTOCOLS = ("a", "b")
HOLDOUTS = ("random", "latest")
DESCRIPTIONS = {
    "a": "random rating split, test rating >= {threshold:g} relevant, rated movies masked",
    "b": "per-user holdout of {fraction:.0%} of each user's ratings ({holdout}), every held-out "
         "rating relevant, full-catalogue ranking",
}


def parse_protocols(text: str) -> tuple[str, ...]:
    """``a``, ``b``, ``both`` or ``a,b`` as a tuple of protocol names."""
    chosen = PROTOCOLS if text.strip() == "both" else tuple(
        p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PROTOCOLS]
    if unknown or not chosen:
        raise ConfigError(f"unknown protocol {text!r}; use a, b or both")
    return chosen


def protocol_preset(preset: Preset, protocol: str, data: Ratings, *, holdout: str = "random",
                    fraction: float = 0.2) -> Preset:
    """The preset a protocol runs with."""
    if protocol == "a":
        return preset.with_overrides(implicit=False)
    if protocol != "b":
        raise ConfigError(f"unknown protocol {protocol!r}; use a or b")
    if holdout not in HOLDOUTS:
        raise ConfigError(f"unknown holdout {holdout!r}; use random or latest")
    return preset.with_overrides(split=f"user-{holdout}", test_fraction=fraction,
                                 relevance_threshold=float(data.scale[0]), implicit=True)


def describe(protocol: str, preset: Preset, holdout: str = "random", fraction: float = 0.2) -> str:
    return DESCRIPTIONS[protocol].format(threshold=preset.evaluation.relevance_threshold,
                                         fraction=fraction, holdout=holdout)


def run_protocols(data: Ratings, *, preset: Preset, models=None, seeds: int = 3,
                  protocols: tuple[str, ...] = PROTOCOLS, holdout: str = "random",
                  fraction: float = 0.2, progress=None) -> dict[str, Comparison]:
    """One comparison per protocol, each over the same models and seeds."""
    out = {}
    for protocol in protocols:
        chosen = protocol_preset(preset, protocol, data, holdout=holdout, fraction=fraction)
        log.info("protocol %s: %s", protocol, describe(protocol, chosen, holdout, fraction))
        comparison = run_comparison(data, preset=chosen, models=models, seeds=seeds,
                                    split=chosen.split.kind, progress=progress)
        comparison.settings["protocol"] = {
            "name": protocol, "description": describe(protocol, preset, holdout, fraction),
            "holdout": holdout if protocol == "b" else None,
            "holdout_fraction": fraction if protocol == "b" else None,
            "loss": chosen.train.loss,
            "positives": "every rating" if chosen.train.implicit
            else f"ratings >= {chosen.train.relevant:g}"}
        out[protocol] = comparison
    return out


def verdict(comparisons: dict[str, Comparison]) -> dict:
    """The best model for rating prediction (lowest mean RMSE over the protocols' runs that
    have it, preferring protocol a) and the best for top-N under each protocol."""
    result: dict = {"rating_prediction": None, "top_n": {}}
    for protocol, comparison in comparisons.items():
        rows = comparison.summary()
        ranked = [r for r in rows if r.get("ndcg_at_k") is not None]
        if ranked:
            best = max(ranked, key=lambda r: r["ndcg_at_k"])
            result["top_n"][protocol] = {"model": best["model"], "ndcg_at_k": best["ndcg_at_k"],
                                         "k": comparison.settings["k"]}
        rated = [r for r in rows if r.get("rmse") is not None]
        if rated and result["rating_prediction"] is None:
            best = min(rated, key=lambda r: r["rmse"])
            result["rating_prediction"] = {"model": best["model"], "rmse": best["rmse"],
                                           "protocol": protocol}
    return result


def verdict_lines(result: dict) -> list[str]:
    lines = []
    rating = result["rating_prediction"]
    lines.append("best for rating prediction: " + (
        f"{rating['model']} (RMSE {rating['rmse']:.4f}, protocol {rating['protocol']})"
        if rating else "none of these models predicts ratings"))
    for protocol, best in result["top_n"].items():
        lines.append(f"best for top-{best['k']}, protocol {protocol}: {best['model']} "
                     f"(NDCG@{best['k']} {best['ndcg_at_k']:.4f})")
    return lines


def write_protocols(comparisons: dict[str, Comparison], out: Path) -> list[Path]:
    """Each protocol's results in ``out/protocol-<name>/`` and ``out/verdict.json``; an
    earlier run's folder of a protocol not run this time is removed (the verdict would no
    longer speak for it)."""
    out = Path(out)
    folders = []
    for protocol, comparison in comparisons.items():
        folder = out / f"protocol-{protocol}"
        write_results(comparison, folder)
        folders.append(folder)
    result = verdict(comparisons)
    atomic_write(out / "verdict.json", json.dumps(
        result | {"protocols": {p: c.settings["protocol"] for p, c in comparisons.items()}},
        indent=1))
    for stale in out.glob("protocol-*"):  # only once the new results are in place
        if (stale.is_dir() and stale.name[len("protocol-"):] not in comparisons
                and holds_results(stale)):
            shutil.rmtree(stale)
    return folders
