"""Ranking benchmark (issue 14): fit times of the ranking baselines and the training throughput
of the embedding models under each loss, measured side by side in one process.

    EMBEDREC_DATA=/path/to/movielens .venv/bin/python benchmarks/ranking.py [--repeats 1]

On ml-latest-small (all ratings, 2 torch threads):
- fit: pop, bias (reference points), ease (one lambda and lambda chosen from two on
  validation), ials (10 sweeps, cg), knn; seconds and the ratio to one epoch of the biased
  model trained with mse;
- throughput: one epoch of dot and biased with mse (on the compiled kernel, which `auto`
  takes, and on torch's steps), bpr, bpr_pop and softmax (torch's steps: no kernel) at batch
  256; training rows per second and the ratio to the same model's mse throughput on each
  engine (ranking losses train on the ratings >= 4 only, so rows/s is what compares).

Timings depend on the machine and its load: read the ratios. Results go to
benchmarks/results/ranking.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", default=os.environ.get("EMBEDREC_DATA", ""))
    parser.add_argument("--quick", action="store_true",
                        help="mse and bpr only; pop, bias, ease (one lambda) and ials only")
    args = parser.parse_args()

    import torch

    from embedrec.data import load_movielens
    from embedrec.models.init import initialise
    from embedrec.models.registry import get
    from embedrec.models.spec import Shape
    from embedrec.training import TrainConfig
    from embedrec.training.trainer import choose_kernel, fit

    torch.set_num_threads(2)
    data = load_movielens("ml-latest-small", Path(args.data) / "ml-latest-small", download=False)
    shape = Shape(data.n_users, data.n_items, data.scale)

    def timed(fn) -> float:
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    def epoch(name: str, loss: str, engine: str) -> tuple[float, int, str]:
        spec = get(name)
        config = TrainConfig(epochs=1, batch_size=256, lr=2e-3, l2=3e-4, loss=loss,
                             engine=engine)
        rows = len(data) if loss == "mse" else int((data.ratings >= config.relevant).sum())
        used = []

        def run():
            module = spec.build(spec.config(), shape)
            initialise(module, "keras_he_normal", torch.Generator().manual_seed(0))
            history = fit(module, data, config, seed=1, shape=shape,
                          kernel=choose_kernel(spec, module, config))
            used.append(history.engine)

        return timed(run), rows, used[-1]

    results: dict = {"throughput": {}, "fit": {}}
    losses = ("mse", "bpr") if args.quick else ("mse", "bpr", "bpr_pop", "softmax")
    for name in ("dot", "biased"):
        # mse on each engine (auto takes the compiled kernel), then the ranking losses, which
        # have no kernel and train on torch's steps
        for loss, engine in [("mse", "auto"), ("mse", "torch")] + [(l, "auto") for l in losses[1:]]:
            seconds, rows, used = epoch(name, loss, engine)
            key = f"{name}/{loss}" + ("" if loss != "mse" else f" ({used})")
            results["throughput"][key] = {"seconds": seconds, "rows": rows, "engine": used,
                                          "rows_per_second": rows / seconds}
    reference = results["throughput"]["biased/mse (kernel)"]["seconds"]
    fits = {"pop": ("pop", {}), "bias": ("bias", {}), "ease (lambda 500)": ("ease", {"l2": 500.0}),
            "ease (lambda on validation)": ("ease", {}),
            "ials (10 sweeps, cg)": ("ials", {"sweeps": 10}), "knn": ("knn", {})}
    if args.quick:
        fits = {k: v for k, v in fits.items() if k in ("pop", "bias", "ease (lambda 500)",
                                                       "ials (10 sweeps, cg)")}
    for label, (name, settings) in fits.items():
        spec = get(name)
        seconds = timed(lambda: spec.fit(spec.config(**settings), data, shape))
        results["fit"][label] = {"seconds": seconds, "vs_biased_mse_epoch": seconds / reference}
    for key, row in results["throughput"].items():
        name = key.split("/")[0]
        for engine in ("kernel", "torch"):
            base = results["throughput"][f"{name}/mse ({engine})"]["rows_per_second"]
            row[f"vs_mse_{engine}"] = row["rows_per_second"] / base
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ranking.json").write_text(json.dumps(results, indent=1))
    print(f"{'fit':32s} {'seconds':>8s} {'/ biased mse epoch':>20s}")
    for label, row in results["fit"].items():
        print(f"{label:32s} {row['seconds']:8.2f} {row['vs_biased_mse_epoch']:20.2f}")
    print(f"\n{'model/loss':24s} {'rows/s':>10s} {'/ mse kernel':>13s} {'/ mse torch':>12s}")
    for key, row in results["throughput"].items():
        print(f"{key:24s} {row['rows_per_second']:10.0f} {row['vs_mse_kernel']:13.2f} "
              f"{row['vs_mse_torch']:12.2f}")


if __name__ == "__main__":
    main()
