"""Forecasting past the end of a series: the windows ``predict`` runs on, the time index of
the forecast steps, and the CSV the forecast is written to."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["FutureWindows", "extend_index", "write_forecast_csv"]


class FutureWindows(Dataset):
    """The last ``seq_len`` steps of each series, ``windows: (N, seq_len, C)``, without
    targets (their future is unknown): items are ``(x,)``."""

    def __init__(self, windows: Tensor) -> None:
        self.sequences = windows

    def __len__(self) -> int:
        return self.sequences.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor]:
        return (self.sequences[i],)


def _add_months(d: date | datetime, months: int) -> date | datetime:
    month = d.month - 1 + months
    return d.replace(year=d.year + month // 12, month=month % 12 + 1)


def extend_index(index: Sequence[str], steps: int) -> list[str]:
    """The ``steps`` labels after ``index``, continuing its last step: numbers by their last
    difference, ISO dates or times by theirs (month starts by whole months), anything else as
    ``+1, +2, ...``."""
    if len(index) >= 2:
        a, b = index[-2], index[-1]
        try:
            x, y = float(a), float(b)
        except ValueError:
            pass
        else:
            step = y - x
            as_int = all(v.lstrip("-").isdigit() for v in (a, b))
            return [str(int(y + k * step)) if as_int else repr(y + k * step)
                    for k in range(1, steps + 1)]
        try:
            x, y = datetime.fromisoformat(a), datetime.fromisoformat(b)
        except ValueError:
            pass
        else:
            dated = len(b) <= 10  # a date without a time
            months = (y.year - x.year) * 12 + y.month - x.month
            if x.day == y.day == 1 and months > 0 and x.time() == y.time():
                out = [_add_months(y, k * months) for k in range(1, steps + 1)]
            else:
                out = [y + k * (y - x) for k in range(1, steps + 1)]
            return [d.date().isoformat() if dated else d.isoformat() for d in out]
    return [f"+{k}" for k in range(1, steps + 1)]


def write_forecast_csv(path: Path, forecast: Tensor, index: Sequence[Sequence[str]],
                       names: Sequence[str], index_name: str = "step",
                       series: Sequence[str] | None = None) -> Path:
    """``forecast: (N, horizon, O)`` as rows of (series, index, O values) (no series column
    for one series); ``index[n]`` labels series n's steps."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        multi = forecast.shape[0] > 1
        writer.writerow((["series"] if multi else []) + [index_name, *names])
        for n in range(forecast.shape[0]):
            for k in range(forecast.shape[1]):
                label = [series[n] if series else str(n)] if multi else []
                writer.writerow(label + [index[n][k], *(f"{v:.6g}" for v in
                                                        forecast[n, k].tolist())])
    return path
