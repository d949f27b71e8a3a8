"""Top-10 for every user of a model that is one product of two tables, two ways side by side:

- held: a chunk of users' scores computed by one matrix product into a buffer (at most 64 MB),
  then the compiled top-k over each row (``kernels.topk.masked_top_k``): what top-N did before;
- tiled: ``kernels.topk.factor_top_k``, which scores a cache-sized tile at a time and selects
  as it goes (what ``recommender.recommend_all`` does now).

Random factors (seed 0) in ml-25m's shape by default: 162,000 users x 59,000 movies, 52 columns
(the biased model's 50 factors with its two bias columns), 20-290 seen movies per user. Each
round runs both, one after the other, and the ratio is taken within the round; the two must
pick the same items.

    .venv/bin/python benchmarks/topn.py [--users 162000] [--items 59000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from embedrec.kernels.tables import one_blas_thread
from embedrec.kernels.topk import TILE_ITEMS, TILE_USERS, factor_top_k, item_tiles, masked_top_k

RESULTS = Path(__file__).parent / "results"
K = 10
CHUNK = 1024


def held(left, right, users, indptr, seen, allowed):
    chunk = max(1, min(CHUNK, (1 << 24) // right.shape[0]))
    buffer = np.empty((chunk, right.shape[0]), np.float32)
    out_i, out_s = np.empty((len(users), K), np.int64), np.empty((len(users), K), np.float32)
    for s in range(0, len(users), chunk):
        part = users[s:s + chunk]
        scores = buffer[:len(part)]
        np.matmul(left[part], right.T, out=scores)
        masked_top_k(scores, part, indptr, seen, allowed, K, out_i[s:s + chunk], out_s[s:s + chunk])
    return out_i


def tiled(left, right, users, indptr, seen, allowed):
    import numba

    tiles = item_tiles(right, TILE_ITEMS)
    out_i, out_s = np.empty((len(users), K), np.int64), np.empty((len(users), K), np.float32)
    block = max(1, min(TILE_USERS, -(-CHUNK // (4 * numba.get_num_threads()))))
    with one_blas_thread():
        for s in range(0, len(users), CHUNK):
            factor_top_k(left, tiles, right.shape[0], users[s:s + CHUNK], indptr, seen, allowed,
                         K, block, out_i[s:s + CHUNK], out_s[s:s + CHUNK])
    return out_i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=162_000)
    parser.add_argument("--items", type=int, default=59_000)
    parser.add_argument("--columns", type=int, default=52)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    left = (rng.normal(size=(args.users, args.columns)) * 0.3).astype(np.float32)
    right = (rng.normal(size=(args.items, args.columns)) * 0.3).astype(np.float32)
    counts = rng.integers(20, 290, args.users)
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    seen = rng.integers(0, args.items, indptr[-1]).astype(np.int32)
    allowed = np.ones(args.items, dtype=bool)
    users = np.arange(args.users, dtype=np.int64)
    small = users[:2048]  # compile both before timing
    held(left, right, small, indptr, seen, allowed)
    tiled(left, right, small, indptr, seen, allowed)
    rounds = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        a = held(left, right, users, indptr, seen, allowed)
        t1 = time.perf_counter()
        b = tiled(left, right, users, indptr, seen, allowed)
        t2 = time.perf_counter()
        rounds.append({"held_s": t1 - t0, "tiled_s": t2 - t1, "ratio": (t1 - t0) / (t2 - t1),
                       "same_items": float((a == b).mean())})
        print(f"round {r + 1}: held {t1 - t0:.2f} s, tiled {t2 - t1:.2f} s, "
              f"ratio {(t1 - t0) / (t2 - t1):.2f}, same items {(a == b).mean():.4f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "topn.json").write_text(json.dumps(
        {"users": args.users, "items": args.items, "columns": args.columns, "k": K,
         "cpus": os.cpu_count(), "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
