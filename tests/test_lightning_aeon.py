"""Real data sets bundled with aeon (the optional ``data`` extra), read offline."""

import lightning.pytorch as pl
import pytest
import torch

pytest.importorskip("aeon")

from fastrnn.lightning import (  # noqa: E402
    AeonClassificationDataModule,
    AeonForecastingDataModule,
    SequenceClassifier,
)


def test_gunpoint_splits_and_scaling():
    dm = AeonClassificationDataModule("gunpoint", val_fraction=0.2, batch_size=8)
    dm.setup()
    assert (dm.input_size, dm.num_classes, dm.classes) == (1, 2, ["1", "2"])
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (40, 10, 150)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 150, 1) and y.dtype == torch.long
    steps = dm.train_set.sequences.reshape(-1)
    assert abs(float(steps.mean())) < 1e-4  # scaled with the training split's statistics
    other = AeonClassificationDataModule("gunpoint", seed=1)
    other.setup()
    assert not torch.equal(other.val_set.sequences, dm.val_set.sequences)


def test_japanese_vowels_is_variable_length_and_trains(tmp_path):
    pl.seed_everything(0)
    dm = AeonClassificationDataModule("japanese_vowels", batch_size=32)
    dm.setup()
    x, lengths, y = next(iter(dm.train_dataloader()))
    assert x.shape[2] == 12 and lengths.min() < lengths.max() <= 29
    assert dm.num_classes == 9
    model = SequenceClassifier(cell="gru", hidden_size=16, lr=1e-2, backend="reference")
    trainer = pl.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, dm)
    result = trainer.test(model, dm, verbose=False)[0]
    assert result["test_acc"] > 0.3  # chance is 1/9


def test_airline_windows_are_chronological():
    dm = AeonForecastingDataModule("airline", seq_len=24, horizon=12, log=True)
    dm.setup()
    x, y = dm.train_set[0]
    assert x.shape == (24, 1) and y.shape == (12, 1)
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) > 50
    passengers = dm.inverse_transform(dm.test_set.targets).exp()
    assert passengers.max() > 600  # 1960 peaks at 622 thousand passengers
