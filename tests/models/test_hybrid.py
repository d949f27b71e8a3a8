"""The hybrid models: inputs on and off, torch vs numpy with every input, cold movies from their
features, time at prediction, fold-in from the rated movies, and the ablation variants."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from embedrec.compare import ablation_variants, run_comparison
from embedrec.data.dataset import Ratings
from embedrec.experiment import bundle_of, fit_fallback, fit_model, make_fold
from embedrec.foldin import fold_in, score_new_user
from embedrec.models import hybrid
from embedrec.models.base import predict_batches
from embedrec.models.init import initialise
from embedrec.models.registry import get
from embedrec.models.spec import Shape
from embedrec.persistence import load_model, save_model
from embedrec.presets import get_preset
from embedrec.recommender import predict
from embedrec.training.batches import RowTensors
from embedrec.training.trainer import fit

DAY = 86_400
HYBRIDS = ("hybrid_mf", "hybrid_nn")
ALL_ON = {"use_time": True, "use_implicit": True}
PRESET = get_preset("default").with_overrides(epochs=2, batch_size=16, patience=None).with_model_settings(
    {"hybrid_mf": {"n_factors": 6, "user_factors": 4} | ALL_ON,
     "hybrid_nn": {"n_factors": 6, "hidden": (8, 4)} | ALL_ON})


def make_data(*, genres: bool = True, timestamps: bool = True, seed: int = 0) -> Ratings:
    """30 users, 20 movies; movie 900 has genres and a year but its only ratings are held out,
    movie 901 has neither and the same."""
    rng = np.random.default_rng(seed)
    n = 400
    frame = pd.DataFrame({"user": rng.integers(0, 30, n), "item": rng.integers(0, 20, n),
                          "rating": rng.integers(1, 11, n) / 2.0,
                          "timestamp": 1_000_000_000 + rng.integers(0, 900, n) * DAY})
    frame = frame.drop_duplicates(["user", "item"])
    extra = pd.DataFrame({"user": [1, 2, 3, 4], "item": [900, 900, 901, 901],
                          "rating": [4.0, 2.0, 3.0, 5.0],
                          "timestamp": [1_100_000_000] * 4})
    frame = pd.concat([frame, extra], ignore_index=True)
    if not timestamps:
        frame = frame.drop(columns="timestamp")
    ids = sorted(frame["item"].unique())
    names = ["Drama", "Comedy", "Action|Thriller", "Animation|Children|Comedy"]
    items = pd.DataFrame({
        "title": [f"Movie {i} ({1950 + 3 * k})" if i != 901 else "Untitled" for k, i in enumerate(ids)],
        "genres": [(names[k % 4] if genres else "") if i != 901 else "" for k, i in enumerate(ids)]},
        index=pd.Index(ids, name="item"))
    return Ratings.from_frame(frame, scale=(0.5, 5.0), item_info=items)


def fold_of(data: Ratings):
    cold = np.flatnonzero(np.isin(data.item_map.raw(data.items), [900, 901]))
    test = np.concatenate([cold, np.arange(0, 60, 3)])
    train = np.setdiff1d(np.arange(len(data)), test)
    return make_fold(data, train, test, valid_fraction=0.1, seed=0)


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.mark.parametrize("name", HYBRIDS)
def test_torch_and_numpy_agree_with_every_input(name, data):
    fold = fold_of(data)
    spec = get(name)
    config = PRESET.model_config(spec)
    shape = Shape(data.n_users, data.n_items, data.scale)
    module = spec.build(config, shape)
    initialise(module, "keras_he_normal", torch.Generator().manual_seed(0))
    history = fit(module, fold.train, PRESET.train, seed=1, shape=shape, uses=spec.capabilities.uses)
    assert history.notes == []
    scorer = spec.load_scorer(config, spec.module_arrays(module), shape)
    # the test rows at their own times (and the cold movie 900 from its features)
    batch = RowTensors(fold.test, uses=spec.capabilities.uses, reference=fold.train).all()
    expected = predict_batches(module, batch)
    got = scorer.predict(fold.test.users, fold.test.items, timestamps=fold.test.timestamps)
    featureless = fold.test.items == data.item_map.index(901)
    assert np.isnan(got[featureless]).all() and np.isfinite(got[~featureless]).all()
    np.testing.assert_allclose(got[~featureless], expected[~featureless], rtol=1e-5, atol=1e-5)
    # without time columns: the latest training time, as the scorer's default
    plain = {"users": batch["users"], "items": batch["items"]}
    np.testing.assert_allclose(scorer.predict(fold.test.users, fold.test.items)[~featureless],
                               predict_batches(module, plain)[~featureless], rtol=1e-5, atol=1e-5)
    assert scorer.default_time == int(fold.train.timestamps.max())


@pytest.mark.parametrize("name", HYBRIDS)
def test_cold_movies_are_scored_from_features_and_the_rest_by_the_fallback(name, data, tmp_path):
    fold = fold_of(data)
    fallback = fit_fallback(fold, PRESET)
    bundle = bundle_of(fit_model(name, fold, PRESET, seed=0), fold, fallback)
    bundle = load_model(save_model(bundle, tmp_path / name))  # and without torch from here on
    featured, bare = bundle.item_map.index(900), bundle.item_map.index(901)
    assert not bundle.known_items()[[featured, bare]].any()
    users = np.array([0, 5, 7])
    pred = bundle.scored.predict(users, np.full(3, featured))
    np.testing.assert_allclose(pred, bundle.scorer.predict(users, np.full(3, featured)))
    assert np.isfinite(pred).all() and not np.allclose(pred, fallback.predict(users, np.full(3, featured)))
    pred = bundle.scored.predict(users, np.full(3, bare))
    np.testing.assert_allclose(pred, fallback.predict(users, np.full(3, bare)), rtol=1e-6)


def test_lists_hold_cold_movies_the_model_scores_from_features(data, tmp_path):
    """Movie 900 (genres and a year, no training rating) may be recommended by the hybrid, at
    the hybrid's own score; movie 901 (neither) never; a model without the capability
    recommends neither. The same rule for a known user, every user, a new user and the
    service."""
    import httpx

    from embedrec.foldin import top_for_new_user
    from embedrec.recommender import recommend, recommend_all
    from embedrec.serve import create_app
    from tests.serve.conftest import LiveServer

    fold = fold_of(data)
    fallback = fit_fallback(fold, PRESET)
    hybrid_bundle = load_model(save_model(
        bundle_of(fit_model("hybrid_mf", fold, PRESET, seed=0), fold, fallback), tmp_path / "h"))
    biased_bundle = bundle_of(fit_model("biased", fold, PRESET, seed=0), fold, fallback)
    featured, bare = data.item_map.index(900), data.item_map.index(901)
    n = len(data.item_map)
    for bundle, listed in ((hybrid_bundle, {900}), (biased_bundle, set())):
        candidates = bundle.candidate_items()
        expected = bundle.known_items().copy()
        expected[featured] = bool(listed)
        np.testing.assert_array_equal(candidates, expected)
        user = int(data.user_map.raw(0))
        ids = set(recommend(bundle, user, k=n)["movieId"].tolist())
        assert ids & {900, 901} == listed and len(ids) == int((candidates & ~np.isin(
            np.arange(n), bundle.seen(0))).sum())
        recs, _ = recommend_all(bundle, k=n)
        assert all(set(data.item_map.raw(r[r >= 0]).tolist()) & {900, 901} == listed for r in recs)
        best, _, _ = top_for_new_user(bundle, [(data.item_map.raw(0), 5.0)], k=n)
        assert set(data.item_map.raw(best).tolist()) & {900, 901} == listed
    # the hybrid's own rating for 900 (from its features), not the fallback's
    frame = recommend(hybrid_bundle, int(data.user_map.raw(0)), k=n).set_index("movieId")
    own = hybrid_bundle.scorer.predict(np.array([0]), np.array([featured]))[0]
    assert frame.loc[900, "score"] == pytest.approx(float(own), abs=1e-4)
    assert float(own) != pytest.approx(float(fallback.predict(np.array([0]), np.array([featured]))[0]), abs=1e-3)
    with LiveServer(create_app(tmp_path / "h")) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        body = client.get(f"/users/{data.user_map.raw(0)}/recommendations", params={"k": n}).json()
        movies = {m["movie_id"]: m for m in body["items"]}
        assert 900 in movies and 901 not in movies and movies[900]["n_ratings"] == 0
        body = client.post("/recommendations", json={"ratings": [
            {"movie_id": int(data.item_map.raw(0)), "rating": 5}], "k": n}).json()
        assert 900 in {m["movie_id"] for m in body["items"]}


def test_time_at_prediction(data):
    fold = fold_of(data)
    bundle = bundle_of(fit_model("hybrid_mf", fold, PRESET, seed=0), fold, fit_fallback(fold, PRESET))
    pairs = [(data.user_map.raw(0), data.item_map.raw(0)), (data.user_map.raw(3), data.item_map.raw(4))]
    default = predict(bundle, pairs)
    np.testing.assert_allclose(predict(bundle, pairs, timestamp=bundle.scored.default_time), default)
    assert not np.allclose(predict(bundle, pairs, timestamp=1_000_000_000), default)
    biased = bundle_of(fit_model("biased", fold, PRESET, seed=0), fold, fit_fallback(fold, PRESET))
    np.testing.assert_array_equal(predict(biased, pairs, timestamp=1), predict(biased, pairs))
    assert biased.scored.default_time is None


@pytest.mark.parametrize("name", HYBRIDS)
def test_fold_in_uses_the_rated_movies(name, data):
    fold = fold_of(data)
    bundle = bundle_of(fit_model(name, fold, PRESET, seed=0), fold, fit_fallback(fold, PRESET))
    ids = bundle.item_map.ids
    fit = fold_in(bundle, [(ids[0], 5.0), (ids[1], 4.5), (ids[2], 1.0)])
    scores = score_new_user(bundle, fit)
    assert np.isfinite(scores).all()
    # a training user's own ratings, folded in, land near the model's ratings for them
    user = 3
    rows = fold.train.users == user
    fit = fold_in(bundle, list(zip(ids[fold.train.items[rows]], fold.train.ratings[rows])))
    assert np.corrcoef(score_new_user(bundle, fit), bundle.scored.rank_scores(np.array([user]))[0])[0, 1] > 0.5


def test_inputs_missing_from_the_data_are_switched_off_and_said_so():
    data = make_data(genres=False, timestamps=False)
    fold = fold_of(data)
    fitted = fit_model("hybrid_mf", fold, PRESET, seed=0)
    assert fitted.history.notes == ["timestamps: off, the data has none", "genres: off, the data lists none",
                                    "rating time: off, the data has no timestamps"]
    assert fitted.scorer.default_time is None
    bundle = bundle_of(fitted, fold, fit_fallback(fold, PRESET))
    # movie 900 still has a year
    assert np.isfinite(bundle.scorer.predict(np.array([0]), np.array([data.item_map.index(900)]))).all()


def test_ablation_variants_switch_each_input_off():
    variants = ablation_variants("hybrid_mf", PRESET)
    assert [v.label for v in variants] == ["hybrid_mf", "hybrid_mf -genres", "hybrid_mf -year",
                                           "hybrid_mf -time", "hybrid_mf -implicit"]
    assert variants[1].settings == {"use_genres": False} and variants[0].settings == {}
    off = PRESET.with_model_settings({"hybrid_mf": {"use_time": False}})
    labels = [v.label for v in ablation_variants("hybrid_mf", off)]
    assert "hybrid_mf -time" not in labels and "hybrid_mf +time" in labels
    assert [v.label for v in ablation_variants("hybrid_mf", get_preset("default"))] == [
        "hybrid_mf", "hybrid_mf -genres", "hybrid_mf -year", "hybrid_mf +time", "hybrid_mf +implicit"]
    assert [v.label for v in ablation_variants("biased", PRESET)] == ["biased"]


def test_compare_records_variants_and_cold_rows(data):
    result = run_comparison(data, preset=PRESET, models=["bias"],
                            variants=ablation_variants("hybrid_mf", PRESET)[:2], seeds=1)
    by_model = {r["model"]: r for r in result.records}
    assert list(by_model) == ["bias", "hybrid_mf", "hybrid_mf -genres"]
    assert by_model["hybrid_mf -genres"]["spec"] == "hybrid_mf"
    assert by_model["hybrid_mf -genres"]["config"]["use_genres"] is False
    for rec in result.records:
        if rec["n_cold"]:
            assert rec["rmse_cold_fallback"] == by_model["bias"]["rmse_cold_fallback"]


def test_buckets_by_hand():
    assert hybrid.release_bucket(np.array([-1, 1900, 1924, 1925, 1995, 2030])).tolist() == [0, 1, 1, 2, 16, 21]
    assert hybrid.tenure_bucket(np.array([0, 1, 2, 3, 4, 7, 8, 10**9])).tolist() == [1, 2, 2, 3, 3, 4, 4, 15]
    assert hybrid.calendar_year(np.array([0, 1_000_000_000, 1_537_799_250])).tolist() == [1970, 2001, 2018]
    year, tenure = hybrid.time_buckets(np.array([1_000_000_000 + 3 * DAY]), np.array([1_000_000_000]))
    assert year.tolist() == [1 + 2001 - 1995] and tenure.tolist() == [3]


def test_an_own_ratings_file_with_an_items_file(tmp_path):
    """No timestamps in the ratings, genres in the items file: genres used, time said off."""
    from embedrec.data import load_ratings_file

    data = make_data(timestamps=False)
    frame = data.to_frame()
    frame.to_csv(tmp_path / "mine.csv", index=False)
    info = data.item_info.reset_index().rename(columns={"item": "item_id"})
    info.to_csv(tmp_path / "items.csv", index=False)
    own = load_ratings_file(tmp_path / "mine.csv", items_path=tmp_path / "items.csv", use_cache=False)
    fold = fold_of(own)
    fitted = fit_model("hybrid_mf", fold, PRESET, seed=0)
    assert fitted.history.notes == ["timestamps: off, the data has none",
                                    "rating time: off, the data has no timestamps"]
    cold = own.item_map.index(900)
    assert fitted.scorer.scorable[cold] and not fitted.scorer.scorable[own.item_map.index(901)]


def test_the_service_predicts_at_a_given_time(data, tmp_path):
    import httpx

    from embedrec.serve import create_app
    from tests.serve.conftest import LiveServer

    fold = fold_of(data)
    bundle = bundle_of(fit_model("hybrid_mf", fold, PRESET, seed=0), fold, fit_fallback(fold, PRESET))
    folder = save_model(bundle, tmp_path / "hybrid")
    pair = {"user_id": int(data.user_map.raw(0)), "movie_id": int(data.item_map.raw(0))}
    with LiveServer(create_app(folder)) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        default = client.post("/predict", json={"pairs": [pair]}).json()
        assert default["timestamp"] == int(fold.train.timestamps.max())
        early = client.post("/predict", json={"pairs": [pair], "timestamp": 1_000_000_000}).json()
        assert early["timestamp"] == 1_000_000_000
        assert early["predictions"][0]["rating"] != default["predictions"][0]["rating"]
        expected = predict(load_model(folder), [(pair["user_id"], pair["movie_id"])],
                           timestamp=1_000_000_000)[0]
        assert early["predictions"][0]["rating"] == pytest.approx(float(expected), abs=1e-4)
        bad = client.post("/predict", json={"pairs": [pair], "timestamp": -5})
        assert bad.status_code == 422
    # time switched off: the timestamp is ignored, and the answer says so (null)
    timeless = PRESET.with_model_settings({"hybrid_mf": {"use_time": False}})
    bundle = bundle_of(fit_model("hybrid_mf", fold, timeless, seed=0), fold, fit_fallback(fold, PRESET))
    with LiveServer(create_app(bundle=bundle)) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        at = [client.post("/predict", json={"pairs": [pair], "timestamp": t}).json()
              for t in (1_000_000_000, 1_200_000_000)]
        assert at[0]["timestamp"] is None and at[1]["timestamp"] is None
        assert at[0]["predictions"] == at[1]["predictions"]


def test_compare_cli_runs_an_ablation_and_says_which_inputs_are_off(tmp_path, capsys):
    """A ratings file without timestamps or an items table: the hybrid's inputs are off, and
    the output says so; every variant is recorded under its label."""
    from embedrec.cli import main

    frame = make_data(timestamps=False).to_frame().rename(columns={"user": "userId", "item": "movieId"})
    frame.to_csv(tmp_path / "r.csv", index=False)
    out = tmp_path / "out"
    code = main(["compare", "--data", str(tmp_path / "r.csv"), "--models", "bias", "--ablation",
                 "hybrid_mf", "--seeds", "1", "--epochs", "1", "--out", str(out), "--no-report"])
    assert code == 0
    records = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in records] == ["bias", "hybrid_mf", "hybrid_mf -genres",
                                             "hybrid_mf -year", "hybrid_mf +time",
                                             "hybrid_mf +implicit"]
    text = capsys.readouterr().out
    assert "hybrid_mf: item_features: off, the data has none" in text
    assert "hybrid_mf +time: item_features: off, the data has none; timestamps: off" in text
    # the report (rebuilt from the folder) holds the ablation table, and ablation.md the same rows
    assert main(["report", str(out)]) == 0
    summary = {row["model"]: row for row in json.loads((out / "summary.json").read_text())}
    table = (out / "ablation.md").read_text().splitlines()
    assert [line.split(" | ")[0].strip("|* ") for line in table[2:]] == list(summary)
    genres_off = next(line for line in table if line.startswith("| hybrid_mf -genres |"))
    delta = summary["hybrid_mf -genres"]["rmse"] - summary["hybrid_mf"]["rmse"]
    assert f"| {summary['hybrid_mf -genres']['rmse']:.4f} ± 0.0000 | {delta:+.4f} |" in genres_off
    page = (out / "report.html").read_text()
    assert "<h2>Ablation</h2>" in page and "hybrid_mf +implicit</th>" in page


def test_the_mf_head_scores_a_grid_as_each_pair_and_trains_with_the_full_softmax(data):
    """hybrid_mf with every input scores (rows x movies) in one product, each cell its own
    forward's (a row's time when the batch has it, else the latest); trained with the full
    softmax it keeps genres, year, time and history (no input switched off)."""
    from embedrec.training import TrainConfig
    from embedrec.training.trainer import train_model

    fold = fold_of(data)
    spec = get("hybrid_mf")
    config = PRESET.model_config(spec)
    shape = Shape(data.n_users, data.n_items, data.scale)
    model, history = train_model(spec, config, shape, fold.train,
                                 TrainConfig(epochs=3, batch_size=8, lr=0.01,
                                             loss="full_softmax", implicit=True), seed=0)
    assert history.notes == [] and history.engine == "torch"
    nn_head = get("hybrid_nn")
    assert model.broadcasts and not nn_head.build(nn_head.config(), shape).broadcasts
    rows = RowTensors(fold.test, uses=spec.capabilities.uses, reference=fold.train).all()
    items = torch.tensor([0, 3, 5, 5, data.item_map.index(900)])  # a repeat; a cold movie
    model.eval()
    with torch.no_grad():
        for batch in (rows, {"users": rows["users"]}):  # at each row's time; at the latest
            grid = model.score_grid(batch, items)
            for c, j in enumerate(items.tolist()):
                flat = dict(batch) | {"items": torch.full_like(batch["users"], j)}
                torch.testing.assert_close(grid[:, c], model(flat), rtol=1e-5, atol=1e-5)
