"""LightningDataModules for sequence classification and forecasting.

Embedded, dependency-free defaults: :class:`SineDataModule` (forecasting) and
:class:`SyntheticClassificationDataModule`; CSV files in :mod:`fastrnn.lightning.data_csv`,
the data sets bundled with aeon in :mod:`fastrnn.lightning.data_aeon`.

Batches are ``(x, y)`` with ``x: (B, T, C)``, or ``(x, lengths, y)`` when sequences differ in
length (``x`` zero-padded, ``lengths: (B,)``; models pack them, so padding is never data).
Splits are deterministic given ``seed``; normalization is fitted on the training split only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

from fastrnn.lightning.future import FutureWindows

__all__ = [
    "EpochSeededSampler",
    "SequenceDataset",
    "SineDataModule",
    "SyntheticClassificationDataModule",
    "pad_collate",
]


class SequenceDataset(Dataset):
    """Sequences with targets: ``sequences[i]: (T_i, C)``, ``targets[i]``.

    Equal-length sequences are stored as one tensor ``(N, T, C)``; ``variable_length`` says
    whether batches need :func:`pad_collate`.
    """

    def __init__(self, sequences: Tensor | Sequence[Tensor], targets: Tensor) -> None:
        if len(sequences) != len(targets):
            raise ValueError(f"{len(sequences)} sequences but {len(targets)} targets")
        lengths = {int(s.shape[0]) for s in sequences}
        self.variable_length = len(lengths) > 1
        if not self.variable_length and not isinstance(sequences, Tensor):
            sequences = torch.stack(list(sequences)) if len(sequences) else torch.zeros(0, 1, 1)
        self.sequences = sequences
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.sequences[i], self.targets[i]


def pad_collate(batch: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """[(x_i: (T_i, C), y_i)] -> (x: (B, T_max, C) zero-padded, lengths: (B,), y: (B, ...))."""
    xs, ys = zip(*batch)
    lengths = torch.tensor([x.shape[0] for x in xs], dtype=torch.long)
    return pad_sequence(list(xs), batch_first=True), lengths, torch.stack(list(ys))


class EpochSeededSampler(Sampler[int]):
    """Random order from ``seed`` and the epoch (set by Lightning through ``set_epoch``).

    Unlike ``shuffle=True`` it does not draw from the global RNG, so a run resumed from a
    checkpoint sees the same batches as an uninterrupted one.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=g).tolist())

    def __len__(self) -> int:
        return self.size


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f!r}")
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < 1:
        raise ValueError(
            f"no training data left: {n} items, fractions {val_fraction}, {test_fraction}"
        )
    return n - n_val - n_test, n_val, n_test


def _positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


class _SequenceDataModule(pl.LightningDataModule):
    """Loaders, the seeded sampler and the train-only standardization shared by all modules."""

    def __init__(self, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        _positive(batch_size=batch_size)
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_set: SequenceDataset | None = None
        self.val_set: SequenceDataset | None = None
        self.test_set: SequenceDataset | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        self._scaler_loaded = False

    def _fit_scaler(self, train_sequences: Sequence[Tensor] | Tensor) -> None:
        """Per-channel mean and std over all training steps (kept as they are when they came
        from a checkpoint: see :meth:`load_state_dict`)."""
        if self._scaler_loaded:
            return
        steps = torch.cat([s.reshape(-1, s.shape[-1]) for s in train_sequences])
        self.mean = steps.mean(dim=0)
        self.std = steps.std(dim=0).clamp_min(1e-6)

    def transform(self, x: Tensor) -> Tensor:
        """Standardize ``x: (..., C)`` with the training statistics."""
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse_transform(self, x: Tensor, channels: int | None = None) -> Tensor:
        """Undo :meth:`transform` on ``x: (..., C')`` whose channels are the first ``C'``: the
        data's own units."""
        c = x.shape[-1] if channels is None else channels
        return x * self.std[:c].to(x) + self.mean[:c].to(x)

    def state_dict(self) -> dict[str, Any]:
        """The data transform (saved in checkpoints): the training mean and std."""
        return {} if self.mean is None else {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take a checkpoint's data transform; data already set up is transformed anew."""
        if not state_dict:
            return
        mean, std = state_dict["mean"], state_dict["std"]
        rebuild = self.train_set is not None and not (
            torch.equal(mean, self.mean) and torch.equal(std, self.std))
        self.mean, self.std, self._scaler_loaded = mean, std, True
        if rebuild:
            self.train_set = self.val_set = self.test_set = None
            self.setup()

    def _loader(self, dataset: SequenceDataset | None, train: bool = False) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not been called")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(len(dataset), self.seed) if train else None,
            collate_fn=pad_collate if dataset.variable_length else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def _check_predict(self, predict: str) -> None:
        if predict not in ("future", "test"):
            raise ValueError(f"predict must be 'future' or 'test', got {predict!r}")
        self.predict = predict


# --- forecasting ---------------------------------------------------------------------------


class _ForecastingDataModule(_SequenceDataModule):
    """Sliding windows ``x: (seq_len, C)`` -> ``y: (horizon, output_size)`` over series.

    Subclasses provide ``_load() -> list of (N_k, C) arrays`` and the split: by series (many
    series) or chronological (one series: windows whose targets fall in the last part).
    """

    def __init__(
        self, seq_len: int, horizon: int, stride: int, batch_size: int, num_workers: int, seed: int
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        _positive(seq_len=seq_len, horizon=horizon, stride=stride)
        self.seq_len = seq_len
        self.horizon = horizon
        self.stride = stride
        self.input_size: int | None = None
        self.output_size: int | None = None
        self.predict = "future"
        self.future_set: FutureWindows | None = None
        self.log = False  # the series are forecast on the log scale (undone in outputs)

    def inverse_transform(self, x: Tensor, channels: int | None = None) -> Tensor:
        """Undo the standardisation and, with ``log``, the log: the series' own units."""
        x = super().inverse_transform(x, channels)
        return x.exp() if self.log else x

    def predict_dataloader(self) -> DataLoader:
        """``predict="future"``: the last ``seq_len`` steps of each series (of the test series
        for several), to forecast ``horizon`` steps past their end; ``"test"``: the test
        windows."""
        if self.predict == "test":
            return self._loader(self.test_set)
        if self.future_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not been called")
        return DataLoader(self.future_set, batch_size=self.batch_size,
                          num_workers=self.num_workers)

    def future_index(self, steps: int) -> list[list[str]]:
        """Labels of the ``steps`` steps after each future window's series ends."""
        return [[f"+{k}" for k in range(1, steps + 1)]] * len(self.future_set)

    def output_names(self) -> list[str]:
        """Names of the forecast channels."""
        return [f"y{i}" for i in range(self.output_size or 1)]

    def _windows(self, series: Tensor, lo: int = 0, hi: int | None = None) -> SequenceDataset:
        """Windows of ``series: (N, C)`` whose targets lie in ``[lo, hi)``."""
        hi = series.shape[0] if hi is None else hi
        L, H = self.seq_len, self.horizon
        starts = [s for s in range(max(lo - L, 0), hi - L - H + 1, self.stride)]
        x = torch.stack([series[s : s + L] for s in starts]) if starts else torch.zeros(0, L, 1)
        y = [series[s + L : s + L + H, : self.output_size] for s in starts]
        return SequenceDataset(x, torch.stack(y) if y else torch.zeros(0, H, 1))


class SineDataModule(_ForecastingDataModule):
    """Synthetic sine waves: forecast the next ``horizon`` values from ``seq_len`` of them.

    Each of ``num_series`` series has its own random amplitude (0.5-1.5), period (8-40 steps),
    phase and Gaussian noise (``noise`` times the amplitude). Series, not windows, are split
    into train/val/test, so no window leaks across splits.
    """

    def __init__(
        self,
        seq_len: int = 48,
        horizon: int = 8,
        num_series: int = 128,
        series_len: int = 240,
        noise: float = 0.05,
        stride: int = 4,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        predict: str = "future",
    ) -> None:
        super().__init__(seq_len, horizon, stride, batch_size, num_workers, seed)
        self._check_predict(predict)
        _positive(num_series=num_series, series_len=series_len)
        if series_len < seq_len + horizon:
            raise ValueError(f"series_len={series_len} is shorter than seq_len + horizon")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        self.num_series, self.series_len, self.noise = num_series, series_len, noise
        self.fractions = (val_fraction, test_fraction)
        _split_sizes(num_series, val_fraction, test_fraction)
        self.input_size = self.output_size = 1

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        g = torch.Generator().manual_seed(self.seed)
        n = self.num_series
        amp = 0.5 + torch.rand(n, 1, generator=g)
        period = 8 + 32 * torch.rand(n, 1, generator=g)
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        t = torch.arange(self.series_len, dtype=torch.float32)
        clean = amp * torch.sin(2 * math.pi * t / period + phase)
        series = (clean + self.noise * amp * torch.randn(clean.shape, generator=g)).unsqueeze(-1)
        order = torch.randperm(n, generator=g)
        n_train, n_val, _ = _split_sizes(n, *self.fractions)
        parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        self._fit_scaler(series[parts[0]])
        sets = []
        for idx in parts:
            windows = [self._windows(self.transform(series[i])) for i in idx.tolist()]
            x = torch.cat([w.sequences for w in windows]) if windows else torch.zeros(0, 1, 1)
            y = torch.cat([w.targets for w in windows]) if windows else torch.zeros(0, 1, 1)
            sets.append(SequenceDataset(x, y))
        self.train_set, self.val_set, self.test_set = sets
        self.test_series = parts[2].tolist()
        self.future_set = FutureWindows(
            self.transform(series[parts[2], -self.seq_len :]).reshape(-1, self.seq_len, 1))

    def future_index(self, steps: int) -> list[list[str]]:
        """Step numbers past the end of each test series (``series_len``, ...)."""
        return [[str(self.series_len - 1 + k) for k in range(1, steps + 1)]
                for _ in self.test_series]


class _SeriesDataModule(_ForecastingDataModule):
    """One (possibly multichannel) series split chronologically: train, then val, then test."""

    def __init__(
        self,
        seq_len: int,
        horizon: int,
        output_size: int | None,
        log: bool,
        val_fraction: float,
        test_fraction: float,
        batch_size: int,
        num_workers: int,
        seed: int,
        predict: str = "future",
    ) -> None:
        super().__init__(seq_len, horizon, 1, batch_size, num_workers, seed)
        self._check_predict(predict)
        if output_size is not None:
            _positive(output_size=output_size)
        self.output_size = output_size
        self.log = log
        self.fractions = (val_fraction, test_fraction)
        _split_sizes(10, val_fraction, test_fraction)

    def _load(self) -> np.ndarray:
        """The series, (N, C)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        series = torch.as_tensor(np.asarray(self._load(), dtype=np.float32))
        if series.ndim == 1:
            series = series.unsqueeze(-1)
        if self.log:
            if (series <= 0).any():
                raise ValueError("log=True needs a strictly positive series")
            series = series.log()
        N, C = series.shape
        self.input_size = C
        self.output_size = self.output_size or C
        if self.output_size > C:
            raise ValueError(f"output_size={self.output_size} exceeds the {C} channels")
        n_train, n_val, _ = _split_sizes(N, *self.fractions)
        if n_train < self.seq_len + self.horizon:
            raise ValueError(
                f"the training part ({n_train} steps) is shorter than seq_len + horizon "
                f"({self.seq_len} + {self.horizon})"
            )
        self._fit_scaler(series[:n_train].unsqueeze(0))
        series = self.transform(series)  # (after log: inverse_transform undoes both)
        self.train_set = self._windows(series, 0, n_train)
        self.val_set = self._windows(series, n_train, n_train + n_val)
        self.test_set = self._windows(series, n_train + n_val, N)
        self.future_set = FutureWindows(series[-self.seq_len :].unsqueeze(0))


# --- classification ------------------------------------------------------------------------


class _ClassificationDataModule(_SequenceDataModule):
    """Holds ``input_size``, ``num_classes`` and ``classes`` (label names) for the model."""

    input_size: int | None
    num_classes: int | None
    classes: list[str]

    def _finish(
        self, train: list[Tensor], val: list[Tensor], test: list[Tensor], targets: list[Tensor]
    ) -> None:
        self._fit_scaler(train)
        sets = [[self.transform(s) for s in part] for part in (train, val, test)]
        self.train_set, self.val_set, self.test_set = (
            SequenceDataset(s, y) for s, y in zip(sets, targets)
        )


class SyntheticClassificationDataModule(_ClassificationDataModule):
    """Which of ``num_classes`` frequencies is this noisy sine? A learnable synthetic task.

    Class ``k`` has period ``32 / 8**(k / (num_classes - 1))`` steps (32 down to 4) with 5%
    jitter, random amplitude and phase, plus Gaussian noise. With ``min_len`` set, sequence
    lengths are uniform in ``[min_len, seq_len]`` and batches come as ``(x, lengths, y)``.
    """

    def __init__(
        self,
        num_classes: int = 4,
        seq_len: int = 64,
        min_len: int | None = None,
        num_samples: int = 1200,
        num_features: int = 1,
        noise: float = 0.3,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        _positive(seq_len=seq_len, num_samples=num_samples, num_features=num_features)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if min_len is not None and not 1 <= min_len <= seq_len:
            raise ValueError(f"min_len must be in [1, seq_len={seq_len}], got {min_len!r}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        _split_sizes(num_samples, val_fraction, test_fraction)
        self.num_classes, self.seq_len, self.min_len = num_classes, seq_len, min_len
        self.num_samples, self.noise = num_samples, noise
        self.fractions = (val_fraction, test_fraction)
        self.input_size = num_features
        self.classes = [str(k) for k in range(num_classes)]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        g = torch.Generator().manual_seed(self.seed)
        n, K, C, T = self.num_samples, self.num_classes, self.input_size, self.seq_len
        y = torch.randint(0, K, (n,), generator=g)
        period = 32.0 / 8.0 ** (y.float() / (K - 1))
        period = period * (1 + 0.05 * (2 * torch.rand(n, generator=g) - 1))
        amp = 0.5 + torch.rand(n, 1, C, generator=g)
        phase = 2 * math.pi * torch.rand(n, 1, C, generator=g)
        t = torch.arange(T, dtype=torch.float32).view(1, T, 1)
        x = amp * torch.sin(2 * math.pi * t / period.view(n, 1, 1) + phase)
        x = x + self.noise * torch.randn(x.shape, generator=g)
        if self.min_len is None:
            lengths = torch.full((n,), T)
        else:
            lengths = torch.randint(self.min_len, T + 1, (n,), generator=g)
        seqs = [x[i, : lengths[i]] for i in range(n)]
        n_train, n_val, _ = _split_sizes(n, *self.fractions)
        order = torch.randperm(n, generator=g)
        parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        self._finish(*([seqs[i] for i in p.tolist()] for p in parts), [y[p] for p in parts])
