"""PNG plots with matplotlib (optional: ``pip install fastrnn[plot]``).

Every function returns the written path, or ``None`` with a warning when matplotlib is missing.
Figures are drawn on ``matplotlib.figure.Figure`` directly, so no GUI backend is needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["plot_bars", "plot_confusion_matrix", "plot_forecast"]


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn(
            "matplotlib is not installed, so no plot was written: pip install fastrnn[plot]",
            stacklevel=3,
        )
        return None
    return Figure(**kwargs)


def plot_forecast(x: Tensor, y: Tensor | None, pred: Tensor, path: str | Path) -> Path | None:
    """History, truth and forecast of a few windows, one panel each.

    x: (N, T) history; y, pred: (N, H) truth (None: a forecast past the data's end) and
    forecast of the following H steps.
    """
    n = x.shape[0]
    fig = _figure(figsize=(8, 2.2 * n), layout="constrained")
    if fig is None:
        return None
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    T, H = x.shape[1], pred.shape[1]
    for i, ax in enumerate(axes):
        ax.plot(range(T), x[i].tolist(), color="0.4", label="history")
        if y is not None:
            ax.plot(range(T, T + H), y[i].tolist(), color="C0", marker=".", label="truth")
        ax.plot(range(T, T + H), pred[i].tolist(), color="C3", marker=".", label="forecast")
        ax.axvline(T - 0.5, color="0.8", linestyle="--")
    axes[0].legend(loc="upper left", ncols=3, fontsize="small")
    axes[0].set_title("forecast versus truth" if y is not None else "forecast past the data")
    axes[-1].set_xlabel("step")
    return _save(fig, path)


def plot_confusion_matrix(
    matrix: Tensor, path: str | Path, classes: Sequence[str] | None = None
) -> Path | None:
    """Confusion matrix ``matrix: (K, K)`` (rows: true class, columns: predicted)."""
    K = matrix.shape[0]
    classes = list(classes) if classes is not None else [str(k) for k in range(K)]
    size = 2.5 + 0.45 * K
    fig = _figure(figsize=(size + 1, size), layout="constrained")
    if fig is None:
        return None
    ax = fig.subplots()
    image = ax.imshow(matrix.tolist(), cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = list(range(K))
    ax.set_xticks(ticks, classes, rotation=45 if K > 6 else 0)
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = float(matrix.max()) if matrix.numel() else 0.0
    for i in range(K):
        for j in range(K):
            v = float(matrix[i, j])
            color = "white" if v > top / 2 else "black"
            ax.text(j, i, f"{v:g}", ha="center", va="center", color=color, fontsize="small")
    accuracy = float(matrix.diagonal().sum() / matrix.sum().clamp_min(1))
    ax.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    return _save(fig, path)


def plot_bars(
    groups: dict[str, dict[str, float]], path: str | Path, ylabels: dict[str, str] | None = None
) -> Path | None:
    """One bar panel per quantity: ``groups[quantity][run] = value``."""
    fig = _figure(figsize=(4.5 * len(groups), 3.5), layout="constrained")
    if fig is None:
        return None
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (quantity, values) in zip(axes, groups.items()):
        ax.bar(range(len(values)), list(values.values()), color=[f"C{i}" for i in range(10)])
        ax.set_xticks(range(len(values)), list(values), rotation=30, ha="right")
        ax.set_title(quantity)
        ax.set_ylabel((ylabels or {}).get(quantity, quantity))
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
