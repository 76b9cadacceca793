"""Forecasting from a CSV file: one series, or several in a long table (an id column), with
past-only inputs and known-future covariates, as pytorch-forecasting and darts take them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from fastrnn.lightning.data import SequenceDataset, _ForecastingDataModule, _positive, _split_sizes
from fastrnn.lightning.future import FutureWindows, extend_index

__all__ = ["CSVForecastingDataModule", "DATASET_DIR"]

DATASET_DIR = Path(__file__).resolve().parent / "datasets"  # the bundled CSV files


class KnownFutureDataset(Dataset):
    """Windows with the known covariates of their target steps: items are dicts of ``x:
    (seq_len, C + K)``, ``future: (horizon, K)`` and (unless forecasting past the data) ``y``."""

    variable_length = False

    def __init__(self, x: Tensor, future: Tensor, y: Tensor | None = None) -> None:
        self.sequences, self.future, self.targets = x, future, y

    def __len__(self) -> int:
        return self.sequences.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = {"x": self.sequences[i], "future": self.future[i]}
        if self.targets is not None:
            item["y"] = self.targets[i]
        return item


class CSVForecastingDataModule(_ForecastingDataModule):
    """Forecast columns of a CSV file (a header row, one time step per row).

    Args:
        path: the file, or the name of a bundled one (``fastrnn configs`` lists the configs
            that use them; e.g. ``stores.csv``).
        columns: names or indices of the series' columns (default: the last column); the first
            ``output_size`` of them (default: all) are forecast, the rest are past-only inputs.
        time_column: the time labels (dates or numbers), which label the forecast steps.
        id_column: several series in one long table: rows with the same id form a series, in
            file order (``series`` in the outputs).
        known_columns: known-future covariates (calendar features, planned inputs): inputs
            whose values the model also sees for the ``horizon`` steps it forecasts. To forecast
            past the data, a series' last rows may leave its ``columns`` empty and give only
            these (at least ``horizon`` such rows).
        log: forecast the log of ``columns`` (undone in outputs and metrics).
        seq_len, horizon: window and forecast lengths.
        val_fraction, test_fraction: each series split chronologically: train, val, test.
        predict: ``"future"`` (default) forecasts ``horizon`` steps past each series' last
            observed row, ``"test"`` runs over the test windows.

    Standardised with the training parts' mean and std per channel (saved in checkpoints).
    """

    def __init__(
        self,
        path: str,
        columns: list[str | int] | None = None,
        seq_len: int = 24,
        horizon: int = 1,
        output_size: int | None = None,
        log: bool = False,
        delimiter: str = ",",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        time_column: str | int | None = None,
        predict: str = "future",
        id_column: str | int | None = None,
        known_columns: list[str | int] | None = None,
    ) -> None:
        super().__init__(seq_len, horizon, 1, batch_size, num_workers, seed)
        self._check_predict(predict)
        if output_size is not None:
            _positive(output_size=output_size)
        self.path = Path(path)
        if not self.path.is_file() and (DATASET_DIR / path).is_file():
            self.path = DATASET_DIR / path
        if not self.path.is_file():
            raise ValueError(f"data file not found: {str(path)!r}")
        self.columns, self.delimiter, self.log = columns, delimiter, log
        self.time_column, self.id_column = time_column, id_column
        self.known_columns = list(known_columns or [])
        self.output_size = output_size
        self.fractions = (val_fraction, test_fraction)
        _split_sizes(10, val_fraction, test_fraction)
        self.names: list[str] = []
        self.index_name = "step"
        self.known_size = len(self.known_columns)
        self.series_ids: list[str] = []

    # --- reading ---------------------------------------------------------------------------
    def _read(self) -> tuple[list[str], list[list[str]]]:
        with self.path.open(newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=self.delimiter) if r]
        if len(rows) < 2:
            raise ValueError(f"{self.path}: expected a header row and data rows")
        return rows[0], rows[1:]

    def _pick(self, header: list[str], c: str | int) -> int:
        if isinstance(c, int):
            if not -len(header) <= c < len(header):
                raise ValueError(f"{self.path}: column index {c} out of range")
            return c % len(header)
        if c in header:
            return header.index(c)
        raise ValueError(f"{self.path}: no column {c!r}; columns are {header}")

    def _series(self) -> list[dict[str, Any]]:
        """Each series: ``values (N, C)``, ``known (N + F, K)`` (F future rows), ``index``."""
        header, rows = self._read()
        cols = [self._pick(header, c) for c in (self.columns if self.columns is not None
                                                else [len(header) - 1])]
        known = [self._pick(header, c) for c in self.known_columns]
        self.names = [header[i] for i in cols]
        t = None if self.time_column is None else self._pick(header, self.time_column)
        if t is not None:
            self.index_name = header[t]
        groups: dict[str, list[list[str]]] = {}
        ident = None if self.id_column is None else self._pick(header, self.id_column)
        for r in rows:
            groups.setdefault("" if ident is None else r[ident], []).append(r)
        out = []
        for name, group in groups.items():
            observed = len(group)
            while observed and all(not group[observed - 1][i].strip() for i in cols):
                observed -= 1  # trailing rows that only give known covariates
            if observed < len(group) and not known:
                raise ValueError(f"{self.path}: series {name!r} has rows without values")
            try:
                values = np.array([[float(r[i]) for i in cols] for r in group[:observed]],
                                  dtype=np.float32)
                cov = np.array([[float(r[i]) for i in known] for r in group], dtype=np.float32)
            except (ValueError, IndexError) as e:
                raise ValueError(f"{self.path}: non-numeric or missing value ({e})") from e
            out.append({"name": name, "values": torch.from_numpy(values),
                        "known": torch.from_numpy(cov.reshape(len(group), len(known))),
                        "index": [r[t] for r in group[:observed]] if t is not None else None})
        self.series_ids = list(groups)
        return out

    # --- set-up ----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        series = self._series()
        C, K = series[0]["values"].shape[1], self.known_size
        self.output_size = self.output_size or C
        if self.output_size > C:
            raise ValueError(f"output_size={self.output_size} exceeds the {C} channels")
        self.input_size = C + K
        L, H = self.seq_len, self.horizon
        for s in series:
            values = s["values"]
            if self.log:
                if (values <= 0).any():
                    raise ValueError("log=True needs a strictly positive series")
                values = values.log()
            s["data"] = torch.cat([values, s["known"][: values.shape[0]]], dim=1)
            s["split"] = _split_sizes(values.shape[0], *self.fractions)
            if s["split"][0] < L + H:
                raise ValueError(
                    f"the training part ({s['split'][0]} steps) of series {s['name']!r} is "
                    f"shorter than seq_len + horizon ({L} + {H})")
        self._fit_scaler([s["data"][: s["split"][0]] for s in series])
        parts: list[list[tuple]] = [[], [], []]
        for s in series:
            data, (n_train, n_val, _) = self.transform(s["data"]), s["split"]
            N = data.shape[0]
            for k, (lo, hi) in enumerate(((0, n_train), (n_train, n_train + n_val),
                                          (n_train + n_val, N))):
                parts[k] += [(data, st) for st in range(max(lo - L, 0), hi - L - H + 1)]
            s["scaled"] = data
        self.train_set, self.val_set, self.test_set = (self._dataset(p) for p in parts)
        self._future(series)

    def _dataset(self, windows: list[tuple[Tensor, int]]) -> Dataset:
        L, H, O, C = self.seq_len, self.horizon, self.output_size, self.input_size - self.known_size
        x = torch.stack([d[st : st + L] for d, st in windows]) if windows else torch.zeros(
            0, L, self.input_size)
        y = torch.stack([d[st + L : st + L + H, :O] for d, st in windows]) if windows else (
            torch.zeros(0, H, O))
        if not self.known_size:
            return SequenceDataset(x, y)
        future = torch.stack([d[st + L : st + L + H, C:] for d, st in windows]) if windows \
            else torch.zeros(0, H, self.known_size)
        return KnownFutureDataset(x, future, y)

    def _future(self, series: list[dict[str, Any]]) -> None:
        """The windows ``predict`` forecasts past each series' end (with their known future)."""
        L, H, K = self.seq_len, self.horizon, self.known_size
        x = torch.stack([s["scaled"][-L:] for s in series])
        self._future_problem = None
        if not K:
            self.future_set = FutureWindows(x)
        elif all(s["known"].shape[0] - s["values"].shape[0] >= H for s in series):
            known = [s["known"][s["values"].shape[0] : s["values"].shape[0] + H] for s in series]
            C = self.input_size - K
            future = torch.stack([self.transform(torch.cat(
                [torch.zeros(H, C), k], dim=1))[:, C:] for k in known])
            self.future_set = KnownFutureDataset(x, future)
        else:
            self.future_set = KnownFutureDataset(x[:0], torch.zeros(0, H, K))
            self._future_problem = (
                f"{self.path}: forecasting past the data needs, after each series' last "
                f"values, {H} rows with the known columns {self.known_columns}")
        self._series_index = [s["index"] for s in series]

    def predict_dataloader(self) -> DataLoader:
        if self.predict == "future" and getattr(self, "_future_problem", None):
            raise ValueError(self._future_problem)
        return super().predict_dataloader()

    # --- outputs ---------------------------------------------------------------------------
    def output_names(self) -> list[str]:
        return self.names[: self.output_size] or super().output_names()

    def future_index(self, steps: int) -> list[list[str]]:
        """Each series' time labels continued past its last observed row (``extend_index``)."""
        return [extend_index(index or [], steps) for index in self._series_index]

    @property
    def test_series(self) -> list[str]:
        """Series names in the outputs (one per future window), when there are several."""
        return self.series_ids if len(self.series_ids) > 1 else []
