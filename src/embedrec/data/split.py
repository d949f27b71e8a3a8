"""Train/test splits as row-index arrays. Every split takes its seed; none touches global state.

``random_split`` with seed 42 and 10% test reproduces scikit-learn's
``train_test_split(X, y, test_size=0.1, random_state=42)`` row for row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError, DataError

SPLITS = ("random", "kfold", "user-random", "user-latest", "time")
# Fewer ratings than this cannot give training, validation and test rows that mean anything.
MIN_RATINGS = 10


def check_size(n_rows: int, what: str = "the data") -> None:
    """Refuse to split fewer than MIN_RATINGS ratings, before any split or training starts."""
    if n_rows < MIN_RATINGS:
        raise DataError(f"{what} has {n_rows} rating(s): too few to split into training and test "
                        f"rows (at least {MIN_RATINGS} are needed)")


@dataclass(frozen=True)
class Split:
    """Row indices of the train and test parts (test rows are touched once, for final numbers)."""

    train: np.ndarray
    test: np.ndarray
    name: str = "random"


def _check_fraction(fraction: float, what: str = "test fraction") -> None:
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"{what} must be between 0 and 1, got {fraction}")


def random_split(n_rows: int, test_fraction: float = 0.1, seed: int = 42) -> Split:
    """Shuffle rows with ``RandomState(seed)``; the first ceil(fraction * n) are the test rows."""
    _check_fraction(test_fraction)
    perm = np.random.RandomState(seed).permutation(n_rows)
    n_test = math.ceil(test_fraction * n_rows)
    return Split(train=perm[n_test:], test=perm[:n_test], name="random")


def kfold(n_rows: int, k: int = 5, seed: int = 42) -> Iterator[Split]:
    """k disjoint test folds covering every row once."""
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got {k}")
    check_size(n_rows)
    perm = np.random.RandomState(seed).permutation(n_rows)
    folds = np.array_split(perm, k)
    for f in range(k):
        train = np.concatenate([folds[j] for j in range(k) if j != f])
        yield Split(train=train, test=folds[f], name=f"kfold-{f + 1}-of-{k}")


def user_holdout(
    data: Ratings, test_fraction: float = 0.2, seed: int = 42, *, latest: bool = False,
    min_train: int = 1,
) -> Split:
    """Hold out a fraction of each user's ratings: random ones, or the latest by timestamp.

    Every user keeps at least ``min_train`` training ratings, so no test user is cold.
    """
    _check_fraction(test_fraction)
    if latest and data.timestamps is None:
        raise ConfigError("a latest-by-time split needs timestamps")
    rng = np.random.default_rng(seed)
    key = data.timestamps if latest else rng.random(len(data))
    # order rows by user, then by the key (time, or a random draw); ties broken by row number
    order = np.lexsort((np.arange(len(data)), key, data.users))
    counts = data.user_counts()
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    n_test = np.minimum(np.ceil(counts * test_fraction).astype(np.int64),
                        np.maximum(counts - min_train, 0))
    rank = np.arange(len(data)) - np.repeat(starts, counts)
    is_test = rank >= np.repeat(counts - n_test, counts)
    return Split(train=np.sort(order[~is_test]), test=np.sort(order[is_test]),
                 name="user-latest" if latest else "user-random")


def time_split(data: Ratings, test_fraction: float = 0.1) -> Split:
    """The latest ``test_fraction`` of all ratings (by timestamp) are the test rows."""
    _check_fraction(test_fraction)
    if data.timestamps is None:
        raise ConfigError("a time split needs timestamps")
    order = np.argsort(data.timestamps, kind="stable")
    n_test = math.ceil(test_fraction * len(data))
    return Split(train=np.sort(order[:-n_test]), test=np.sort(order[-n_test:]), name="time")


def make_split(data: Ratings, kind: str, test_fraction: float = 0.1, seed: int = 42) -> Split:
    """One split by name (``kfold`` gives its first fold; use ``kfold`` itself for all)."""
    check_size(len(data), data.source.get("path", data.name))
    if kind == "random":
        return random_split(len(data), test_fraction, seed)
    if kind == "kfold":
        return next(kfold(len(data), max(2, round(1 / test_fraction)), seed))
    if kind in ("user-random", "user-latest"):
        return user_holdout(data, test_fraction, seed, latest=kind == "user-latest")
    if kind == "time":
        return time_split(data, test_fraction)
    raise ConfigError(f"unknown split {kind!r}; use one of {', '.join(SPLITS)}")


def validation_rows(train_rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Carve a random validation part out of the training rows: (fit rows, validation rows)."""
    if fraction <= 0:
        return train_rows, train_rows[:0]
    _check_fraction(fraction, "validation fraction")
    perm = np.random.default_rng(seed).permutation(len(train_rows))
    n_valid = math.ceil(fraction * len(train_rows))
    if n_valid >= len(train_rows):
        raise DataError(f"{len(train_rows)} training row(s) leave none to train on after the "
                        f"validation carve-out ({fraction:g})")
    return train_rows[perm[n_valid:]], train_rows[perm[:n_valid]]


def carve_validation(data: Ratings, train_rows: np.ndarray, fraction: float, seed: int,
                     kind: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """The validation carve-out of ``train_rows``, shaped like the split's test part:
    (fit rows, validation rows).

    For a per-user split (``user-random``, ``user-latest``) each user's training rows lose the
    same share (random ones, or their latest), so validation scores what the test will; for
    any other split a random share of the rows (``validation_rows``)."""
    if fraction <= 0 or kind not in ("user-random", "user-latest"):
        return validation_rows(train_rows, fraction, seed)
    _check_fraction(fraction, "validation fraction")
    inner = user_holdout(data.take(train_rows), fraction, seed, latest=kind == "user-latest")
    if len(inner.train) == 0:
        raise DataError(f"{len(train_rows)} training row(s) leave none to train on after the "
                        f"validation carve-out ({fraction:g})")
    return train_rows[inner.train], train_rows[inner.test]
