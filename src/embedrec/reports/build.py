"""Assemble ``report.html``: one self-contained file (images inlined), verdict first."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

from embedrec.reports import figures as fig_data
from embedrec.reports.ablation import ablation_html, ablation_markdown, ablation_rows

log = logging.getLogger(__name__)

# (file name, data key, caption): the order the report shows them in
SECTIONS = {
    "How the models trained": [
        ("learning_curves", "learning_curves",
         "Train loss (dashed) and validation loss (dots) per epoch, one line per seed; the faint "
         "vertical line marks the epoch whose weights were kept. A validation curve that turns "
         "up while the train curve keeps falling is overfitting."),
    ],
    "How far apart the models are": [
        ("rmse_spread", "rmse_spread", "Test RMSE of every seed (dots) with mean ± std (bar)."),
        ("ndcg_spread", "ndcg_spread", "Test NDCG of every seed (dots) with mean ± std (bar)."),
    ],
    "Where the errors are": [
        ("errors_by_user_activity", "errors_by_user_activity",
         "RMSE of test rows grouped by how many training ratings their user has."),
        ("errors_by_item_popularity", "errors_by_item_popularity",
         "RMSE of test rows grouped by how many training ratings their movie has (0 = cold)."),
        ("errors_warm_cold", "errors_warm_cold",
         "Warm rows (user and movie seen in training) vs cold rows, which the bias fallback "
         "predicts."),
        ("errors_distribution", "errors_distribution",
         "Distribution of predicted ratings against the true ones (first seed)."),
    ],
    "The data": [
        ("rating_histogram", "rating_histogram", "Number of ratings per star value."),
        ("activity", "ratings_per_user",
         "Ratings per user and per movie, log-log: a few users and movies carry most ratings."),
        ("crosstab", "crosstab",
         "The reference's exploration: ratings the 15 most active users gave the 15 most "
         "rated movies."),
    ],
    "What the model learned": [
        ("learned_bias", "learned_bias",
         "Movie biases among the most rated movies: what the model thinks of a movie once each "
         "user's own generosity is taken out."),
        ("embedding_map", "learned_map",
         "Movie embeddings projected to two dimensions (PCA); similar movies sit together."),
    ],
}


def _render(name: str, data: dict):
    from embedrec.reports import plots

    if name == "rmse_spread":
        return plots.spread(data["rmse_spread"], "RMSE", "lower")
    if name == "ndcg_spread":
        k = data.get("_k", 10)
        return plots.spread(data["ndcg_spread"], f"NDCG@{k}", "higher")
    if name == "errors_by_user_activity":
        return plots.buckets(data[name], "RMSE by user activity",
                             "training ratings of the test row's user")
    if name == "errors_by_item_popularity":
        return plots.buckets(data[name], "RMSE by movie popularity",
                             "training ratings of the test row's movie")
    if name == "errors_warm_cold":
        return plots.warm_cold(data[name])
    if name == "errors_distribution":
        return plots.distributions(data[name])
    if name == "activity":
        return plots.activity(data["ratings_per_user"], data["ratings_per_item"])
    key = {"learned_bias": "learned_bias", "embedding_map": "learned_map"}.get(name, name)
    return getattr(plots, name)(data[key])


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100)
    plt.close(figure)
    return buf.getvalue()


def verdict(summary: list[dict], stats: dict | None = None) -> list[str]:
    """Plain sentences: the best model by RMSE and by NDCG, and, from the paired tests
    (``stats.json``), how it compares with every other model: "a beats b by 0.034 RMSE
    [0.029, 0.039], p < 0.001 (Holm)" or "no significant difference"."""
    lines = []
    pairs = (stats or {}).get("pairs", [])
    for key, label, lower in (("rmse", "RMSE", True), ("ndcg_at_k", "NDCG", False)):
        rows = [r for r in summary if r.get(key) is not None]
        if not rows:
            continue
        rows.sort(key=lambda r: r[key] if lower else -r[key])
        best = rows[0]
        text = (f"Best by {label}: <b>{html.escape(best['model'])}</b> "
                f"({best[key]:.4f} ± {best[f'{key}_std']:.4f} over {best['n_seeds']} seed(s))")
        if len(rows) > 1:
            mine = [p for p in pairs if p["metric"] == key and best["model"] in (p["a"], p["b"])]
            if mine:
                text += ". " + "; ".join(html.escape(p["sentence"]) for p in mine)
            else:
                text += (". No paired test is available for this folder (it has no "
                         "predictions.npz): rerun compare to say whether the lead is significant")
        lines.append(text + ".")
    return lines


def _pairs_table(stats: dict) -> str:
    """Every pair's difference, CI, raw and Holm-corrected p-value, and seed spread."""
    if not stats or not stats.get("pairs"):
        return ""
    head = ("<tr><th>metric</th><th>a</th><th>b</th><th>a − b</th><th>95% CI (users "
            "resampled)</th><th>p (Wilcoxon)</th><th>p (Holm)</th><th>users</th><th>verdict</th></tr>")
    rows = []
    for p in stats["pairs"]:
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            p["metric"], p["a"], p["b"], f"{p['difference']:+.4f}",
            f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]", f"{p['p']:.2g}", f"{p['p_holm']:.2g}",
            p["n_units"], p["sentence"])) + "</tr>")
    spread = []
    for metric, per_model in stats.get("seed_spread", {}).items():
        for model, v in per_model.items():
            spread.append(f"<tr><td>{html.escape(metric)}</td><td>{html.escape(model)}</td>"
                          f"<td>{v['mean']:.4f}</td><td>{v['std']:.4f}</td><td>{v['min']:.4f}"
                          f"</td><td>{v['max']:.4f}</td><td>{v['n']}</td></tr>")
    return (f"<h2>Paired tests</h2><p>{html.escape(stats.get('rating_test', ''))}; "
            f"{html.escape(stats.get('ranking_test', ''))}; bootstrap of users, "
            f"{stats.get('n_boot')} resamples; {html.escape(stats.get('correction', ''))}. "
            f"A pair counts as a win only when the corrected p-value is below "
            f"{stats.get('alpha')} and the CI excludes 0.</p><table>{head}{''.join(rows)}</table>"
            "<h3>Seed spread</h3><table><tr><th>metric</th><th>model</th><th>mean</th><th>std"
            f"</th><th>min</th><th>max</th><th>runs</th></tr>{''.join(spread)}</table>")


def _table(summary: list[dict], k: int) -> str:
    cols = [("RMSE", "rmse", 4), ("MAE", "mae", 4), ("RMSE warm", "rmse_warm", 4),
            ("RMSE cold", "rmse_cold", 4), ("cold, fallback only", "rmse_cold_fallback", 4),
            ("RMSE model-only", "rmse_model_all", 4), (f"NDCG@{k}", "ndcg_at_k", 4),
            (f"P@{k}", "precision_at_k", 4), (f"R@{k}", "recall_at_k", 4),
            (f"MAP@{k}", "map_at_k", 4), (f"HR@{k}", "hit_rate_at_k", 3),
            ("coverage", "coverage_at_k", 3), ("train s", "train_seconds", 1)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c, _, _ in cols)
    rows = []
    for r in summary:
        cells = []
        for _, key, digits in cols:
            v, s = r.get(key), r.get(f"{key}_std", 0.0)
            cells.append("<td>–</td>" if v is None else
                         f"<td>{v:.{digits}f}<span class=sd> ± {s:.{digits}f}</span></td>")
        rows.append(f"<tr><th class=m style='border-left:6px solid {_colour(r['model'])}'>"
                    f"{html.escape(r['model'])}</th>{''.join(cells)}"
                    f"<td>{r['n_params']:,.0f}</td></tr>")
    return f"<table><tr><th>model</th>{head}<th>params</th></tr>{''.join(rows)}</table>"


def _colour(model: str) -> str:
    from embedrec.reports.plots import colour

    return colour(model)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:2em}
.verdict{background:#f3f7ff;border-left:6px solid #3b6fd8;padding:.8em 1.2em;font-size:1.1em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0;overflow-x:auto;display:block}
td,th{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:right;white-space:nowrap}
th.m{text-align:left} .sd{color:#888;font-size:.85em}
figure{margin:1.5em 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em} pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
.meta td{text-align:left;white-space:normal}
"""


def tuning_section(folder: Path) -> str:
    """The tuning section when ``folder`` holds a tuning run (``tuning.json``)."""
    from embedrec.reports.tuning import section

    return section(folder)


def build_report(folder: str | Path) -> Path:
    """Write figures/*.png, figures.json and report.html into ``folder`` (and ablation.md when
    the folder holds an ablation); return the report."""
    from embedrec.io import atomic_write_text as atomic_write

    folder = Path(folder)
    res = fig_data.load_results(folder)
    stats_path = folder / "stats.json"
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.is_file() else None
    data = fig_data.figure_data(folder)
    k = res["settings"].get("k", 10)
    data["_k"] = k
    atomic_write(folder / "figures.json", json.dumps(data, indent=1))
    ablation = ablation_rows(res["results"], res["summary"], res["settings"])
    if ablation:  # the same table as Markdown, for a README
        atomic_write(folder / "ablation.md", ablation_markdown(ablation))
    (folder / "figures").mkdir(exist_ok=True)
    body = []
    for section, entries in SECTIONS.items():
        parts = []
        for name, key, caption in entries:
            if not data.get(key):
                continue
            figure = _render(name, data)
            if figure is None:
                continue
            png = _png(figure)
            (folder / "figures" / f"{name}.png").write_bytes(png)
            src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='{src}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if parts:
            body.append(f"<h2>{html.escape(section)}</h2>" + "".join(parts))
    settings = res["settings"]
    title = (f"embedrec: {settings['dataset']}, {settings['split']} split, preset "
             f"{settings['preset']['name']}")
    first = res["results"][0]
    refit = settings["preset"].get("split", {}).get("refit")
    facts = (f"{first['n_test']:,} test rows ({first['n_cold']:,} cold, predicted by the bias "
             f"baseline), {first['n_train']:,} training rows, {first['n_valid']:,} validation rows"
             f"{' (among them: refit)' if refit else ''}; "
             f"top-{k} lists scored for {first.get('n_users_ranked', 0):,} users (relevant = "
             f"rating ≥ {settings.get('relevance_threshold', 4.0):g}).")
    meta = [("dataset", f"{settings['dataset']} ({settings['n_ratings']:,} ratings, "
                        f"{settings['n_users']:,} users, {settings['n_items']:,} movies)"),
            ("dataset md5", str(settings.get("dataset_md5"))),
            ("split", f"{settings['split']}, test fraction {settings['test_fraction']}, "
                      f"split seed {settings['split_seed']}"),
            ("model seeds", ", ".join(map(str, settings["seeds"]))),
            ("versions", ", ".join(f"{k_}={v}" for k_, v in settings["versions"].items())),
            ("command", settings.get("command", ""))]
    meta_rows = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>"
                        for a, b in meta)
    page = f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<div class=verdict>{'<br>'.join(verdict(res['summary'], stats))}</div>
<p>{html.escape(facts)}</p>
<h2>All metrics (mean ± std over seeds)</h2>{_table(res['summary'], k)}
{ablation_html(ablation)}
{_pairs_table(stats)}{tuning_section(folder)}
{''.join(body)}
<h2>Exact settings</h2><table class=meta>{meta_rows}</table>
<pre>{html.escape(json.dumps(settings['preset'], indent=1))}</pre>
<p>Reproduce: <code>{html.escape(settings.get('command', ''))}</code> (rebuild this page
without retraining: <code>embedrec report {html.escape(str(folder))}</code>).</p>
</body></html>"""
    atomic_write(folder / "report.html", page)
    log.info("wrote %s", folder / "report.html")
    return folder / "report.html"
