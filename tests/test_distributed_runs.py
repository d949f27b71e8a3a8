"""Data-parallel runs on loopback: 2 ranks over gloo on 127.0.0.1, each in its own process.

Every process runs under a hard timeout. The ranks record the files they open for writing
(a ``sitecustomize`` audit hook, on ``PYTHONPATH``), so the test can tell who wrote what.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from embedrec.data.synth import SynthConfig, write_synthetic

HARD_TIMEOUT = 120  # seconds, any one process
TRAIN = ["train", "--model", "biased", "--split", "random", "--epochs", "2",
         "--batch-size", "64", "--seed", "4"]

AUDIT = textwrap.dedent("""
    import atexit, json, os, sys
    _root = os.environ["EMBEDREC_TEST_WATCH"]
    _seen, _done = set(), []
    def _hook(event, args):
        if _done:
            return
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path, mode, flags = args[0], args[1], args[2]
            writing = (mode and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
            if writing and os.fsdecode(path).startswith(_root):
                _seen.add(os.fsdecode(path))
        elif event in ("os.rename", "os.replace", "os.mkdir") and args:
            target = os.fsdecode(args[1] if event != "os.mkdir" else args[0])
            if target.startswith(_root):
                _seen.add(target)
    sys.addaudithook(_hook)
    def _dump():
        _done.append(True)
        with open(os.path.join(os.environ["EMBEDREC_TEST_LOG"],
                               "writes-rank" + os.environ.get("RANK", "none") + ".json"), "w") as fh:
            json.dump(sorted(_seen), fh)
    atexit.register(_dump)
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny synthetic data, a one-process run and an uninterrupted 2-rank run of it."""
    root = tmp_path_factory.mktemp("ddp")
    data = write_synthetic(SynthConfig(n_users=150, n_items=300, n_ratings=5000, seed=1),
                           root / "data")
    shim, logs = root / "shim", root / "logs"
    shim.mkdir()
    logs.mkdir()
    (shim / "sitecustomize.py").write_text(AUDIT)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]),
                        "EMBEDREC_TEST_WATCH": str(root), "EMBEDREC_TEST_LOG": str(logs),
                        "PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": str(root / "cache")}
    env.pop("RANK", None)
    from embedrec.cli import main

    assert main(TRAIN + ["--data", str(data), "--out", str(root / "one")]) == 0  # in-process
    for f in logs.iterdir():
        f.unlink()
    shutil.rmtree(data / ".embedrec-cache")  # rank 0 builds the data cache again, rank 1 reads it
    two = _embedrec(TRAIN + ["--data", str(data), "--out", str(root / "two"), "--nproc", "2"], env)
    assert two.returncode == 0, two.stderr
    return {"root": root, "data": data, "env": env, "logs": logs, "two_stdout": two.stdout}


def _embedrec(args, env, timeout=HARD_TIMEOUT):
    return subprocess.run([sys.executable, "-m", "embedrec", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)


def _rmse(folder: Path) -> float:
    return json.loads((folder / "manifest.json").read_text())["metrics"]["rmse"]


def _weights(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(folder / "weights.safetensors")


def test_two_ranks_match_one_process_and_only_rank0_writes(runs):
    root = runs["root"]
    assert abs(_rmse(root / "two") - _rmse(root / "one")) < 0.005
    one, two = _weights(root / "one"), _weights(root / "two")
    assert max(float(np.abs(one[k] - two[k]).max()) for k in one) < 1e-3
    writes = {f.name: json.loads(f.read_text()) for f in runs["logs"].iterdir()}
    assert set(writes) == {"writes-rank0.json", "writes-rank1.json", "writes-ranknone.json"}
    assert writes["writes-rank1.json"] == []  # rank 1 wrote nothing (cache, model, temporaries)
    assert any(p.startswith(str(root / "two")) for p in writes["writes-rank0.json"])
    assert any(".embedrec-cache" in p for p in writes["writes-rank0.json"])
    assert writes["writes-ranknone.json"] == []  # the launcher itself writes nothing either
    assert runs["two_stdout"].count("saved biased") == 1  # rank 0 alone reports


def test_two_ranks_match_one_process_under_a_loss_averaged_over_positives(runs):
    """The full softmax averages over a batch's positives, not its rows (users): each rank's
    loss is weighted by its share of the step's positives, so two ranks train what one
    process does, to float rounding."""
    from embedrec.cli import main

    root, env = runs["root"], runs["env"]
    args = ["train", "--model", "dot", "--split", "random", "--epochs", "2", "--batch-size",
            "16", "--seed", "4", "--loss", "full_softmax", "--implicit", "--data",
            str(runs["data"])]
    assert main(args + ["--out", str(root / "fs-one")]) == 0
    two = _embedrec(args + ["--out", str(root / "fs-two"), "--nproc", "2"], env)
    assert two.returncode == 0, two.stderr
    one, two = _weights(root / "fs-one"), _weights(root / "fs-two")
    for k in ("model.user_factors.weight", "model.item_factors.weight"):
        assert float(np.abs(one[k] - two[k]).max()) < 1e-5, k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_rank_stops_the_other_and_resume_finishes(runs):
    root, env = runs["root"], runs["env"]
    ck, out = root / "ck", root / "killed"
    args = [sys.executable, "-m", "embedrec", *TRAIN, "--data", str(runs["data"]),
            "--out", str(out), "--checkpoints", str(ck)]
    base = env | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
                  "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "EMBEDREC_GRAD_SYNC": "ddp"}
    ranks = [subprocess.Popen(args, env=base | {"RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    try:
        deadline = time.monotonic() + HARD_TIMEOUT
        while not (ck / "checkpoint.pt").exists():  # epoch 1 done: kill rank 1 in epoch 2
            if time.monotonic() >= deadline or any(p.poll() is not None for p in ranks):
                for p in ranks:
                    if p.poll() is None:
                        p.kill()
                errs = [p.communicate()[1][-1500:] for p in ranks]
                pytest.fail(f"a rank stopped before epoch 1's checkpoint (codes "
                            f"{[p.returncode for p in ranks]}): rank 0: {errs[0]}\n"
                            f"rank 1: {errs[1]}")
            time.sleep(0.02)
        time.sleep(0.1)
        ranks[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = ranks[0].communicate(timeout=60)
        waited = time.monotonic() - killed
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert ranks[0].returncode == 1 and ranks[1].returncode == -signal.SIGKILL
    assert waited < 60
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: rank 0 of 2: lost contact with the other ranks"), err
    assert not out.exists()  # nothing half-written
    # --resume (2 ranks again, the default row all-reduce this time) finishes like the
    # uninterrupted run
    resumed = _embedrec(TRAIN + ["--data", str(runs["data"]), "--out", str(out), "--checkpoints",
                                 str(ck), "--resume", "--nproc", "2"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert abs(_rmse(out) - _rmse(root / "two")) < 0.002
    a, b = _weights(out), _weights(root / "two")
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4


def test_parquet_folder_each_rank_reads_its_row_groups(runs, tmp_path):
    """`embedrec train --nproc 2` on a folder of Parquet files: each rank reads its row groups,
    rank 0 alone writes a model whose seen lists hold every rank's rows."""
    import pandas as pd

    from embedrec.data.shards import write_parquet_folder
    from embedrec.persistence import load_model

    frame = pd.read_csv(runs["data"] / "ratings.csv")
    folder = write_parquet_folder(frame, tmp_path / "pq", files=2, row_group_rows=1000)
    for f in runs["logs"].iterdir():
        f.unlink()
    args = ["train", "--model", "biased", "--epochs", "2", "--batch-size", "64", "--seed", "4",
            "--data", str(folder), "--out", str(tmp_path / "model")]
    two = _embedrec(args + ["--nproc", "2"], runs["env"] | {"EMBEDREC_TEST_WATCH": str(tmp_path)})
    assert two.returncode == 0, two.stderr
    assert "5,000 ratings in Parquet row groups, 2,500 read by rank 0 of 2" in two.stdout
    bundle = load_model(tmp_path / "model")
    assert int(bundle.manifest["n_train"]) + int(bundle.manifest["n_valid"]) == len(frame)
    assert sum(len(bundle.seen(u)) for u in range(len(bundle.user_map))) == len(frame)
    writes = {f.name: json.loads(f.read_text()) for f in runs["logs"].iterdir()}
    assert writes["writes-rank1.json"] == [] and writes["writes-rank0.json"]
    # the same folder in one process (every row group): a model of the same quality
    one = load_model(_train_here(args[:-2] + ["--out", str(tmp_path / "one")], tmp_path / "one"))
    last = [b.manifest["history"][-1]["train_mse"] for b in (bundle, one)]
    assert abs(last[0] - last[1]) < 0.1 * last[1]


def _train_here(args, out):
    from embedrec.cli import main

    assert main(args) == 0
    return out
