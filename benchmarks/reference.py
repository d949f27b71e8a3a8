"""Benchmark the reference comparison on ml-latest-small: accuracy over seeds, and wall time.

For each engine (the compiled kernel, or torch's steps) and each kind of update (dense = the
reference's arithmetic, lazy = Adam and L2 on the batch's rows) it runs the reference preset
(dot, biased, mlp; batch 64; 5 epochs) once per seed, timing the whole comparison (data loaded),
and reports the median time and the mean ± std RMSE per model.

    EMBEDREC_DATA=../shared/data .venv/bin/python benchmarks/reference.py [--seeds 3]
        [--runs kernel/dense,torch/dense,kernel/lazy,torch/lazy]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from embedrec.compare import run_comparison, versions
from embedrec.data import load_movielens
from embedrec.presets import get_preset

OUT = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--runs", default="kernel/dense,torch/dense,kernel/lazy,torch/lazy")
    args = parser.parse_args()
    data = load_movielens("ml-latest-small")
    report: dict = {"versions": versions(), "engines": {}}
    for run in args.runs.split(","):
        engine, updates = run.split("/")
        preset = get_preset("reference").with_overrides(engine=engine, updates=updates)
        times, records = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            comp = run_comparison(data, preset=preset, models=["dot", "biased", "mlp", "bias"],
                                  seeds=1, first_seed=seed)
            times.append(time.perf_counter() - t0)
            records += comp.records
        models = {}
        for name in ("dot", "biased", "mlp", "bias"):
            rows = [r for r in records if r["model"] == name]
            models[name] = {k: [float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows], ddof=1))]
                            for k in ("rmse", "rmse_warm", "rmse_model_all", "mae", "train_seconds")}
        report["engines"][f"{engine} {updates}"] = {"seconds_per_comparison": times,
                                     "median_seconds": statistics.median(times), "models": models}
        print(f"{engine} {updates}: median {statistics.median(times):.1f}s per comparison "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")
        for name, m in models.items():
            print(f"  {name:7s} rmse {m['rmse'][0]:.4f} ± {m['rmse'][1]:.4f}  warm {m['rmse_warm'][0]:.4f}"
                  f"  model-only {m['rmse_model_all'][0]:.4f}  train {m['train_seconds'][0]:.1f}s")
    OUT.mkdir(exist_ok=True)
    (OUT / "reference.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
