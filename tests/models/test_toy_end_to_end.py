"""The test-only ``toy`` model runs through compare, train, recommend and the service with no
change in ``src/``: a model is one unit."""

from __future__ import annotations

import json

import pytest

from embedrec.cli import main
from tests.conftest import make_ratings
from tests.models import toy_model


@pytest.fixture
def ratings_csv(tmp_path):
    frame = make_ratings(n_users=30, n_items=20, seed=1).to_frame()
    path = tmp_path / "ratings.csv"
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def toy():
    with toy_model.registered():
        yield


def test_toy_through_compare_train_recommend_and_serve(ratings_csv, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(ratings_csv), "--models", "toy,bias", "--seeds", "1",
                 "--epochs", "3", "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())
    toy = next(r for r in records if r["model"] == "toy")
    assert toy["rmse"] is not None and len(toy["history"]) == 3 and toy["config"] == {"name": "toy"}
    assert (out / "report.html").is_file()

    model_dir = tmp_path / "toy-model"
    assert main(["train", "--model", "toy", "--data", str(ratings_csv), "--epochs", "3",
                 "--out", str(model_dir)]) == 0
    capsys.readouterr()
    assert main(["recommend", "--model", str(model_dir), "--user", "2", "-k", "3", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 3
    assert main(["recommend", "--model", str(model_dir), "--rate", "10=5", "--rate", "20=1",
                 "-k", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    # a model without movie vectors says so
    assert main(["similar", "--model", str(model_dir), "--movie", "10"]) == 1
    assert "no movie vectors" in capsys.readouterr().err

    import httpx

    from embedrec.serve import create_app
    from tests.serve.conftest import LiveServer

    with LiveServer(create_app(model_dir)) as live, httpx.Client(base_url=live.url,
                                                                 timeout=10) as client:
        assert client.get("/health").json()["model"] == "toy"
        rec = client.get("/users/2/recommendations", params={"k": 3})
        assert rec.status_code == 200 and len(rec.json()["items"]) == 3
        pred = client.post("/predict", json={"pairs": [{"user_id": 1, "movie_id": 10}]})
        assert pred.status_code == 200
        rating = pred.json()["predictions"][0]["rating"]
        assert 0.5 <= rating <= 5.0
        new = client.post("/recommendations", json={"ratings": [{"movie_id": 10, "rating": 5}],
                                                    "k": 2})
        assert new.status_code == 200 and len(new.json()["items"]) == 2
