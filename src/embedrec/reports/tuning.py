"""The report's tuning section, from a ``tuning.json`` (``embedrec tune``; ``compare --tuned``
copies it into its output folder): optimisation history per model, parameter importances, and
the best settings table."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def history_data(report: dict) -> dict:
    """model -> {trial, value, best_so_far} over completed trials, in trial order."""
    out = {}
    for name, res in report.get("models", {}).items():
        done = sorted((t for t in res["trials"] if t["state"] == "COMPLETE"
                       and t["value"] is not None), key=lambda t: t["number"])
        if done:
            values = np.array([t["value"] for t in done])
            out[name] = {"trial": [t["number"] for t in done], "value": values.tolist(),
                         "best_so_far": np.minimum.accumulate(values).tolist()}
    return out


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _history_figure(data: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from embedrec.reports.plots import colour

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, d in data.items():
        ax.scatter(d["trial"], d["value"], s=10, alpha=0.4, color=colour(name))
        ax.step(d["trial"], d["best_so_far"], where="post", color=colour(name), label=name)
    ax.set_xlabel("trial")
    ax.set_ylabel("trial value (lower is better)")
    lows = [min(d["value"]) for d in data.values()]
    highs = [np.percentile(d["value"], 90) for d in data.values()]
    ax.set_ylim(min(lows) * 0.995, max(highs) * 1.01)
    ax.legend()
    ax.set_title("Optimisation history (dots: trials; line: best so far)")
    fig.tight_layout()
    return _png(fig)


def _importance_figure(report: dict) -> str | None:
    import matplotlib.pyplot as plt

    rows = {n: r["importances"] for n, r in report["models"].items() if r.get("importances")}
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3), squeeze=False)
    for ax, (name, imp) in zip(axes[0], rows.items()):
        keys = sorted(imp, key=imp.get)
        ax.barh(keys, [imp[k] for k in keys])
        ax.set_title(name)
        ax.set_xlabel("importance")
    fig.tight_layout()
    return _png(fig)


def section(folder) -> str:
    """HTML of the tuning section, or "" when ``folder`` has no tuning.json."""
    path = Path(folder) / "tuning.json"
    if not path.is_file():
        return ""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        models = report["models"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("%s: not a tuning report (%s)", path, exc)
        return ""
    budget = report.get("budget", {})
    rows = []
    for name, res in models.items():
        settings = res["best_model_settings"] | res["best_train_settings"]
        text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in settings.items())
        best = "–" if res["best_value"] is None else f"{res['best_value']:.4f}"
        objective = html.escape(res.get("objective", "validation MSE"))
        rows.append(f"<tr><th class=m>{html.escape(name)}</th><td>{objective}</td><td>{best}</td>"
                    f"<td>{res['n_complete']}</td><td>{res['n_pruned']}</td>"
                    f"<td style='text-align:left'>{html.escape(text)}</td></tr>")
    parts = [f"<h2>Tuning</h2><p>Every model had the same budget: {budget.get('trials')} "
             f"trials, wall-clock cap {budget.get('timeout') or 'none'} s per model; TPE "
             f"sampling, pruning: {html.escape(str(report.get('pruner', 'on the per-epoch validation loss')))}; "
             "the first trial is the preset's own settings; "
             f"{report.get('n_train', 0):,} training and {report.get('n_valid', 0):,} validation "
             "rows (the test rows are not read while tuning).</p>",
             "<table><tr><th>model</th><th>objective (lower is better)</th><th>best</th><th>complete</th>"
             f"<th>pruned</th><th>best settings</th></tr>{''.join(rows)}</table>"]
    data = history_data(report)
    if data:
        parts.append(f"<figure><img alt='optimisation history' src='{_history_figure(data)}'>"
                     "<figcaption>Value of each completed trial (the model's objective, in the "
                     "table) and the best so far, per model.</figcaption></figure>")
    imp = _importance_figure(report)
    if imp:
        parts.append(f"<figure><img alt='parameter importances' src='{imp}'><figcaption>"
                     "Parameter importances (Optuna) per model: how much of the spread of "
                     "the objective each setting explains.</figcaption></figure>")
    return "".join(parts)
