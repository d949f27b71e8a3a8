"""The report's figures show the right numbers, and the page works offline."""

import json
import re

import numpy as np
import pytest

from embedrec.cli import main
from embedrec.compare import run_comparison, write_results
from embedrec.data.explore import top_crosstab
from embedrec.presets import get_preset
from embedrec.reports import build_report
from embedrec.reports.build import verdict
from tests.conftest import make_ratings


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    data = make_ratings(n_users=40, n_items=30, seed=5)
    preset = get_preset("default").with_overrides(epochs=4, patience=None)
    comp = run_comparison(data, preset=preset, models=["dot", "biased", "mlp", "bias", "pop"],
                          seeds=2)
    out = tmp_path_factory.mktemp("report")
    write_results(comp, out)
    build_report(out)
    return out, data


def _json(path):
    return json.loads(path.read_text())


def test_learning_curves_match_results_history(folder):
    out, _ = folder
    figures, results = _json(out / "figures.json"), _json(out / "results.json")
    for rec in results:
        if rec["model"] in ("dot", "biased", "mlp"):
            series = [s for s in figures["learning_curves"][rec["model"]] if s["seed"] == rec["seed"]]
            assert series[0]["loss"] == "mse"
            assert series[0]["train"] == [e["train_mse"] for e in rec["history"]]
            assert series[0]["valid"] == [e["valid_mse"] for e in rec["history"]]
    assert set(figures["learning_curves"]) == {"dot", "biased", "mlp"}


def test_heatmap_matches_the_crosstab(folder):
    out, data = folder
    figures = _json(out / "figures.json")
    cross = top_crosstab(data, 15)
    grid = np.array([[np.nan if v is None else v for v in row]
                     for row in figures["crosstab"]["ratings"]])
    assert np.array_equal(np.isnan(grid), np.isnan(cross.to_numpy()))
    assert np.allclose(np.nan_to_num(grid), np.nan_to_num(cross.to_numpy()))
    assert figures["crosstab"]["users"] == cross.index.tolist()


def test_spreads_and_error_buckets_match_records(folder):
    out, data = folder
    figures, results = _json(out / "figures.json"), _json(out / "results.json")
    assert figures["rmse_spread"]["biased"] == [r["rmse"] for r in results if r["model"] == "biased"]
    assert "pop" not in figures["rmse_spread"] and "pop" in figures["ndcg_spread"]
    buckets = figures["errors_by_item_popularity"]["biased"]
    n_test = results[0]["n_test"]
    assert sum(b["n"] for b in buckets) == n_test
    warm_cold = figures["errors_warm_cold"]["biased"]
    assert warm_cold["warm"]["n"] + warm_cold["cold"]["n"] == n_test
    assert figures["rating_histogram"] == {f"{v:g}": int(c) for v, c in
                                           zip(*np.unique(data.ratings, return_counts=True))}


def test_report_is_self_contained(folder):
    out, _ = folder
    page = (out / "report.html").read_text()
    assert "Best by RMSE" in page and "Best by NDCG" in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing fetched from a network
    images = re.findall(r"src='data:image/png;base64,", page)
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(images) == len(pngs) >= 10
    assert "learning_curves.png" in pngs and "crosstab.png" in pngs and "embedding_map.png" in pngs


def test_report_command_rebuilds_without_retraining(folder, capsys):
    out, _ = folder
    (out / "report.html").unlink()
    before = (out / "results.json").stat().st_mtime_ns
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()
    assert (out / "results.json").stat().st_mtime_ns == before


def test_report_of_a_folder_without_results(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "no results.json" in capsys.readouterr().err


def test_verdict_says_whether_the_lead_is_real():
    rows = [{"model": "a", "rmse": 0.80, "rmse_std": 0.01, "n_seeds": 3},
            {"model": "b", "rmse": 0.85, "rmse_std": 0.01, "n_seeds": 3}]
    pair = {"metric": "rmse", "a": "a", "b": "b", "sentence":
            "a beats b by 0.0500 RMSE [0.0400, 0.0600], p < 0.001 (Holm)"}
    text = verdict(rows, {"pairs": [pair]})[0].replace("&lt;", "<")
    assert "<b>a</b>" in text and "a beats b by 0.0500 RMSE [0.0400, 0.0600], p < 0.001 (Holm)" in text
    assert "clearly ahead" not in text
    # without paired tests (an old folder) no lead is claimed
    assert "No paired test" in verdict(rows)[0] and "beats" not in verdict(rows)[0]


def test_report_states_paired_tests_with_ci_and_holm(folder):
    out, _ = folder
    stats = _json(out / "stats.json")
    page = (out / "report.html").read_text()
    assert "<h2>Paired tests</h2>" in page and "clearly ahead" not in page
    models = ["dot", "biased", "mlp", "bias", "pop"]
    rating = [p for p in stats["pairs"] if p["metric"] == "rmse"]
    ranking = [p for p in stats["pairs"] if p["metric"] == "ndcg_at_k"]
    assert len(rating) == 6 and len(ranking) == 10  # pop predicts no ratings
    for p in stats["pairs"]:
        assert p["ci_low"] <= p["difference"] <= p["ci_high"]
        assert p["p"] <= p["p_holm"] <= 1
        assert p["sentence"] in page.replace("&lt;", "<")
        assert ("beats" in p["sentence"]) == p["significant"]
    assert set(stats["seed_spread"]["rmse"]) == set(models) - {"pop"}
    from embedrec.evaluation.stats import load_predictions

    preds = load_predictions(out / "predictions.npz")
    results = _json(out / "results.json")
    truth = preds["truth"][1]
    for rec in results:
        if rec["rmse"] is not None:
            pred = preds["pred"][rec["model"]][1][rec["seed"]]
            assert np.sqrt(np.mean((pred - truth) ** 2)) == pytest.approx(rec["rmse"], rel=1e-5)
        ndcg = preds["ndcg"][rec["model"]][1][rec["seed"]]
        assert np.nanmean(ndcg) == pytest.approx(rec["ndcg_at_k"], rel=1e-9)


def test_ablation_table_from_hand_made_records():
    """Rows: the other models first, then the ablated model and its variants; Δ RMSE and the
    time ratio computed from the summary by hand."""
    from embedrec.reports.ablation import ablation_markdown, ablation_rows

    def rec(model, spec, settings, config):
        return {"model": model, "spec": spec, "settings": settings, "config": config}

    on = {"name": "hybrid_mf", "use_genres": True, "use_year": True, "use_time": False}
    results = [rec("biased", "biased", {}, {"name": "biased", "n_factors": 50}),
               rec("hybrid_mf", "hybrid_mf", {}, on),
               rec("hybrid_mf -genres", "hybrid_mf", {"use_genres": False}, on | {"use_genres": False}),
               rec("hybrid_mf +time", "hybrid_mf", {"use_time": True}, on | {"use_time": True})]

    def row(model, rmse, seconds, cold=None):
        keys = {"rmse": rmse, "rmse_cold": cold, "rmse_cold_fallback": 0.97 if cold else None,
                "rmse_warm": rmse - 0.01, "train_seconds": seconds}
        return {"model": model, "n_seeds": 3} | keys | {f"{k}_std": 0.001 for k in keys}

    summary = [row("hybrid_mf +time", 0.84, 3.0, 0.91), row("biased", 0.85, 2.0),
               row("hybrid_mf", 0.83, 2.5, 0.89), row("hybrid_mf -genres", 0.86, 4.0, 0.98)]
    rows = ablation_rows(results, summary, {"models": ["biased", "hybrid_mf", "hybrid_mf -genres",
                                                       "hybrid_mf +time"]})
    assert [r["model"] for r in rows] == ["biased", "hybrid_mf", "hybrid_mf -genres", "hybrid_mf +time"]
    assert [r["inputs"] for r in rows] == ["–", "ids, genres, year", "ids, year", "ids, genres, year, time"]
    assert [r["change"] for r in rows] == ["", "", "genres off", "time on"]
    assert rows[0]["delta_rmse"] is None and rows[1]["delta_rmse"] is None
    assert rows[2]["delta_rmse"] == pytest.approx(0.03) and rows[3]["delta_rmse"] == pytest.approx(0.01)
    assert [r["time_ratio"] for r in rows] == pytest.approx([1.0, 1.25, 2.0, 1.5])
    lines = ablation_markdown(rows).splitlines()
    assert lines[0].endswith("| train time / biased's |") and len(lines) == 6
    assert lines[3] == ("| **hybrid_mf** | ids, genres, year | 0.8300 ± 0.0010 | – | 0.8900 ± 0.0010 | "
                        "0.9700 ± 0.0010 | 0.8200 ± 0.0010 | 2.50 ± 0.00 | 1.25 |")
    assert lines[4].startswith("| hybrid_mf -genres | ids, year | 0.8600 ± 0.0010 | +0.0300 |")
    assert ablation_rows(results[:2], summary[1:3], {"models": ["biased", "hybrid_mf"]}) == []


def test_a_report_of_models_trained_with_a_ranking_loss_draws_that_loss(tmp_path):
    """Regression: the learning curves read train_mse and failed (KeyError) for a comparison
    whose torch models were trained with bpr."""
    data = make_ratings(n_users=30, n_items=25, seed=6)
    preset = get_preset("default").with_overrides(epochs=2, loss="bpr")
    comp = run_comparison(data, preset=preset, models=["dot", "pop"], seeds=1)
    write_results(comp, tmp_path)
    build_report(tmp_path)
    curves = _json(tmp_path / "figures.json")["learning_curves"]
    (series,) = curves["dot"]
    history = _json(tmp_path / "results.json")[0]["history"]
    assert series["loss"] == "bpr"
    assert series["train"] == [e["train_bpr"] for e in history]
    assert series["valid"] == [e["valid_bpr"] for e in history]
    assert (tmp_path / "report.html").is_file()
