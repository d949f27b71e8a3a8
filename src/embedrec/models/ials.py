"""iALS: weighted matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008).

Every user x item cell has preference p = 1 if the user interacted with the item, else 0, and
confidence c = 1 + alpha on interactions, 1 elsewhere. Minimise
sum_ui c_ui (p_ui - x_u . y_i)^2 + sum_u reg_u |x_u|^2 + sum_i reg_i |y_i|^2 by alternating
exact least squares: for a user, (Y'Y + alpha Y_u'Y_u + reg_u I) x_u = (1 + alpha) Y_u' 1, and
the same for items. reg_u = reg (1 + alpha n_u / n_items)^nu scales the L2 with the row's
confidence mass (``reg_exponent`` nu; Rendle et al. 2021's frequency-scaled regularisation);
nu = 0, the default, gives every row the same reg.
``solver="cholesky"`` solves each system exactly; ``solver="cg"`` runs ``cg_steps`` conjugate-
gradient steps from the previous sweep's solution, each row on its own
(``embedrec.kernels.conjugate``: a side's rows side by side, the Gram part one matrix
product). The model ranks only; a new user is folded in by one closed-form user solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedrec.data.dataset import Ratings
from embedrec.errors import ConfigError
from embedrec.models.implicit import csr, interactions, user_vector
from embedrec.models.registry import register
from embedrec.models.scorer import Scorer
from embedrec.models.spec import Capabilities, ModelSpec, Shape, UserParams

SOLVERS = ("cg", "cholesky")


@dataclass(frozen=True)
class IALSConfig:
    n_factors: int = 64
    alpha: float = 10.0  # extra confidence of an observed interaction
    reg: float = 5.0  # L2 on user and item factors
    sweeps: int = 10  # alternating passes (users, then items)
    solver: str = "cg"  # cg | cholesky
    cg_steps: int = 3  # conjugate-gradient steps per solve (solver cg)
    min_rating: float = 0.0  # a rating at least this is an interaction (0: every rating)
    init_std: float = 0.01
    seed: int = 0
    reg_exponent: float = 0.0  # nu: each row's reg times (1 + alpha n_row / n_other)^nu

    def __post_init__(self) -> None:
        if not isinstance(self.n_factors, int) or self.n_factors < 1:
            raise ConfigError(f"ials: n_factors must be a whole number >= 1, got {self.n_factors!r}")
        if self.solver not in SOLVERS:
            raise ConfigError(f"ials: solver must be one of {', '.join(SOLVERS)}, not {self.solver!r}")
        if self.alpha < 0 or self.reg <= 0 or self.sweeps < 1 or self.cg_steps < 1 or self.init_std <= 0:
            raise ConfigError("ials: alpha must be >= 0, reg and init_std > 0, sweeps and cg_steps >= 1")
        if not 0 <= self.reg_exponent <= 4:
            raise ConfigError(f"ials: reg_exponent must be in [0, 4], got {self.reg_exponent}")


def _segment_sum(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Row sums of CSR-ordered ``values`` (rows without entries give 0)."""
    out = np.zeros((len(indptr) - 1,) + values.shape[1:], dtype=values.dtype)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.add.reduceat(values, indptr[nonempty], axis=0)
    return out


def row_reg(reg: float, alpha: float, counts, n_other: int, exponent: float) -> np.ndarray:
    """Each row's L2: reg (1 + alpha n_row / n_other)^exponent (reg alone at exponent 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    return reg * (1.0 + alpha * counts / max(n_other, 1)) ** exponent


def solve_side(fixed: np.ndarray, current: np.ndarray, indptr: np.ndarray, cols: np.ndarray,
               alpha: float, reg: float, solver: str, cg_steps: int,
               reg_exponent: float = 0.0) -> np.ndarray:
    """New factors of one side (rows of a CSR over ``cols`` of the ``fixed`` side)."""
    from embedrec.kernels.conjugate import cg_side

    k = fixed.shape[1]
    gram = (fixed.T @ fixed).astype(np.float64)
    regs = row_reg(reg, alpha, np.diff(indptr), fixed.shape[0], reg_exponent)
    if solver == "cg":
        return cg_side(fixed, current, indptr, cols, gram, regs, float(alpha), int(cg_steps))
    b = (1.0 + alpha) * _segment_sum(fixed[cols].astype(np.float64), indptr)
    out = np.empty_like(current)
    eye = np.eye(k)
    for r in range(len(indptr) - 1):
        yr = fixed[cols[indptr[r]:indptr[r + 1]]].astype(np.float64)
        chol = np.linalg.cholesky(gram + alpha * (yr.T @ yr) + regs[r] * eye)
        out[r] = np.linalg.solve(chol.T, np.linalg.solve(chol, b[r]))
    return out


class IALSScorer(Scorer):
    predicts_ratings = False

    def __init__(self, config: IALSConfig, user_factors: np.ndarray, item_factors: np.ndarray):
        self.config = config
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)

    def predict(self, users, items):
        return np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])

    def rank_scores(self, users):
        return self.user_factors[np.asarray(users)] @ self.item_factors.T

    def score_user(self, params: UserParams):
        return self.item_factors @ np.asarray(params.vector, dtype=np.float32)

    def item_vectors(self):
        return self.item_factors

    def arrays(self):
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]


def fold_in_user(item_factors: np.ndarray, items: np.ndarray, alpha: float, reg: float,
                 reg_exponent: float = 0.0) -> np.ndarray:
    """One closed-form user solve: (Y'Y + alpha Y_u'Y_u + reg_u I) x = (1 + alpha) Y_u' 1."""
    y = item_factors.astype(np.float64)
    yu = y[items]
    reg_u = float(row_reg(reg, alpha, len(items), y.shape[0], reg_exponent))
    a = y.T @ y + alpha * yu.T @ yu + reg_u * np.eye(y.shape[1])
    return np.linalg.solve(a, (1.0 + alpha) * yu.sum(0))


class IALSSpec(ModelSpec):
    name = "ials"
    summary = "implicit ALS: confidence-weighted MF by alternating least squares (ranks only)"
    Config = IALSConfig
    capabilities = Capabilities(trained_by="fit", predicts_ratings=False, item_vectors=True)
    colour = "#bcbd22"

    def search_space(self, trial, train):
        """Width, confidence, regularisation and its frequency scaling (Rendle et al. 2021
        found iALS competitive once these are tuned, and wide: 512 factors beat 128 here)."""
        return {"n_factors": trial.suggest_categorical("n_factors", [32, 50, 64, 128, 256, 512]),
                "alpha": trial.suggest_float("alpha", 0.3, 100.0, log=True),
                "reg": trial.suggest_float("reg", 0.05, 200.0, log=True),
                "reg_exponent": trial.suggest_float("reg_exponent", 0.0, 1.0)}, {}

    def fit(self, config: IALSConfig, train: Ratings, shape: Shape) -> IALSScorer:
        users, items = interactions(train, config.min_rating)
        rng = np.random.default_rng(config.seed)
        k = config.n_factors
        x = rng.normal(0, config.init_std, (shape.n_users, k)).astype(np.float32)
        y = rng.normal(0, config.init_std, (shape.n_items, k)).astype(np.float32)
        by_user = csr(users, items, shape.n_users)
        by_item = csr(items, users, shape.n_items)
        for _ in range(config.sweeps):
            x = solve_side(y, x, *by_user, config.alpha, config.reg, config.solver,
                           config.cg_steps, config.reg_exponent)
            y = solve_side(x, y, *by_item, config.alpha, config.reg, config.solver,
                           config.cg_steps, config.reg_exponent)
        return IALSScorer(config, x, y)

    def expected_shapes(self, config, shape: Shape) -> dict:
        return {"user_factors": (shape.n_users, config.n_factors),
                "item_factors": (shape.n_items, config.n_factors)}

    def scorer(self, config, arrays, shape: Shape) -> IALSScorer:
        return IALSScorer(config, arrays["user_factors"], arrays["item_factors"])

    def fold_in(self, scorer: IALSScorer, items, ratings, *, base_bias, l2, iterations):
        config = scorer.config
        chosen = user_vector(items, ratings, config.min_rating)
        vector = fold_in_user(scorer.item_factors, chosen, config.alpha, config.reg,
                              config.reg_exponent)
        return UserParams(vector=vector.astype(np.float32), base_bias=base_bias)


register(IALSSpec())
