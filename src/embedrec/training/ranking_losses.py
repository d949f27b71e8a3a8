"""Ranking objectives for the embedding models (issue 14), next to ``bpr`` in ``LOSSES``.

A ranking objective trains on *positives* only: the training ratings at or above
``TrainConfig.relevant``, or every rating with ``TrainConfig.implicit`` (ratings as implicit
feedback). Its scores rank; they are not ratings (``embedrec.models.outputs``).

- ``bpr_pop``: BPR, -log sigmoid(s(u, i) - s(u, j)), with the negative j drawn with probability
  proportional to popularity^0.75 (its number of positives) instead of uniformly;
- ``softmax``: sampled softmax. For every positive (u, i), ``n_negatives`` items shared by the
  batch are drawn from Q (popularity^0.75); with the logQ correction each candidate's logit is
  s(u, j) - log(S Q(j)) (the positive's too), sampled items equal to the positive are masked,
  and the loss is the cross-entropy of the positive among them.
- ``full_softmax``: the softmax over the whole catalogue, -log softmax(s(u, .))_i averaged over
  the batch's positives: Mult-VAE's multinomial likelihood (Liang et al. 2018) on a factor
  model. Its batches are users (``batch_size`` of them, each with all of its positives), so a
  user's scores over the catalogue are computed once per epoch, whatever its number of
  positives; it trains models that score a user against every movie in one product
  (``broadcasts``: dot, biased, hybrid_mf), from ids and what the model keeps of the training
  rows (genres, release years, histories, the latest rating time).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError, TrainingError
from embedrec.models.base import predict_batches
from embedrec.models.spec import Shape
from embedrec.training.batches import UserRows, csr_rows, entry_rows

POPULARITY_POWER = 0.75


def select_positives(data: Ratings | None, relevant: float, implicit: bool) -> Ratings | None:
    """The rows a ranking loss learns from: ratings >= ``relevant`` (every row if ``implicit``)."""
    if data is None or implicit:
        return data
    return data.take(np.flatnonzero(data.ratings >= relevant))


def popularity(train: Ratings, power: float = POPULARITY_POWER) -> np.ndarray:
    """Sampling probabilities proportional to (count + 1)^power over every item."""
    weights = (np.bincount(train.items, minlength=train.n_items) + 1.0) ** power
    return weights / weights.sum()


def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias table of a distribution: (accept, alias). Item j drawn uniformly is kept
    with probability ``accept[j]``, else replaced by ``alias[j]``; every item then comes up
    with exactly its probability (up to float64 rounding)."""
    n = len(probs)
    scaled = np.asarray(probs, dtype=np.float64) * (n / np.sum(probs))
    accept = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [j for j in range(n) if scaled[j] < 1.0]
    large = [j for j in range(n) if scaled[j] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    for j in small:  # only rounding leaves one here: its share is (all but) 1
        accept[j] = 1.0
    return accept, alias


class PopularityNegatives:
    """Items drawn with probability ``probs`` (``per_row``: one per row; else ``shared`` for the
    whole batch), by an alias table: a uniform item and a uniform number per draw, several
    times faster than ``torch.multinomial`` for the tens of thousands an epoch draws."""

    def __init__(self, probs: np.ndarray, *, shared: int | None = None):
        self.probs = torch.as_tensor(probs, dtype=torch.float64)
        accept, alias = alias_table(self.probs.numpy())
        self.accept, self.alias = torch.from_numpy(accept), torch.from_numpy(alias)
        self.shared = shared
        self.per_row = shared is None

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        j = torch.randint(0, len(self.accept), (n,), generator=generator)
        keep = torch.rand(n, dtype=torch.float64, generator=generator) < self.accept[j]
        return torch.where(keep, j, self.alias[j])

    def log_probs(self) -> np.ndarray:
        """log Q(j) of every item (float64): sampled softmax's logQ correction."""
        return np.log(self.probs.numpy())

    def __call__(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        return self.draw(self.shared or len(batch["users"]), generator).to(batch["users"].device)


class RankingObjective:
    """Positives selection shared by the ranking losses (the trainer calls ``prepare``)."""

    ranks = True
    needs = ()

    def prepare(self, train: Ratings, valid: Ratings | None, config):
        train = select_positives(train, config.relevant, config.implicit)
        if len(train) == 0:
            raise TrainingError(f"the {self.name} loss found no positives (no training rating >= "
                                f"{config.relevant:g}); lower --relevant or use --implicit")
        self.setup(train)
        valid = select_positives(valid, config.relevant, config.implicit)
        return train, (valid if valid is not None and len(valid) else None)

    def setup(self, train: Ratings) -> None:
        pass


class Pairwise(RankingObjective):
    """BPR's loss and validation, whatever the negative sampler (``self.sampler``)."""

    metrics = ("valid_bpr",)
    _validation_negatives = None

    def __call__(self, model, batch: dict) -> torch.Tensor:
        pos = model(batch)
        neg = model({**batch, "items": batch["negatives"]})
        return -F.logsigmoid(pos - neg).mean()

    def validate(self, model, batch: dict) -> dict[str, float]:
        if (self._validation_negatives is None
                or len(self._validation_negatives) != len(batch["users"])):
            # the same negatives at every epoch
            self._validation_negatives = self.sampler(batch, torch.Generator().manual_seed(0))
        pos = predict_batches(model, batch)
        neg = predict_batches(model, {**batch, "items": self._validation_negatives})
        return {"valid_bpr": float(-F.logsigmoid(torch.from_numpy(pos - neg).double()).mean())}


class BPRPop(Pairwise):
    name = "bpr_pop"
    metrics = ("valid_bpr",)

    def __init__(self, shape: Shape):
        self.shape = shape
        self.sampler = None
        self._validation_negatives = None

    def setup(self, train: Ratings) -> None:
        self.sampler = PopularityNegatives(popularity(train))



def _expand(batch: dict, items: torch.Tensor) -> dict:
    """Every (row, item) pair of a batch and a shared item list, as one flat batch."""
    if "history_items" in batch:
        raise ConfigError("the softmax loss does not support models that read user histories")
    n, s = len(batch["users"]), len(items)
    out = {k: v.repeat_interleave(s, dim=0) for k, v in batch.items()
           if k not in ("items", "negatives") and torch.is_tensor(v) and len(v) == n}
    out["items"] = items.repeat(n)
    return out


def score_grid(model, batch: dict, items: torch.Tensor) -> torch.Tensor:
    """(len(batch), len(items)) scores: by broadcasting where the model can (``broadcasts``),
    else through one flat batch of every pair."""
    if getattr(model, "broadcasts", False):
        return model.score_grid(batch, items)
    return model(_expand(batch, items)).reshape(len(batch["users"]), len(items))


def sampled_softmax(pos: torch.Tensor, neg: torch.Tensor, pos_items: torch.Tensor,
                    neg_items: torch.Tensor, log_q: torch.Tensor, n_sampled: int) -> torch.Tensor:
    """Mean cross-entropy of the positive among [positive, negatives] with the logQ
    correction: pos (B,), neg (B, S) scores; log_q: log sampling probability of every item."""
    shift = float(np.log(n_sampled))
    logits = torch.cat([(pos - log_q[pos_items] - shift)[:, None],
                        neg - (log_q[neg_items] + shift)[None, :]], dim=1)
    hit = pos_items[:, None] == neg_items[None, :]
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(hit, float("-inf"))], dim=1)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


class SampledSoftmax(RankingObjective):
    name = "softmax"
    metrics = ("valid_softmax",)
    n_negatives = 128

    def __init__(self, shape: Shape):
        self.shape = shape
        self.sampler = None
        self.log_q = None
        self._validation_negatives = None

    def setup(self, train: Ratings) -> None:
        self.sampler = PopularityNegatives(popularity(train), shared=self.n_negatives)
        self.log_q = torch.from_numpy(self.sampler.log_probs()).float()

    def __call__(self, model, batch: dict) -> torch.Tensor:
        negatives = batch["negatives"]
        pos = model(batch)
        neg = score_grid(model, batch, negatives)
        log_q = self.log_q.to(pos.device)
        return sampled_softmax(pos, neg, batch["items"], negatives, log_q, self.n_negatives)

    def validate(self, model, batch: dict) -> dict[str, float]:
        if self._validation_negatives is None:
            # the same negatives at every epoch
            self._validation_negatives = self.sampler(batch, torch.Generator().manual_seed(0))
        negatives = self._validation_negatives
        total, n = 0.0, len(batch["users"])
        for start in range(0, n, 2048):
            part = {k: v[start:start + 2048] for k, v in batch.items()}
            pos = torch.from_numpy(predict_batches(model, part))
            was_training = model.training
            model.eval()
            with torch.no_grad():
                neg = score_grid(model, part, negatives).float().cpu()
            model.train(was_training)
            loss = sampled_softmax(pos, neg, part["items"].cpu(), negatives.cpu(), self.log_q,
                                   self.n_negatives)
            total += float(loss) * len(pos)
        return {"valid_softmax": total / n}


class FullSoftmax(RankingObjective):
    name = "full_softmax"
    metrics = ("valid_full_softmax",)
    sampler = None
    max_gb = 4.0  # a step's (users x movies) grids: scores, log-probabilities, their gradients

    def prepare(self, train: Ratings, valid: Ratings | None, config):
        users = min(config.batch_size, train.n_users)
        need = 4 * 4.0 * users * self.shape.n_items
        if need > self.max_gb * 1e9:
            raise ConfigError(f"the {self.name} loss at --batch-size {config.batch_size} scores "
                              f"{users:,} users x {self.shape.n_items:,} movies a step: "
                              f"{need / 1e9:.1f} GB, more than {self.max_gb:g} GB; lower "
                              "--batch-size (users per step)")
        return super().prepare(train, valid, config)

    def __init__(self, shape: Shape):
        self.shape = shape
        self._train = None  # the training positives (UserRows): masked when validating

    def rows(self, train: Ratings, *, needs: frozenset[str], uses: frozenset[str],
             device) -> UserRows:
        """The trainer's rows for this loss: users, each with its positives."""
        if needs:
            raise ConfigError(f"the {self.name} loss trains models that score a user from "
                              f"what they keep; this one needs {', '.join(sorted(needs))} "
                              "with every row")
        self._train = UserRows(train, uses=uses, device=device)
        return self._train

    def scores(self, model, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items): every user's score of every movie, in one product."""
        if not getattr(model, "broadcasts", False):
            raise ConfigError(f"the full_softmax loss needs a model that scores a user against "
                              f"every movie in one product; {type(model).__name__} does not")
        catalogue = torch.arange(self.shape.n_items, device=users.device)
        return model.score_grid({"users": users}, catalogue)

    @staticmethod
    def terms(batch: dict) -> int:
        """What the loss averages over: the batch's positives (distributed steps weight each
        rank's loss by its share of them)."""
        return len(batch["items"])

    def __call__(self, model, batch: dict) -> torch.Tensor:
        users, items = batch["users"], batch["items"]
        log_p = torch.log_softmax(self.scores(model, users), dim=1)
        return -log_p[entry_rows(batch["offsets"], len(items)), items].mean()

    @torch.no_grad()
    def validate(self, model, batch: dict) -> dict[str, float]:
        """Mean -log probability of each validation positive among itself and the movies its
        user has no training positive for (the training positives are masked, as a user's
        rated movies are when ranking; a row whose movie is also a training positive, as
        unresolved duplicates can make, keeps its own)."""
        was_training = model.training
        model.eval()
        try:
            users, inverse = torch.unique(batch["users"], return_inverse=True)
            order = torch.argsort(inverse)  # the rows of each chunk of users: one slice
            bounds = torch.searchsorted(inverse[order], torch.arange(
                0, len(users) + 256, 256, device=inverse.device))
            total = 0.0
            for c, start in enumerate(range(0, len(users), 256)):
                part = users[start:start + 256]
                logits = self.scores(model, part).float()
                rows = order[bounds[c]:bounds[c + 1]]
                local, items = inverse[rows] - start, batch["items"][rows]
                positive = logits[local, items]
                seen, offsets = csr_rows(self._train.indptr, self._train.items, part)
                logits[entry_rows(offsets, len(seen)), seen] = -torch.inf
                log_z = torch.logsumexp(logits, dim=1)[local]
                masked = torch.isneginf(logits[local, items])
                log_z = torch.where(masked, torch.logaddexp(log_z, positive), log_z)
                total += float((log_z - positive).sum())
            return {"valid_full_softmax": total / len(batch["users"])}
        finally:
            model.train(was_training)
