"""A folder of Parquet files read by rank: row groups dealt out, ids shared."""

import numpy as np
import pandas as pd
import pytest

from embedrec.data.dataset import Ratings
from embedrec.data.shards import is_shard, plan_row_groups, read_rank_shard, write_parquet_folder
from embedrec.errors import DataError


def _frame(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"userId": rng.integers(1, 60, n) * 7, "movieId": rng.integers(1, 90, n) * 3,
                         "rating": rng.integers(1, 11, n) / 2.0,
                         "timestamp": rng.integers(0, 10**9, n)})


def test_row_groups_are_dealt_out_balanced_and_disjoint(tmp_path):
    write_parquet_folder(_frame(1000), tmp_path, files=3, row_group_rows=100)
    plan = plan_row_groups(tmp_path, 2)
    groups = [(str(p), g) for rank in plan for p, g, _ in rank]
    assert len(groups) == len(set(groups)) == 12  # 334 + 333 + 333 rows: 4 groups per file
    rows = [sum(n for *_, n in rank) for rank in plan]
    assert sum(rows) == 1000 and abs(rows[0] - rows[1]) <= 100


def test_one_rank_reads_what_the_whole_folder_holds(tmp_path):
    frame = _frame(500)
    write_parquet_folder(frame, tmp_path, files=2, row_group_rows=64)
    whole = read_rank_shard(tmp_path)
    ref = Ratings.from_frame(frame.rename(columns={"userId": "user", "movieId": "item"}))
    assert np.array_equal(whole.user_map.ids, ref.user_map.ids)
    assert np.array_equal(whole.item_map.ids, ref.item_map.ids)
    got = sorted(zip(whole.users, whole.items, whole.ratings))
    assert got == sorted(zip(ref.users, ref.items, ref.ratings))
    assert whole.scale == (0.5, 5.0) and not is_shard(whole)


def test_a_folder_without_parquet_or_columns_is_refused(tmp_path):
    with pytest.raises(DataError, match="no .parquet files"):
        read_rank_shard(tmp_path)
    write_parquet_folder(_frame(100), tmp_path / "small", files=1, row_group_rows=100)
    with pytest.raises(DataError, match="1 row groups for 2 ranks"):
        plan_row_groups(tmp_path / "small", 2)
    with pytest.raises(DataError, match="no rating column"):
        write_parquet_folder(_frame().drop(columns="rating"), tmp_path)
