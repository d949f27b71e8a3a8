import numpy as np
import pandas as pd
import pytest

from embedrec.data.dataset import Ratings
from embedrec.models import BiasBaseline, GlobalMean


@pytest.fixture
def four():
    # users a, b; items x, y. mean = (5 + 3 + 4 + 2) / 4 = 3.5
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [10, 20, 10, 20],
                          "rating": [5.0, 3.0, 4.0, 2.0]})
    return Ratings.from_frame(frame, scale=(1.0, 5.0))


def test_global_mean(four):
    m = GlobalMean().fit(four)
    assert m.predict(np.array([0, 1]), np.array([1, 0])).tolist() == [3.5, 3.5]


def test_undamped_biases_by_hand(four):
    m = BiasBaseline(user_damping=0, item_damping=0, sweeps=1).fit(four)
    # item x: (5-3.5 + 4-3.5)/2 = 1.0; item y: -1.0; then users: a: (0.5 + 0.5)/2 = 0.5, b: -0.5
    assert m.item_bias.tolist() == pytest.approx([1.0, -1.0])
    assert m.user_bias.tolist() == pytest.approx([0.5, -0.5])
    assert m.predict(np.array([0, 1]), np.array([0, 1])).tolist() == pytest.approx([5.0, 2.0])


def test_damping_shrinks(four):
    m = BiasBaseline(user_damping=2, item_damping=2, sweeps=1).fit(four)
    # item x: 2.0 / (2 + 2) = 0.5; user a: ((1.5-0.5) + (-0.5+0.5)) / (2 + 2) = 0.25
    assert m.item_bias[0] == pytest.approx(0.5)
    assert m.user_bias[0] == pytest.approx(0.25)


def test_unknown_rows_get_zero_bias_and_clipping(four):
    sub = four.take(np.array([0, 1]))  # only user a rated: user b has no training rows
    m = BiasBaseline(user_damping=0, item_damping=0, sweeps=1).fit(sub)
    assert m.user_bias[1] == 0.0
    assert m.predict(np.array([1]), np.array([0]))[0] == pytest.approx(m.mean + m.item_bias[0])
    big = BiasBaseline(user_damping=0, item_damping=0, clip=(1.0, 4.0)).fit(four)
    assert big.predict(np.array([0]), np.array([0]))[0] == 4.0
