import json

import pytest

from embedrec.cli import main
from tests.conftest import make_ratings


@pytest.fixture
def ratings_csv(tmp_path):
    frame = make_ratings(n_users=30, n_items=20, seed=1).to_frame()
    frame = frame.rename(columns={"user": "userId", "item": "movieId"})
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


def test_compare_on_a_ratings_file_writes_results(ratings_csv, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["compare", "--data", str(ratings_csv), "--models", "biased,bias", "--seeds", "2",
                 "--epochs", "2", "--out", str(out)])
    assert code == 0
    records = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["seed"]) for r in records] == [("biased", 0), ("bias", 0),
                                                          ("biased", 1), ("bias", 1)]
    assert "biased" in capsys.readouterr().out


def test_bad_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "r.csv"
    bad.write_text("userId,movieId,rating\n1,2,4\n1,3,oops\n")
    assert main(["compare", "--data", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "line 3" in err and "rating" in err
    assert "Traceback" not in err


def test_unknown_model_and_preset_are_errors(ratings_csv, capsys):
    assert main(["compare", "--data", str(ratings_csv), "--models", "svd"]) == 1
    assert "unknown model" in capsys.readouterr().err
    assert main(["compare", "--data", str(ratings_csv), "--preset", "nope"]) == 1
    assert "unknown preset" in capsys.readouterr().err


def test_usage_error_exit_code(capsys):
    assert main(["compare", "--seeds", "0"]) == 2


def test_data_info_json(ratings_csv, capsys):
    assert main(["data", "info", "--data", str(ratings_csv), "--json", "--top", "3"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_users"] == 30 and len(info["crosstab"]["index"]) == 3


def test_missing_dataset_offline_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMBEDREC_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["data", "info", "--dataset", "ml-1m", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert "ml-1m not found" in err and "--data PATH" in err


def test_kfold_runs_every_fold(ratings_csv, tmp_path):
    out = tmp_path / "k"
    assert main(["compare", "--data", str(ratings_csv), "--models", "bias", "--seeds", "1",
                 "--split", "kfold", "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())
    assert [r["fold"] for r in records] == list(range(1, 11))
    n_rows = len(ratings_csv.read_text().splitlines()) - 1
    assert sum(r["n_test"] for r in records) == n_rows  # the folds cover every row once


def test_compare_reports_top_n_metrics_for_every_model(ratings_csv, tmp_path):
    out = tmp_path / "rank"
    assert main(["compare", "--data", str(ratings_csv), "--models", "biased,bias,pop", "--seeds",
                 "1", "--epochs", "2", "-k", "5", "--relevant", "3.5", "--out", str(out)]) == 0
    records = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    for rec in records.values():
        assert rec["k"] == 5 and rec["relevance_threshold"] == 3.5
        for key in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k",
                    "coverage_at_k"):
            assert 0.0 <= rec[key] <= 1.0
    assert records["pop"]["rmse"] is None and records["biased"]["rmse"] > 0
