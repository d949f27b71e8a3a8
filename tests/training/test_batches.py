import numpy as np
import pandas as pd
import pytest
import torch

from embedrec.data.dataset import Ratings
from embedrec.data.features import item_features, release_year, split_genres, time_features
from embedrec.errors import TrainingError
from embedrec.training.batches import RowTensors

DAY = 86_400


@pytest.fixture
def data():
    frame = pd.DataFrame({"user": [1, 1, 2, 2, 2], "item": [10, 20, 20, 30, 10],
                          "rating": [4.0, 2.0, 5.0, 3.0, 1.0],
                          "timestamp": [0, 3 * DAY, 10 * DAY, 12 * DAY, 400 * DAY]})
    items = pd.DataFrame({"title": ["Heat (1995)", "Alien (1979)", "Untitled"],
                          "genres": ["Action|Crime", "(no genres listed)", "Horror|Action"]},
                         index=pd.Index([10, 20, 30], name="item"))
    return Ratings.from_frame(frame, scale=(0.5, 5.0), item_info=items)


def test_item_features_by_hand(data):
    f = item_features(data.item_map, data.item_info)
    assert f.genre_names == ("Action", "Crime", "Horror")
    assert [f.genres_of(i) for i in range(3)] == [["Action", "Crime"], [], ["Horror", "Action"]]
    assert f.year.tolist() == [1995, 1979, -1]
    assert f.padded_genres().tolist() == [[0, 1], [-1, -1], [2, 0]]
    assert release_year("Cosmos (1980)") == 1980 and release_year("Show (2007-2013) ") == 2007
    assert release_year("1984") == -1 and split_genres("(no genres listed)") == []


def test_time_features_use_the_reference_rows(data):
    t = time_features(data)
    assert t["year"].tolist() == [1970, 1970, 1970, 1970, 1971]
    assert t["days_since_first"].tolist() == [0, 3, 0, 2, 390]
    later_only = data.take(np.array([3, 4]))  # user 2's first rating here is day 12...
    assert time_features(later_only)["days_since_first"].tolist() == [0, 388]
    # ...but measured against all rows, it is day 10
    assert time_features(later_only, data)["days_since_first"].tolist() == [2, 390]


def test_batches_carry_what_the_model_needs(data):
    rows = RowTensors(data, needs=frozenset({"item_features", "timestamps", "history"}))
    batch = rows.take(torch.tensor([4, 1]))  # (user 2, item 10), (user 1, item 20)
    assert batch["users"].tolist() == [1, 0] and batch["items"].tolist() == [0, 1]
    assert batch["item_genres"].tolist() == [[0, 1], [-1, -1]]
    assert batch["item_year"].tolist() == [1995, 1979]
    assert batch["days_since_first"].tolist() == [390, 3]
    # user 2 rated items 20, 30, 10 (indices 1, 2, 0); user 1 rated 10, 20 (0, 1)
    assert batch["history_offsets"].tolist() == [0, 3]
    assert batch["history_items"].tolist() == [1, 2, 0, 0, 1]
    bag = torch.nn.EmbeddingBag(3, 2, mode="sum")
    assert bag(batch["history_items"], batch["history_offsets"]).shape == (2, 2)
    plain = RowTensors(data).take(torch.tensor([0]))
    assert set(plain) == {"users", "items", "ratings"}


def test_missing_inputs_are_clear_errors(data):
    no_items = Ratings.from_frame(data.to_frame(), scale=(0.5, 5.0))
    with pytest.raises(TrainingError, match="item features"):
        RowTensors(no_items, needs=frozenset({"item_features"}))
    no_time = Ratings.from_frame(data.to_frame().drop(columns="timestamp"), scale=(0.5, 5.0))
    with pytest.raises(TrainingError, match="timestamps"):
        RowTensors(no_time, needs=frozenset({"timestamps"}))
