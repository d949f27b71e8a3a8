"""Which compiled kernel trains a dot-product model (``dot``, ``biased``) with which loss."""

from __future__ import annotations

from embedrec.kernels.factors import FactorKernel
from embedrec.kernels.pairwise import LOSSES as PAIR_LOSSES
from embedrec.kernels.pairwise import PairKernel
from embedrec.kernels.softmax import LOSSES as SOFTMAX_LOSSES
from embedrec.kernels.softmax import SoftmaxKernel


def factor_kernel(loss: str) -> type[FactorKernel] | None:
    """The kernel for ``loss``: MSE, BPR (uniform or popularity negatives) or sampled softmax;
    None for a loss without one (the torch engine trains it)."""
    if loss == "mse":
        return FactorKernel
    if loss in PAIR_LOSSES:
        return PairKernel
    return SoftmaxKernel if loss in SOFTMAX_LOSSES else None
