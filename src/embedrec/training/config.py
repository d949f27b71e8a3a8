"""Training settings as one frozen, JSON-able dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from embedrec.errors import ConfigError

ENGINES = ("auto", "kernel", "torch")
UPDATES = ("lazy", "dense")
# the engines' names before the kernel engine: the arithmetic, on torch
LEGACY_ENGINES = {"fast": "lazy", "exact": "dense"}
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a torch model is trained.

    ``updates="dense"`` is the reference's arithmetic: the L2 term covers every row of every
    embedding table and Adam updates every row at every step. ``updates="lazy"`` (the default)
    reads the tables only at the batch's ids: the L2 term and the Adam update reach only those
    rows (lazy Adam), so a step costs time proportional to the batch.

    ``engine`` says who takes the steps: ``torch`` (standard PyTorch steps, any model, loss and
    device), ``kernel`` (the model's compiled kernel, on the CPU: dot, biased, mlp and
    hybrid_mf over ids, genres and release year with the MSE loss; dot and biased also with
    BPR and sampled softmax) or ``auto`` (the kernel where the model has one for these
    settings, else torch).
    The old engine names are still read: ``fast`` is torch with lazy updates, ``exact`` torch
    with dense updates.
    """

    epochs: int = 5  # passes over the training rows (the most, with early stopping)
    batch_size: int = 64  # rows per step
    lr: float = 1e-3  # Adam learning rate
    beta1: float = 0.9  # Adam first-moment decay
    beta2: float = 0.999  # Adam second-moment decay
    eps: float = 1e-7  # Adam epsilon, Keras placement: added to sqrt(v) before bias correction
    l2: float = 1e-6  # coefficient of sum(W**2) over the embedding tables
    engine: str = "auto"  # auto | kernel | torch (see above)
    updates: str = "lazy"  # lazy | dense (see above)
    loss: str = "mse"  # objective (embedrec.training.losses.LOSSES)
    monitor: str | None = None  # validation metric for early stopping (None: the loss's own)
    patience: int | None = None  # stop after this many epochs without validation improvement
    init: str = "keras_he_normal"  # initialiser name (embedrec.models.init)
    threads: int = 2  # torch intra-op threads during this run (restored afterwards)
    device: str = "cpu"  # cpu | cuda | auto (cuda when present)
    relevant: float = 4.0  # ranking losses: a training rating at least this is a positive
    implicit: bool = False  # ranking losses: every rating is a positive (implicit feedback)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch size must be at least 1")
        if not (self.lr > 0 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0):
            raise ConfigError("Adam needs lr > 0, betas in [0, 1) and eps > 0")
        if self.l2 < 0:
            raise ConfigError(f"l2 must be >= 0, got {self.l2}")
        if self.engine in LEGACY_ENGINES:
            object.__setattr__(self, "updates", LEGACY_ENGINES[self.engine])
            object.__setattr__(self, "engine", "torch")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; use {', '.join(ENGINES)} "
                              f"(or fast / exact: torch with lazy / dense updates)")
        if self.updates not in UPDATES:
            raise ConfigError(f"unknown updates {self.updates!r}; use {' or '.join(UPDATES)}")
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; use {', '.join(DEVICES)}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError("patience must be at least 1 (or None for no early stopping)")
        if self.threads < 1:
            raise ConfigError("threads must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        return cls(**raw)
