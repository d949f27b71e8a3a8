"""Adam with Keras's arithmetic, for whole tensors and for selected rows of a table.

Keras updates ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``: epsilon is added
before the bias correction, unlike ``torch.optim.Adam``. The difference matters here, because
rows that only see the tiny L2 gradient have ``sqrt(v)`` near epsilon.
"""

from __future__ import annotations

import math

import torch


class KerasAdam:
    """Adam state for a set of tensors, with one shared step counter."""

    def __init__(self, lr: float, beta1: float, beta2: float, eps: float):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self._m: dict[int, torch.Tensor] = {}
        self._v: dict[int, torch.Tensor] = {}
        self._alpha = 0.0

    def tick(self) -> None:
        """Start a new step: advance t and the bias-corrected step size."""
        self.t += 1
        self._alpha = self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)

    def _state(self, param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # keyed by identity: always pass the same tensor object (the Parameter, not .data)
        key = id(param)
        if key not in self._m:
            self._m[key] = torch.zeros_like(param)
            self._v[key] = torch.zeros_like(param)
        return self._m[key], self._v[key]

    @torch.no_grad()
    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        """Update every element of ``param``."""
        m, v = self._state(param)
        m.mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        param.addcdiv_(m, v.sqrt().add_(self.eps), value=-self._alpha)

    @torch.no_grad()
    def step_rows(self, param: torch.Tensor, rows: torch.Tensor, current: torch.Tensor,
                  grad: torch.Tensor) -> None:
        """Lazy Adam: update only ``param[rows]`` (unique row ids; ``current`` = their values)."""
        m, v = self._state(param)
        m_rows = m.index_select(0, rows).mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        v_rows = v.index_select(0, rows).mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        m.index_copy_(0, rows, m_rows)
        v.index_copy_(0, rows, v_rows)
        param.index_copy_(0, rows, current.addcdiv(m_rows, v_rows.sqrt_().add_(self.eps),
                                                   value=-self._alpha))


class KerasFusedAdam:
    """Dense Adam over whole parameters with Keras's arithmetic, on torch's fused kernel.

    torch computes ``lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps_torch)``, which equals
    the Keras update when ``eps_torch = eps / sqrt(1 - b2^t)``; that is reset before every step.
    Gradients are read from each parameter's ``.grad``.
    """

    def __init__(self, params: list[torch.Tensor], config) -> None:
        self.eps, self.beta2 = config.eps, config.beta2
        self.t = 0
        self.opt = torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2),
                                    eps=config.eps, fused=True)

    def step(self) -> None:
        self.t += 1
        self.opt.param_groups[0]["eps"] = self.eps / math.sqrt(1 - self.beta2**self.t)
        self.opt.step()
