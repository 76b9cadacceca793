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


def _long_table(path, n=60, future=3):
    """Two series in one long table (id column), a past-only input and a known covariate; the
    last ``future`` rows of each give only the known covariate."""
    rows = ["t,id,sales,price,promo"]
    for sid, base in (("a", 10.0), ("b", 500.0)):
        for i in range(n + future):
            promo = i % 4 == 0
            sales = "" if i >= n else f"{base + i + 5 * promo}"
            price = "" if i >= n else f"{1 + i % 3}"
            rows.append(f"{i},{sid},{sales},{price},{int(promo)}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_long_table_with_known_future_covariates(tmp_path):
    dm = CSVForecastingDataModule(str(_long_table(tmp_path / "long.csv")),
                                  columns=["sales", "price"], output_size=1, id_column="id",
                                  time_column="t", known_columns=["promo"], seq_len=8,
                                  horizon=3, batch_size=4)
    dm.setup()
    assert (dm.input_size, dm.output_size, dm.known_size) == (3, 1, 1)
    assert dm.series_ids == ["a", "b"] and dm.test_series == ["a", "b"]
    item = dm.train_set[0]
    assert item["x"].shape == (8, 3) and item["y"].shape == (3, 1)
    assert item["future"].shape == (3, 1)
    # no window mixes the two series (their values are 10.. and 500..)
    for split in (dm.train_set, dm.val_set, dm.test_set):
        raw = dm.inverse_transform(split.sequences[..., :1], 1)[..., 0]
        assert ((raw < 100).all(dim=1) | (raw > 400).all(dim=1)).all()
    # the known covariate of a window's target steps is the promo of those steps
    promo = dm.train_set.future[0, :, 0] * dm.std[2] + dm.mean[2]
    torch.testing.assert_close(promo, torch.tensor([1.0, 0, 0]))  # steps 8, 9, 10
    future = dm.future_set.future * dm.std[2] + dm.mean[2]
    torch.testing.assert_close(future[:, :, 0], torch.tensor([[1.0, 0, 0]] * 2))  # steps 60..62
    assert dm.future_index(3) == [["60", "61", "62"]] * 2
    batch = next(iter(dm.predict_dataloader()))
    assert set(batch) == {"x", "future"} and batch["x"].shape == (2, 8, 3)
    short = CSVForecastingDataModule(str(_long_table(tmp_path / "short.csv", future=1)),
                                     columns=["sales"], id_column="id", known_columns=["promo"],
                                     seq_len=8, horizon=3)
    short.setup()  # training needs no future rows; forecasting past the data does
    with pytest.raises(ValueError, match="needs, after each series' last values, 3 rows"):
        short.predict_dataloader()


def test_forecaster_uses_known_covariates_and_writes_each_series(tmp_path):
    import lightning.pytorch as pl

    from fastrnn.lightning import SavePredictions, SequenceForecaster

    dm = CSVForecastingDataModule(str(_long_table(tmp_path / "long.csv")), columns=["sales"],
                                  id_column="id", time_column="t", known_columns=["promo"],
                                  seq_len=8, horizon=3, batch_size=8)
    model = SequenceForecaster(hidden_size=8, backend="reference")
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, default_root_dir=tmp_path,
                         callbacks=[SavePredictions()])
    trainer.fit(model, dm)
    assert model.hparams.known_size == 1 and model.head[1].in_features == 8 + 3
    pred = torch.cat(trainer.predict(model, dm))
    assert pred.shape == (2, 3, 1)
    rows = (tmp_path / "forecast.csv").read_text().splitlines()
    assert rows[0] == "series,t,sales" and rows[1].startswith("a,60,") and rows[4].startswith(
        "b,60,")
    with pytest.raises(ValueError, match="known-future covariates"):
        model(torch.randn(2, 8, 2))  # no future given
