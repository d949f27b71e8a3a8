import numpy as np
import pandas as pd
import pytest

from embedrec.data.dataset import Ratings
from embedrec.evaluation import cold_mask, evaluate_ratings, mae, mse, rmse
from embedrec.models import BiasBaseline
from embedrec.models.fallback import WithFallback
from embedrec.models.scorer import Scorer
from embedrec.models.spec import Capabilities


class Constant(Scorer):
    def __init__(self, value):
        self.value = value

    def predict(self, users, items):
        return np.full(len(users), self.value, dtype=np.float32)


def scored(model, train, fallback):
    return WithFallback(model, fallback, known_users=train.user_counts() > 0,
                        known_items=train.item_counts() > 0, capabilities=Capabilities())


@pytest.fixture
def data():
    # users 1..3, items 10..40. Train: rows 0-3. Test: row 4 (warm), 5 (cold item 40), 6 (cold user 3)
    frame = pd.DataFrame({"user": [1, 1, 2, 2, 1, 2, 3], "item": [10, 20, 10, 30, 30, 40, 10],
                          "rating": [4.0, 2.0, 5.0, 3.0, 3.0, 1.0, 5.0]})
    d = Ratings.from_frame(frame, scale=(1.0, 5.0))
    return d.take(np.arange(4)), d.take(np.array([4, 5, 6]))


def test_metrics_by_hand():
    assert mse([1, 2], [2, 4]) == pytest.approx(2.5)
    assert rmse([1, 2], [2, 4]) == pytest.approx(np.sqrt(2.5))
    assert mae([1, 2], [2, 4]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="no predictions"):
        rmse([], [])
    with pytest.raises(ValueError, match="shape"):
        rmse([1.0], [1.0, 2.0])


def test_cold_rows_are_counted(data):
    train, test = data
    cold_u, cold_i, cold = cold_mask(train, test)
    assert cold_u.tolist() == [False, False, True]
    assert cold_i.tolist() == [False, True, False]
    assert cold.tolist() == [False, True, True]


def test_cold_rows_use_the_fallback_not_the_model(data):
    train, test = data
    fallback = Constant(2.0)
    metrics, pred = evaluate_ratings(scored(Constant(3.0), train, fallback), test)
    assert pred.tolist() == [3.0, 2.0, 2.0]
    assert metrics["n_cold"] == 2 and metrics["n_cold_users"] == 1 and metrics["n_cold_items"] == 1
    assert metrics["rmse_warm"] == pytest.approx(0.0)
    # final: errors 0, 1, 3 -> mse 10/3; model on every row: errors 0, 2, 2 -> mse 8/3
    assert metrics["mse"] == pytest.approx(10 / 3)
    assert metrics["rmse_model_all"] == pytest.approx(np.sqrt(8 / 3))
    assert metrics["rmse_cold"] == pytest.approx(np.sqrt(5))


def test_bias_fallback_uses_known_parts(data):
    train, test = data
    fb = BiasBaseline(user_damping=0, item_damping=0, sweeps=1).fit(train)
    _, pred = evaluate_ratings(scored(Constant(0.0), train, fb), test)
    # cold item 40 for user 2: mean + b_user(2); cold user 3 on item 10: mean + b_item(10)
    assert pred[1] == pytest.approx(fb.mean + fb.user_bias[1], abs=1e-6)
    assert pred[2] == pytest.approx(fb.mean + fb.item_bias[0], abs=1e-6)


def test_nan_from_the_model_goes_to_the_fallback(data):
    train, test = data

    class Partial(Constant):  # cannot score the first row
        def predict(self, users, items):
            out = super().predict(users, items)
            out[0] = np.nan
            return out

    metrics, pred = evaluate_ratings(scored(Partial(3.0), train, Constant(2.0)), test)
    assert pred.tolist() == [2.0, 2.0, 2.0]
    assert metrics["rmse_model_all"] is None  # the model's own predictions are incomplete
