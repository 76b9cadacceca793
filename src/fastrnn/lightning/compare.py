"""Train RNN, LSTM and GRU, on torch.nn and on fastrnn, on the same data; compare.

    python -m fastrnn.lightning.compare                      # sine forecasting, 5 epochs each
    python -m fastrnn.lightning.compare --task classify --max-epochs 3 --out compare_out
    python -m fastrnn.lightning.compare --quick              # a smoke test in seconds

Every run starts from the same seed and data. Prints a table of validation metrics and
seconds per epoch (median over epochs, validation included) and writes ``compare.csv`` and
``compare.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import time
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
) -> list[dict[str, Any]]:
    """Train one model per (cell, backend); returns one row of results per run.

    ``backends``: ``"torch"`` is torch.nn's module, the others are fastrnn backends. Rows hold
    ``cell``, ``backend``, the task's validation metrics, ``s_per_epoch`` and ``seconds``.
    With ``out``, writes ``compare.csv`` and ``compare.png`` there.
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
    data_cls, model_cls, metric_names = TASKS[task]
    rows = []
    for cell in cells:
        for backend in backends:
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
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".*does not have many workers.*")
                trainer.fit(model, data)
            row = {"cell": cell, "backend": backend}
            row.update({m: float(trainer.callback_metrics[m]) for m in metric_names})
            row["s_per_epoch"] = statistics.median(timer.times)
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            print(format_table(rows[-1:], header=len(rows) == 1), flush=True)
    if out is not None:
        _write(rows, Path(out), metric_names)
    return rows


def format_table(rows: Sequence[dict[str, Any]], header: bool = True) -> str:
    """Rows of :func:`compare` as a fixed-width text table."""
    if not rows:
        return ""
    keys = list(rows[0])
    width = {k: max(len(k), 9) for k in keys}
    lines = ["  ".join(f"{k:>{width[k]}}" for k in keys)] if header else []
    for row in rows:
        cells = [
            f"{v:>{width[k]}.4f}" if isinstance(v, float) else f"{v:>{width[k]}}"
            for k, v in row.items()
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _write(rows: list[dict[str, Any]], out: Path, metric_names: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compare.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    groups = {
        name: {f"{r['cell']}/{r['backend']}": r[name] for r in rows}
        for name in (*metric_names, "s_per_epoch")
    }
    plot_bars(groups, out / "compare.png", {"s_per_epoch": "seconds per epoch"})


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
        )
    finally:
        logger.setLevel(level)
    print(f"\n{format_table(rows)}\n\nwritten: {Path(args.out) / 'compare.csv'}, compare.png")
    return rows


if __name__ == "__main__":
    main()
