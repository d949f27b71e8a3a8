"""Benchmark recommending on ml-latest-small: top-10 for every user, new-user fold-in, cold start.

    EMBEDREC_DATA=../shared/data .venv/bin/python benchmarks/recommend.py

Each model is trained once (preset default, seed 0) and saved. Then, per model:
- top-10 for all 610 users (seen items masked): median of 7 runs;
- a new user's top-10 from 5, 10 or 20 of a real user's ratings (fold-in + scoring + top-k):
  median and p95 over 60 requests;
- cold start: a new Python process that loads the saved model and answers one known-user
  request, timed from outside (interpreter start included): median of 5.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import embedrec
from embedrec.compare import versions
from embedrec.foldin import recommend_for_ratings
from embedrec.recommender import recommend_all

OUT = Path(__file__).parent / "results"
MODELS = ("dot", "biased", "mlp", "bias", "pop")
COLD = ("import sys; from embedrec.persistence import load_model; "
        "from embedrec.recommender import recommend; "
        "recommend(load_model(sys.argv[1]), 1, 10)")


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    data = embedrec.load_movielens("ml-latest-small")
    rng = np.random.default_rng(0)
    report: dict = {"versions": versions(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            bundle = embedrec.train_bundle(data, name, embedrec.get_preset("default"), seed=0)
            folder = embedrec.save_model(bundle, Path(tmp) / name)
            bundle = embedrec.load_model(folder)
            recommend_all(bundle, 10)  # warm-up
            top_all = timed(lambda: recommend_all(bundle, 10), 7)
            fold = {}
            for n_rated in (5, 10, 20):
                times = []
                for _ in range(60):
                    user = rng.integers(len(bundle.user_map))
                    seen = bundle.seen(user)
                    pick = rng.choice(seen, size=min(n_rated, len(seen)), replace=False)
                    rated = [(bundle.item_map.ids[i], float(rng.choice([1.0, 2.5, 3.5, 4.5, 5.0])))
                             for i in pick]
                    times += timed(lambda: recommend_for_ratings(bundle, rated, 10), 1)
                fold[n_rated] = {"median_ms": 1e3 * statistics.median(times),
                                 "p95_ms": 1e3 * float(np.percentile(times, 95))}
            cold = timed(lambda: subprocess.run([sys.executable, "-c", COLD, str(folder)],
                                                check=True), 5)
            report["models"][name] = {
                "top10_all_users_s": statistics.median(top_all),
                "fold_in": fold,
                "cold_start_s": statistics.median(cold),
            }
            r = report["models"][name]
            print(f"{name:7s} top-10 x 610 users {r['top10_all_users_s'] * 1e3:6.1f} ms | "
                  + " | ".join(f"new user {n} ratings {v['median_ms']:.1f} ms (p95 {v['p95_ms']:.1f})"
                               for n, v in fold.items())
                  + f" | cold start {r['cold_start_s']:.2f} s", flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "recommend.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
