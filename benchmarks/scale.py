"""Scale benchmark on synthetic MovieLens-like data: time per phase and peak memory, from 100k
to 25M ratings, and training throughput per model and batch size.

    .venv/bin/python benchmarks/scale.py [--sizes 100k,1m,5m,25m] [--repeats 3]

Each size runs in a fresh process (so its peak memory is its own). The data is generated once
into benchmarks/out/ (not timed). The pipeline of one size:
- load: parse ratings.csv (pyarrow) and encode ids, first from CSV, then from the encoded cache;
- split: random 90/10;
- train: the biased model with preset `large` (batch 4,096, 10 epochs, the compiled kernel);
- evaluate: RMSE on the test rows, for it and for the bias baseline;
- top-N: the 10 best unseen movies for every user.
Throughput: one epoch of dot, biased and mlp at batch 1,024 / 4,096 / 16,384 on the 5M set,
with the torch engine and the compiled kernel (lazy updates), median of --repeats runs (the
first kernel run of a process includes loading its compiled code).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "out"
RESULTS = HERE / "results"
SIZES = {  # users, movies, ratings: shaped like ml-latest-small, ml-1m, a 5M cut, ml-25m
    "100k": (610, 9_724, 100_836),
    "1m": (6_040, 3_706, 1_000_209),
    "5m": (32_000, 12_000, 5_000_000),
    "25m": (162_000, 59_000, 25_000_000),
}


def dataset(size: str) -> Path:
    """The synthetic set of one size, generated once by `embedrec data synth` in a process of
    its own (a child inherits its parent's peak memory on Linux, so this one must stay small)."""
    folder = OUT / f"synth-{size}"
    if not (folder / "ratings.csv").is_file():
        users, items, ratings = SIZES[size]
        print(f"generating {size} ...", flush=True)
        subprocess.run([sys.executable, "-m", "embedrec", "data", "synth", "--users", str(users),
                        "--items", str(items), "--ratings", str(ratings), "--seed", "0",
                        "--out", str(folder)], check=True)
    return folder


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def child_pipeline(folder: Path) -> dict:
    """One size, in this (fresh) process."""
    import numpy as np

    from embedrec.data.load import _encode, _read_fast, load_ratings_file
    from embedrec.data.registry import TableFormat
    from embedrec.data.split import random_split
    from embedrec.evaluation.evaluate import evaluate_ratings
    from embedrec.experiment import bundle_of, fit_fallback, fit_model, make_fold
    from embedrec.presets import get_preset
    from embedrec.recommender import recommend_all

    shutil.rmtree(folder / ".embedrec-cache", ignore_errors=True)
    r: dict = {}
    fmt = TableFormat(file="ratings.csv", sep=",", header=True, encoding="utf-8", columns=())
    cols = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    t = time.perf_counter()
    raw = _read_fast(folder / "ratings.csv", fmt, cols, None)
    r["read_s"] = time.perf_counter() - t
    t = time.perf_counter()
    _encode(raw, folder / "ratings.csv", "last")
    r["encode_s"] = time.perf_counter() - t
    del raw
    t = time.perf_counter()
    data = load_ratings_file(folder)  # CSV -> arrays -> cache
    r["first_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    data = load_ratings_file(folder)  # from the cache
    r["cached_load_s"] = time.perf_counter() - t
    r |= {"n_ratings": len(data), "n_users": data.n_users, "n_items": data.n_items}
    preset = get_preset("large").with_overrides(valid_fraction=0.0)
    sp = random_split(len(data), 0.1, 42)
    fold = make_fold(data, sp.train, sp.test, valid_fraction=0.0, seed=0)
    fallback = fit_fallback(fold, preset)
    t = time.perf_counter()
    fitted = fit_model("biased", fold, preset, seed=0)
    r["train_s"] = time.perf_counter() - t
    r["epochs"] = len(fitted.history.epochs)
    r["train_ratings_per_s"] = len(fold.train) * len(fitted.history.epochs) / fitted.history.seconds
    bundle = bundle_of(fitted, fold, fallback)
    t = time.perf_counter()
    metrics, _ = evaluate_ratings(bundle.scored, fold.test)
    r["evaluate_s"] = time.perf_counter() - t
    r["rmse_biased"] = metrics["rmse"]
    r["rmse_bias_baseline"] = float(np.sqrt(np.mean(
        (fallback.predict(fold.test.users, fold.test.items) - fold.test.ratings) ** 2)))
    t = time.perf_counter()
    items, _ = recommend_all(bundle, 10)
    r["top10_all_users_s"] = time.perf_counter() - t
    r["top10_users"] = int(items.shape[0])
    r["peak_gb"] = peak_gb()
    return r


def child_throughput(folder: Path, repeats: int) -> list[dict]:
    import numpy as np
    import torch

    from embedrec.data.load import load_ratings_file
    from embedrec.models.init import initialise
    from embedrec.models.registry import get
    from embedrec.models.spec import Shape
    from embedrec.training import TrainConfig, fit
    from embedrec.training.trainer import choose_kernel

    data = load_ratings_file(folder)
    rows = []
    for name in ("dot", "biased", "mlp"):
        for engine in ("torch", "kernel"):
            for batch in (1_024, 4_096, 16_384):
                rates = []
                for rep in range(repeats):
                    spec = get(name)
                    model = spec.build(spec.config(), Shape(data.n_users, data.n_items, data.scale))
                    initialise(model, "keras_he_normal", torch.Generator().manual_seed(rep))
                    tc = TrainConfig(epochs=1, batch_size=batch, lr=1e-2, l2=3e-5, engine=engine)
                    history = fit(model, data, tc, seed=rep,
                                  kernel=choose_kernel(spec, model, tc))
                    rates.append(len(data) / history.seconds)
                rows.append({"model": name, "engine": engine, "batch_size": batch,
                             "ratings_per_s": statistics.median(rates), "runs": rates})
                print(f"  {name:6s} {engine:6s} batch {batch:6,d}: "
                      f"{rows[-1]['ratings_per_s'] / 1e6:.2f} M ratings/s", flush=True)
    del np
    return rows


def run_child(args: list[str]) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=tempfile.mkdtemp(prefix="embedrec-bench-"))
    proc = subprocess.run([sys.executable, __file__, *args], env=env, check=True,
                          capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-2000:] if proc.returncode else "")
    print(proc.stdout.rsplit("\n", 2)[0].split("RESULT ")[0], end="", flush=True)
    return json.loads(proc.stdout.rsplit("RESULT ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100k,1m,5m,25m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("pipeline", "throughput"))
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.child:
        folder = Path(args.folder)
        result = (child_pipeline(folder) if args.child == "pipeline"
                  else child_throughput(folder, args.repeats))
        print("RESULT " + json.dumps(result))
        return
    from embedrec.compare import versions

    path = RESULTS / "scale.json"  # a partial run (--sizes) updates only the sizes it measured
    report: dict = json.loads(path.read_text()) if path.is_file() else {"pipeline": {},
                                                                          "throughput": []}
    report["versions"] = versions()
    for size in args.sizes.split(","):
        folder = dataset(size)
        r = run_child(["--child", "pipeline", "--folder", str(folder)])
        report["pipeline"][size] = r
        print(f"{size:>5}: load {r['first_load_s']:.1f}s (read {r['read_s']:.1f}, encode "
              f"{r['encode_s']:.1f}; cached {r['cached_load_s']:.1f}), train {r['train_s']:.1f}s "
              f"({r['epochs']} epochs, {r['train_ratings_per_s'] / 1e6:.2f} M/s), evaluate "
              f"{r['evaluate_s']:.1f}s, top-10 x {r['top10_users']:,} users "
              f"{r['top10_all_users_s']:.1f}s, RMSE {r['rmse_biased']:.4f} vs bias "
              f"{r['rmse_bias_baseline']:.4f}, peak {r['peak_gb']:.2f} GB", flush=True)
    if "5m" in args.sizes.split(","):
        print("throughput on 5m, one epoch:", flush=True)
        report["throughput"] = run_child(["--child", "throughput", "--folder",
                                          str(dataset("5m")), "--repeats", str(args.repeats)])
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
