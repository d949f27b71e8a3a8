"""Paired statistics: hand-computed cases for Holm, Wilcoxon, the user bootstrap, the verdict
wording, seed averaging and the predictions file."""

import math

import numpy as np
import pytest

from embedrec.evaluation import stats


def test_holm_hand_computed():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, 2 * 0.03, max(0.06, 1 * 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert len(stats.holm([])) == 0


def test_wilcoxon_exact_hand_computed():
    # all 5 differences positive: only the empty set of negative ranks has rank sum 0,
    # P = 1/32 one-sided, two-sided 2/32
    assert stats.wilcoxon_p([2, 3, 4, 5, 6], [1, 1, 1, 1, 1]) == pytest.approx(2 / 32)
    # differences 1, -2, 3, 4, 5: negative rank sum 2; subsets with sum <= 2: {}, {1}, {2}
    assert stats.wilcoxon_p([2, -1, 4, 5, 6], [1, 1, 1, 1, 1]) == pytest.approx(2 * 3 / 32)
    assert stats.wilcoxon_p([1, 2, 3], [1, 2, 3]) == 1.0  # no difference at all


def test_rmse_difference_resamples_users_not_rows():
    # user 0: three rows with error 1 for model a; user 1: one row, no error; model b exact.
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    users = np.array([7, 7, 7, 9])
    pred_a = truth + np.array([1.0, 1.0, 1.0, 0.0])
    res = stats.rmse_difference(truth, pred_a, truth, users, n_boot=4000,
                                rng=np.random.default_rng(0))
    assert res["difference"] == pytest.approx(math.sqrt(3 / 4))
    # resampling users: each resample is {u0,u0} -> 1, {u1,u1} -> 0 (prob 1/4 each) or mixed
    # -> sqrt(3/4); so the 2.5% and 97.5% points are exactly 0 and 1. Resampling rows would
    # almost never draw only the error-free row (prob 1/256), so its 2.5% point would be > 0.
    assert res["ci_low"] == 0.0 and res["ci_high"] == 1.0
    assert res["n_units"] == 2


def test_bootstrap_is_reproducible_from_its_generator():
    rng = np.random.default_rng(3)
    truth = rng.uniform(1, 5, 200)
    users = rng.integers(0, 20, 200)
    a, b = truth + rng.normal(0, 0.5, 200), truth + rng.normal(0, 0.7, 200)
    one = stats.rmse_difference(truth, a, b, users, n_boot=500, rng=np.random.default_rng(1))
    two = stats.rmse_difference(truth, a, b, users, n_boot=500, rng=np.random.default_rng(1))
    assert one == two
    assert one["ci_low"] < one["difference"] < one["ci_high"]


def test_mean_difference_drops_unpaired_users():
    res = stats.mean_difference([0.5, 0.2, np.nan], [0.1, 0.2, 0.3], n_boot=100,
                                rng=np.random.default_rng(0))
    assert res["difference"] == pytest.approx(0.2) and res["n_units"] == 2


def test_sentences():
    assert stats.sentence("rmse", "biased", "mlp", -0.034, -0.039, -0.029, 0.0004, True) == (
        "biased beats mlp by 0.0340 RMSE [0.0290, 0.0390], p < 0.001 (Holm)")
    # a higher NDCG wins; a positive difference a - b means a is ahead
    assert stats.sentence("ndcg_at_k", "pop", "dot", 0.05, 0.04, 0.06, 0.012, True,
                          "NDCG@10") == "pop beats dot by 0.0500 NDCG@10 [0.0400, 0.0600], p = 0.012 (Holm)"
    text = stats.sentence("rmse", "a", "b", 0.001, -0.002, 0.004, 0.6, False)
    assert text.startswith("a vs b: no significant difference in RMSE")


def _predictions(truth, users, runs: dict) -> dict:
    preds = {}
    for model, seeds in runs.items():
        for seed, pred in enumerate(seeds):
            preds.setdefault("pred", {}).setdefault(model, {}).setdefault(1, {})[seed] = pred
    return preds | {"truth": {1: truth}, "users": {1: users}}


def test_pairwise_tests_seed_averaged_predictions_and_corrects():
    rng = np.random.default_rng(0)
    n = 600
    truth = (rng.integers(2, 10, n) / 2).astype(np.float32)  # half stars: exact sums
    users = np.repeat(np.arange(60), 10)
    noise = rng.normal(0, 1.0, n)
    runs = {
        # its two seeds err by +0.5 and -0.5: averaged, it is exact
        "averaged": [truth + 0.5, truth - 0.5],
        "exact": [truth.copy(), truth.copy()],
        "noisy": [truth + noise, truth + noise],
    }
    pairs = stats.pairwise(_predictions(truth, users, runs), ["averaged", "exact", "noisy"],
                           n_boot=300, seed=0)
    rmse = {(p["a"], p["b"]): p for p in pairs if p["metric"] == "rmse"}
    same = rmse[("averaged", "exact")]
    assert same["difference"] == pytest.approx(0.0, abs=1e-6)
    assert same["p"] == 1.0 and not same["significant"]
    assert "no significant difference" in same["sentence"]
    win = rmse[("exact", "noisy")]
    assert win["significant"] and win["difference"] < 0 and win["ci_high"] < 0
    assert win["sentence"].startswith("exact beats noisy by ")
    assert win["sentence"].endswith("p < 0.001 (Holm)")
    raw = [p["p"] for p in rmse.values()]
    assert [p["p_holm"] for p in rmse.values()] == pytest.approx(list(stats.holm(raw)))


def test_ndcg_pairs_average_each_user_over_seeds():
    preds = {"ndcg_users": {1: np.array([1, 2, 3, 4])},
             "ndcg": {"a": {1: {0: np.array([1.0, 0.0, 1.0, np.nan]),
                                1: np.array([0.0, 0.0, 1.0, np.nan])}},
                      "b": {1: {0: np.array([0.5, 0.5, 0.5, 0.5])}}}}
    assert stats.per_user_ndcg_mean(preds, "a") == {1: 0.5, 2: 0.0, 3: 1.0}
    pairs = stats.pairwise(preds, ["a", "b"], n_boot=100)
    assert len(pairs) == 1 and pairs[0]["metric"] == "ndcg_at_k"
    assert pairs[0]["difference"] == pytest.approx((0.0 - 0.5 + 0.5) / 3)
    assert pairs[0]["n_units"] == 3


def test_predictions_file_round_trip(tmp_path):
    truth = np.array([1.0, 2.0], dtype=np.float32)
    preds = _predictions(truth, np.array([3, 4]), {"m_1": [truth + 1, truth]})
    preds |= {"ndcg_users": {1: np.array([3])}, "ndcg": {"m_1": {1: {0: np.array([0.25])}}}}
    stats.save_predictions(preds, tmp_path / "predictions.npz")
    back = stats.load_predictions(tmp_path / "predictions.npz")
    assert back["pred"]["m_1"][1][0] == pytest.approx(truth + 1)
    assert back["ndcg"]["m_1"][1][0] == pytest.approx([0.25])
    assert list(back["users"][1]) == [3, 4]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.npz"]  # no temporary left


def test_seed_spread():
    recs = [{"model": "a", "rmse": 1.0}, {"model": "a", "rmse": 3.0}, {"model": "b", "rmse": None}]
    assert stats.seed_spread(recs, "rmse") == {
        "a": {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "min": 1.0, "max": 3.0, "n": 2}}


def test_bootstrap_in_chunks_equals_one_draw():
    values = np.random.default_rng(5).normal(size=(50, 2))
    whole = stats.bootstrap_draws(50, 30, np.random.default_rng(9)) @ values
    chunked = stats.bootstrap_sums(values, 30, np.random.default_rng(9), max_cells=350)  # 7 a time
    assert chunked.shape == (30, 2)
    assert chunked == pytest.approx(whole)
