"""GPU benchmark, for a machine that has one: training, scoring and top-N on CPU vs CUDA.

    .venv/bin/python benchmarks/gpu.py [--models dot,biased,mlp] [--batches 4096,16384] [--epochs 2]

On the synthetic 5M set (benchmarks/out/synth-5m, written by benchmarks/distributed.py or
`embedrec data synth --users 32000 --items 12000 --ratings 5000000`): for each model, engine
(fast, exact) and batch size, seconds per epoch (the median of the epochs after the first) on
the CPU and on `cuda`; then RMSE scoring of every row and the top-10 of every user
(`recommend_all`) on both devices. With 2 or more GPUs it also runs
`torchrun --nproc-per-node <GPUs> -m embedrec train --device cuda` (DDP over NCCL) and
reports its wall time. Writes benchmarks/results/gpu.json. Without a CUDA device it says so
and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "out" / "synth-5m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="dot,biased,mlp")
    parser.add_argument("--batches", default="4096,16384")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure (run this on a machine with a GPU)")
        return
    if not (DATA / "ratings.csv").is_file():
        subprocess.run([sys.executable, "-m", "embedrec", "data", "synth", "--users", "32000",
                        "--items", "12000", "--ratings", "5000000", "--out", str(DATA)],
                       check=True)
    from embedrec.cli.common import load_data
    from embedrec.models import registry
    from embedrec.models.spec import Shape
    from embedrec.persistence import ModelBundle
    from embedrec.models.baselines import BiasBaseline
    from embedrec.presets import get_preset
    from embedrec.recommender import recommend_all, topn_device
    from embedrec.training import TrainConfig, train_model

    data = load_data(None, DATA, report=False)
    shape = Shape(data.n_users, data.n_items, data.scale)
    preset = get_preset("large")
    results = {"gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
               "torch": torch.__version__, "rows": len(data), "training": [], "serving": []}
    for name in args.models.split(","):
        spec = registry.get(name)
        for engine in ("fast", "exact"):
            for batch in map(int, args.batches.split(",")):
                row = {"model": name, "engine": engine, "batch_size": batch}
                for device in ("cpu", "cuda"):
                    tc = TrainConfig(epochs=args.epochs, batch_size=batch, lr=5e-3, l2=3e-5,
                                     engine=engine, device=device)
                    model, history = train_model(spec, preset.model_config(spec), shape, data,
                                                 tc, seed=0)
                    seconds = [e["seconds"] for e in history.epochs]
                    row[f"{device}_epoch_s"] = statistics.median(seconds[1:] or seconds)
                row["speed-up"] = row["cpu_epoch_s"] / row["cuda_epoch_s"]
                results["training"].append(row)
                print(row, flush=True)
        scorer = spec.load_scorer(preset.model_config(spec), spec.module_arrays(model), shape)
        bundle = ModelBundle.from_training(name, scorer, data, BiasBaseline().fit(data),
                                           config=preset.model_config(spec), seen=data)
        for device in ("cpu", "cuda"):
            t0 = time.perf_counter()
            recommend_all(bundle, 10, device=topn_device(device))
            results["serving"].append({"model": name, "device": device,
                                       "top10_all_users_s": time.perf_counter() - t0})
    if torch.cuda.device_count() >= 2:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc-per-node", str(torch.cuda.device_count()), "-m", "embedrec",
                            "train", "--model", "biased", "--data", str(DATA), "--preset",
                            "large", "--epochs", str(args.epochs), "--device", "cuda",
                            "--out", f"{tmp}/model"], check=True)
            results["ddp_nccl_train_wall_s"] = time.perf_counter() - t0
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "gpu.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
