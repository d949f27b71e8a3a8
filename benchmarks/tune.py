"""Tuning benchmark on ml-latest-small's reference split: the time to tune dot, biased, mlp and
the two hybrids with the same budget, then the tuned comparison with paired tests over 3 seeds.

    .venv/bin/python benchmarks/tune.py [--trials 50] [--timeout S] [--seeds 3]

Steps (each an ordinary `embedrec` command, printed before it runs):
1. `embedrec tune --models MODELS --trials N [--timeout S] --out benchmarks/out/tune` (a fresh
   study; MODELS defaults to dot,biased,mlp,hybrid_mf,hybrid_nn);
2. `embedrec compare --tuned benchmarks/out/tune --models MODELS,bias,pop --seeds 3
   --out benchmarks/out/tuned-compare`.
Writes benchmarks/results/tune.json: tuning seconds per model (sum of its trial durations, and
the wall time of the whole tune command), trials complete/pruned, best validation MSE, the
tuned test RMSE (mean ± std over seeds), the paired tests, and the load average at the start
and end (the machine is shared: compare times only within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "out"
RESULTS = HERE / "results"


def run(args: list[str]) -> float:
    cmd = [str(Path(sys.executable).parent / "embedrec"), *args]
    print("$ embedrec " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default="dot,biased,mlp,hybrid_mf,hybrid_nn")
    args = parser.parse_args()
    tune_dir, cmp_dir = OUT / "tune", OUT / "tuned-compare"
    shutil.rmtree(tune_dir, ignore_errors=True)
    load_start = os.getloadavg()
    tune_args = ["tune", "--models", args.models, "--trials", str(args.trials),
                 "--out", str(tune_dir)]
    if args.timeout:
        tune_args += ["--timeout", str(args.timeout)]
    tune_wall = run(tune_args)
    load_mid = os.getloadavg()
    compare_wall = run(["compare", "--tuned", str(tune_dir), "--models", args.models + ",bias,pop",
                        "--seeds", str(args.seeds), "--out", str(cmp_dir)])
    tuning = json.loads((tune_dir / "tuning.json").read_text())
    summary = json.loads((cmp_dir / "summary.json").read_text())
    stats = json.loads((cmp_dir / "stats.json").read_text())
    result = {
        "trials": args.trials, "timeout": args.timeout, "seeds": args.seeds,
        "tune_wall_seconds": tune_wall, "compare_wall_seconds": compare_wall,
        "load_average": {"start": load_start, "after_tune": load_mid, "end": os.getloadavg()},
        "cpus": os.cpu_count(),
        "models": {name: {"seconds": res.get("seconds"),
                          "trial_seconds": sum(t["seconds"] or 0 for t in res["trials"]),
                          "complete": res["n_complete"], "pruned": res["n_pruned"],
                          "best_valid_mse": res["best_value"],
                          "best": res["best_model_settings"] | res["best_train_settings"]}
                   for name, res in tuning["models"].items()},
        "test": {r["model"]: {"rmse": r["rmse"], "rmse_std": r["rmse_std"],
                              "ndcg_at_k": r["ndcg_at_k"], "ndcg_at_k_std": r["ndcg_at_k_std"]}
                 for r in summary},
        "pairs": [p["sentence"] for p in stats["pairs"]],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tune.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
