"""Checkpoints and resume in one process, and the pure parts of the distributed module (batch
plans, error messages); the multi-process runs are in tests/test_distributed_runs.py."""

import pytest
import torch

from embedrec.errors import ConfigError
from embedrec.models import registry
from embedrec.models.spec import Shape
from embedrec.training import TrainConfig, distributed, train_model
from embedrec.training.checkpoint import Checkpoints


def _train(data, tmp_path, name, epochs, *, resume, seed=3, patience=None, valid=None):
    spec = registry.get(name)
    config = spec.config(n_factors=4)
    tc = TrainConfig(epochs=epochs, batch_size=16, lr=0.01, patience=patience)
    ckpt = Checkpoints(tmp_path / "ck", resume=resume, key={"model": name})
    return train_model(spec, config, Shape(data.n_users, data.n_items, data.scale), data, tc,
                       seed=seed, valid=valid, checkpoints=ckpt)


@pytest.mark.parametrize("name", ["biased", "mlp"])  # mlp: dropout masks from a numpy rng
def test_resumed_run_equals_uninterrupted(tiny, tmp_path, name):
    whole, h_whole = _train(tiny, tmp_path / "a", name, 3, resume=False)
    _train(tiny, tmp_path / "b", name, 1, resume=False)  # "crashes" after epoch 1
    assert (tmp_path / "b" / "ck" / "checkpoint.pt").is_file()
    resumed, h_res = _train(tiny, tmp_path / "b", name, 3, resume=True)
    assert len(h_res.epochs) == 3 and h_res.epochs[0] == h_whole.epochs[0] | {
        "seconds": h_res.epochs[0]["seconds"]}
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    # without resume the checkpoint is ignored: training starts over
    again, _ = _train(tiny, tmp_path / "b", name, 3, resume=False)
    assert torch.equal(again.state_dict()[next(iter(again.state_dict()))],
                       whole.state_dict()[next(iter(whole.state_dict()))])


def test_resume_after_early_stop_does_not_train_further(tiny, tmp_path):
    from tests.conftest import make_ratings

    valid = make_ratings(seed=5)
    whole, h = _train(tiny, tmp_path, "biased", 40, resume=False, patience=1, valid=valid)
    assert h.stopped_early
    again, h2 = _train(tiny, tmp_path, "biased", 40, resume=True, patience=1, valid=valid)
    assert len(h2.epochs) == len(h.epochs) and h2.best_epoch == h.best_epoch
    for a, b in zip(whole.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_run_is_refused(tiny, tmp_path):
    _train(tiny, tmp_path, "biased", 1, resume=False, seed=3)
    with pytest.raises(ConfigError, match="another run.*seed"):
        _train(tiny, tmp_path, "biased", 2, resume=True, seed=4)
    (tmp_path / "ck" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable embedrec checkpoint"):
        _train(tiny, tmp_path, "biased", 2, resume=True, seed=3)


def test_epoch_plan_ranks_cover_the_one_process_steps():
    perm = torch.arange(11)
    one = distributed.EpochPlan(11, 4)
    idx, weight = one.rows(perm, 2)
    assert one.steps == 3 and idx.tolist() == [8, 9, 10] and weight == 1.0

    class Rank:
        def __init__(self, r):
            self.rank, self.world = r, 2

    plans = [distributed.EpochPlan(11, 4, Rank(r)) for r in (0, 1)]
    for s in range(3):
        parts = [p.rows(p.shard(perm), s) for p in plans]
        assert sorted(torch.cat([idx for idx, _ in parts]).tolist()) == perm[4 * s:4 * s + 4].tolist()
        # weights: each rank's share of the step's rows times the 2 ranks
        n_step = min(4, 11 - 4 * s)
        assert [w for _, w in parts] == [len(idx) * 2 / n_step for idx, _ in parts]
    assert [w for _, w in (p.rows(p.shard(perm), 2) for p in plans)] == [4 / 3, 2 / 3]
    # 9 rows: the last step has one row, rank 1 runs a row at weight 0
    plans = [distributed.EpochPlan(9, 4, Rank(r)) for r in (0, 1)]
    idx, weight = plans[0].rows(plans[0].shard(torch.arange(9)), 2)
    assert idx.tolist() == [8] and weight == 2.0
    idx, weight = plans[1].rows(plans[1].shard(torch.arange(9)), 2)
    assert weight == 0.0 and len(idx) == 1
    with pytest.raises(ConfigError, match="multiple of the 3 ranks"):
        distributed.per_rank_batch(64, 3)


def test_backend_errors_become_one_line():
    dead = distributed.translate(RuntimeError(
        "[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:4532.\nmore"))
    assert isinstance(dead, distributed.DistributedError)
    assert "lost contact" in str(dead) and "--resume" in str(dead) and "\n" not in str(dead)
    hung = distributed.translate(RuntimeError("[gloo] Timed out waiting 30000ms for recv"))
    assert "timed out" in str(hung)
    assert distributed.translate(RuntimeError("shape mismatch")) is None
    assert distributed.translate(ValueError("connection")) is None
    assert distributed.without_option(["train", "--nproc", "2", "--nproc=3", "-m", "x"],
                                      "--nproc") == ["train", "-m", "x"]


def test_alone_nothing_is_distributed(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with distributed.session() as ctx:
        assert ctx is None and distributed.active() is None and distributed.is_writer()
        assert distributed.from_writer(lambda: 5) == 5 and distributed.all_sum([1.5]) == [1.5]
        assert distributed.rank_seed(7) == 7 and distributed.threads_per_rank(2) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_matches_cpu(tiny, tmp_path):
    spec = registry.get("biased")
    shape = Shape(tiny.n_users, tiny.n_items, tiny.scale)
    models = [train_model(spec, spec.config(n_factors=4), shape, tiny,
                          TrainConfig(epochs=2, batch_size=16, device=device), seed=0)[0]
              for device in ("cpu", "cuda")]
    for a, b in zip(*(m.parameters() for m in models)):
        assert torch.allclose(a, b, atol=1e-4)


def test_sharded_plan_gives_every_rank_the_same_steps(monkeypatch):
    """Ranks holding 10 and 7 rows of their own (Parquet shards), global batch 8: 3 steps each;
    weights make every step's average the gradient over the step's rows."""
    monkeypatch.setattr(distributed, "gather", lambda n: [10, 7])

    class Rank:
        def __init__(self, r):
            self.rank, self.world = r, 2

    plans = [distributed.EpochPlan(n, 8, Rank(r), sharded=True) for r, n in ((0, 10), (1, 7))]
    assert [p.steps for p in plans] == [3, 3] and plans[0].n_global == 17
    local = [torch.arange(10), torch.arange(7)]
    steps = [[p.rows(p.shard(x), s) for s in range(3)] for p, x in zip(plans, local)]
    assert [len(i) for i, _ in steps[0]] == [4, 4, 2] and [len(i) for i, _ in steps[1]] == [4, 3, 1]
    assert steps[1][2][1] == 0.0  # rank 1 has no row left: one row at weight 0
    assert [w for _, w in steps[0]] == [1.0, 8 / 7, 2.0] and [w for _, w in steps[1]][:2] == [1.0, 6 / 7]
