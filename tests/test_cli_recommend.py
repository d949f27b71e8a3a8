"""train / recommend / similar through the CLI, including every bad input."""

import csv
import json

import pytest

from embedrec.cli import main
from tests.conftest import make_ratings


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    frame = make_ratings(n_users=30, n_items=20, seed=2).to_frame()
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(root / "r.csv", index=False)
    items = root / "movies.csv"
    with open(items, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["movieId", "title", "genres"])
        for i in range(1, 21):
            w.writerow([i * 10, f"Movie {i} ({1990 + i})", "Drama"])
    out = root / "model"
    assert main(["train", "--data", str(root / "r.csv"), "--items", str(items), "--model", "biased",
                 "--epochs", "3", "--out", str(out)]) == 0
    return out


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_known_user(model_dir, capsys):
    assert main(["recommend", "--model", str(model_dir), "--user", "5", "-k", "3", "--json"]) == 0
    rows = _json(capsys)
    assert len(rows) <= 3 and {"movieId", "title", "genres", "score"} <= set(rows[0])
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_unknown_user_is_an_error_unless_fallback(model_dir, capsys):
    assert main(["recommend", "--model", str(model_dir), "--user", "99999"]) == 1
    assert "unknown user '99999'" in capsys.readouterr().err
    assert main(["recommend", "--model", str(model_dir), "--user", "99999",
                 "--fallback", "popular"]) == 0
    assert "fallback popular" in capsys.readouterr().out


def test_new_user_by_rate_and_file(model_dir, tmp_path, capsys):
    assert main(["recommend", "--model", str(model_dir), "--rate", "10=5", "--rate", "20=1",
                 "--rate", "777=3", "-k", "4"]) == 0
    captured = capsys.readouterr()
    assert "recognised 2 of 3 ratings" in captured.err and "777" in captured.err
    path = tmp_path / "mine.csv"
    path.write_text("movieId,rating\n10,5\n30,4\n")
    assert main(["recommend", "--model", str(model_dir), "--ratings", str(path), "--json"]) == 0
    ids = [r["movieId"] for r in _json(capsys)]
    assert 10 not in ids and 30 not in ids  # rated movies are not recommended back


@pytest.mark.parametrize("args, message", [
    (["--rate", "10"], "expected MOVIE=RATING"),
    (["--rate", "10=abc"], "not a number"),
    (["--rate", "10=9"], "outside the scale"),
    (["--rate", "999=4"], "none of the 1 rated movies"),
    ([], "give --user ID"),
    (["--user", "1", "--rate", "10=4"], "not both"),
    (["--all-users"], "needs --out"),
])
def test_bad_recommend_input(model_dir, capsys, args, message):
    assert main(["recommend", "--model", str(model_dir), *args]) == 1
    assert message in capsys.readouterr().err


def test_all_users_to_csv(model_dir, tmp_path):
    out = tmp_path / "all.csv"
    assert main(["recommend", "--model", str(model_dir), "--all-users", "-k", "2", "--out",
                 str(out)]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    users = {r["userId"] for r in rows}
    assert len(users) == 29 and "1" not in users  # user 1 rated every movie: nothing to add
    assert {r["rank"] for r in rows} <= {"1", "2"}


def test_similar_and_bad_model_folder(model_dir, tmp_path, capsys):
    assert main(["similar", "--model", str(model_dir), "--movie", "10", "-k", "3", "--json"]) == 0
    rows = _json(capsys)
    assert len(rows) == 3 and 10 not in [r["movieId"] for r in rows]
    assert main(["similar", "--model", str(tmp_path), "--movie", "10"]) == 1
    assert "not a model folder" in capsys.readouterr().err
    assert main(["similar", "--model", str(model_dir), "--movie", "nonexistent title"]) == 1
    assert "no movie matches" in capsys.readouterr().err
    assert main(["similar", "--model", str(model_dir), "--movie", "movie"]) == 1  # ambiguous
    err = capsys.readouterr().err
    assert "20 movies match 'movie'" in err and "10: Movie 1 (1991)" in err
    # numbers match whole words: "movie 1" is Movie 1, not Movie 10 to Movie 19
    assert main(["similar", "--model", str(model_dir), "--movie", "movie 1", "--json"]) == 0
    assert 10 not in [r["movieId"] for r in _json(capsys)]
    assert main(["similar", "--model", str(model_dir), "--movie", "Movie 12 (2002)", "--json"]) == 0
    assert 120 not in [r["movieId"] for r in _json(capsys)]


def test_new_user_with_no_known_movie_can_fall_back(model_dir, capsys):
    assert main(["recommend", "--model", str(model_dir), "--rate", "999=4", "--fallback",
                 "popular", "-k", "3"]) == 0
    assert "fallback popular" in capsys.readouterr().out
