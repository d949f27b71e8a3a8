"""The trainer's per-epoch callback: called with each epoch's record, and able to stop."""

import pytest

from embedrec.models import registry
from embedrec.models.spec import Shape
from embedrec.training import TrainConfig, train_model
from embedrec.training.trainer import StopTraining


def _run(data, on_epoch, epochs=4):
    spec = registry.get("biased")
    n = len(data)
    train, valid = data.take(list(range(0, n - 40))), data.take(list(range(n - 40, n)))
    return train_model(spec, spec.config(n_factors=4), Shape(data.n_users, data.n_items,
                                                             data.scale),
                       train, TrainConfig(epochs=epochs, batch_size=32, lr=0.01), seed=0,
                       valid=valid, on_epoch=on_epoch)


def test_on_epoch_sees_every_epoch_record(tiny):
    seen = []
    model, history = _run(tiny, lambda epoch, record: seen.append((epoch, dict(record))))
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert [r for _, r in seen] == history.epochs  # the same records History keeps
    assert all(r["valid_mse"] > 0 for _, r in seen)


def test_callback_without_it_gives_the_same_numbers(tiny):
    _, with_cb = _run(tiny, lambda e, r: None)
    _, without = _run(tiny, None)
    assert [e["valid_mse"] for e in with_cb.epochs] == [e["valid_mse"] for e in without.epochs]


def test_stop_training_ends_the_run_after_that_epoch(tiny):
    seen = []

    def stop_at_two(epoch, record):
        seen.append(epoch)
        if epoch == 2:
            raise StopTraining("pruned")

    with pytest.raises(StopTraining, match="pruned"):
        _run(tiny, stop_at_two)
    assert seen == [1, 2]
