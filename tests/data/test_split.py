"""Splits: exact row sets, scikit-learn parity, coverage, determinism by seed."""

from __future__ import annotations

import numpy as np
import pytest

from embedrec.data import kfold, make_split, random_split, time_split, user_holdout
from embedrec.data.split import validation_rows
from embedrec.errors import ConfigError


def _sklearn_split(n: int, test_size: float, seed: int):
    model_selection = pytest.importorskip("sklearn.model_selection")
    return model_selection.train_test_split(np.arange(n), test_size=test_size, random_state=seed)


# ---- random -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "fraction", "seed", "n_test"),
    [(1001, 0.1, 42, 101), (10, 0.25, 0, 3), (100836, 0.1, 42, 10084), (7, 0.5, 123, 4)],
)
def test_random_split_equals_sklearn_train_test_split(n, fraction, seed, n_test):
    train, test = _sklearn_split(n, fraction, seed)
    split = random_split(n, fraction, seed)
    assert len(split.test) == n_test and len(split.train) == n - n_test
    np.testing.assert_array_equal(split.train, train)  # same rows, same order
    np.testing.assert_array_equal(split.test, test)
    assert split.name == "random"


def test_random_split_partitions_the_rows():
    split = random_split(1001, 0.1, 42)
    assert np.array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(1001))


def test_random_split_is_deterministic_by_seed():
    a, b, c = random_split(500, 0.2, 1), random_split(500, 0.2, 1), random_split(500, 0.2, 2)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert not np.array_equal(np.sort(a.test), np.sort(c.test))


def test_random_split_leaves_global_numpy_state_alone():
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    random_split(100, 0.1, 5)
    assert np.random.random() == expected


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_fraction(fraction):
    with pytest.raises(ConfigError, match="test fraction must be between 0 and 1"):
        random_split(10, fraction, 0)


# ---- k-fold -------------------------------------------------------------------------------------
def test_kfold_covers_every_row_exactly_once():
    folds = list(kfold(23, 5, seed=3))
    assert [len(f.test) for f in folds] == [5, 5, 5, 4, 4]
    assert [f.name for f in folds] == [f"kfold-{i}-of-5" for i in range(1, 6)]
    all_test = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(all_test), np.arange(23))
    for f in folds:
        assert len(np.intersect1d(f.train, f.test)) == 0
        assert np.array_equal(np.sort(np.concatenate([f.train, f.test])), np.arange(23))


def test_kfold_is_deterministic_by_seed():
    a = [f.test for f in kfold(50, 4, seed=9)]
    b = [f.test for f in kfold(50, 4, seed=9)]
    c = [f.test for f in kfold(50, 4, seed=10)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_kfold_needs_two_folds():
    with pytest.raises(ConfigError, match="k >= 2"):
        next(kfold(10, 1))


# ---- per-user hold-out --------------------------------------------------------------------------
# user 10: five ratings at t=5,1,3,4,2; user 20: one rating; user 30: three at t=10,30,20
HOLDOUT_ROWS = [
    (10, 1, 4.0, 5),   # 0
    (10, 2, 3.0, 1),   # 1
    (20, 1, 5.0, 7),   # 2
    (10, 3, 2.0, 3),   # 3
    (30, 1, 1.0, 10),  # 4
    (10, 4, 5.0, 4),   # 5
    (30, 2, 2.0, 30),  # 6
    (10, 5, 3.0, 2),   # 7
    (30, 3, 4.0, 20),  # 8
]


def test_user_latest_holds_out_each_users_latest_ratings(make_ratings):
    data = make_ratings(HOLDOUT_ROWS)
    split = user_holdout(data, 0.5, latest=True)
    # user 10: ceil(2.5) = 3 latest (t=5,4,3: rows 0,5,3); user 20 keeps its only rating;
    # user 30: ceil(1.5) = 2 latest (t=30,20: rows 6,8)
    assert split.test.tolist() == [0, 3, 5, 6, 8]
    assert split.train.tolist() == [1, 2, 4, 7]
    assert split.name == "user-latest"


def test_user_latest_min_train(make_ratings):
    data = make_ratings(HOLDOUT_ROWS)
    split = user_holdout(data, 0.5, latest=True, min_train=2)
    # user 30 must keep 2 in train: only t=30 (row 6) is held out; user 10 keeps rows 1 and 7
    assert split.test.tolist() == [0, 3, 5, 6]
    assert split.train.tolist() == [1, 2, 4, 7, 8]


def test_user_latest_breaks_time_ties_by_row(make_ratings):
    data = make_ratings([(1, 1, 3.0, 7), (1, 2, 3.0, 7), (1, 3, 3.0, 7), (1, 4, 3.0, 1)])
    assert user_holdout(data, 0.5, latest=True).test.tolist() == [1, 2]


def test_user_latest_needs_timestamps(make_ratings):
    data = make_ratings([(1, 1, 3.0), (1, 2, 4.0)], timestamps=False)
    with pytest.raises(ConfigError, match="needs timestamps"):
        user_holdout(data, 0.5, latest=True)


def _many_users(make_ratings, n_users=40, per_user=(1, 2, 3, 5, 8, 13)):
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        k = per_user[u % len(per_user)]
        rows += [(u, i, float(rng.integers(1, 6)), int(rng.integers(0, 10**6))) for i in range(k)]
    return make_ratings(rows)


@pytest.mark.parametrize("latest", [False, True])
def test_user_holdout_keeps_every_user_in_train(make_ratings, latest):
    data = _many_users(make_ratings)
    split = user_holdout(data, 0.2, seed=4, latest=latest)
    assert np.array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(len(data)))
    assert np.array_equal(np.unique(data.users[split.train]), np.arange(data.n_users))
    counts = data.user_counts()
    expected = np.minimum(np.ceil(counts * 0.2), counts - 1)  # per user: 1->0, 2->1, 5->1, 13->3
    assert np.array_equal(np.bincount(data.users[split.test], minlength=data.n_users), expected)
    assert np.all(np.diff(split.train) > 0) and np.all(np.diff(split.test) > 0)


def test_user_latest_test_rows_are_later_than_train_rows(make_ratings):
    data = _many_users(make_ratings)
    split = user_holdout(data, 0.3, latest=True)
    for u in range(data.n_users):
        train_t = data.timestamps[split.train][data.users[split.train] == u]
        test_t = data.timestamps[split.test][data.users[split.test] == u]
        if len(test_t):
            assert test_t.min() >= train_t.max()


def test_user_random_is_deterministic_by_seed(make_ratings):
    data = _many_users(make_ratings)
    a, b = user_holdout(data, 0.3, seed=1), user_holdout(data, 0.3, seed=1)
    c = user_holdout(data, 0.3, seed=2)
    assert a.name == "user-random"
    assert np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
    assert not np.array_equal(a.test, c.test)


# ---- global time split --------------------------------------------------------------------------
def test_time_split_takes_the_globally_latest_rows(make_ratings):
    stamps = [50, 10, 40, 20, 30, 60, 0, 70]
    data = make_ratings([(u % 3, u, 3.0, t) for u, t in enumerate(stamps)])
    split = time_split(data, 0.25)  # 2 rows: t=70 (row 7) and t=60 (row 5)
    assert split.test.tolist() == [5, 7]
    assert split.train.tolist() == [0, 1, 2, 3, 4, 6]
    assert split.name == "time"


def test_time_split_ties_go_to_the_later_row(make_ratings):
    data = make_ratings([(1, 1, 3.0, 5), (1, 2, 3.0, 9), (1, 3, 3.0, 9), (1, 4, 3.0, 1)])
    assert time_split(data, 0.25).test.tolist() == [2]


def test_time_split_needs_timestamps(make_ratings):
    with pytest.raises(ConfigError, match="needs timestamps"):
        time_split(make_ratings([(1, 1, 3.0)], timestamps=False), 0.5)


# ---- make_split ---------------------------------------------------------------------------------
def test_make_split_dispatches(make_ratings):
    data = _many_users(make_ratings)
    n = len(data)
    r = make_split(data, "random", 0.1, 7)
    assert np.array_equal(r.test, random_split(n, 0.1, 7).test)
    k = make_split(data, "kfold", 0.1, 7)  # 1 / 0.1 -> 10 folds, the first one
    assert np.array_equal(k.test, next(kfold(n, 10, 7)).test)
    assert k.name == "kfold-1-of-10"
    assert np.array_equal(make_split(data, "user-latest", 0.2, 7).test,
                          user_holdout(data, 0.2, 7, latest=True).test)
    assert np.array_equal(make_split(data, "user-random", 0.2, 7).test,
                          user_holdout(data, 0.2, 7).test)
    assert np.array_equal(make_split(data, "time", 0.2).test, time_split(data, 0.2).test)
    with pytest.raises(ConfigError, match="unknown split 'stratified'"):
        make_split(data, "stratified")


# ---- validation rows ----------------------------------------------------------------------------
def test_validation_rows_are_disjoint_and_cover_the_training_rows():
    train = np.arange(100, 200)
    fit, valid = validation_rows(train, 0.1, seed=3)
    assert (len(fit), len(valid)) == (90, 10)
    assert len(np.intersect1d(fit, valid)) == 0
    assert np.array_equal(np.sort(np.concatenate([fit, valid])), train)


def test_validation_rows_are_deterministic_by_seed():
    train = np.arange(1000)
    a, b, c = validation_rows(train, 0.05, 1), validation_rows(train, 0.05, 1), validation_rows(train, 0.05, 2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_validation_rows_fraction_zero_and_bad_fraction():
    train = np.array([5, 3, 9])
    fit, valid = validation_rows(train, 0.0, 1)
    assert fit.tolist() == [5, 3, 9] and valid.tolist() == []
    with pytest.raises(ConfigError):
        validation_rows(train, 1.0, 1)


def test_a_per_user_split_carves_its_validation_rows_per_user():
    """Under user-random each user's training rows lose the same share (at least one kept);
    under user-latest the latest ones; other splits keep the random carve-out."""
    from embedrec.data.split import carve_validation
    from tests.conftest import make_ratings

    data = make_ratings(n_users=12, n_items=20, density=0.6, seed=4)
    sp = user_holdout(data, 0.2, seed=1)
    fit, valid = carve_validation(data, sp.train, 0.25, seed=2, kind="user-random")
    assert np.array_equal(np.sort(np.concatenate([fit, valid])), sp.train)
    for u in range(data.n_users):
        mine = np.count_nonzero(data.users[sp.train] == u)
        held = np.count_nonzero(data.users[valid] == u)
        assert held == min(int(np.ceil(0.25 * mine)), mine - 1)
    fit, valid = carve_validation(data, sp.train, 0.25, seed=2, kind="user-latest")
    for u in range(data.n_users):
        kept = data.timestamps[fit][data.users[fit] == u]
        held = data.timestamps[valid][data.users[valid] == u]
        if len(held):
            assert kept.max() <= held.min()
    same = carve_validation(data, sp.train, 0.25, seed=2, kind="random")
    assert all(np.array_equal(a, b) for a, b in zip(same, validation_rows(sp.train, 0.25, 2)))
