"""Adam with Keras's arithmetic, as a ``torch.optim.Optimizer``, dense and lazy (sparse rows).

Keras updates ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``: epsilon is added
before the bias correction, unlike ``torch.optim.Adam``. The difference matters here, because
rows that only see the tiny L2 gradient have ``sqrt(v)`` near epsilon.

- Dense gradients go through torch's fused Adam kernel with epsilon rescaled every step
  (``eps_torch = eps / sqrt(1 - b2^t)`` makes torch's update equal Keras's).
- Sparse gradients (the lazy engine's embedding tables) update only the rows they hold: their
  moments, and their L2 term. Rows not in the batch are left alone.

Each parameter group may set ``l2``: the coefficient of ``l2 * sum(W**2)`` added to the loss
(gradient ``2 * l2 * W``), over whole tensors for dense gradients and over the rows a sparse
gradient touches.
"""

from __future__ import annotations

import math

import torch
from torch.optim.adam import adam as _functional_adam


class KerasAdam(torch.optim.Optimizer):
    def __init__(self, params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-7, l2: float = 0.0, fused: bool | None = None):
        if not (lr > 0 and 0 <= betas[0] < 1 and 0 <= betas[1] < 1 and eps > 0 and l2 >= 0):
            raise ValueError("KerasAdam needs lr > 0, betas in [0, 1), eps > 0 and l2 >= 0")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, l2=l2, fused=fused))

    def _state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            dense: list[tuple[torch.Tensor, dict]] = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(p)
                if p.grad.is_sparse:
                    self._sparse_step(p, p.grad, state, group)
                else:
                    dense.append((p, state))
            if dense:
                self._dense_step(dense, group)
        return loss

    def _dense_step(self, dense, group) -> None:
        beta1, beta2 = group["betas"]
        # every parameter of a group advances together: t is the same for all of them
        t = float(dense[0][1]["step"]) + 1
        eps = group["eps"] / math.sqrt(1 - beta2 ** t)
        params = [p for p, _ in dense]
        fused = group["fused"]
        if fused is None:
            fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32
                        for p in params)
        _functional_adam(
            params, [p.grad for p in params], [s["exp_avg"] for _, s in dense],
            [s["exp_avg_sq"] for _, s in dense], [], [s["step"] for _, s in dense],
            fused=fused, foreach=None if fused else False, amsgrad=False, beta1=beta1,
            beta2=beta2, lr=group["lr"], weight_decay=2.0 * group["l2"], eps=eps,
            maximize=False)

    def _sparse_step(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group) -> None:
        beta1, beta2 = group["betas"]
        t = state["sparse_steps"] = state.get("sparse_steps", 0) + 1  # a Python int: no sync
        state["step"].fill_(t)
        alpha = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        rows, g = grad._indices()[0], grad._values()
        # autograd drops the "coalesced" flag when it stores a gradient; sorted unique rows
        # (what the models' sparse look-ups produce) are coalesced already
        if not grad.is_coalesced() and len(rows) > 1 and not bool((rows.diff() > 0).all()):
            grad = grad.coalesce()
            rows, g = grad._indices()[0], grad._values()
        current = p.index_select(0, rows)
        if group["l2"]:
            g = g.add(current, alpha=2.0 * group["l2"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m_rows = m.index_select(0, rows).mul_(beta1).add_(g, alpha=1 - beta1)
        v_rows = v.index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        m.index_copy_(0, rows, m_rows)
        v.index_copy_(0, rows, v_rows)
        p.index_copy_(0, rows, current.addcdiv_(m_rows, v_rows.sqrt_().add_(group["eps"]),
                                                value=-alpha))
