"""Data-parallel training on one machine: 1 vs 2 processes (torchrun, gloo on 127.0.0.1).

    .venv/bin/python benchmarks/distributed.py [--epochs 3] [--model biased] [--repeats 1]

Data: the synthetic 5M set (32,000 users, 12,000 movies), written once into benchmarks/out/ by
`embedrec data synth --users 32000 --items 12000 --ratings 5000000` (not timed), plus the same
rows as a folder of Parquet files (8 files, row groups of 65,536 rows) for the sharded reader.

Every configuration runs in fresh processes under torchrun's launcher
(`python -m torch.distributed.run --standalone --nproc-per-node N`), on every training row
(no split), preset `large` (global batch 4,096, lazy Adam) on the torch engine (the compiled
kernel engine trains in one process only), `--epochs` epochs of which the
first is a warm-up. Per configuration:
- ratings/s: training rows / median seconds of the timed epochs (all ranks together); one
  process runs with the preset's 2 torch threads and, as a second baseline, with 1 (each of 2
  ranks has 1 thread);
- scaling efficiency: ratings/s with N processes / (N x ratings/s with 1);
- peak RSS of every rank (getrusage), with the whole CSV-cached set in memory, and with each
  rank reading only its Parquet row groups;
- communication per step, on 2 ranks: one step's real gradients (per-rank batch 2,048)
  all-reduced as DDP does it (gloo sparse all-reduce of the embedding tables, dense all-reduce
  of the rest) and by the row all-reduce (`sync="rows"`: ids gathered, one dense all-reduce
  over the union of touched rows, three collectives for all tables):
  median milliseconds of 50, and the bytes each rank sends.
Results go to benchmarks/results/distributed.json. Both processes share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "out"
RESULTS = HERE / "results"
USERS, ITEMS, RATINGS = 32_000, 12_000, 5_000_000


def dataset() -> Path:
    folder = OUT / "synth-5m"
    if not (folder / "ratings.csv").is_file():
        print("generating the 5M set ...", flush=True)
        subprocess.run([sys.executable, "-m", "embedrec", "data", "synth", "--users", str(USERS),
                        "--items", str(ITEMS), "--ratings", str(RATINGS), "--out", str(folder)],
                       check=True)
    return folder


def parquet_folder(csv_folder: Path) -> Path:
    folder = OUT / "synth-5m-parquet"
    if not folder.is_dir():
        import pandas as pd

        from embedrec.data.shards import write_parquet_folder

        frame = pd.read_csv(csv_folder / "ratings.csv")
        write_parquet_folder(frame, folder, files=8, row_group_rows=65_536)
    return folder


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# ---- one rank --------------------------------------------------------------------------------
def worker(args) -> None:
    from embedrec.cli.common import load_data
    from embedrec.models import registry
    from embedrec.models.spec import Shape
    from embedrec.presets import get_preset
    from embedrec.training import distributed
    from embedrec.training.trainer import train_model

    ctx = distributed.init("cpu", args.sync)
    t0 = time.perf_counter()
    if args.parquet:
        from embedrec.data.shards import read_rank_shard

        data = read_rank_shard(Path(args.data), distributed.rank(), distributed.world(),
                               distributed.gather)
    else:
        data = distributed.writer_first(lambda: load_data(None, Path(args.data), report=False))
    load_s = time.perf_counter() - t0
    after_load = peak_mb()
    spec = registry.get(args.model)
    preset = get_preset("large")
    config = preset.model_config(spec)
    base = preset.train_config(args.model).to_dict()
    tc = type(preset.train_config(args.model))(
        **(base | {"epochs": args.epochs, "patience": None, "engine": "torch",
                   "threads": args.threads or base["threads"]}))
    shape = Shape(data.n_users, data.n_items, data.scale)
    model, history = train_model(spec, config, shape, data, tc, seed=0)
    seconds = [e["seconds"] for e in history.epochs]
    # every rank holds all rows (CSV), or its own (Parquet shards): rows of one epoch
    n_global = distributed.all_sum([float(len(data))])[0] if args.parquet else len(data)
    record = {"rank": distributed.rank(), "world": distributed.world(), "sync": args.sync,
              "parquet": args.parquet, "rows_this_rank": len(data), "rows": int(n_global),
              "load_s": load_s, "epoch_s": seconds,
              "ratings_per_s": n_global / statistics.median(seconds[1:] or seconds),
              "threads": distributed.threads_per_rank(tc.threads),
              "peak_rss_mb_after_load": after_load, "peak_rss_mb": peak_mb()}
    sync = getattr(model, "_row_sync", None)  # sync="rows": time spent in it while training
    if sync is not None and sync.steps:
        record["rows_sync_ms_per_step_in_training"] = sync.seconds / sync.steps * 1e3
    if ctx is not None and not args.parquet:
        record["comm"] = communication(model, data, tc, ctx)
    Path(args.report).with_suffix(f".rank{distributed.rank()}.json").write_text(
        json.dumps(record))
    distributed.shutdown()


def communication(model, data, tc, ctx, repeats: int = 50) -> dict:
    """One step's gradients at the per-rank batch, all-reduced both ways."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from embedrec.training.batches import RowTensors
    from embedrec.training.distributed import allreduce_rows, per_rank_batch, sync_rows
    from embedrec.training.losses import MSE

    model.train()
    model.sparse_rows = True
    rows = RowTensors(data)
    b = per_rank_batch(tc.batch_size, ctx.world)
    g = torch.Generator().manual_seed(100 + ctx.rank)
    batch = rows.take(torch.randperm(len(rows), generator=g)[:b])
    model.zero_grad(set_to_none=True)
    MSE()(model, batch).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    sparse = [x.coalesce() for x in grads if x.is_sparse]
    dense = [x for x in grads if not x.is_sparse]

    def timed(fn) -> float:
        times = []
        for _ in range(repeats):
            dist.barrier()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    def ddp_like():
        for x in sparse:
            dist.all_reduce(x.clone())  # gloo: gathers every rank's indices and values
        if dense:
            flat = torch.cat([x.reshape(-1) for x in dense])
            dist.all_reduce(flat)

    def rows_way():  # what sync="rows" does at the end of every backward: 3 collectives
        allreduce_rows(sparse, dense, ctx.world)

    nnz = [int(x.indices().shape[1]) for x in sparse]
    width = [int(np.prod(x.values().shape[1:])) for x in sparse]
    dense_n = sum(x.numel() for x in dense)
    # bytes this rank sends (payload only): gloo's sparse all-reduce gathers indices (8 B) and
    # values (4 B each) of every rank; the row all-reduce gathers row ids, then all-reduces a
    # dense block over the union (ring: about 2 x (W-1)/W of the block). Tables that share
    # rows (a user's factors and bias) share their ids in the row all-reduce: counted per
    # table here, an upper bound
    union = [len(sync_rows(x, ctx.world).coalesce().indices()[0]) for x in sparse]
    w = ctx.world
    ddp_bytes = sum(n * (8 + 4 * d) for n, d in zip(nnz, width)) * (w - 1) + 8 * dense_n
    rows_bytes = (sum(8 * n * (w - 1) + 2 * (w - 1) / w * 4 * u * d
                      for n, u, d in zip(nnz, union, width)) + 8 * dense_n)
    model.sparse_rows = False
    return {"per_rank_batch": b, "tables": len(sparse), "rows_touched_per_table": nnz,
            "union_rows_per_table": union, "dense_params": dense_n,
            "ddp_sparse_ms": timed(ddp_like), "rows_allreduce_ms": timed(rows_way),
            "ddp_sparse_bytes_sent": ddp_bytes, "rows_allreduce_bytes_sent": rows_bytes}


# ---- the driver ------------------------------------------------------------------------------
def run(nproc: int, data: Path, args, *, sync: str = "ddp", parquet: bool = False,
        threads: int = 0) -> list[dict]:
    report = OUT / f"dist-{nproc}-{sync}-{'parquet' if parquet else 'csv'}-t{threads}.json"
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc-per-node", str(nproc), "--max-restarts", "0", __file__, "--worker",
           "--data", str(data), "--report", str(report), "--epochs", str(args.epochs),
           "--model", args.model, "--sync", sync, "--threads", str(threads)]
           + (["--parquet"] if parquet else []))
    print(f"{nproc} process(es), {sync}{', parquet shards' if parquet else ''} ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=3600, env=os.environ | {"OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    ranks = [json.loads(report.with_suffix(f".rank{r}.json").read_text()) for r in range(nproc)]
    for r in ranks:
        r["wall_s"] = wall
    return ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data")
    parser.add_argument("--report")
    parser.add_argument("--sync", default="ddp")
    parser.add_argument("--parquet", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="biased")
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    csv = dataset()
    pq = parquet_folder(csv)
    results = {"versions": {"torch": torch.__version__, "cpus": os.cpu_count()},
               "model": args.model, "preset": "large", "epochs": args.epochs, "runs": []}
    one = run(1, csv, args)
    results["runs"].append({"nproc": 1, "sync": "none", "data": "csv", "ranks": one})
    results["runs"].append({"nproc": 1, "sync": "none", "data": "csv, 1 thread",
                            "ranks": run(1, csv, args, threads=1)})
    for sync in ("ddp", "rows"):
        two = run(2, csv, args, sync=sync)
        results["runs"].append({"nproc": 2, "sync": sync, "data": "csv", "ranks": two})
    results["runs"].append({"nproc": 1, "sync": "none", "data": "parquet",
                            "ranks": run(1, pq, args, parquet=True)})
    results["runs"].append({"nproc": 2, "sync": "ddp", "data": "parquet",
                            "ranks": run(2, pq, args, parquet=True)})
    base = one[0]["ratings_per_s"]
    print(f"\n| processes | sync | data | ratings/s | efficiency | peak RSS per rank (MB) |")
    print("|---|---|---|---|---|---|")
    for r in results["runs"]:
        rate = r["ranks"][0]["ratings_per_s"]
        r["scaling_efficiency"] = rate / (r["nproc"] * base)
        rss = ", ".join(f"{x['peak_rss_mb']:.0f}" for x in r["ranks"])
        print(f"| {r['nproc']} | {r['sync']} | {r['data']} | {rate:,.0f} | "
              f"{r['scaling_efficiency']:.2f} | {rss} |")
    comm = results["runs"][2]["ranks"][0].get("comm")
    if comm:
        print(f"\ncommunication per step (2 ranks, per-rank batch {comm['per_rank_batch']}): "
              f"DDP sparse {comm['ddp_sparse_ms']:.2f} ms ({comm['ddp_sparse_bytes_sent']:,.0f} B"
              f" sent), row all-reduce {comm['rows_allreduce_ms']:.2f} ms "
              f"({comm['rows_allreduce_bytes_sent']:,.0f} B sent)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
