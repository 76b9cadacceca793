"""Train RNN, LSTM and GRU, on torch.nn and on fastrnn, on the same data; compare.

    python -m fastrnn.lightning.compare                      # sine forecasting, 5 epochs each
    python -m fastrnn.lightning.compare --task classify --max-epochs 3 --out compare_out
    python -m fastrnn.lightning.compare --quick              # a smoke test in seconds

Every run starts from the same seed and data; each (cell, backend) trains in ``--rounds``
interleaved rounds. Prints a table of validation metrics, seconds per epoch (the median over
rounds, validation included), its spread and the ratio to torch.nn's (only where both are
steady), and writes ``compare.csv`` and, with matplotlib, ``compare.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from fastrnn.lightning.callbacks import EpochTimer
from fastrnn.lightning.data import SineDataModule, SyntheticClassificationDataModule
from fastrnn.lightning.layers import BACKENDS, CELLS
from fastrnn.lightning.models import SequenceClassifier, SequenceForecaster
from fastrnn.lightning.plots import plot_bars

__all__ = ["compare", "format_table", "main"]

TASKS = {
    "forecast": (SineDataModule, SequenceForecaster, ("val_mse", "val_mase")),
    "classify": (SyntheticClassificationDataModule, SequenceClassifier, ("val_acc", "val_f1")),
}
QUICK_DATA = {  # --quick: a smoke test in seconds
    "forecast": dict(num_series=12, series_len=64, seq_len=16, horizon=4),
    "classify": dict(num_samples=120, seq_len=24),
}


NOISY = 0.25  # a row whose seconds per epoch spread more than this over rounds gets no ratio


def _train_once(task: str, cell: str, backend: str, max_epochs: int, hidden_size: int,
                seed: int, data_kwargs: dict[str, Any] | None,
                trainer_kwargs: dict[str, Any] | None) -> dict[str, float]:
    """One training run: the task's validation metrics and the median seconds per epoch."""
    data_cls, model_cls, metric_names = TASKS[task]
    pl.seed_everything(seed, verbose=False)
    data = data_cls(seed=seed, **(data_kwargs or {}))
    model = model_cls(cell=cell, hidden_size=hidden_size, backend=backend, lr=3e-3)
    timer = EpochTimer()
    settings = dict(
        max_epochs=max_epochs,
        gradient_clip_val=1.0,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer = pl.Trainer(**{**settings, **(trainer_kwargs or {})})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(model, data)
    result = {m: float(trainer.callback_metrics[m]) for m in metric_names}
    result["s_per_epoch"] = statistics.median(timer.times)
    return result


def compare(
    task: str = "forecast",
    cells: Sequence[str] = CELLS,
    backends: Sequence[str] = ("torch", "auto"),
    max_epochs: int = 5,
    hidden_size: int = 64,
    seed: int = 0,
    out: str | Path | None = "compare_out",
    data_kwargs: dict[str, Any] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    rounds: int = 3,
) -> list[dict[str, Any]]:
    """Train one model per (cell, backend) in each of ``rounds`` rounds, the backends of a
    cell interleaved (in turn forward and reversed order), so slow drift of the machine
    falls on all of them; returns one row per (cell, backend).

    ``backends``: ``"torch"`` is torch.nn's module, the others are fastrnn backends. Rows hold
    ``cell``, ``backend``, the task's validation metrics (median over rounds: every round
    trains from the same seed), ``s_per_epoch`` (median over rounds of each run's median
    epoch, validation included), ``spread`` (its range over rounds relative to that median)
    and ``vs_torch`` (median over rounds of the time over torch.nn's in the same round;
    ``"noisy"`` when either row's spread exceeds :data:`NOISY`, None without torch.nn).
    With ``out``, writes ``compare.csv`` and ``compare.png`` there (the plot only with
    matplotlib).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    for cell in cells:
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    for backend in backends:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs!r}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    metric_names = TASKS[task][2]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r in range(rounds):
        for cell in cells:
            for backend in (backends if r % 2 == 0 else list(reversed(backends))):
                result = _train_once(task, cell, backend, max_epochs, hidden_size, seed,
                                     data_kwargs, trainer_kwargs)
                runs.setdefault((cell, backend), []).append(result)
                print(f"round {r + 1}/{rounds}: {cell}/{backend} "
                      f"{result['s_per_epoch']:.4f} s per epoch", flush=True)
    rows = []
    for cell in cells:
        for backend in backends:
            results = runs[(cell, backend)]
            times = [res["s_per_epoch"] for res in results]
            row: dict[str, Any] = {"cell": cell, "backend": backend}
            row.update({m: statistics.median(res[m] for res in results) for m in metric_names})
            row["s_per_epoch"] = statistics.median(times)
            row["spread"] = (max(times) - min(times)) / row["s_per_epoch"]
            rows.append(row)
    for row in rows:
        base = runs.get((row["cell"], "torch"))
        mine = [res["s_per_epoch"] for res in runs[(row["cell"], row["backend"])]]
        torch_spread = next((r["spread"] for r in rows
                             if r["cell"] == row["cell"] and r["backend"] == "torch"), None)
        noisy = row["spread"] > NOISY or (torch_spread or 0) > NOISY
        if base is None:
            row["vs_torch"] = None
        elif noisy:
            row["vs_torch"] = "noisy"
        else:
            row["vs_torch"] = statistics.median(t / b["s_per_epoch"] for t, b in zip(mine, base))
    if out is not None:
        written = _write(rows, Path(out), metric_names)
        print("written: " + ", ".join(str(p) for p in written))
    return rows


def format_table(rows: Sequence[dict[str, Any]], header: bool = True) -> str:
    """Rows of :func:`compare` as a fixed-width text table."""
    if not rows:
        return ""
    keys = list(rows[0])
    width = {k: max(len(k), 9) for k in keys}
    lines = ["  ".join(f"{k:>{width[k]}}" for k in keys)] if header else []
    for row in rows:
        cells = [_cell(k, v, width[k]) for k, v in row.items()]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _cell(key: str, value: Any, width: int) -> str:
    if key == "vs_torch":
        text = "-" if value is None else value if isinstance(value, str) else f"{value:.2f}x"
        return f"{text:>{width}}"
    if key == "spread":
        return f"{value:>{width - 1}.0%} " if value <= NOISY else f"{f'{value:.0%}!':>{width}}"
    return f"{value:>{width}.4f}" if isinstance(value, float) else f"{value:>{width}}"


def _write(rows: list[dict[str, Any]], out: Path, metric_names: Sequence[str]) -> list[Path]:
    """Write compare.csv and (with matplotlib) compare.png; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compare.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    groups = {
        name: {f"{r['cell']}/{r['backend']}": r[name] for r in rows}
        for name in (*metric_names, "s_per_epoch")
    }
    plot = plot_bars(groups, out / "compare.png", {"s_per_epoch": "seconds per epoch"})
    return [out / "compare.csv"] + ([plot] if plot is not None else [])


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command line of :func:`compare`."""
    parser = argparse.ArgumentParser(
        prog="python -m fastrnn.lightning.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", choices=tuple(TASKS), default="forecast")
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        default=["torch", "auto"],
        help="'torch' = torch.nn's modules; others are fastrnn backends (default: torch auto)",
    )
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="compare_out", help="folder for compare.csv/.png")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per (cell, backend) (default 3; --quick: 2)")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch: a smoke test")
    args = parser.parse_args(argv)
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)  # one table, not six Trainer banners
    try:
        rows = compare(
            task=args.task,
            cells=args.cells,
            backends=args.backends,
            max_epochs=1 if args.quick else args.max_epochs,
            hidden_size=args.hidden_size,
            seed=args.seed,
            out=args.out,
            data_kwargs=QUICK_DATA[args.task] if args.quick else None,
            rounds=2 if args.quick and args.rounds == 3 else args.rounds,
        )
    finally:
        logger.setLevel(level)
    print(f"\n{format_table(rows)}\n\ns_per_epoch: median over rounds; spread: its range "
          f"over rounds; vs_torch: only where both spreads stay within {NOISY:.0%}")
    return rows


if __name__ == "__main__":
    main()
