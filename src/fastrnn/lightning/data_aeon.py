"""Real data sets bundled with aeon (UCR/UEA classification, classic forecasting series).

They are read from aeon's wheel, offline. Needs the optional extra: ``pip install fastrnn[data]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fastrnn.lightning.data import _ClassificationDataModule, _SeriesDataModule, _split_sizes

__all__ = ["AeonClassificationDataModule", "AeonForecastingDataModule"]


def _aeon_datasets():
    try:
        import aeon.datasets
    except ImportError as e:
        raise ImportError(
            "this data module reads data sets bundled with aeon, which is not installed: "
            "pip install fastrnn[data]"
        ) from e
    return aeon.datasets


_AEON_SERIES = {
    "airline": "load_airline",
    "lynx": "load_lynx",
    "shampoo_sales": "load_shampoo_sales",
}


class AeonForecastingDataModule(_SeriesDataModule):
    """A forecasting series bundled with aeon (offline): ``"airline"`` (monthly passengers,
    144 steps), ``"lynx"`` (114) or ``"shampoo_sales"`` (36). Needs ``fastrnn[data]``.
    """

    def __init__(
        self,
        dataset: str = "airline",
        seq_len: int = 24,
        horizon: int = 12,
        log: bool = True,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        predict: str = "future",
    ) -> None:
        super().__init__(seq_len, horizon, None, log, val_fraction, test_fraction, batch_size,
                         num_workers, seed, predict)
        if dataset not in _AEON_SERIES:
            raise ValueError(f"dataset must be one of {tuple(_AEON_SERIES)}, got {dataset!r}")
        self.dataset = dataset
        self.input_size = self.output_size = 1

    def prepare_data(self) -> None:
        _aeon_datasets()

    def _load(self) -> np.ndarray:
        return getattr(_aeon_datasets(), _AEON_SERIES[self.dataset])()


_AEON_CLASSIFICATION = {
    "gunpoint": "load_gunpoint",
    "japanese_vowels": "load_japanese_vowels",
    "basic_motions": "load_basic_motions",
    "italy_power_demand": "load_italy_power_demand",
    "arrow_head": "load_arrow_head",
    "osuleaf": "load_osuleaf",
}


class AeonClassificationDataModule(_ClassificationDataModule):
    """A UCR/UEA classification set bundled with aeon (offline). Needs ``fastrnn[data]``.

    ``"gunpoint"`` (1 channel, 150 steps, 2 classes), ``"japanese_vowels"`` (12 channels,
    7-29 steps, variable length, 9 classes), ``"basic_motions"`` (6 channels, 4 classes),
    ``"italy_power_demand"``, ``"arrow_head"``, ``"osuleaf"``. The official test split is the
    test set; ``val_fraction`` of the official train split (seeded) is the validation set.
    """

    def __init__(
        self,
        dataset: str = "gunpoint",
        val_fraction: float = 0.2,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        if dataset not in _AEON_CLASSIFICATION:
            raise ValueError(
                f"dataset must be one of {tuple(_AEON_CLASSIFICATION)}, got {dataset!r}"
            )
        _split_sizes(10, val_fraction, 0.0)
        self.dataset = dataset
        self.val_fraction = val_fraction
        self.input_size = self.num_classes = None

    def prepare_data(self) -> None:
        _aeon_datasets()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        load = getattr(_aeon_datasets(), _AEON_CLASSIFICATION[self.dataset])
        (X_train, y_train), (X_test, y_test) = load(split="train"), load(split="test")
        self.classes = [str(c) for c in np.unique(np.concatenate([y_train, y_test]))]
        index = {c: i for i, c in enumerate(self.classes)}

        def convert(X, y) -> tuple[list[Tensor], Tensor]:
            seqs = [torch.as_tensor(np.asarray(s, dtype=np.float32).T) for s in X]  # (T, C)
            return seqs, torch.tensor([index[str(c)] for c in y], dtype=torch.long)

        train, y_tr = convert(X_train, y_train)
        test, y_te = convert(X_test, y_test)
        n_train, n_val, _ = _split_sizes(len(train), self.val_fraction, 0.0)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
        tr, va = order[:n_train].tolist(), order[n_train:].tolist()
        self.input_size, self.num_classes = train[0].shape[1], len(self.classes)
        self._finish(
            [train[i] for i in tr], [train[i] for i in va], test, [y_tr[tr], y_tr[va], y_te]
        )
