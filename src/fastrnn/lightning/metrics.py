"""Forecasting metrics that torchmetrics does not ship."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MeanAbsoluteScaledError", "naive_scale"]


def naive_scale(x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Mean absolute one-step change of each input window: x: (B, T, C) -> (B, C).

    It is the in-sample error of the naive (last value) forecast, MASE's denominator.
    """
    diff = (x[:, 1:] - x[:, :-1]).abs()
    if lengths is None:
        return diff.mean(dim=1)
    steps = torch.arange(diff.shape[1], device=x.device).unsqueeze(0)
    mask = (steps < (lengths.to(x.device) - 1).unsqueeze(1)).unsqueeze(-1).to(x.dtype)
    return (diff * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


class MeanAbsoluteScaledError(Metric):
    """Mean absolute scaled error over windows (Hyndman and Koehler, 2006).

    Each window's absolute forecast error is divided by the mean absolute one-step change of
    its own input (see :func:`naive_scale`), then averaged over windows and channels. Below 1
    the model beats the naive last-value forecast measured in-sample. Scale-free, and unlike
    sMAPE it stays well defined for series that cross zero.

    update(preds: (B, H, C), target: (B, H, C), scale: (B, C))
    """

    is_differentiable = True
    higher_is_better = False
    full_state_update = False

    def __init__(self, eps: float = 1e-8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.eps = eps
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, scale: Tensor) -> None:
        """preds, target: (B, H, C); scale: (B, C)."""
        err = (preds - target).abs().mean(dim=1)  # (B, C)
        ratio = err / scale.clamp_min(self.eps)
        self.total += ratio.float().sum()
        self.count += ratio.numel()

    def compute(self) -> Tensor:
        return self.total / self.count.clamp_min(1)
