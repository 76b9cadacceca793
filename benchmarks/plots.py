"""PNG plots: speedup over the baseline versus hidden size, one line per batch size and provider."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchmarks.cases import BASELINE
from benchmarks.workloads import LABELS

__all__ = ["heatmap_panels", "plot_heatmaps", "plot_speedups"]

_MARKERS = "osD^v<>px*"


def _group(rec: dict) -> str:
    """The configuration without batch and sizes: one subplot per group."""
    return " ".join(t for t in rec["config"].split() if not t.startswith(("B=", "I=", "H=")))


def plot_speedups(records: Sequence[dict], out_dir: Path, stem: str) -> list[Path]:
    """One PNG per mode (``<stem>-<mode>.png``); returns the paths written, none without matplotlib.

    Each subplot is one cell/dtype/T/variant group; x is the hidden size, y the speedup over the
    baseline on a log scale (1 = parity), one line per (provider, batch size).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    by_mode: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec["provider"] != BASELINE and rec.get("speedup") is not None:
            by_mode[rec["mode"]][_group(rec)].append(rec)
    paths = []
    for mode, groups in by_mode.items():
        fig, axes = _panels(plt, len(groups), 5.0, 3.6)
        for ax, (group, recs) in zip(axes.flat, sorted(groups.items()), strict=False):
            _draw(ax, recs)
            ax.set_title(group, fontsize=9)
        fig.suptitle(f"{mode}: speedup over {LABELS.get(BASELINE, BASELINE)} (higher is faster)")
        paths.append(_save(plt, fig, out_dir / f"{stem}-{mode}.png"))
    return paths


def _panels(plt, count: int, width: float, height: float):  # noqa: ANN001, ANN202 - matplotlib
    """A figure of ``count`` subplots, three to a row, the unused ones hidden."""
    ncols = min(3, count)
    nrows = math.ceil(count / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False, constrained_layout=True)
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    return fig, axes


def _save(plt, fig, path: Path) -> Path:  # noqa: ANN001 - matplotlib
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw(ax, recs: list[dict]) -> None:  # noqa: ANN001 - a matplotlib Axes
    from matplotlib import ticker

    lines: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
    for rec in recs:
        lines[(rec["provider"], rec["B"])].append((rec["H"], rec["speedup"]))
    providers = sorted({p for p, _ in lines})
    for (provider, batch), points in sorted(lines.items()):
        xs, ys = zip(*sorted(points), strict=True)
        marker = _MARKERS[providers.index(provider) % len(_MARKERS)]
        ax.plot(xs, ys, marker=marker, label=f"{LABELS.get(provider, provider)}, B={batch}")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({h for points in lines.values() for h, _ in points}))
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("hidden size H")
    ax.set_ylabel("speedup")
    ax.legend(fontsize=7)


def heatmap_panels(records: Sequence[dict]) -> dict[str, dict[str, dict[tuple[int, int], float]]]:
    """``mode -> panel name -> (B, H) -> vs_best`` of fastrnn's triton rows in one layer, no
    variants; a panel per cell, heads, dtype (TF32 setting) and T."""
    panels: dict[str, dict[str, dict[tuple[int, int], float]]] = defaultdict(
        lambda: defaultdict(dict))
    for rec in records:
        if (rec["provider"] == "triton" and rec.get("vs_best") and rec.get("layers", 1) == 1
                and not rec.get("bidirectional") and not rec.get("packed")
                and not rec.get("proj")):
            tf32 = {True: " tf32", False: " ieee"}.get(rec.get("tf32"), "")
            heads = f" N={rec['heads']}" if (rec.get("heads") or 1) > 1 else ""
            name = f"{rec['cell']}{heads} {rec['dtype']}{tf32} T={rec['T']}"
            panels[rec["mode"]][name][(rec["B"], rec["H"])] = rec["vs_best"]
    return panels


def plot_heatmaps(records: Sequence[dict], out_dir: Path, stem: str) -> list[Path]:
    """One PNG per mode (``<stem>-heatmap-<mode>.png``): a B x H grid per cell, dtype and T (one
    layer, no variants) of fastrnn's triton rows against the best baseline (``vs_best``; red
    below 1, a loss; green above), the ratio written in each cell. None without matplotlib or
    rows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
    except ImportError:
        return []
    panels = heatmap_panels(records)
    paths = []
    for mode, groups in panels.items():
        fig, axes = _panels(plt, len(groups), 4.6, 3.4)
        norm = LogNorm(vmin=0.25, vmax=4.0)
        image = None
        for ax, (name, cells) in zip(axes.flat, sorted(groups.items()), strict=False):
            batches = sorted({b for b, _ in cells})
            hidden = sorted({h for _, h in cells})
            grid = [[cells.get((b, h), float("nan")) for h in hidden] for b in batches]
            image = ax.imshow(grid, cmap="RdYlGn", norm=norm, aspect="auto")
            for i, row in enumerate(grid):
                for j, v in enumerate(row):
                    if v == v:  # not NaN
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(hidden)), [str(h) for h in hidden])
            ax.set_yticks(range(len(batches)), [str(b) for b in batches])
            ax.set_xlabel("hidden size H")
            ax.set_ylabel("batch B")
            ax.set_title(name, fontsize=9)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.8, label="× the best baseline")
        fig.suptitle(f"{mode}: fastrnn triton against the best baseline (above 1 is a win)")
        paths.append(_save(plt, fig, out_dir / f"{stem}-heatmap-{mode}.png"))
    return paths
