"""Matplotlib figures (Agg backend: no display needed), one function per figure.

Every function takes the figure's data (from ``reports.figures``) and returns a matplotlib
Figure, or None when there is nothing to draw. Colours are fixed per model across figures.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PALETTE = ("#17becf", "#bcbd22", "#8c564b", "#e377c2", "#1a55a8", "#6b8e23")
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
                     "axes.spines.top": False, "axes.spines.right": False, "font.size": 10})


def colour(model: str) -> str:
    """The model spec's own colour, or a stable one from a palette for models without one."""
    from embedrec.models.registry import get
    from embedrec.errors import ConfigError

    try:
        own = get(model).colour
    except ConfigError:  # a results folder from a model this installation does not know
        own = None
    return own or PALETTE[sum(map(ord, model)) % len(PALETTE)]


def learning_curves(data: dict):
    if not data:
        return None
    fig, axes = plt.subplots(1, len(data), figsize=(4.2 * len(data), 3.4), squeeze=False,
                             sharey=False)
    for ax, (model, runs) in zip(axes[0], data.items()):
        for i, run in enumerate(runs):
            label = i == 0
            ax.plot(run["epoch"], run["train"], color=colour(model), ls="--", alpha=0.8,
                    label="train" if label else None)
            if any(v is not None for v in run["valid"]):
                ax.plot(run["epoch"], run["valid"], color=colour(model), marker="o", ms=3,
                        label="validation" if label else None)
            if run.get("best_epoch") and any(v is not None for v in run["valid"]):
                ax.axvline(run["best_epoch"], color=colour(model), alpha=0.15)
        ax.set_title(f"{model} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.set_xlabel("epoch")
        losses = {run["loss"] for run in runs}
        ax.set_ylabel("MSE (rating²)" if losses == {"mse"} else f"{' / '.join(sorted(losses))} loss")
        ax.legend(frameon=False)
    fig.suptitle("Learning curves: train (dashed) and validation loss per epoch")
    fig.tight_layout()
    return fig


def spread(data: dict, metric: str, better: str):
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(data)))
    models = list(data)
    for y, model in enumerate(models):
        vals = np.asarray(data[model], dtype=float)
        ax.scatter(vals, np.full(len(vals), y), color=colour(model), alpha=0.6, s=22, zorder=3)
        mean, std = vals.mean(), (vals.std(ddof=1) if len(vals) > 1 else 0.0)
        ax.errorbar(mean, y, xerr=std, color="black", capsize=4, marker="|", ms=14, zorder=4)
    ax.set_yticks(range(len(models)), models)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} ({better} is better); dots = seeds, bar = mean ± std")
    ax.set_title(f"Test {metric} per model")
    fig.tight_layout()
    return fig


def buckets(data: dict, title: str, xlabel: str):
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    models = list(data)
    labels = [row["bucket"] for row in data[models[0]]]
    width = 0.8 / len(models)
    for j, model in enumerate(models):
        vals = [np.nan if row["rmse"] is None else row["rmse"] for row in data[model]]
        ax.bar(np.arange(len(labels)) + (j - (len(models) - 1) / 2) * width, vals, width,
               color=colour(model), label=model)
    counts = [row["n"] for row in data[models[0]]]
    ax.set_xticks(range(len(labels)), [f"{lab}\n(n={n:,})" for lab, n in zip(labels, counts)])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("RMSE (stars)")
    ax.set_title(title)
    ax.legend(frameon=False, ncol=min(len(models), 5), fontsize=8)
    fig.tight_layout()
    return fig


def warm_cold(data: dict):
    if not data:
        return None
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(7, 3.4))
    models = list(data)
    x = np.arange(len(models))
    handles = []
    for offset, part, hatch in ((-0.2, "warm", None), (0.2, "cold", "//")):
        vals = [np.nan if data[m][part]["rmse"] is None else data[m][part]["rmse"] for m in models]
        ax.bar(x + offset, vals, 0.4, color=[colour(m) for m in models], hatch=hatch,
               edgecolor="white")
        handles.append(Patch(facecolor="#999999", hatch=hatch, edgecolor="white",
                             label=f"{part} rows (n={data[models[0]][part]['n']:,})"))
    ax.set_xticks(x, models)
    ax.set_ylabel("RMSE (stars)")
    ax.set_title("Warm rows vs cold rows (cold rows are predicted by the bias fallback)")
    ax.legend(handles=handles, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def distributions(data: dict):
    if not data:
        return None
    models = list(data)
    fig, axes = plt.subplots(1, len(models), figsize=(3.3 * len(models), 3), squeeze=False,
                             sharey=True)
    for ax, model in zip(axes[0], models):
        for part, style in (("true", dict(color="#bbbbbb", label="true")),
                            ("predicted", dict(color=colour(model), alpha=0.7, label="predicted"))):
            edges = np.asarray(data[model][part]["edges"])
            ax.bar(edges[:-1], data[model][part]["counts"], width=np.diff(edges), align="edge",
                   **style)
        ax.set_title(model)
        ax.set_xlabel("rating (stars)")
        ax.legend(frameon=False, fontsize=8)
    axes[0][0].set_ylabel("test rows")
    fig.suptitle("Predicted vs true ratings on the test rows")
    fig.tight_layout()
    return fig


def rating_histogram(data: dict):
    fig, ax = plt.subplots(figsize=(6, 3))
    values = [float(v) for v in data]
    ax.bar(values, list(data.values()), width=0.4, color="#4c72b0")
    ax.set_xlabel("rating (stars)")
    ax.set_ylabel("ratings")
    ax.set_title("How people rate")
    fig.tight_layout()
    return fig


def activity(per_user: dict, per_item: dict):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, hist, who in ((axes[0], per_user, "user"), (axes[1], per_item, "movie")):
        edges = np.asarray(hist["edges"])
        ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", color="#55a868",
               edgecolor="white")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(f"ratings per {who} (log scale)")
        ax.set_ylabel(f"{who}s (log scale)")
        ax.set_title(f"Ratings per {who}")
    fig.tight_layout()
    return fig


def crosstab(data: dict):
    grid = np.array([[np.nan if v is None else v for v in row] for row in data["ratings"]])
    fig, ax = plt.subplots(figsize=(9, 6.5))
    im = ax.imshow(grid, cmap="viridis", vmin=np.nanmin(grid), vmax=np.nanmax(grid))
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:g}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
    short = [t if len(t) <= 28 else t[:26] + "…" for t in data["titles"]]
    ax.set_xticks(range(len(short)), short, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(data["users"])), [str(u) for u in data["users"]], fontsize=7)
    ax.set_xlabel("the most rated movies")
    ax.set_ylabel("the most active users (userId)")
    ax.set_title("Ratings of the most active users for the most rated movies (blank = not rated)")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="rating (stars)", shrink=0.7)
    fig.tight_layout()
    return fig


def learned_bias(data: dict):
    rows = data["highest"] + data["lowest"][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.28 * len(rows)))
    vals = [r["bias"] for r in rows]
    ax.barh(range(len(rows)), vals, color=["#55a868" if v > 0 else "#c44e52" for v in vals])
    names = [(r["title"] if len(r["title"]) <= 45 else r["title"][:43] + "…")
             + f" ({r['n_ratings']})" for r in rows]
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    unit = data.get("unit", "stars")
    ax.set_xlabel(f"learned movie bias ({unit}); in brackets: number of ratings")
    ax.set_title(f"Highest and lowest movie biases ({data['model']} model)")
    fig.tight_layout()
    return fig


def embedding_map(data: dict):
    movies = data["movies"]
    fig, ax = plt.subplots(figsize=(9, 7))
    xs, ys = [m["x"] for m in movies], [m["y"] for m in movies]
    ax.scatter(xs, ys, s=[8 + m["n_ratings"] / 10 for m in movies], color=colour(data["model"]),
               alpha=0.5)
    for m in movies:
        title = m["title"] if len(m["title"]) <= 30 else m["title"][:28] + "…"
        ax.annotate(title, (m["x"], m["y"]), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ev = data["explained_variance"]
    ax.set_xlabel(f"first principal component ({ev[0]:.0%} of variance)")
    ax.set_ylabel(f"second principal component ({ev[1]:.0%} of variance)")
    ax.set_title(f"Movie embeddings of the {len(movies)} most rated movies ({data['model']}, PCA)")
    fig.tight_layout()
    return fig
