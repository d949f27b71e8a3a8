"""Paired statistics between models scored on the same test rows.

Every pair of models is compared on the same users:

- a paired bootstrap 95% CI of the difference in RMSE (model a minus model b), resampling
  *users* with replacement so that the rows of one user stay together;
- a Wilcoxon signed-rank test on the per-user mean squared error;
- the same two for NDCG@k per user (mean difference, users with a relevant test item);
- Holm's step-down correction over all pairs of one metric.

Seeds are averaged *before* testing: the per-row predictions of a model's seeds are averaged
(per fold), and per-user NDCG is averaged over seeds, so a test compares two models, not two
runs. The seed spread is reported beside the tests.

The verdict on a pair says "a beats b" only when the Holm-corrected p-value is below ``alpha``
and the bootstrap CI of the difference excludes 0; otherwise "no significant difference".
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.05


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, p_(i) becomes max over j <= i of (m - j + 1) * p_(j), capped at 1.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def wilcoxon_p(x, y) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of paired samples ``x`` and ``y``
    (zero differences dropped; 1.0 when every difference is zero)."""
    from scipy.stats import wilcoxon

    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def user_index(users) -> tuple[np.ndarray, np.ndarray]:
    """Distinct users (sorted) and, for every row, the position of its user among them."""
    distinct, inverse = np.unique(np.asarray(users), return_inverse=True)
    return distinct, inverse


def per_user_sse(truth, pred, inverse, n_users) -> tuple[np.ndarray, np.ndarray]:
    """Sum of squared errors and row count per user."""
    err = (np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)) ** 2
    return (np.bincount(inverse, weights=err, minlength=n_users),
            np.bincount(inverse, minlength=n_users).astype(np.float64))


def bootstrap_draws(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_units) counts: how often each unit (user) is drawn in each resample."""
    if n_units == 0:
        return np.zeros((n_boot, 0))
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot).astype(float)


def bootstrap_sums(columns: np.ndarray, n_boot: int, rng: np.random.Generator, *,
                   max_cells: int = 20_000_000) -> np.ndarray:
    """(n_boot, n_columns): each resample's per-column sums over units drawn with replacement
    (``columns`` is (n_units, n_columns)); drawn in chunks so memory stays bounded."""
    columns = np.asarray(columns, dtype=np.float64)
    n_units = len(columns)
    step = max(1, min(n_boot, max_cells // max(n_units, 1)))
    out = [bootstrap_draws(n_units, min(step, n_boot - start), rng) @ columns
           for start in range(0, n_boot, step)]
    return np.concatenate(out) if out else np.zeros((0, columns.shape[1]))


def rmse_difference(truth, pred_a, pred_b, users, *, n_boot: int = 2000,
                    rng: np.random.Generator) -> dict:
    """RMSE(a) - RMSE(b) over all rows, its user-bootstrap 95% CI and the Wilcoxon p-value on
    per-user MSE."""
    _, inverse = user_index(users)
    n_users = int(inverse.max()) + 1 if len(inverse) else 0
    sse_a, n = per_user_sse(truth, pred_a, inverse, n_users)
    sse_b, _ = per_user_sse(truth, pred_b, inverse, n_users)
    diff = math.sqrt(sse_a.sum() / n.sum()) - math.sqrt(sse_b.sum() / n.sum())
    sums = bootstrap_sums(np.column_stack([n, sse_a, sse_b]), n_boot, rng)
    boot = np.sqrt(sums[:, 1] / sums[:, 0]) - np.sqrt(sums[:, 2] / sums[:, 0])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"difference": float(diff), "ci_low": float(lo), "ci_high": float(hi),
            "p": wilcoxon_p(sse_a / n, sse_b / n), "n_units": n_users}


def mean_difference(values_a, values_b, *, n_boot: int = 2000,
                    rng: np.random.Generator) -> dict:
    """mean(a) - mean(b) of paired per-user values (NaN pairs dropped), its user-bootstrap
    95% CI and the Wilcoxon p-value."""
    a, b = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    boot = bootstrap_sums((a - b)[:, None], n_boot, rng)[:, 0] / len(a)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"difference": float(np.mean(a - b)), "ci_low": float(lo), "ci_high": float(hi),
            "p": wilcoxon_p(a, b), "n_units": int(len(a))}


@dataclass
class PairResult:
    metric: str  # "rmse" or "ndcg_at_k"
    a: str
    b: str
    difference: float  # metric(a) - metric(b)
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    n_units: int
    significant: bool
    sentence: str


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def sentence(metric: str, a: str, b: str, diff: float, lo: float, hi: float, p_holm: float,
             significant: bool, label: str | None = None) -> str:
    """"a beats b by 0.034 RMSE [0.029, 0.039], p < 0.001 (Holm)" or "no significant
    difference"."""
    label = label or ("RMSE" if metric == "rmse" else "NDCG")
    lower_better = metric == "rmse"
    if not significant:
        return (f"{a} vs {b}: no significant difference in {label} ({diff:+.4f} "
                f"[{lo:+.4f}, {hi:+.4f}], {_p_text(p_holm)} (Holm))")
    a_wins = (diff < 0) == lower_better
    win, lose = (a, b) if a_wins else (b, a)
    size, lo_, hi_ = abs(diff), min(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    return (f"{win} beats {lose} by {size:.4f} {label} [{lo_:.4f}, {hi_:.4f}], "
            f"{_p_text(p_holm)} (Holm)")


def seed_averaged(predictions: dict, model: str) -> np.ndarray | None:
    """One model's test predictions averaged over seeds, folds concatenated in order.

    ``predictions["pred"][model][fold][seed]`` holds each run's per-row predictions."""
    runs = predictions.get("pred", {}).get(model)
    if not runs:
        return None
    return np.concatenate([np.mean(np.stack([runs[f][s] for s in sorted(runs[f])]), axis=0)
                           for f in sorted(runs)])


def per_user_ndcg_mean(predictions: dict, model: str) -> dict[int, float]:
    """user id -> NDCG@k averaged over the model's seeds (and folds)."""
    runs = predictions.get("ndcg", {}).get(model)
    if not runs:
        return {}
    sums: dict[int, list[float]] = {}
    for fold in sorted(runs):
        users = predictions["ndcg_users"][fold]
        for seed in sorted(runs[fold]):
            for u, v in zip(users, runs[fold][seed]):
                if np.isfinite(v):
                    sums.setdefault(int(u), []).append(float(v))
    return {u: float(np.mean(v)) for u, v in sums.items()}


def pairwise(predictions: dict, models: list[str], *, n_boot: int = 2000, seed: int = 0,
             alpha: float = ALPHA, k: int = 10) -> list[dict]:
    """Every pair of models, for RMSE and NDCG@k, with Holm correction per metric."""
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    truth = (np.concatenate([predictions["truth"][f] for f in sorted(predictions["truth"])])
             if predictions.get("truth") else None)
    users = (np.concatenate([predictions["users"][f] for f in sorted(predictions["users"])])
             if predictions.get("users") else None)
    for metric in ("rmse", "ndcg_at_k"):
        raw = []
        for a, b in itertools.combinations(models, 2):
            if metric == "rmse":
                pa, pb = seed_averaged(predictions, a), seed_averaged(predictions, b)
                if pa is None or pb is None or truth is None:
                    continue
                res = rmse_difference(truth, pa, pb, users, n_boot=n_boot, rng=rng)
            else:
                na, nb = per_user_ndcg_mean(predictions, a), per_user_ndcg_mean(predictions, b)
                common = sorted(set(na) & set(nb))
                if not common:
                    continue
                res = mean_difference([na[u] for u in common], [nb[u] for u in common],
                                      n_boot=n_boot, rng=rng)
            raw.append((a, b, res))
        adjusted = holm([r["p"] for _, _, r in raw])
        label = "RMSE" if metric == "rmse" else f"NDCG@{k}"
        for (a, b, res), p_adj in zip(raw, adjusted):
            sig = bool(p_adj < alpha and (res["ci_low"] > 0 or res["ci_high"] < 0))
            out.append(asdict(PairResult(
                metric=metric, a=a, b=b, difference=res["difference"], ci_low=res["ci_low"],
                ci_high=res["ci_high"], p=res["p"], p_holm=float(p_adj), n_units=res["n_units"],
                significant=sig, sentence=sentence(metric, a, b, res["difference"],
                                                   res["ci_low"], res["ci_high"], float(p_adj),
                                                   sig, label))))
    return out


def seed_spread(records: list[dict], key: str) -> dict[str, dict]:
    """model -> {mean, std, min, max, n} of a metric over seeds (and folds)."""
    out = {}
    for model in dict.fromkeys(r["model"] for r in records):
        vals = np.array([r[key] for r in records if r["model"] == model
                         and r.get(key) is not None], dtype=float)
        if len(vals):
            out[model] = {"mean": float(vals.mean()),
                          "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                          "min": float(vals.min()), "max": float(vals.max()), "n": int(len(vals))}
    return out


def stats_of(predictions: dict, records: list[dict], models: list[str], *, k: int,
             n_boot: int = 2000, seed: int = 0) -> dict:
    """Everything ``stats.json`` holds: pairs, seed spread and how they were computed."""
    return {"alpha": ALPHA, "n_boot": n_boot, "bootstrap_seed": seed, "unit": "user",
            "correction": "holm (per metric, over all pairs)",
            "rating_test": "wilcoxon signed-rank on per-user MSE of seed-averaged predictions",
            "ranking_test": f"wilcoxon signed-rank on per-user NDCG@{k}, averaged over seeds",
            "pairs": pairwise(predictions, models, n_boot=n_boot, seed=seed, k=k),
            "seed_spread": {"rmse": seed_spread(records, "rmse"),
                            "ndcg_at_k": seed_spread(records, "ndcg_at_k")}}


# ---- predictions.npz ------------------------------------------------------------------------
def save_predictions(predictions: dict, path) -> None:
    """Write the per-row test predictions (and per-user NDCG) as ``predictions.npz``,
    atomically. Keys: ``truth__F``, ``users__F``, ``pred__MODEL__F__S``, ``ndcg_users__F``,
    ``ndcg__MODEL__F__S`` (F fold, S seed)."""
    import io

    from embedrec.io import atomic_write_bytes

    arrays = {}
    for part in ("truth", "users", "ndcg_users"):
        for fold, arr in predictions.get(part, {}).items():
            arrays[f"{part}__{fold}"] = np.asarray(arr)
    for part in ("pred", "ndcg"):
        for model, folds in predictions.get(part, {}).items():
            for fold, seeds in folds.items():
                for s, arr in seeds.items():
                    arrays[f"{part}__{model}__{fold}__{s}"] = np.asarray(arr)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_predictions(path) -> dict:
    """The dict ``save_predictions`` wrote (arrays only: nothing in the file executes)."""
    out: dict = {"truth": {}, "users": {}, "ndcg_users": {}, "pred": {}, "ndcg": {}}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            parts = key.split("__")
            if parts[0] in ("truth", "users", "ndcg_users") and len(parts) == 2:
                out[parts[0]][int(parts[1])] = npz[key]
            elif parts[0] in ("pred", "ndcg") and len(parts) == 4:
                out[parts[0]].setdefault(parts[1], {}).setdefault(int(parts[2]), {})[
                    int(parts[3])] = npz[key]
    return out


def add_run(predictions: dict, *, model: str, fold: int, seed: int, test, pred,
            ndcg_users=None, ndcg=None) -> None:
    """Record one run's per-row predictions (and per-user NDCG) into ``predictions``."""
    predictions.setdefault("truth", {}).setdefault(fold, np.asarray(test.ratings, np.float32))
    predictions.setdefault("users", {}).setdefault(fold, np.asarray(test.users))
    if pred is not None:
        predictions.setdefault("pred", {}).setdefault(model, {}).setdefault(fold, {})[seed] = (
            np.asarray(pred, dtype=np.float32))
    if ndcg is not None:
        predictions.setdefault("ndcg_users", {}).setdefault(fold, np.asarray(ndcg_users))
        predictions.setdefault("ndcg", {}).setdefault(model, {}).setdefault(fold, {})[seed] = (
            np.asarray(ndcg, dtype=np.float64))


def per_user_ndcg(bundle, test, evaluation) -> tuple[np.ndarray, np.ndarray]:
    """Test users and their NDCG@k for a bundled model (NaN for users without a relevant
    test item), ranked exactly as ``score_bundle`` ranks them."""
    from embedrec.evaluation import ranking
    from embedrec.evaluation.evaluate import relevant_items
    from embedrec.recommender import recommend_all

    k = evaluation.top_k
    users, relevant = relevant_items(test, evaluation.relevance_threshold)
    recs = np.asarray(recommend_all(bundle, k, users=users)[0])[:, :k]
    n_rel = np.array([len(r) for r in relevant])
    return users, ranking.per_user(ranking.hits_matrix(recs, relevant), n_rel, k)["ndcg"]
