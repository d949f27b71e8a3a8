"""The two evaluation protocols, the long-tail share, the verdict, the CLI and the service."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedrec.cli import main
from embedrec.compare import Comparison
from embedrec.errors import ConfigError
from embedrec.protocols import (
    parse_protocols, protocol_preset, run_protocols, verdict, verdict_lines,
)
from embedrec.evaluation.ranking import long_tail_share
from embedrec.presets import get_preset
from tests.conftest import make_ratings


def test_long_tail_share_by_hand():
    counts = np.array([50, 40, 3, 2, 1, 1, 0, 0, 0, 0])  # head: the 2 most-rated of 10 items
    assert long_tail_share(np.array([[0, 1, 2], [4, -1, 0]]), counts) == pytest.approx(2 / 5)
    assert long_tail_share(np.array([[0, 1]]), counts) == 0.0
    assert long_tail_share(np.array([[6, 7]]), counts, head_fraction=0.5) == 1.0


def test_protocol_presets():
    data = make_ratings(n_users=10, n_items=8, seed=0)
    base = get_preset("default").with_overrides(loss="bpr")
    a = protocol_preset(base, "a", data)
    assert a.split.kind == "random" and a.evaluation.relevance_threshold == 4.0
    assert not a.train.implicit and a.train.relevant == 4.0
    b = protocol_preset(base, "b", data, holdout="latest", fraction=0.3)
    assert b.split.kind == "user-latest" and b.split.test_fraction == 0.3
    assert b.evaluation.relevance_threshold == 0.5 and b.train.implicit  # every rating counts
    assert parse_protocols("both") == ("a", "b") and parse_protocols("b") == ("b",)
    with pytest.raises(ConfigError, match="unknown protocol"):
        parse_protocols("c")
    with pytest.raises(ConfigError, match="unknown holdout"):
        protocol_preset(base, "b", data, holdout="oldest")


def test_protocol_b_holds_out_a_share_of_every_user_and_counts_all_relevant():
    data = make_ratings(n_users=25, n_items=20, density=0.5, seed=4)
    preset = get_preset("default").with_overrides(epochs=1, n_factors=4, patience=None)
    results = run_protocols(data, preset=preset, models=["pop", "ease", "bias"], seeds=1,
                            fraction=0.25)
    a, b = results["a"], results["b"]
    assert b.settings["split"] == "user-random" and b.settings["relevance_threshold"] == 0.5
    ease_b = next(r for r in b.records if r["model"] == "ease")
    # every test user has a held-out item, and every held-out item is relevant
    assert ease_b["n_users_ranked"] == data.n_users and ease_b["n_users_no_relevant"] == 0
    assert ease_b["rmse"] is None and 0 <= ease_b["long_tail_at_k"] <= 1
    bias_a = next(r for r in a.records if r["model"] == "bias")
    assert bias_a["rmse"] is not None
    result = verdict(results)
    assert result["rating_prediction"]["model"] == "bias"  # the only rating predictor here
    assert set(result["top_n"]) == {"a", "b"}
    best_b = max(b.summary(), key=lambda r: r["ndcg_at_k"])["model"]
    assert result["top_n"]["b"]["model"] == best_b
    assert any(line.startswith("best for rating prediction: bias") for line in verdict_lines(result))


def test_verdict_separates_rating_and_top_n():
    def comparison(rows):
        records = [{"model": m, "seed": 0, "rmse": r, "ndcg_at_k": n} for m, r, n in rows]
        return Comparison(records=records, settings={"k": 10})

    result = verdict({"a": comparison([("biased", 0.87, 0.08), ("ease", None, 0.24),
                                       ("dot", 0.95, 0.02)]),
                      "b": comparison([("biased", 0.9, 0.1), ("ials", None, 0.3)])})
    assert result["rating_prediction"] == {"model": "biased", "rmse": 0.87, "protocol": "a"}
    assert result["top_n"]["a"]["model"] == "ease" and result["top_n"]["b"]["model"] == "ials"


def test_cli_compare_both_protocols_writes_each_and_a_verdict(tmp_path, capsys):
    frame = make_ratings(n_users=30, n_items=20, seed=1).to_frame()
    path = tmp_path / "ratings.csv"
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    out = tmp_path / "out"
    code = main(["compare", "--data", str(path), "--models", "pop,ease,dot", "--seeds", "1",
                 "--epochs", "1", "--loss", "bpr", "--protocol", "both", "--out", str(out),
                 "--no-report"])
    assert code == 0
    text = capsys.readouterr().out
    assert "protocol a" in text and "protocol b" in text and "best for top-10" in text
    saved = json.loads((out / "verdict.json").read_text())
    assert saved["protocols"]["b"]["positives"] == "every rating"
    assert saved["protocols"]["a"]["loss"] == "bpr"
    dot_a = [r for r in json.loads((out / "protocol-a" / "results.json").read_text())
             if r["model"] == "dot"]
    assert dot_a and dot_a[0]["rmse"] is None  # trained with BPR: no rating metrics
    assert main(["compare", "--data", str(path), "--models", "pop", "--protocol", "c"]) != 0
    # the same command again rewrites its own folder; --refit fits on the whole training part
    assert main(["compare", "--data", str(path), "--models", "pop,ease", "--seeds", "1",
                 "--protocol", "b", "--valid-fraction", "0.1", "--refit", "--out", str(out),
                 "--no-report"]) == 0
    rows = json.loads((out / "protocol-b" / "results.json").read_text())
    settings = json.loads((out / "protocol-b" / "settings.json").read_text())
    assert settings["preset"]["split"]["refit"] is True
    assert {r["n_train"] for r in rows} == {settings["n_train"]}  # every training row
    assert sorted(p.name for p in out.iterdir()) == ["protocol-b", "verdict.json"]


def test_service_refuses_predict_for_a_ranking_model_saying_why(tmp_path):
    import httpx

    from embedrec.experiment import train_bundle
    from embedrec.serve.app import create_app
    from tests.serve.conftest import LiveServer

    data = make_ratings(n_users=20, n_items=12, seed=5)
    for name, loss, why in (("dot", "bpr", "trained with the bpr ranking loss"),
                            ("ease", "mse", "does not predict ratings")):
        preset = get_preset("default").with_overrides(epochs=1, n_factors=4, loss=loss)
        bundle = train_bundle(data, name, preset, seed=0)
        with LiveServer(create_app(bundle=bundle)) as live, \
                httpx.Client(base_url=live.url, timeout=10) as client:
            user, movie = int(data.user_map.ids[1]), int(data.item_map.ids[3])
            got = client.post("/predict", json={"pairs": [{"user_id": user, "movie_id": movie}]})
            assert got.status_code == 422 and why in got.json()["detail"]
            recs = client.get(f"/users/{user}/recommendations", params={"k": 3})
            assert recs.status_code == 200 and len(recs.json()["items"]) == 3
            new = client.post("/recommendations", json={"ratings": [
                {"movie_id": movie, "rating": 5.0}], "k": 3})
            assert new.status_code == 200 and len(new.json()["items"]) == 3


def test_cli_train_with_a_ranking_loss_then_recommend_and_similar(tmp_path, capsys):
    frame = make_ratings(n_users=30, n_items=20, seed=2).to_frame()
    path = tmp_path / "ratings.csv"
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    folder = tmp_path / "model"
    assert main(["train", "--data", str(path), "--model", "dot", "--loss", "softmax",
                 "--implicit", "--epochs", "1", "--split", "random", "--out", str(folder)]) == 0
    assert "test NDCG@10" in capsys.readouterr().out
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["loss"] == "softmax" and manifest["positives"] == "every rating"
    assert main(["recommend", "--model", str(folder), "--user", "2", "-k", "3"]) == 0
    assert main(["similar", "--model", str(folder), "--movie", "10", "-k", "3"]) == 0
    assert main(["train", "--data", str(path), "--model", "dot", "--loss", "nope",
                 "--out", str(tmp_path / "x")]) != 0
    assert "unknown loss 'nope'" in capsys.readouterr().err


def test_model_info_says_whether_scores_are_ratings(tmp_path):
    import httpx

    from embedrec.experiment import train_bundle
    from embedrec.serve.app import create_app
    from tests.serve.conftest import LiveServer

    data = make_ratings(n_users=20, n_items=12, seed=6)
    preset = get_preset("default").with_overrides(epochs=1, n_factors=4, loss="bpr_pop")
    with LiveServer(create_app(bundle=train_bundle(data, "biased", preset, seed=0))) as live, \
            httpx.Client(base_url=live.url, timeout=10) as client:
        info = client.get("/model").json()
    assert info["predicts_ratings"] is False and info["loss"] == "bpr_pop"
