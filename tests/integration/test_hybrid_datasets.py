"""The hybrid models run unchanged, through the CLI, on an ml-100k release (genres from u.item's
flags) and on an own ratings file with an items file (a genres column): every input on, and a
model that trains, recommends and folds in new users. Small synthetic files in the releases'
own formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedrec.cli import main
from embedrec.persistence import load_model

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
GENRE_SETS = (("Animation", "Children's", "Comedy"), ("Drama",), ("Action", "Thriller"),
              ("Comedy", "Romance"), ("Horror",))


def ratings_rows(n_users: int = 40, n_items: int = 24, seed: int = 0):
    """(user, item, rating, timestamp) rows: each user rates about half the movies, ratings
    driven by whether the movie's genre set suits the user."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        likes = u % len(GENRE_SETS)
        for i in rng.choice(np.arange(1, n_items + 1), n_items // 2, replace=False):
            rating = int(np.clip(round(3 + (1.5 if i % len(GENRE_SETS) == likes else -0.5)
                                       + rng.normal(0, 0.7)), 1, 5))
            rows.append((u, int(i), rating, 880_000_000 + int(rng.integers(0, 400)) * 86_400))
    return rows


def title(i: int) -> str:
    return f"Movie {i} ({1960 + 2 * i})"


def test_ml_100k_release(tmp_path, monkeypatch, capsys):
    """u.data (tab-separated) and u.item (genre flags, latin-1): genres, years and times on."""
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    rows = ratings_rows()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    items = "".join(
        f"{i}|{title(i)}|01-Jan-1995||http://example.invalid/{i}|"
        + "|".join("1" if g in GENRE_SETS[i % len(GENRE_SETS)] else "0" for g in ML100K_GENRES)
        + "\n" for i in range(1, 25))
    (folder / "u.item").write_bytes(items.encode("latin-1"))
    monkeypatch.setenv("EMBEDREC_DATA", str(tmp_path / "data"))

    out = tmp_path / "results"
    assert main(["compare", "--dataset", "ml-100k", "--models", "bias,hybrid_mf,hybrid_nn",
                 "--set", "hybrid_mf.use_time=true", "--set", "hybrid_mf.use_implicit=true",
                 "--seeds", "1", "--epochs", "2", "--out", str(out), "--no-report"]) == 0
    assert "off" not in capsys.readouterr().out  # no input was switched off
    records = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    assert records["hybrid_mf"]["notes"] == [] and records["hybrid_nn"]["notes"] == []
    assert records["hybrid_mf"]["config"]["use_time"] is True
    assert all(np.isfinite(records[m]["rmse"]) for m in records)

    assert main(["train", "--dataset", "ml-100k", "--model", "hybrid_mf", "--epochs", "2",
                 "--out", str(tmp_path / "model")]) == 0
    bundle = load_model(tmp_path / "model")
    toy = bundle.item_map.index(5)  # 5 % 5 == 0: Animation, Children's, Comedy
    assert bundle.features.genres_of(toy) == ["Animation", "Children's", "Comedy"]
    assert bundle.features.year[toy] == 1970
    assert "off" not in capsys.readouterr().out
    assert main(["recommend", "--model", str(tmp_path / "model"), "--user", "3", "-k", "5",
                 "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 5 and not {i for u, i, _, _ in rows if u == 3} & {m["movieId"] for m in listed}
    assert all(m["genres"] for m in listed)  # the flags' genres, named


def test_own_ratings_with_an_items_file(tmp_path, capsys):
    """--data ratings.csv --items items.csv (string ids, a genres column): every input on, a
    model file, recommendations for a known and a new user."""
    rows = ratings_rows(seed=1)
    (tmp_path / "ratings.csv").write_text(
        "user,item,rating,timestamp\n" + "".join(f"u{u},m{i},{r},{t}\n" for u, i, r, t in rows))
    (tmp_path / "items.csv").write_text(
        "item,title,genres\n" + "".join(f"m{i},{title(i)},{'|'.join(GENRE_SETS[i % 5])}\n"
                                        for i in range(1, 25)))
    files = ["--data", str(tmp_path / "ratings.csv"), "--items", str(tmp_path / "items.csv")]
    out = tmp_path / "results"
    assert main(["compare", *files, "--models", "hybrid_mf", "--seeds", "1", "--epochs", "2",
                 "--set", "hybrid_mf.use_time=true", "--out", str(out), "--no-report"]) == 0
    record = json.loads((out / "results.json").read_text())[0]
    assert record["notes"] == [] and np.isfinite(record["rmse"])
    capsys.readouterr()

    model = tmp_path / "model"
    assert main(["train", *files, "--model", "hybrid_mf", "--epochs", "2", "--out", str(model)]) == 0
    assert "off" not in capsys.readouterr().out
    bundle = load_model(model)
    assert bundle.features.genres_of(bundle.item_map.index("m5")) == ["Animation", "Children's", "Comedy"]
    assert main(["recommend", "--model", str(model), "--user", "u3", "-k", "4", "--json"]) == 0
    known = json.loads(capsys.readouterr().out)
    rated = {f"m{i}" for u, i, _, _ in rows if u == 3}
    assert len(known) == 4 and not rated & {m["movieId"] for m in known}
    assert main(["recommend", "--model", str(model), "--rate", "m5=5", "--rate", "m2=1",
                 "-k", "4", "--json"]) == 0
    new = json.loads(capsys.readouterr().out)
    assert len(new) == 4 and not {"m5", "m2"} & {m["movieId"] for m in new}


@pytest.mark.parametrize("drop", ["timestamp", "genres"])
def test_own_files_without_an_input_say_it_is_off(tmp_path, capsys, drop):
    rows = ratings_rows(seed=2)
    head, line = (("user,item,rating\n", "{u},{i},{r}\n") if drop == "timestamp"
                  else ("user,item,rating,timestamp\n", "{u},{i},{r},{t}\n"))
    (tmp_path / "r.csv").write_text(head + "".join(line.format(u=u, i=i, r=r, t=t)
                                                   for u, i, r, t in rows))
    (tmp_path / "items.csv").write_text("item,title" + (",genres" if drop != "genres" else "")
                                        + "\n" + "".join(
        f"{i},{title(i)}" + (f",{GENRE_SETS[i % 5][0]}" if drop != "genres" else "") + "\n"
        for i in range(1, 25)))
    assert main(["train", "--data", str(tmp_path / "r.csv"), "--items", str(tmp_path / "items.csv"),
                 "--model", "hybrid_mf", "--set", "hybrid_mf.use_time=true", "--epochs", "1",
                 "--out", str(tmp_path / "m")]) == 0
    text = capsys.readouterr().out
    expected = ("hybrid_mf: rating time: off, the data has no timestamps" if drop == "timestamp"
                else "hybrid_mf: genres: off, the data lists none")
    assert expected in text
