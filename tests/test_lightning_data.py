"""Lightning data modules: shapes, determinism, splits, train-only scaling, padded batches."""

import sys

import pytest
import torch

from fastrnn.lightning import (
    AeonClassificationDataModule,
    AeonForecastingDataModule,
    CSVForecastingDataModule,
    SineDataModule,
    SyntheticClassificationDataModule,
    pad_collate,
)
from fastrnn.lightning.data import EpochSeededSampler


def _sine(**kwargs) -> SineDataModule:
    args = dict(seq_len=16, horizon=4, num_series=20, series_len=64, stride=4, batch_size=8)
    dm = SineDataModule(**{**args, **kwargs})
    dm.setup("fit")
    return dm


def test_sine_shapes_sizes_and_disjoint_series():
    dm = _sine()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 16, 1) and y.shape == (8, 4, 1)
    assert (dm.input_size, dm.output_size, dm.horizon) == (1, 1, 4)
    windows_per_series = (64 - 16 - 4) // 4 + 1
    assert len(dm.train_set) == 12 * windows_per_series  # 20 series: 12 / 4 / 4
    assert len(dm.val_set) == len(dm.test_set) == 4 * windows_per_series
    # a target continues its window: with stride 4 its first value is the next window's x[12]
    torch.testing.assert_close(dm.train_set[0][1][0], dm.train_set[1][0][12])


def test_sine_is_deterministic_per_seed():
    a, b, c = _sine(seed=3), _sine(seed=3), _sine(seed=4)
    assert torch.equal(a.val_set.sequences, b.val_set.sequences)
    assert not torch.equal(a.val_set.sequences, c.val_set.sequences)


def test_sine_scaler_is_fitted_on_the_training_split_only():
    dm = _sine(num_series=12)
    train = dm.train_set.sequences
    assert abs(float(train.mean())) < 0.05  # windows overlap, so nearly but not exactly 0
    # the statistics come from the raw training series: undoing them restores the raw scale
    raw = dm.inverse_transform(dm.val_set.sequences)
    assert not torch.allclose(raw, dm.val_set.sequences)
    again = SineDataModule(seq_len=16, horizon=4, num_series=12, series_len=64, stride=4)
    again.setup()
    assert torch.equal(again.mean, dm.mean) and torch.equal(again.std, dm.std)


def test_bad_data_settings_raise_value_error():
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        SineDataModule(seq_len=-1)
    with pytest.raises(ValueError, match="shorter than seq_len"):
        SineDataModule(seq_len=200, series_len=100)
    with pytest.raises(ValueError, match="val_fraction"):
        SineDataModule(val_fraction=1.5)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        SyntheticClassificationDataModule(num_classes=1)
    with pytest.raises(ValueError, match="min_len"):
        SyntheticClassificationDataModule(seq_len=10, min_len=20)


def test_synthetic_classification_variable_lengths_come_with_lengths():
    dm = SyntheticClassificationDataModule(
        num_classes=3, seq_len=20, min_len=5, num_samples=90, batch_size=16
    )
    dm.setup("fit")
    x, lengths, y = next(iter(dm.train_dataloader()))
    assert x.shape[0] == lengths.shape[0] == y.shape[0] == 16 and x.shape[2] == 1
    assert lengths.min() >= 5 and lengths.max() <= 20 and x.shape[1] == lengths.max()
    padding = torch.arange(x.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
    assert torch.all(x[padding] == 0) and padding.any()
    assert set(y.tolist()) <= {0, 1, 2}
    assert (dm.input_size, dm.num_classes, dm.classes) == (1, 3, ["0", "1", "2"])


def test_synthetic_classification_fixed_length_and_balanced_split():
    dm = SyntheticClassificationDataModule(num_classes=4, seq_len=12, num_samples=100)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (60, 20, 20)
    batch = next(iter(dm.val_dataloader()))
    assert len(batch) == 2 and batch[0].shape == (20, 12, 1)
    # standardized with the training statistics: the training steps have mean 0 and std 1
    steps = dm.train_set.sequences.reshape(-1)
    assert abs(float(steps.mean())) < 1e-5 and abs(float(steps.std()) - 1) < 1e-4


def test_pad_collate():
    x, lengths, y = pad_collate(
        [(torch.ones(3, 2), torch.tensor(1)), (torch.ones(1, 2), torch.tensor(0))]
    )
    assert x.shape == (2, 3, 2) and lengths.tolist() == [3, 1] and y.tolist() == [1, 0]
    assert x[1, 1:].abs().sum() == 0


def test_epoch_seeded_sampler_repeats_per_epoch_and_changes_across_epochs():
    sampler = EpochSeededSampler(50, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def _write_csv(path, n=120):
    rows = ["month,passengers,temperature"]
    rows += [f"{i},{100 + 2 * i + (i % 12)},{20 + (i % 12)}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_forecasting_splits_chronologically_and_scales_on_train(tmp_path):
    path = _write_csv(tmp_path / "series.csv")
    dm = CSVForecastingDataModule(
        str(path), columns=["passengers", "temperature"], seq_len=12, horizon=3, output_size=1
    )
    dm.setup()
    assert (dm.input_size, dm.output_size) == (2, 1)
    n_train = 120 - 18 - 18
    raw = torch.tensor([[100 + 2 * i + (i % 12), 20 + (i % 12)] for i in range(120)]).float()
    torch.testing.assert_close(dm.mean, raw[:n_train].mean(0))  # training part only
    x, y = dm.train_set[0]
    assert x.shape == (12, 2) and y.shape == (3, 1)
    torch.testing.assert_close(dm.inverse_transform(y, 1)[:, 0], raw[12:15, 0])
    # every validation target lies after the training part, every test target after that
    last_train = dm.inverse_transform(dm.train_set.targets[-1], 1).max()
    assert dm.inverse_transform(dm.val_set.targets, 1).min() > last_train - 12
    assert len(dm.train_set) == n_train - 15 + 1 and len(dm.val_set) == len(dm.test_set) == 16


def test_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="data file not found"):
        CSVForecastingDataModule(str(tmp_path / "missing.csv"))
    path = _write_csv(tmp_path / "series.csv")
    dm = CSVForecastingDataModule(str(path), columns=["nope"])
    with pytest.raises(ValueError, match="no column 'nope'"):
        dm.setup()
    with pytest.raises(ValueError, match="shorter than seq_len"):
        CSVForecastingDataModule(str(path), seq_len=100).setup()


def test_aeon_modules_explain_the_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon", None)
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(ImportError, match=r"pip install fastrnn\[data\]"):
        AeonClassificationDataModule("gunpoint").setup()
    with pytest.raises(ImportError, match=r"pip install fastrnn\[data\]"):
        AeonForecastingDataModule("airline").prepare_data()
    with pytest.raises(ValueError, match="dataset must be one of"):
        AeonClassificationDataModule("imagenet")
