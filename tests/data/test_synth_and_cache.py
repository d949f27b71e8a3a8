"""The synthetic generator's statistics, and the encoded cache's staleness rules."""

import json

import numpy as np
import pytest

from embedrec.data import cache, load_ratings_file
from embedrec.data.synth import SynthConfig, synthesize, write_synthetic
from embedrec.errors import ConfigError


@pytest.fixture(scope="module")
def small_like():
    """A draw the size of ml-latest-small."""
    return synthesize(SynthConfig(n_users=610, n_items=9_724, n_ratings=100_836, seed=0))


def test_exact_counts_and_no_duplicates(small_like):
    ratings, movies = small_like
    assert len(ratings) == 100_836
    assert ratings["userId"].nunique() == 610 and ratings["movieId"].nunique() == 9_724
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert set(ratings["movieId"]) <= set(movies["movieId"]) and len(movies) == 9_724


def test_shape_resembles_movielens(small_like):
    ratings, _ = small_like
    per_user = ratings["userId"].value_counts().to_numpy()
    per_item = ratings["movieId"].value_counts().to_numpy()
    # ml-latest-small: users min 20, median 70.5, max 2,698; movies median 3, 62.5% below 5
    assert per_user.min() >= 20 and 50 <= np.median(per_user) <= 110
    assert per_user.max() > 10 * np.median(per_user)  # heavy tail
    assert np.median(per_item) <= 5 and 0.5 <= (per_item < 5).mean() <= 0.75
    assert per_item.max() > 50 * np.median(per_item)
    # half-star scale, mean about 3.5, whole stars more common than half stars
    values = ratings["rating"].to_numpy()
    assert set(np.unique(values)) <= {v / 2 for v in range(1, 11)}
    assert 3.3 <= values.mean() <= 3.7 and 0.85 <= values.std() <= 1.15
    whole = np.isin(values, [1.0, 2.0, 3.0, 4.0, 5.0]).mean()
    assert 0.55 <= whole <= 0.8


def test_same_seed_same_data():
    cfg = SynthConfig(n_users=50, n_items=200, n_ratings=2_000, seed=3)
    a, _ = synthesize(cfg)
    b, _ = synthesize(cfg)
    c, _ = synthesize(SynthConfig(n_users=50, n_items=200, n_ratings=2_000, seed=4))
    assert a.equals(b) and not a.equals(c)


def test_models_can_learn_from_it():
    """Ratings come from latent tastes: biased MF beats the bias baseline on held-out rows."""
    from embedrec.compare import run_comparison
    from embedrec.data.dataset import Ratings
    from embedrec.presets import get_preset

    ratings, _ = synthesize(SynthConfig(n_users=400, n_items=300, n_ratings=40_000, seed=1))
    data = Ratings.from_frame(ratings.rename(columns={"userId": "user", "movieId": "item"}),
                              scale=(0.5, 5.0))
    preset = get_preset("default").with_overrides(epochs=20, lr=5e-3, l2=1e-5)
    comp = run_comparison(data, preset=preset, models=["biased", "bias"], seeds=1)
    rmse = {r["model"]: r["rmse"] for r in comp.records}
    assert rmse["biased"] < rmse["bias"] - 0.02


def test_bad_sizes():
    with pytest.raises(ConfigError, match="too dense"):
        SynthConfig(n_users=10, n_items=10, n_ratings=90)
    with pytest.raises(ConfigError, match="at least 20 ratings per user"):
        SynthConfig(n_users=100, n_items=1_000, n_ratings=500)


@pytest.fixture
def folder(tmp_path):
    out = write_synthetic(SynthConfig(n_users=30, n_items=60, n_ratings=900, seed=2),
                          tmp_path / "synth")
    header = (out / "ratings.csv").read_text().splitlines()[:2]
    assert header[0] == "userId,movieId,rating,timestamp" and header[1].count(",") == 3
    return out


def _cache_dirs(folder):
    return sorted((folder / ".embedrec-cache").glob("ratings.csv-*"))


def test_second_load_comes_from_the_cache(folder, monkeypatch):
    first = load_ratings_file(folder)
    assert len(_cache_dirs(folder)) == 1
    import embedrec.data.load as load_mod

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed the CSV although a fresh cache exists")

    monkeypatch.setattr(load_mod, "_read_fast", no_parsing)
    monkeypatch.setattr(load_mod, "_read_careful", no_parsing)
    second = load_ratings_file(folder)
    assert np.array_equal(first.ratings, second.ratings)
    assert np.array_equal(first.user_map.ids, second.user_map.ids)
    assert second.title(second.item_map.ids[0]) == first.title(first.item_map.ids[0])


def test_cache_is_rebuilt_when_the_source_changes(folder):
    load_ratings_file(folder)
    path = folder / "ratings.csv"
    lines = path.read_text().splitlines()
    user, item, _, ts = lines[1].split(",")
    lines[1] = f"{user},{item},0.5,{ts}"  # same size, same name: only the content differs
    path.write_text("\n".join(lines) + "\n")
    data = load_ratings_file(folder)
    row = np.flatnonzero((data.user_map.raw(data.users) == int(user))
                         & (data.item_map.raw(data.items) == int(item)))[0]
    assert data.ratings[row] == 0.5  # not the stale cached value
    assert len(_cache_dirs(folder)) == 1  # the stale cache was replaced


def test_cache_is_not_used_with_other_options(folder, monkeypatch):
    load_ratings_file(folder)
    calls = []
    import embedrec.data.load as load_mod

    original = load_mod._read_fast
    monkeypatch.setattr(load_mod, "_read_fast", lambda *a, **k: calls.append(1) or original(*a, **k))
    load_ratings_file(folder, scale=(0.5, 5.0))  # a declared scale changes validation
    assert calls == [1]


def test_damaged_or_old_cache_is_ignored(folder):
    first = load_ratings_file(folder)
    (cache_dir,) = _cache_dirs(folder)
    (cache_dir / "ratings.npy").write_bytes(b"not numpy")
    assert np.array_equal(load_ratings_file(folder).ratings, first.ratings)
    (cache_dir,) = _cache_dirs(folder)
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    manifest["version"] = cache.CACHE_VERSION + 1
    (cache_dir / "manifest.json").write_text(json.dumps(manifest))
    assert np.array_equal(load_ratings_file(folder).ratings, first.ratings)


def test_unwritable_data_folder_caches_elsewhere(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (folder / ".embedrec-cache").write_text("a file where the cache folder would go")
    first = load_ratings_file(folder)  # cannot cache next to the data (even as root)
    assert len(list((tmp_path / "xdg" / "embedrec" / "encoded").glob("ratings.csv-*"))) == 1
    assert np.array_equal(load_ratings_file(folder).ratings, first.ratings)
