"""Ranking benchmark (issue 14): fit times of the ranking baselines and the training throughput
of the embedding models under each loss, measured side by side in one process.

    EMBEDREC_DATA=/path/to/movielens .venv/bin/python benchmarks/ranking.py [--repeats 1]

On ml-latest-small (all ratings, 2 torch threads):
- fit: pop, bias (reference points), ease (one lambda and lambda chosen from two on
  validation), ials (10 sweeps, cg), knn; seconds and the ratio to one epoch of the biased
  model trained with mse;
- throughput: dot and biased with mse, bpr, bpr_pop (each on the compiled kernel, which `auto`
  takes, and on torch's steps) and softmax (torch's steps: no kernel) at batch 64 and 256; the
  training loop's rows per second over 3 epochs, after an untimed run that loads the compiled
  code, and the ratio to the same model's mse throughput on each engine (ranking losses train
  on the ratings >= 4 only, so rows/s is what compares).

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
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--batch-sizes", type=lambda t: [int(x) for x in t.split(",")],
                        default=[64, 256])
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

    def epoch(name: str, loss: str, engine: str, batch_size: int) -> tuple[float, int, str]:
        """Seconds per epoch (the training loop's own time, over ``--epochs`` epochs, after one
        untimed run that loads compiled code), training rows and the engine used."""
        spec = get(name)
        config = TrainConfig(epochs=args.epochs, batch_size=batch_size, lr=2e-3, l2=3e-4,
                             loss=loss, engine=engine)
        rows = len(data) if loss == "mse" else int((data.ratings >= config.relevant).sum())
        runs = []

        def run():
            module = spec.build(spec.config(), shape)
            initialise(module, "keras_he_normal", torch.Generator().manual_seed(0))
            history = fit(module, data, config, seed=1, shape=shape,
                          kernel=choose_kernel(spec, module, config))
            runs.append((history.seconds / args.epochs, history.engine))

        run()
        runs.clear()
        for _ in range(args.repeats):
            run()
        return statistics.median(r[0] for r in runs), rows, runs[-1][1]

    results: dict = {"throughput": {}, "fit": {}}
    losses = ("mse", "bpr") if args.quick else ("mse", "bpr", "bpr_pop", "softmax")
    for batch_size in args.batch_sizes:
        for name in ("dot", "biased"):
            # each loss on the compiled kernel where the model has one for it (auto), and on
            # torch's steps; softmax has no kernel
            for loss in losses:
                for engine in ("auto", "torch"):
                    seconds, rows, used = epoch(name, loss, engine, batch_size)
                    key = f"{name}/{loss} ({used}, batch {batch_size})"
                    results["throughput"].setdefault(key, {
                        "model": name, "loss": loss, "batch_size": batch_size, "seconds": seconds,
                        "rows": rows, "engine": used, "rows_per_second": rows / seconds})
    reference = results["throughput"][f"biased/mse (kernel, batch {args.batch_sizes[0]})"]["seconds"]
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
        for engine in ("kernel", "torch"):
            base = results["throughput"][
                f"{row['model']}/mse ({engine}, batch {row['batch_size']})"]["rows_per_second"]
            row[f"vs_mse_{engine}"] = row["rows_per_second"] / base
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ranking.json").write_text(json.dumps(results, indent=1))
    print(f"{'fit':32s} {'seconds':>8s} {'/ biased mse epoch':>20s}")
    for label, row in results["fit"].items():
        print(f"{label:32s} {row['seconds']:8.2f} {row['vs_biased_mse_epoch']:20.2f}")
    print(f"\n{'model/loss (engine, batch)':36s} {'rows/s':>10s} {'/ mse kernel':>13s} "
          f"{'/ mse torch':>12s}")
    for key, row in results["throughput"].items():
        print(f"{key:36s} {row['rows_per_second']:10.0f} {row['vs_mse_kernel']:13.2f} "
              f"{row['vs_mse_torch']:12.2f}")


if __name__ == "__main__":
    main()
