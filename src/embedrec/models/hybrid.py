"""The hybrid family: ids plus what is known about movies, users and the time of a rating.

The reference closes with the extensions it did not try: time stamps as features, genres as
embeddings, and user and movie embedding sizes chosen independently. This module tries them,
with implicit feedback (SVD++) besides, under two heads over the same inputs:

- user side (width ``user_factors``): the user's id vector, plus the normalised sum of the
  implicit vectors of the movies they rated in training, ``|N(u)|^-1/2 sum_j y_j``, plus a
  vector for the rating's year and one for the time since the user's first rating (bucketed);
- movie side (width ``item_factors``): the movie's id vector (for movies with training ratings),
  plus the mean of its genre vectors and a vector for its release year (5-year buckets);
- every input also brings a bias (user, movie, each genre, year buckets, time buckets);
- ``hybrid_mf``: the dot product (through a learned linear map when the widths differ) plus the
  biases, sigmoid-scaled to the rating range; ``hybrid_nn``: the two sides concatenated into an
  MLP (depth, width and dropout in its config) plus the biases, sigmoid-scaled.

Every input can be switched off (``use_genres``, ``use_year``, ``use_time``, ``use_implicit``),
and is off when the data lacks it. A movie nobody rated in training is scored from its genres
and year; one with neither gets NaN, which sends it to the fallback. Time at prediction: the
rating's own time when given, else the latest time in the training rows. The numpy scorer
stores composed movie vectors and biases, user vectors, implicit sums and time tables, so a
saved model scores, recommends and folds in new users without torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from embedrec.errors import ConfigError
from embedrec.models.registry import register
from embedrec.models.scorer import Scorer
from embedrec.models.solvers import gauss_newton, ridge, sigmoid
from embedrec.models.spec import Capabilities, ModelSpec, Shape, UserParams

# buckets: row 0 is "unknown" in every table
RELEASE_FROM, RELEASE_WIDTH, N_RELEASE = 1920, 5, 22  # <=1924, 1925-29, ..., >=2020
RATING_FROM, N_RATING_YEAR = 1995, 31  # <=1995, 1996, ..., >=2024
N_TENURE = 16  # days since the first rating: 0, 1-2, 3-6, 7-14, ... (1 + log2), >= 2^14 - 1
SECONDS_PER_DAY = 86_400


def release_bucket(year: np.ndarray) -> np.ndarray:
    year = np.asarray(year, dtype=np.int64)
    b = 1 + np.clip((year - RELEASE_FROM) // RELEASE_WIDTH, 0, N_RELEASE - 2)
    return np.where(year > 0, b, 0)


def rating_year_bucket(year: np.ndarray) -> np.ndarray:
    return 1 + np.clip(np.asarray(year, dtype=np.int64) - RATING_FROM, 0, N_RATING_YEAR - 2)


def tenure_bucket(days: np.ndarray) -> np.ndarray:
    """1 + floor(log2(1 + days)), capped; exact in integers (frexp)."""
    exponent = np.frexp(1.0 + np.maximum(np.asarray(days, dtype=np.float64), 0.0))[1]
    return 1 + np.minimum(exponent - 1, N_TENURE - 2).astype(np.int64)


def calendar_year(timestamps: np.ndarray) -> np.ndarray:
    """UTC calendar year of seconds since the epoch."""
    ts = np.asarray(timestamps, dtype=np.int64)
    return ts.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def time_buckets(timestamps: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rating-year bucket, tenure bucket) of ratings at ``timestamps`` by users whose first
    training rating was at ``first`` (-1: none, counted as day 0)."""
    ts = np.asarray(timestamps, dtype=np.int64)
    first = np.asarray(first, dtype=np.int64)
    days = np.where(first >= 0, np.maximum(ts - first, 0) // SECONDS_PER_DAY, 0)
    return rating_year_bucket(calendar_year(ts)), tenure_bucket(days)


@dataclass(frozen=True)
class HybridConfig:
    n_factors: int = 64  # width of both sides, unless user_factors / item_factors say otherwise
    user_factors: int = 0  # width of the user side (0: n_factors)
    item_factors: int = 0  # width of the movie side (0: n_factors)
    use_genres: bool = True  # mean of genre vectors (and biases) on the movie side
    use_year: bool = True  # release-year bucket vector and bias on the movie side
    # off by default: on validation rows of ml-latest-small they did not lower the RMSE
    use_time: bool = False  # rating-year and days-since-first-rating buckets on the user side
    use_implicit: bool = False  # SVD++ sum of implicit vectors of the user's rated movies
    implicit_sample: int = 32  # rated movies drawn per user and training step (0: all)

    def __post_init__(self) -> None:
        for key in ("n_factors",):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"hybrid: {key} must be a whole number >= 1, got {value!r}")
        for key in ("user_factors", "item_factors", "implicit_sample"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"hybrid: {key} must be a whole number >= 0, got {value!r}")
        for key in ("use_genres", "use_year", "use_time", "use_implicit"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"hybrid: {key} must be true or false")

    @property
    def du(self) -> int:
        return self.user_factors or self.n_factors

    @property
    def di(self) -> int:
        return self.item_factors or self.n_factors


@dataclass(frozen=True)
class HybridNNConfig(HybridConfig):
    hidden: tuple[int, ...] = (64,)  # widths of the hidden layers (depth = how many)
    dropout: float = 0.1  # dropout after each hidden layer

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.hidden or not all(isinstance(h, int) and h >= 1 for h in self.hidden):
            raise ConfigError(f"hybrid_nn: hidden must be one or more widths >= 1, got "
                              f"{self.hidden!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError("hybrid_nn: dropout must be in [0, 1)")


# ------------------------------------------------------------------------- torch --------------
@functools.cache
def module_class():
    """The torch module (defined on first use: recommending never imports torch)."""
    import torch
    from torch import nn

    from embedrec.models.base import EmbeddingModel

    def zeros(n: int, width: int) -> nn.Embedding:
        table = nn.Embedding(n, width)
        nn.init.zeros_(table.weight)
        return table

    class HybridModel(EmbeddingModel):
        """Every table carries a vector and, in its last column, a bias: one look-up (or one
        product, and one sparse optimizer step) per input instead of two."""

        user_tables = ("user_factors",)
        item_tables = ("item_factors",)

        def __init__(self, shape: Shape, config: HybridConfig, head: str):
            super().__init__()
            self.config, self.head_kind = config, head
            du, di = config.du, config.di
            self.user_factors = nn.Embedding(shape.n_users, du + 1)
            self.item_factors = nn.Embedding(shape.n_items, di + 1)
            if config.use_implicit:
                self.implicit_factors = nn.Embedding(shape.n_items, du)
            if config.use_time:  # rating-year buckets, then tenure buckets
                self.time_table = nn.Embedding(N_RATING_YEAR + N_TENURE, du + 1)
            self.item_feature_table = None  # genres + release years, sized by the data
            if head == "mf":
                self.user_map = nn.Linear(du, di, bias=False) if du != di else None
                self.offset = nn.Parameter(torch.zeros(1))
            else:
                widths = (du + di,) + tuple(config.hidden)
                self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
                self.layers.append(nn.Linear(widths[-1], 1))
            self.low, self.high = shape.rating_range
            self.generator = torch.Generator().manual_seed(0)
            # what the training rows tell (attach_inputs); until then: every item known
            for name, value in (("item_known", torch.ones(shape.n_items)),
                                ("item_has_features", torch.zeros(shape.n_items, dtype=torch.bool)),
                                ("item_feature_weights", torch.zeros(shape.n_items, 0)),
                                ("user_first_time", torch.full((shape.n_users,), -1, dtype=torch.long)),
                                ("last_time", torch.full((1,), -1, dtype=torch.long)),
                                ("last_year_bucket", torch.zeros(1, dtype=torch.long)),
                                ("history_indptr", torch.zeros(shape.n_users + 1, dtype=torch.long)),
                                ("history_items", torch.zeros(0, dtype=torch.long))):
                self.register_buffer(name, value, persistent=False)

        # ---- set-up ---------------------------------------------------------------------
        def reseed(self, seed: int) -> None:
            self.generator = torch.Generator().manual_seed(seed)

        def attach_inputs(self, lookups):
            """Keep the training rows' tables; feature tables start at zero."""
            cfg, notes = self.config, []
            device = lookups["item_counts"].device if lookups else self.item_known.device
            n_items = len(self.item_known)
            if "item_counts" in lookups:
                self.item_known = (lookups["item_counts"] > 0).float()
            blocks, has = [], torch.zeros(n_items, dtype=torch.bool, device=device)
            if cfg.use_genres:
                genres = lookups.get("item_genres")
                if genres is None or not bool((genres >= 0).any()):
                    notes.append("genres: off, the data lists none")
                else:  # each movie's genres weighted 1 / (its number of genres)
                    mask = genres >= 0
                    weights = torch.zeros(n_items, int(genres.max()) + 1, device=device)
                    rows = torch.arange(n_items, device=device)[:, None].expand_as(genres)
                    weights[rows[mask], genres[mask]] = 1.0
                    blocks.append(weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0))
                    has |= mask.any(dim=1)
            if cfg.use_year:
                years = lookups.get("item_year")
                bucket = torch.zeros(n_items, dtype=torch.long, device=device)
                if years is None or not bool((years > 0).any()):
                    notes.append("release year: off, no title carries a year")
                else:
                    bucket = torch.from_numpy(release_bucket(years.cpu().numpy())).to(device)
                    has |= bucket > 0
                blocks.append(torch.nn.functional.one_hot(bucket, N_RELEASE).float())
            if blocks:
                self.item_feature_weights = torch.cat(blocks, dim=1)
                self.item_feature_table = nn.Embedding(self.item_feature_weights.shape[1],
                                                       cfg.di + 1).to(device)
                nn.init.zeros_(self.item_feature_table.weight)
            self.item_has_features = has
            if cfg.use_time:
                nn.init.zeros_(self.time_table.weight)
                if "last_time" in lookups and int(lookups["last_time"][0]) >= 0:
                    self.user_first_time = lookups["user_first_time"]
                    self.last_time = lookups["last_time"]
                    year = rating_year_bucket(calendar_year(self.last_time.cpu().numpy()))
                    self.last_year_bucket = torch.from_numpy(year).to(device)
                else:
                    notes.append("rating time: off, the data has no timestamps")
            if cfg.use_implicit:
                if "history_indptr" in lookups:
                    self.history_indptr = lookups["history_indptr"]
                    self.history_items = lookups["history_items"]
                else:
                    notes.append("implicit feedback: off, no training history")
            return notes

        def parameter_groups(self):
            tables, dense = super().parameter_groups()
            if self.config.use_implicit:  # L2 and lazy updates as for the id tables
                tables.append(self.implicit_factors.weight)
                dense = [p for p in dense if p is not self.implicit_factors.weight]
            return tables, dense

        @property
        def time_on(self) -> bool:
            return self.config.use_time and int(self.last_time[0]) >= 0

        # ---- the two sides --------------------------------------------------------------
        def item_side(self, items, rows):
            known = self.item_known[items]
            v, b = rows["item_factors"][:, :-1] * known[:, None], rows["item_factors"][:, -1] * known
            if self.item_feature_table is not None:
                f = self.item_feature_weights[items] @ self.item_feature_table.weight
                v, b = v + f[:, :-1], b + f[:, -1]
            return v, b

        def user_side(self, users, rows, batch):
            u, b = rows["user_factors"][:, :-1], rows["user_factors"][:, -1]
            if self.time_on:
                if "rating_year" in batch:
                    year = 1 + (batch["rating_year"] - RATING_FROM).clamp(0, N_RATING_YEAR - 2)
                    days = batch["days_since_first"]
                else:  # the latest training time
                    year = self.last_year_bucket.expand(len(users))
                    first = self.user_first_time[users]
                    days = torch.where(first >= 0, (self.last_time - first).clamp(min=0)
                                       // SECONDS_PER_DAY, torch.zeros_like(first))
                tenure = 1 + (torch.frexp(1.0 + days.double())[1] - 1).clamp(max=N_TENURE - 2).long()
                t = self.time_table(torch.stack([year, N_RATING_YEAR + tenure], dim=1)).sum(dim=1)
                u, b = u + t[:, :-1], b + t[:, -1]
            if self.config.use_implicit and len(self.history_items):
                u = u + self.implicit(users)
            return u, b

        def implicit(self, users):
            """|N(u)|^-1/2 sum of implicit vectors over each user's training movies; in
            training, at most ``implicit_sample`` of them drawn at random (an unbiased
            estimate of the sum)."""
            uniq, inverse = torch.unique(users, return_inverse=True)
            starts = self.history_indptr[uniq]
            lengths = self.history_indptr[uniq + 1] - starts
            n, s = len(uniq), self.config.implicit_sample
            if self.training and s > 0:  # s positions per user, weights 0 where unused
                small = lengths <= s
                drawn = (torch.rand((n, s), generator=self.generator).to(users.device)
                         * lengths[:, None]).long()
                position = torch.where(small[:, None], torch.arange(s, device=users.device)
                                       .expand(n, s), drawn)
                used = position < lengths[:, None]
                weight = torch.where(small, lengths.clamp(min=1).float().rsqrt(),
                                     lengths.float().sqrt() / s)[:, None] * used
                source = (starts[:, None] + torch.minimum(position, lengths[:, None] - 1)).clamp(
                    0, len(self.history_items) - 1)  # unused places: any valid index
                y = self.rows(("implicit_factors",),
                              self.history_items[source.reshape(-1)])["implicit_factors"]
                sums = (y.view(n, s, -1) * weight[..., None]).sum(dim=1)
                return sums[inverse]
            segment = torch.repeat_interleave(torch.arange(n, device=users.device), lengths)
            offsets = torch.cumsum(lengths, 0) - lengths
            source = (torch.repeat_interleave(starts - offsets, lengths)
                      + torch.arange(len(segment), device=users.device))
            w = lengths.clamp(min=1).float().rsqrt()[segment]
            y = self.rows(("implicit_factors",), self.history_items[source])["implicit_factors"]
            sums = torch.zeros(n, y.shape[1], dtype=y.dtype, device=y.device)
            sums = sums.index_add(0, segment, y * w[:, None])
            return sums[inverse]

        # ---- heads ----------------------------------------------------------------------
        def dropout(self, x):
            p = getattr(self.config, "dropout", 0.0)
            if not self.training or p == 0:
                return x
            keep = torch.rand(x.shape, generator=self.generator).to(x.device) >= p
            return x * keep / (1.0 - p)

        def logits(self, u, v, bias):
            if self.head_kind == "mf":
                if self.user_map is not None:
                    u = self.user_map(u)
                return (u * v).sum(dim=-1) + bias + self.offset
            x = torch.cat([u, v], dim=-1)
            for layer in self.layers[:-1]:
                x = self.dropout(torch.relu(layer(x)))
            return self.layers[-1](x)[:, 0] + bias

        @property
        def broadcasts(self) -> bool:
            """The MF head scores a grid in one product; the network's head does not."""
            return self.head_kind == "mf"

        def score_grid(self, batch, items):
            """Every row of ``batch`` against every one of ``items`` (the MF head): a user's
            side from the row (its time, when the batch has it, else the latest), one product
            with the movies' sides."""
            users = batch["users"]
            u, bu = self.user_side(users, self.rows(self.user_tables, users), batch)
            v, bi = self.item_side(items, self.rows(self.item_tables, items))
            if self.user_map is not None:
                u = self.user_map(u)
            logits = u @ v.T + bu[:, None] + bi[None, :] + self.offset
            return self.rating_link(logits, self.low, self.high)

        def forward(self, batch):
            users, items = batch["users"], batch["items"]
            user_rows = self.rows(self.user_tables, users)
            item_rows = self.rows(self.item_tables, items)
            u, bu = self.user_side(users, user_rows, batch)
            v, bi = self.item_side(items, item_rows)
            return self.rating_link(self.logits(u, v, bu + bi), self.low, self.high)

        # ---- what a model file stores ---------------------------------------------------
        @torch.no_grad()
        def export(self) -> dict[str, np.ndarray]:
            was = self.training
            self.eval()
            try:
                n_users, n_items = self.user_factors.num_embeddings, self.item_factors.num_embeddings
                items = torch.arange(n_items)
                v, b = self.item_side(items, {"item_factors": self.item_factors.weight})
                users = self.user_factors.weight
                out = {"user_factors": users[:, :-1], "user_bias": users[:, -1],
                       "item_vectors": v, "item_bias": b,
                       "item_scorable": ((self.item_known > 0) | self.item_has_features).float()}
                cfg = self.config
                if cfg.use_implicit:
                    out["implicit_factors"] = self.implicit_factors.weight
                    out["user_implicit"] = (self.implicit(torch.arange(n_users))
                                            if len(self.history_items)
                                            else torch.zeros(n_users, cfg.du))
                if cfg.use_time:
                    out |= {"time_table": self.time_table.weight,
                            "user_first_time": self.user_first_time, "last_time": self.last_time}
                if self.head_kind == "mf":
                    out["offset"] = self.offset
                    if self.user_map is not None:
                        out["user_map"] = self.user_map.weight
                else:
                    for j, layer in enumerate(self.layers):
                        out[f"layers.{j}.weight"] = layer.weight
                        out[f"layers.{j}.bias"] = layer.bias
                return {k: t.detach().cpu().numpy().copy() for k, t in out.items()}
            finally:
                self.train(was)

    return HybridModel


# ------------------------------------------------------------------------- numpy --------------
class HybridScorer(Scorer):
    """Scores from the stored arrays. Ranking scores are logits, as for ``biased``."""

    def __init__(self, config: HybridConfig, arrays: dict[str, np.ndarray], shape: Shape,
                 head: str):
        self.config, self.shape, self.head = config, shape, head
        self.low, self.high = shape.rating_range
        self.weights = {k: (np.ascontiguousarray(v, dtype=np.float32) if v.dtype.kind == "f"
                            else np.ascontiguousarray(v, dtype=np.int64)) for k, v in arrays.items()}
        a = self.weights
        self.user_factors, self.user_b = a["user_factors"], a["user_bias"]
        self.item_v, self.item_b = a["item_vectors"], a["item_bias"]
        self.scorable = a["item_scorable"] > 0
        self.user_implicit = a.get("user_implicit")
        self.time_on = config.use_time and int(a["last_time"][0]) >= 0
        if head == "mf":
            self.offset = float(a["offset"][0])
            self.user_map = a.get("user_map")
        else:
            n = len(config.hidden) + 1
            self.layers = [(a[f"layers.{j}.weight"], a[f"layers.{j}.bias"]) for j in range(n)]
            w1, b1 = self.layers[0]
            self.w1_user = w1[:, :config.du]
            self.item_hidden = self.item_v @ w1[:, config.du:].T + b1  # (n_items, hidden)

    # ---- users at a time -----------------------------------------------------------------
    @property
    def default_time(self) -> int | None:
        """The time predictions are made for when none is given: the latest training rating."""
        return int(self.weights["last_time"][0]) if self.time_on else None

    def time_terms(self, buckets: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, biases) of rating-year and tenure buckets."""
        table, (year, tenure) = self.weights["time_table"], buckets
        t = table[year] + table[N_RATING_YEAR + tenure]
        return t[..., :-1], t[..., -1]

    def user_side(self, users: np.ndarray, timestamps=None) -> tuple[np.ndarray, np.ndarray]:
        """(user vectors, user biases) at ``timestamps`` (default: the latest training time)."""
        users = np.asarray(users, dtype=np.int64)
        u = self.user_factors[users].astype(np.float32)
        b = self.user_b[users].astype(np.float32)
        if self.user_implicit is not None:
            u = u + self.user_implicit[users]
        if self.time_on:
            ts = np.broadcast_to(self.default_time if timestamps is None
                                 else np.asarray(timestamps, dtype=np.int64), users.shape)
            vec, bias = self.time_terms(time_buckets(ts, self.weights["user_first_time"][users]))
            u, b = u + vec, b + bias
        return u, b

    def new_user_side(self, items: np.ndarray) -> tuple[np.ndarray, float]:
        """What a new user who rated ``items`` has besides their own vector and bias: the
        implicit sum and the time terms (on their first day, at the default time)."""
        c = np.zeros(self.config.du, dtype=np.float64)
        bias = 0.0
        if self.user_implicit is not None and len(items):
            c += self.weights["implicit_factors"][items].sum(axis=0) / np.sqrt(len(items))
        if self.time_on:
            t = np.array([self.default_time])
            vec, b = self.time_terms(time_buckets(t, t))
            c, bias = c + vec[0], bias + float(b[0])
        return c, bias

    # ---- heads ---------------------------------------------------------------------------
    def mapped(self, u: np.ndarray) -> np.ndarray:
        return u if self.user_map is None else u @ self.user_map.T

    def mlp_tail(self, h: np.ndarray) -> np.ndarray:
        """The layers after the first, on first-layer pre-activations ``h`` (..., hidden)."""
        x = np.maximum(h, 0.0)
        for w, b in self.layers[1:-1]:
            x = np.maximum(x @ w.T + b, 0.0)
        w, b = self.layers[-1]
        return x @ w[0] + b[0]

    def logits(self, users, items, timestamps=None) -> np.ndarray:
        u, bu = self.user_side(users, timestamps)
        items = np.asarray(items, dtype=np.int64)
        if self.head == "mf":
            x = np.einsum("ij,ij->i", self.mapped(u), self.item_v[items]) + self.offset
        else:
            x = self.mlp_tail(u @ self.w1_user.T + self.item_hidden[items])
        return x + bu + self.item_b[items]

    def predict(self, users, items, timestamps=None):
        items = np.asarray(items, dtype=np.int64)
        out = self.to_rating(self.logits(users, items, timestamps))
        return np.where(self.scorable[items], out, np.nan).astype(np.float32)

    def rank_scores(self, users):
        u, bu = self.user_side(users)
        out = np.empty((len(u), self.n_items), dtype=np.float32)
        if self.head == "mf":
            out[:] = self.mapped(u) @ self.item_v.T + self.offset
        else:
            hu = u @ self.w1_user.T
            for start in range(0, len(u), 16):
                out[start:start + 16] = self.mlp_tail(hu[start:start + 16, None, :]
                                                      + self.item_hidden[None, :, :])
        out += bu[:, None] + self.item_b[None, :]
        out[:, ~self.scorable] = np.nan
        return out

    def score_user(self, params: UserParams):
        v = np.asarray(params.vector, dtype=np.float32)
        if self.head == "mf":
            x = self.item_v @ v + self.offset
        else:
            x = self.mlp_tail(self.item_hidden + self.w1_user @ v)
        out = (x + params.bias + self.item_b).astype(np.float32)
        out[~self.scorable] = np.nan
        return out

    def to_rating(self, scores):
        return (sigmoid(np.asarray(scores)) * (self.high - self.low) + self.low).astype(np.float32)

    def from_rating(self, ratings):
        frac = np.clip((np.asarray(ratings, dtype=np.float64) - self.low) / (self.high - self.low),
                       1e-6, 1 - 1e-6)
        return np.log(frac / (1 - frac)).astype(np.float32)

    def item_vectors(self) -> np.ndarray:
        return self.item_v

    def scorable_items(self) -> np.ndarray:
        """Movies with training ratings, and those without whose genres or year it knows."""
        return self.scorable

    def item_biases(self):
        return self.item_b.astype(np.float64), "logit units"

    def arrays(self) -> dict[str, np.ndarray]:
        return self.weights

    @property
    def n_items(self) -> int:
        return self.item_v.shape[0]


# ------------------------------------------------------------------------- specs --------------
class HybridSpec(ModelSpec):
    head: str = "mf"
    capabilities = Capabilities(cold_items_from_features=True, item_vectors=True,
                                uses=frozenset({"item_features", "timestamps", "history"}))

    def search_space(self, trial, train):
        """The shared knobs, with the user and the movie width drawn independently, and each
        optional input switched on or off."""
        model_values, train_values = super().search_space(trial, train)
        model_values |= {key: trial.suggest_categorical(key, [True, False])
                         for key in ("use_genres", "use_year", "use_time", "use_implicit")}
        return model_values, train_values

    def width_space(self, trial, widths: list[int]) -> dict:
        """The user and the movie width, drawn independently (``n_factors`` then does
        nothing, so it is not drawn)."""
        return {"user_factors": trial.suggest_categorical("user_factors", widths),
                "item_factors": trial.suggest_categorical("item_factors", widths)}

    def search_start(self, config) -> dict:
        return {"user_factors": config.du, "item_factors": config.di}

    def build(self, config: HybridConfig, shape: Shape):
        return module_class()(shape, config, self.head)

    def module_arrays(self, module) -> dict[str, np.ndarray]:
        return module.export()

    def expected_shapes(self, config: HybridConfig, shape: Shape) -> dict[str, tuple[int, ...]]:
        nu, ni, du, di = shape.n_users, shape.n_items, config.du, config.di
        out = {"user_factors": (nu, du), "user_bias": (nu,), "item_vectors": (ni, di),
               "item_bias": (ni,), "item_scorable": (ni,)}
        if config.use_implicit:
            out |= {"implicit_factors": (ni, du), "user_implicit": (nu, du)}
        if config.use_time:
            out |= {"time_table": (N_RATING_YEAR + N_TENURE, du + 1),
                    "user_first_time": (nu,), "last_time": (1,)}
        if self.head == "mf":
            out["offset"] = (1,)
            if du != di:
                out["user_map"] = (di, du)
        else:
            widths = (du + di,) + tuple(config.hidden) + (1,)
            for j, (a, b) in enumerate(zip(widths, widths[1:])):
                out |= {f"layers.{j}.weight": (b, a), f"layers.{j}.bias": (b,)}
        return out

    def scorer(self, config, arrays, shape):
        return HybridScorer(config, arrays, shape, self.head)

    def fold_in(self, scorer: HybridScorer, items, ratings, *, base_bias, l2, iterations):
        """The rated movies are the implicit input; the user's own vector and bias are fitted
        by Gauss-Newton steps through the sigmoid (and the network), item parameters fixed."""
        items = np.asarray(items, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        c, time_bias = scorer.new_user_side(items)
        const = scorer.item_b[items].astype(np.float64) + time_bias
        theta = self.solve(scorer, items, r, c, const, l2, iterations)
        p, b = theta[:-1], float(theta[-1])
        u = p + c
        vector = scorer.mapped(u[None, :].astype(np.float32))[0] if self.head == "mf" else u
        return UserParams(vector=np.asarray(vector, dtype=np.float32), bias=b + time_bias,
                          base_bias=base_bias)

    def solve(self, scorer, items, r, c, const, l2, iterations) -> np.ndarray:
        raise NotImplementedError


class HybridMFSpec(HybridSpec):
    name = "hybrid_mf"
    summary = ("ids, genres, release year, rating time and implicit feedback; dot product plus "
               "biases, sigmoid-scaled")
    Config = HybridConfig
    head = "mf"
    colour = "#9467bd"

    def kernel(self, module, loss):
        """The fused kernel for ids, genres and release year (``embedrec.kernels.hybrid``);
        rating time, implicit feedback and unequal widths stay with torch's steps."""
        cfg = module.config
        if loss != "mse" or cfg.use_time or cfg.use_implicit or module.user_map is not None:
            return None
        from embedrec.kernels.hybrid import HybridKernel
        from embedrec.models.base import weights

        def arrays() -> dict:  # read when training starts: the feature tables exist by then
            table = module.item_feature_table
            return {"user": weights(module.user_factors), "item": weights(module.item_factors),
                    "features": None if table is None else weights(table),
                    "offset": weights(module.offset), "known": module.item_known.numpy(),
                    "feature_weights": module.item_feature_weights.numpy()}

        return HybridKernel(arrays, rating_range=(module.low, module.high))

    def solve(self, scorer, items, r, c, const, l2, iterations):
        lo, hi = scorer.low, scorer.high
        v = scorer.item_v[items].astype(np.float64)
        m = np.eye(len(c)) if scorer.user_map is None else scorer.user_map.astype(np.float64)
        q = v @ m  # d logit / d p
        base = const + q @ c + scorer.offset
        x = np.hstack([q, np.ones((len(items), 1))])
        frac = np.clip((r - lo) / (hi - lo), 0.05, 0.95)
        theta = ridge(x, np.log(frac / (1 - frac)) - base, l2)

        def residual_jacobian(t):
            s = sigmoid(x @ t + base)
            return r - (lo + (hi - lo) * s), ((hi - lo) * s * (1 - s))[:, None] * x

        return gauss_newton(theta, residual_jacobian, l2, iterations)


class HybridNNSpec(HybridSpec):
    name = "hybrid_nn"
    summary = ("ids, genres, release year, rating time and implicit feedback; concatenated "
               "into an MLP plus biases, sigmoid-scaled")
    Config = HybridNNConfig
    head = "nn"
    colour = "#e377c2"

    def search_space(self, trial, train):
        """The hybrid's knobs, plus the network: 1 to 3 hidden layers, each as wide as the
        first or narrower by halves, and the dropout after each."""
        model_values, train_values = super().search_space(trial, train)
        depth = trial.suggest_int("depth", 1, 3)
        width = trial.suggest_categorical("width", [32, 64, 128, 256])
        model_values |= {
            "hidden": tuple(max(width >> j, 8) for j in range(depth)),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }
        return model_values, train_values

    def search_start(self, config) -> dict:
        return super().search_start(config) | {"depth": len(config.hidden),
                                               "width": config.hidden[0]}

    def solve(self, scorer, items, r, c, const, l2, iterations):
        lo, hi = scorer.low, scorer.high
        layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in scorer.layers]
        w1u = scorer.w1_user.astype(np.float64)
        item_hidden = scorer.item_hidden[items].astype(np.float64)

        def residual_jacobian(t):
            p, b = t[:-1], t[-1]
            pre = [item_hidden + w1u @ (p + c)]
            for w, bias in layers[1:-1]:
                pre.append(np.maximum(pre[-1], 0.0) @ w.T + bias)
            w_out, b_out = layers[-1]
            out = np.maximum(pre[-1], 0.0) @ w_out[0] + b_out[0]
            s = sigmoid(out + b + const)
            grad = np.broadcast_to(w_out[0], pre[-1].shape) * (pre[-1] > 0)  # d out / d pre_L
            for (w, _), h in zip(reversed(layers[1:-1]), reversed(pre[:-1])):
                grad = (grad @ w) * (h > 0)
            jac = np.hstack([grad @ w1u, np.ones((len(items), 1))])
            return r - (lo + (hi - lo) * s), ((hi - lo) * s * (1 - s))[:, None] * jac

        start = np.concatenate([scorer.user_factors.mean(axis=0).astype(np.float64), [0.0]])
        return gauss_newton(start, residual_jacobian, l2, iterations)


register(HybridMFSpec())
register(HybridNNSpec())
