"""--mlflow on compare and tune, against a local MLflow file store."""

import json

import pytest

mlflow = pytest.importorskip("mlflow")

from embedrec.cli import main  # noqa: E402
from tests.conftest import make_ratings  # noqa: E402


@pytest.fixture
def ratings_csv(tmp_path):
    frame = make_ratings(n_users=30, n_items=20, seed=1).to_frame()
    path = tmp_path / "ratings.csv"
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    return path


def _client(store):
    from mlflow.tracking import MlflowClient

    from embedrec.tracking import tracking_uri

    return MlflowClient(tracking_uri=tracking_uri(str(store)))


def test_compare_logs_params_epochs_metrics_and_artifacts(ratings_csv, tmp_path):
    store, out = tmp_path / "mlruns", tmp_path / "out"
    assert main(["compare", "--data", str(ratings_csv), "--models", "biased,bias", "--seeds", "2",
                 "--epochs", "3", "--out", str(out), "--mlflow", str(store)]) == 0
    client = _client(store)
    exp = client.get_experiment_by_name("embedrec-compare")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parent) == 1 and len(children) == 4  # 2 models x 2 seeds
    results = json.loads((out / "results.json").read_text())
    for child in children:
        model, seed = child.data.params["model"], int(child.data.params["seed"])
        rec = next(r for r in results if r["model"] == model and r["seed"] == seed)
        assert child.data.metrics["rmse"] == pytest.approx(rec["rmse"])
        if model == "biased":
            history = client.get_metric_history(child.info.run_id, "valid_mse")
            assert [m.step for m in history] == [e["epoch"] for e in rec["history"]]
            assert [m.value for m in history] == pytest.approx(
                [e["valid_mse"] for e in rec["history"]])
    assert parent[0].data.params["preset.train.epochs"] == "3"
    artifacts = {a.path for a in client.list_artifacts(parent[0].info.run_id)}
    assert {"results.json", "report.html", "stats.json"} <= artifacts


def test_tune_logs_every_trial_and_the_best_settings(ratings_csv, tmp_path):
    store, out = tmp_path / "mlruns", tmp_path / "tuned"
    assert main(["tune", "--data", str(ratings_csv), "--models", "biased", "--trials", "2",
                 "--epochs", "2", "--valid-fraction", "0.1", "--out", str(out),
                 "--mlflow", str(store)]) == 0
    client = _client(store)
    exp = client.get_experiment_by_name("embedrec-tune")
    (run,) = client.search_runs([exp.experiment_id])
    report = json.loads((out / "tuning.json").read_text())["models"]["biased"]
    values = [t["value"] for t in report["trials"] if t["value"] is not None]
    history = client.get_metric_history(run.info.run_id, "trial_value")
    assert [m.value for m in history] == pytest.approx(values)
    assert run.data.metrics["best_value"] == pytest.approx(report["best_value"])
    assert run.data.params["best.lr"] == str(report["best_train_settings"]["lr"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"best.json", "tuning.json"}


def test_mlflow_uri_forms(tmp_path, monkeypatch):
    from embedrec.tracking import tracking_uri

    monkeypatch.chdir(tmp_path)
    assert tracking_uri("local") == (tmp_path / "mlruns").resolve().as_uri()
    assert tracking_uri(None) == (tmp_path / "mlruns").resolve().as_uri()
    assert tracking_uri("http://host:5000") == "http://host:5000"
