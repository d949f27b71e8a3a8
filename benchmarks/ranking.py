"""Ranking benchmark (issue 14): fit times of the ranking baselines and the training throughput
of the embedding models under each loss, measured side by side in one process.

    EMBEDREC_DATA=/path/to/movielens .venv/bin/python benchmarks/ranking.py [--repeats 1]

On ml-latest-small (all ratings, 2 torch threads):
- fit: pop, bias (reference points), ease (one lambda and lambda chosen from two on
  validation), ials (10 sweeps, cg), knn; seconds and the ratio to one epoch of the biased
  model trained with mse;
- throughput: dot and biased with mse, bpr, bpr_pop and softmax (each on the compiled kernel,
  which `auto` takes, and on torch's steps) at batch 64 and 256; the training loop's rows per
  second over 3 epochs on torch's steps and 30 on a kernel (where an epoch takes hundredths of
  a second), after an untimed epoch of each that loads the compiled code, and the ratio to the
  same model's mse throughput on each engine (ranking losses train on the ratings >= 4 only,
  so rows/s is what compares). --repeats rounds each run every configuration once; a ratio is
  the median over rounds of the ratio within a round, so the machine's drift over minutes
  (large on a shared virtual machine) falls on both of its sides.

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
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run (torch)")
    parser.add_argument("--kernel-epochs", type=int, default=30,
                        help="epochs per timed run on a compiled kernel (an epoch takes "
                             "hundredths of a second there: more of them steady the figure)")
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

    def epoch(name: str, loss: str, engine: str, batch_size: int, epochs: int) -> tuple[float, str]:
        """Seconds per epoch (the training loop's own time) and the engine used."""
        spec = get(name)
        config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=2e-3, l2=3e-4, loss=loss,
                             engine=engine)
        module = spec.build(spec.config(), shape)
        initialise(module, "keras_he_normal", torch.Generator().manual_seed(0))
        history = fit(module, data, config, seed=1, shape=shape,
                      kernel=choose_kernel(spec, module, config))
        return history.seconds / epochs, history.engine

    results: dict = {"throughput": {}, "fit": {}}
    losses = ("mse", "bpr") if args.quick else ("mse", "bpr", "bpr_pop", "softmax")
    # each loss on the compiled kernel where the model has one for it (auto), and on torch's
    # steps; one untimed epoch of each loads the compiled code and names the engine
    configs = {}
    for batch_size in args.batch_sizes:
        for name in ("dot", "biased"):
            for loss in losses:
                for engine in ("auto", "torch"):
                    _, used = epoch(name, loss, engine, batch_size, 1)
                    configs[f"{name}/{loss} ({used}, batch {batch_size})"] = (
                        name, loss, engine, batch_size, used)
    # rounds: every configuration once per round, so each one's samples (and each ratio's two
    # sides) are spread over the whole run rather than taken minutes apart
    samples: dict[str, list[float]] = {key: [] for key in configs}
    for _ in range(args.repeats):
        for key, (name, loss, engine, batch_size, used) in configs.items():
            epochs = args.kernel_epochs if used == "kernel" else args.epochs
            samples[key].append(epoch(name, loss, engine, batch_size, epochs)[0])
    relevant = TrainConfig().relevant
    for key, (name, loss, _, batch_size, used) in configs.items():
        rows = len(data) if loss == "mse" else int((data.ratings >= relevant).sum())
        seconds = statistics.median(samples[key])
        results["throughput"][key] = {
            "model": name, "loss": loss, "batch_size": batch_size, "seconds": seconds,
            "rows": rows, "engine": used, "rows_per_second": rows / seconds,
            "rows_per_second_by_round": [rows / x for x in samples[key]]}
    reference = results["throughput"][
        f"biased/mse (kernel, batch {args.batch_sizes[0]})"]["seconds"]
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
        for engine in ("kernel", "torch"):  # the median of the ratios within each round
            base = results["throughput"][
                f"{row['model']}/mse ({engine}, batch {row['batch_size']})"]
            row[f"vs_mse_{engine}"] = statistics.median(
                a / b for a, b in zip(row["rows_per_second_by_round"],
                                      base["rows_per_second_by_round"]))
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
