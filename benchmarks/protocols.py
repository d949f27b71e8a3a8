"""Both evaluation protocols' tables (issue 14): every model, tuned with the same budget, then
compared over 3 seeds on the test rows of its protocol.

    EMBEDREC_DATA=/path/to/movielens .venv/bin/python benchmarks/protocols.py \
        [--protocols a,b] [--trials 30] [--timeout 300] [--seeds 3]

For each protocol P (each step an ordinary `embedrec` command, printed before it runs):
1. `embedrec tune --models ease,ials,knn --protocol P --trials N --timeout S
   --out benchmarks/out/protocols/tune-P`;
2. for each ranking loss L in --losses (softmax, full_softmax, bpr): `embedrec tune --models
   dot,biased --loss L --protocol P ... --out .../tune-P-L` (full_softmax also tunes
   hybrid_mf; `--models` picks the models of these runs) (full_softmax with `--epochs 300`:
   its epoch is one pass over the users, 10 steps at batch 64, where the other losses' epoch is
   a pass over the ratings; early stopping still ends it);
3. `embedrec compare --tuned .../tune-P --models pop,bias,ease,ials,knn --protocol P --seeds 3`,
   the same for each tune-P-L folder with dot,biased, and `embedrec compare --models
   dot,biased,mlp --protocol P --seeds 3` (the rating models, mse, default settings).
Writes benchmarks/results/protocols.json (per protocol and model: loss, tuned settings, tuning
seconds, NDCG/recall/MAP/HR@10 mean and std over seeds, coverage, popularity, the ratio to pop)
and prints one markdown table per protocol. Tuning seconds depend on the machine and its load.
`--only-losses` re-runs steps 2 and 3 for --losses alone and replaces those rows in the results
file (recorded under ``partial_reruns``), e.g. after a loss gains a faster engine.
`--refit` compares with `embedrec compare --refit` (after validation every model learns from
the whole training part; tuning is unchanged) and writes benchmarks/results/protocols-refit.json
from benchmarks/out/protocols-refit/.
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
RESULTS = HERE / "results"
# a loss whose epoch is far shorter than a pass over the ratings gets a higher cap on epochs
EPOCHS = {"full_softmax": 300}
# the models each ranking loss trains (the full softmax also trains hybrid_mf, whose MF head
# scores the catalogue in one product)
LOSS_MODELS = {"full_softmax": "dot,biased,hybrid_mf"}
METRICS = ("ndcg_at_k", "recall_at_k", "map_at_k", "hit_rate_at_k", "coverage_at_k",
           "popularity_at_k", "long_tail_at_k", "rmse")


def run(args: list[str]) -> float:
    cmd = [str(Path(sys.executable).parent / "embedrec"), *args]
    print("$ embedrec " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def rows(folder: Path, protocol: str) -> list[dict]:
    return json.loads((folder / f"protocol-{protocol}" / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocols", default="a,b")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--losses", default="softmax,full_softmax,bpr")
    parser.add_argument("--models", default=None,
                        help="the models the --losses runs tune and compare (default: dot,biased, "
                             "and hybrid_mf for full_softmax)")
    parser.add_argument("--refit", action="store_true",
                        help="compare with --refit (results in protocols-refit.json)")
    parser.add_argument("--only-losses", action="store_true",
                        help="re-run only the --losses runs (no baselines, no mse models) and "
                             "replace their rows in the existing results file")
    args = parser.parse_args()
    results_name = "protocols-refit" if args.refit else "protocols"
    out = HERE / "out" / results_name
    refit = ["--refit"] if args.refit else []
    budget = ["--trials", str(args.trials), "--timeout", str(args.timeout)]
    result = {"trials": args.trials, "timeout": args.timeout, "seeds": args.seeds,
              "cpus": os.cpu_count(), "load_average_start": os.getloadavg(), "protocols": {}}
    if args.only_losses:  # the other rows stay as the last full run measured them
        result = json.loads((RESULTS / f"{results_name}.json").read_text())
        result.setdefault("partial_reruns", []).append(
            {"protocols": args.protocols, "losses": args.losses, "trials": args.trials,
             "timeout": args.timeout, "seeds": args.seeds,
             "load_average_start": os.getloadavg()})
    for protocol in args.protocols.split(","):
        table: dict[str, dict] = dict(result["protocols"].get(protocol, {}))
        runs = [] if args.only_losses else [
            ("baselines", "ease,ials,knn", None, "pop,bias,ease,ials,knn")]
        for loss in filter(None, args.losses.split(",")):
            models = args.models or LOSS_MODELS.get(loss, "dot,biased")
            runs.append((loss if not args.models else f"{loss}-{models.replace(',', '-')}",
                         models, loss, models))
        for label, tuned, loss, compared in runs:
            tune_dir = out / f"tune-{protocol}-{label}"
            cmp_dir = out / f"compare-{protocol}-{label}"
            shutil.rmtree(tune_dir, ignore_errors=True)
            shutil.rmtree(cmp_dir, ignore_errors=True)
            extra = ["--loss", loss] if loss else []
            extra += ["--epochs", str(EPOCHS[loss])] if loss in EPOCHS else []
            run(["tune", "--models", tuned, "--protocol", protocol, *budget, *extra,
                 "--out", str(tune_dir)])
            run(["compare", "--tuned", str(tune_dir), "--models", compared, "--protocol",
                 protocol, "--seeds", str(args.seeds), *refit, "--no-report", "--out",
                 str(cmp_dir)])
            tuning = json.loads((tune_dir / "tuning.json").read_text())["models"]
            for row in rows(cmp_dir, protocol):
                name = row["model"]
                key = f"{name} ({loss})" if loss else name
                res = tuning.get(name)
                table[key] = {"model": name, "loss": loss, "tuned": res is not None} | (
                    {"settings": res["best_model_settings"] | res["best_train_settings"],
                     "tuning_seconds": sum(t["seconds"] or 0 for t in res["trials"]),
                     "trials": len(res["trials"])} if res else {}) | {
                    m: row.get(m) for m in METRICS} | {
                    f"{m}_std": row.get(f"{m}_std") for m in ("ndcg_at_k", "recall_at_k")}
        cmp_dir = out / f"compare-{protocol}-mse"
        if not args.only_losses:
            shutil.rmtree(cmp_dir, ignore_errors=True)
            run(["compare", "--models", "dot,biased,mlp", "--protocol", protocol, "--seeds",
                 str(args.seeds), *refit, "--no-report", "--out", str(cmp_dir)])
        for row in rows(cmp_dir, protocol) if not args.only_losses else []:
            table[f"{row['model']} (mse)"] = {"model": row["model"], "loss": "mse",
                                              "tuned": False} | {
                m: row.get(m) for m in METRICS} | {
                f"{m}_std": row.get(f"{m}_std") for m in ("ndcg_at_k", "recall_at_k")}
        pop = table["pop"]["ndcg_at_k"]
        for row in table.values():
            row["vs_pop"] = row["ndcg_at_k"] / pop if row["ndcg_at_k"] is not None else None
        result["protocols"][protocol] = table
    if args.only_losses:
        result["partial_reruns"][-1]["load_average_end"] = os.getloadavg()
    else:
        result["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    result["refit"] = args.refit
    (RESULTS / f"{results_name}.json").write_text(json.dumps(result, indent=1))
    for protocol, table in result["protocols"].items():
        print(f"\nprotocol {protocol}, mean over {args.seeds} seeds (k = 10)\n")
        print("| model | loss | tuned | NDCG@10 | vs pop | recall@10 | MAP@10 | HR@10 | "
              "coverage | mean popularity | long tail |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for key, row in sorted(table.items(), key=lambda kv: -(kv[1]["ndcg_at_k"] or 0)):
            std = row.get("ndcg_at_k_std") or 0.0
            print(f"| {row['model']} | {row['loss'] or '-'} | {'yes' if row['tuned'] else 'no'} "
                  f"| {row['ndcg_at_k']:.4f} ± {std:.4f} | {row['vs_pop']:.2f}x "
                  f"| {row['recall_at_k']:.4f} | {row['map_at_k']:.4f} "
                  f"| {row['hit_rate_at_k']:.3f} | {row['coverage_at_k']:.3f} "
                  f"| {row['popularity_at_k']:.1f} | {row['long_tail_at_k']:.3f} |")


if __name__ == "__main__":
    main()
