"""Ratings from a folder of Parquet files, each rank of a data-parallel run reading only its
row groups.

The folder holds ``*.parquet`` files with the columns ``userId``, ``movieId``, ``rating`` and
optionally ``timestamp`` (``write_parquet_folder`` writes one). ``plan_row_groups`` reads only
the files' footers, lists every row group (files in name order) and deals them out to the
ranks, the next largest group to the rank with the fewest rows so far, so that the ranks'
row counts stay within one row group of each other. ``read_rank_shard`` then reads only this
rank's row groups, and encodes ids against maps shared by all ranks: every rank's distinct ids
are gathered and their sorted union is the map, so an index means the same user or movie on
every rank (and the same as loading the whole folder in one process). No rank holds the rows
of another; the rating scale is the min and max over all ranks.

A shard trains with ``fit`` as it is: the trainer sees that its rows are this rank's only
(``is_shard``), shuffles them locally each epoch and, from every rank's row count, gives every
rank the same number of steps and each step the weights that make DDP's average the gradient
of the whole step.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedrec.data.dataset import IdMap, Ratings
from embedrec.errors import DataError

log = logging.getLogger(__name__)

COLUMNS = ("userId", "movieId", "rating")
SHARD = "shard"  # key of Ratings.source that marks one rank's rows


def write_parquet_folder(frame: pd.DataFrame, folder: str | Path, *, files: int = 4,
                         row_group_rows: int = 65_536) -> Path:
    """``frame`` (userId, movieId, rating[, timestamp]) as ``files`` Parquet files of row
    groups of ``row_group_rows`` rows; each file written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedrec.io import atomic_write_bytes

    folder = Path(folder)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"write_parquet_folder: the frame has no {', '.join(missing)} column")
    keep = [c for c in (*COLUMNS, "timestamp") if c in frame.columns]
    bounds = np.linspace(0, len(frame), files + 1).astype(int)
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(frame.iloc[lo:hi][keep], preserve_index=False),
                       sink, row_group_size=row_group_rows)
        atomic_write_bytes(folder / f"part-{i:05d}.parquet", sink.getvalue().to_pybytes())
    return folder


def parquet_files(folder: str | Path) -> list[Path]:
    found = sorted(Path(folder).glob("*.parquet"))
    if not found:
        raise DataError(f"{folder}: no .parquet files")
    return found


def plan_row_groups(folder: str | Path, world: int) -> list[list[tuple[Path, int, int]]]:
    """For every rank, its (file, row group, rows) triples, from the files' footers alone."""
    import pyarrow.parquet as pq

    groups = []
    for path in parquet_files(folder):
        meta = pq.ParquetFile(path).metadata
        groups += [(path, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    if len(groups) < world:
        raise DataError(f"{folder}: {len(groups)} row groups for {world} ranks; write smaller "
                        f"row groups (every rank needs at least one)")
    plan: list[list[tuple[Path, int, int]]] = [[] for _ in range(world)]
    heap = [(0, r) for r in range(world)]
    for group in sorted(groups, key=lambda g: (-g[2], str(g[0]), g[1])):
        rows, r = heapq.heappop(heap)
        plan[r].append(group)
        heapq.heappush(heap, (rows + group[2], r))
    return [sorted(p, key=lambda g: (str(g[0]), g[1])) for p in plan]


def read_rank_shard(folder: str | Path, rank: int = 0, world: int = 1,
                    gather: Callable[[Any], list] | None = None) -> Ratings:
    """This rank's rows of the Parquet folder, with id maps shared by every rank. With
    ``world > 1`` every rank calls it, and ``gather(value)`` (the runtime's all-gather, e.g.
    ``embedrec.training.distributed.gather``) returns every rank's value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if world > 1 and gather is None:
        raise ValueError("reading a shard of several ranks needs their all-gather")

    mine = plan_row_groups(folder, world)[rank]
    tables = []
    for path, group_list in _by_file(mine):
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise DataError(f"{path}: no {', '.join(missing)} column")
        cols = list(COLUMNS) + (["timestamp"] if "timestamp" in names else [])
        tables.append(pf.read_row_groups(group_list, columns=cols))
    table = pa.concat_tables(tables) if tables else None
    users = table.column("userId").to_numpy() if table is not None else np.array([], np.int64)
    items = table.column("movieId").to_numpy() if table is not None else np.array([], np.int64)
    ratings = (table.column("rating").to_numpy().astype(np.float32) if table is not None
               else np.array([], np.float32))
    stamps = (table.column("timestamp").to_numpy().astype(np.int64)
              if table is not None and "timestamp" in table.column_names else None)
    if len(ratings) and not np.isfinite(ratings).all():
        raise DataError(f"{folder}: a rating is not a number")
    local = (np.unique(users), np.unique(items),
             (float(ratings.min()), float(ratings.max())) if len(ratings) else None, len(ratings))
    everyone = gather(local) if world > 1 else [local]
    user_map = IdMap(np.unique(np.concatenate([e[0] for e in everyone])))
    item_map = IdMap(np.unique(np.concatenate([e[1] for e in everyone])))
    scales = [e[2] for e in everyone if e[2] is not None]
    if not scales:
        raise DataError(f"{folder}: no ratings")
    scale = (min(s[0] for s in scales), max(s[1] for s in scales))
    log.info("rank %d of %d: %d of %d rows from %d row groups of %s", rank, world, len(ratings),
             sum(e[3] for e in everyone), len(mine), folder)
    return Ratings(users=user_map.indices(users), items=item_map.indices(items),
                   ratings=ratings, timestamps=stamps, user_map=user_map, item_map=item_map,
                   scale=scale, name=Path(folder).name,
                   source={"path": str(folder), "md5": None,
                           SHARD: {"rank": rank, "world": world,
                                   "rows": [int(e[3]) for e in everyone]}})


def is_parquet_folder(path) -> bool:
    """A folder of ``*.parquet`` files (and no MovieLens ``ratings.csv``)."""
    path = Path(path)
    return path.is_dir() and not (path / "ratings.csv").exists() and any(path.glob("*.parquet"))


def gather_rows(data: Ratings, gather_to_writer: Callable[[Any], list | None]) -> Ratings | None:
    """Every rank's rows of ``data`` (a shard) on rank 0, as one Ratings with the same id maps;
    None on the other ranks. ``gather_to_writer(value)`` is the runtime's collective (e.g.
    ``embedrec.training.distributed.gather_to_writer``): every rank's value on rank 0, None
    elsewhere. Rank 0 alone then holds all rows: it needs them to write the model (the movies
    each user has seen, the fallback's biases)."""
    parts = gather_to_writer((data.users, data.items, data.ratings, data.timestamps))
    if parts is None:
        return None
    stamps = [p[3] for p in parts]
    source = {k: v for k, v in data.source.items() if k != SHARD}
    return Ratings(users=np.concatenate([p[0] for p in parts]),
                   items=np.concatenate([p[1] for p in parts]),
                   ratings=np.concatenate([p[2] for p in parts]),
                   timestamps=None if any(t is None for t in stamps) else np.concatenate(stamps),
                   user_map=data.user_map, item_map=data.item_map, scale=data.scale,
                   name=data.name, item_info=data.item_info, source=source)


def is_shard(data: Ratings) -> bool:
    """Whether ``data`` holds one rank's rows only (and the other ranks hold the rest)."""
    shard = (data.source or {}).get(SHARD)
    return bool(shard) and shard["world"] > 1


def _by_file(groups: list[tuple[Path, int, int]]):
    out: dict[Path, list[int]] = {}
    for path, g, _ in groups:
        out.setdefault(path, []).append(g)
    return list(out.items())
