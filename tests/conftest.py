"""Shared fixtures: tiny synthetic ratings with known structure, and the real data when present."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedrec.data.dataset import Ratings

# Encoded-data caches and downloads go to a throw-away folder, never the user's ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="embedrec-test-cache-")


def real_data_dir() -> Path | None:
    root = os.environ.get("EMBEDREC_DATA")
    return Path(root) if root and (Path(root) / "ml-latest-small" / "ratings.csv").is_file() else None


@pytest.fixture(scope="session")
def ml_small():
    """ml-latest-small from $EMBEDREC_DATA, loaded once; skips when it is absent."""
    root = real_data_dir()
    if root is None:
        pytest.skip("EMBEDREC_DATA does not hold ml-latest-small")
    from embedrec.data import load_movielens

    return load_movielens("ml-latest-small", root / "ml-latest-small", download=False)


def make_ratings(n_users: int = 40, n_items: int = 30, density: float = 0.5, seed: int = 0,
                 scale=(0.5, 5.0)) -> Ratings:
    """Ratings from a rank-2 latent model plus noise, on the half-star scale."""
    rng = np.random.default_rng(seed)
    pu, qi = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    bu, bi = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, n_items)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = True  # every user rates item 0, every item is rated by user 0
    mask[0, :] = True
    u, i = np.nonzero(mask)
    raw = 3.0 + bu[u] + bi[i] + (pu[u] * qi[i]).sum(1) + rng.normal(0, 0.3, len(u))
    r = np.clip(np.round(raw * 2) / 2, *scale)
    frame = pd.DataFrame({"user": u + 1, "item": (i + 1) * 10, "rating": r.astype(np.float32),
                          "timestamp": rng.integers(0, 10**6, len(u))})
    return Ratings.from_frame(frame, scale=scale, name="synthetic")


@pytest.fixture
def tiny() -> Ratings:
    return make_ratings()
