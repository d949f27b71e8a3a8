"""The training engines side by side, in one run on one machine (ratios are what carry over).

    .venv/bin/pip install -e '.[bench]'      # Keras 3 and Surprise: benchmark dependencies only
    .venv/bin/python benchmarks/kernels.py [--repeats 3] [--keras-repeats 1] [--no-keras]

1. Whole processes: the reference's three Keras models (benchmarks/keras_reference.py) against
   `embedrec compare --preset reference --models dot,biased,mlp --seeds 1` with the compiled
   kernel (the default) and with `--engine torch`.
2. Training throughput at batch 64, one epoch on the reference's 90,752 training rows, warm:
   torch and kernel engines, lazy and dense updates, 2 threads and 1.
3. Surprise's SVD (plain SGD, Cython, one core), 20 epochs on the same rows, against the
   kernel's biased MF on one thread.
4. One step of biased MF at batch 64, before (torch's profiler over 200 torch steps: the ops a
   step runs) and after (the kernel: one compiled call for all 200 steps).

Writes benchmarks/results/kernels.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
DATA = Path(os.environ.get("EMBEDREC_DATA", HERE.parent.parent / "shared" / "data"))
BIN = Path(sys.executable).parent


def timed(command: list[str], repeats: int, env: dict | None = None) -> dict:
    """Wall seconds of a whole process: min, median and max over ``repeats`` runs."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False,
                              env=dict(os.environ, **(env or {})))
        runs.append(time.perf_counter() - start)
        if proc.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    return {"command": " ".join(command), "min": min(runs), "median": statistics.median(runs),
            "max": max(runs), "runs": runs, "stdout": proc.stdout[-2000:]}


def whole_processes(repeats: int, keras_repeats: int) -> dict:
    out = {}
    if keras_repeats:
        out["keras"] = timed([sys.executable, str(HERE / "keras_reference.py"), "--data",
                              str(DATA)], keras_repeats, {"KERAS_BACKEND": "torch"})
    for label, extra in (("embedrec kernel", []), ("embedrec torch", ["--engine", "torch"])):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [str(BIN / "embedrec"), "compare", "--preset", "reference", "--models",
                   "dot,biased,mlp", "--seeds", "1", "--out", f"{tmp}/out", *extra]
            out[label] = timed(cmd, repeats, {"EMBEDREC_DATA": str(DATA)})
    return out


def reference_rows():
    from embedrec.data import load_movielens
    from embedrec.data.split import random_split

    data = load_movielens("ml-latest-small", DATA / "ml-latest-small", download=False)
    split = random_split(len(data), 0.1, 42)  # the reference's rows
    return data.take(split.train)


def throughput(train, repeats: int) -> list[dict]:
    import torch

    from embedrec.models.init import initialise
    from embedrec.models.registry import get
    from embedrec.models.spec import Shape
    from embedrec.training.config import TrainConfig
    from embedrec.training.trainer import choose_kernel, fit

    rows = []
    for name in ("dot", "biased", "mlp"):
        spec = get(name)
        for engine in ("torch", "kernel"):
            for updates in ("lazy", "dense"):
                for threads in (2, 1):
                    config = TrainConfig(epochs=1, batch_size=64, engine=engine, updates=updates,
                                         threads=threads)
                    rates = []
                    for rep in range(repeats + 1):  # the first run warms up (and compiles)
                        shape = Shape(train.n_users, train.n_items, train.scale)
                        model = spec.build(spec.config(), shape)
                        initialise(model, "keras_he_normal", torch.Generator().manual_seed(rep))
                        history = fit(model, train, config, seed=rep, shape=shape,
                                      kernel=choose_kernel(spec, model, config))
                        rates.append(len(train) / history.seconds)
                    rows.append({"model": name, "engine": engine, "updates": updates,
                                 "threads": threads, "ratings_per_s": statistics.median(rates[1:]),
                                 "runs": rates[1:]})
                    print(f"  {name:6s} {engine:6s} {updates:5s} {threads} threads: "
                          f"{rows[-1]['ratings_per_s'] / 1e3:9,.0f}k ratings/s", flush=True)
    return rows


def surprise_svd(train, repeats: int) -> dict:
    import numpy as np
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    frame = pd.DataFrame({"u": train.users, "i": train.items, "r": train.ratings})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=train.scale)).build_full_trainset()
    rates = []
    for rep in range(repeats):
        algo = SVD(n_factors=50, n_epochs=20, random_state=rep)
        start = time.perf_counter()
        algo.fit(trainset)
        rates.append(20 * len(train) / (time.perf_counter() - start))
    del np
    return {"ratings_per_s": statistics.median(rates), "runs": rates, "epochs": 20}


def step_profile(train) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from embedrec.models.init import initialise
    from embedrec.models.registry import get
    from embedrec.models.spec import Shape
    from embedrec.training.config import TrainConfig
    from embedrec.training.trainer import choose_kernel, fit

    spec = get("biased")
    steps = 200
    part = train.take(list(range(64 * steps)))
    out = {}
    for engine in ("torch", "kernel"):
        config = TrainConfig(epochs=1, batch_size=64, engine=engine, threads=2)
        shape = Shape(train.n_users, train.n_items, train.scale)
        model = spec.build(spec.config(), shape)
        initialise(model, "keras_he_normal", torch.Generator().manual_seed(0))
        fit(model, part, config, seed=0, shape=shape, kernel=choose_kernel(spec, model, config))
        model = spec.build(spec.config(), shape)
        initialise(model, "keras_he_normal", torch.Generator().manual_seed(0))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            history = fit(model, part, config, seed=0, shape=shape,
                          kernel=choose_kernel(spec, model, config))
        ops = sorted(((e.key, e.count / history.steps, e.self_cpu_time_total / history.steps)
                      for e in prof.key_averages()), key=lambda x: -x[2])[:12]
        out[engine] = {"us_per_step": history.seconds / history.steps * 1e6,
                       "top_ops": [{"op": k, "calls_per_step": c, "self_us_per_step": us}
                                   for k, c, us in ops]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keras-repeats", type=int, default=1)
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-surprise", action="store_true")
    args = parser.parse_args()
    from embedrec.compare import versions

    report: dict = {"versions": versions()}
    print("whole processes ...", flush=True)
    report["whole"] = whole_processes(args.repeats, 0 if args.no_keras else args.keras_repeats)
    train = reference_rows()
    print("throughput at batch 64 ...", flush=True)
    report["throughput"] = throughput(train, args.repeats)
    if not args.no_surprise:
        report["surprise_svd"] = surprise_svd(train, args.repeats)
    report["step_profile"] = step_profile(train)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernels.json").write_text(json.dumps(report, indent=1))
    print_tables(report)


def print_tables(report: dict) -> None:
    whole = report["whole"]
    print("\n| whole process | median s (min-max) | vs Keras |\n|---|---|---|")
    keras = whole.get("keras", {}).get("median")
    for label, r in whole.items():
        ratio = f"{keras / r['median']:.1f}x" if keras else "-"
        print(f"| {label} | {r['median']:.1f} ({r['min']:.1f}-{r['max']:.1f}) | {ratio} |")
    print("\n| model | engine | updates | threads | ratings/s |\n|---|---|---|---|---|")
    for r in report["throughput"]:
        print(f"| {r['model']} | {r['engine']} | {r['updates']} | {r['threads']} | "
              f"{r['ratings_per_s']:,.0f} |")
    if "surprise_svd" in report:
        svd = report["surprise_svd"]["ratings_per_s"]
        ours = next(r["ratings_per_s"] for r in report["throughput"] if r["model"] == "biased"
                    and r["engine"] == "kernel" and r["updates"] == "lazy" and r["threads"] == 1)
        print(f"\nSurprise SVD: {svd:,.0f} ratings/s; kernel biased, 1 thread: {ours:,.0f} "
              f"({ours / svd:.1f}x)")
    for engine, p in report["step_profile"].items():
        print(f"\n{engine}: {p['us_per_step']:.1f} us per step")
        for op in p["top_ops"][:8]:
            print(f"  {op['op']:40s} {op['calls_per_step']:6.1f} calls {op['self_us_per_step']:8.1f} us")


if __name__ == "__main__":
    main()
