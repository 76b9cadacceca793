"""Lightning models: encoder and pooling semantics, validation, training, torch.nn weights."""

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from fastrnn.lightning import (
    CSVForecastingDataModule,
    MeanAbsoluteScaledError,
    RecurrentEncoder,
    SequenceClassifier,
    SequenceForecaster,
    SineDataModule,
    SyntheticClassificationDataModule,
    TemporalPooling,
)
from fastrnn.lightning.metrics import naive_scale


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    settings = dict(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    return pl.Trainer(**{**settings, **kwargs})


def _small_classification(**kwargs) -> SyntheticClassificationDataModule:
    return SyntheticClassificationDataModule(
        num_classes=3, seq_len=24, num_samples=240, batch_size=32, **kwargs
    )


def _small_sine(**kwargs) -> SineDataModule:
    args = dict(seq_len=16, horizon=4, num_series=24, series_len=64, stride=4, batch_size=32)
    return SineDataModule(**{**args, **kwargs})


# --- encoder and pooling ---------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_plain_encoder_matches_torch_with_torch_weights(cell):
    torch_rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](
        3, 8, num_layers=2, batch_first=True, bidirectional=True
    )
    enc = RecurrentEncoder(3, cell, 8, num_layers=2, bidirectional=True, backend="reference")
    assert set(enc.rnn.state_dict()) == set(torch_rnn.state_dict())
    enc.load_rnn_state_dict(torch_rnn.state_dict())
    x = torch.randn(4, 7, 3)
    torch.testing.assert_close(enc(x), torch_rnn(x)[0], atol=1e-5, rtol=1e-5)


def test_stacked_encoder_loads_torch_layers():
    torch_lstm = nn.LSTM(3, 8, num_layers=3, batch_first=True, bidirectional=True)
    enc = RecurrentEncoder(3, "lstm", 8, num_layers=3, bidirectional=True, layer_norm=True)
    assert enc.stacked and len(enc.layers) == 3
    enc.load_rnn_state_dict(torch_lstm.state_dict())
    torch.testing.assert_close(enc.layers[2].weight_hh_l0_reverse, torch_lstm.weight_hh_l2_reverse)
    torch.testing.assert_close(enc.layers[0].bias_ih_l0, torch_lstm.bias_ih_l0)
    with pytest.raises(KeyError, match="weight_ih_l5"):
        enc.load_rnn_state_dict({"weight_ih_l5": torch.zeros(1)})


def test_residual_adds_layer_input():
    enc = RecurrentEncoder(6, "gru", 3, num_layers=2, bidirectional=True, residual=True)
    x = torch.randn(2, 5, 6)
    first = enc.layers[0](x)[0] + x  # widths match (6 = 2 * 3), so layer 0 is residual too
    expected = enc.layers[1](first)[0] + first
    torch.testing.assert_close(enc(x), expected)


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("stacked", [False, True])
def test_padding_never_changes_pooled_features(pooling, stacked):
    """A padded batch pools to exactly what each sequence gives alone, padding ignored."""
    torch.manual_seed(0)
    model = SequenceClassifier(
        input_size=2,
        num_classes=3,
        cell="lstm",
        hidden_size=6,
        num_layers=2,
        bidirectional=True,
        pooling=pooling,
        residual=stacked,
        layer_norm=stacked,
        backend="reference",
    ).eval()
    lengths = torch.tensor([5, 2, 7])
    x = torch.randn(3, 7, 2)
    x[torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)] = 1e3  # junk in the padding
    batch = model.encode(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model.encode(x[i : i + 1, :n])
        torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_last_pooling_takes_both_directions_final_outputs():
    pool = TemporalPooling("last", 4, bidirectional=True)
    y = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    out = pool(y, torch.tensor([2, 3]))
    torch.testing.assert_close(out[0], torch.cat([y[0, 1, :2], y[0, 0, 2:]]))
    torch.testing.assert_close(out[1], torch.cat([y[1, 2, :2], y[1, 0, 2:]]))


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cell="transformer"), "cell must be one of"),
        (dict(hidden_size=-4), "hidden_size must be a positive integer"),
        (dict(num_layers=0), "num_layers must be a positive integer"),
        (dict(input_size=0), "input_size must be a positive integer"),
        (dict(pooling="max"), "pooling must be one of"),
        (dict(backend="cudnn"), "backend must be one of"),
        (dict(dropout=1.5), "dropout must be in"),
        (dict(scheduler="step"), "scheduler must be one of"),
        (dict(lr=0.0), "lr must be positive"),
    ],
)
def test_bad_settings_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SequenceClassifier(**kwargs)


def test_sizes_come_from_the_datamodule_and_are_saved(tmp_path):
    model = SequenceClassifier(hidden_size=8, backend="reference")
    assert model.encoder is None
    with pytest.raises(RuntimeError, match="not built yet"):
        model(torch.zeros(1, 3, 1))
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=1)
    trainer.fit(model, _small_classification())
    assert (model.hparams.input_size, model.hparams.num_classes) == (1, 3)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = SequenceClassifier.load_from_checkpoint(tmp_path / "m.ckpt")
    assert loaded.encoder is not None and loaded.hparams.num_classes == 3
    wrong = SequenceClassifier(input_size=1, num_classes=5)
    with pytest.raises(ValueError, match="num_classes=5 but the datamodule has num_classes=3"):
        _trainer(tmp_path, max_steps=1).fit(wrong, _small_classification())


# --- training ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["reference", None])
def test_classifier_learns_variable_length_task(tmp_path, backend):
    pl.seed_everything(0)
    dm = _small_classification(min_len=12)
    model = SequenceClassifier(cell="gru", hidden_size=16, pooling="mean", lr=2e-2, backend=backend)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=0)
    before = trainer.validate(model, dm, verbose=False)[0]
    trainer = _trainer(tmp_path, max_epochs=8, gradient_clip_val=1.0)
    trainer.fit(model, dm)
    after = trainer.validate(model, dm, verbose=False)[0]
    assert after["val_loss"] < 0.6 * before["val_loss"]
    assert after["val_acc"] > 0.7  # chance is 1/3
    assert set(after) == {"val_loss", "val_acc", "val_f1"}


@pytest.mark.parametrize("backend", ["reference", None])
def test_forecaster_learns_sine(tmp_path, backend):
    pl.seed_everything(0)
    dm = _small_sine()
    model = SequenceForecaster(cell="lstm", hidden_size=24, lr=1e-2, backend=backend)
    before = _trainer(tmp_path).validate(model, dm, verbose=False)[0]
    trainer = _trainer(tmp_path, max_epochs=8, gradient_clip_val=1.0)
    trainer.fit(model, dm)
    after = trainer.validate(model, dm, verbose=False)[0]
    assert after["val_mse"] < 0.5 * before["val_mse"]
    assert set(after) == {"val_loss", "val_mse", "val_mae", "val_mase"}
    pred = trainer.predict(model, dm)  # past the end of each test series
    assert torch.cat(pred).shape == (len(dm.test_series), 4, 1)


@pytest.mark.parametrize("scheduler", ["cosine", "plateau"])
def test_schedulers_change_the_learning_rate(tmp_path, scheduler):
    model = SequenceForecaster(hidden_size=8, lr=0.1, scheduler=scheduler, backend="reference")
    trainer = _trainer(tmp_path, max_epochs=4)
    if scheduler == "plateau":  # patience 2: a loss that never improves halves the lr
        model.validation_step = lambda batch, batch_idx: model.log("val_loss", 1.0)
    trainer.fit(model, _small_sine(num_series=10))
    assert trainer.optimizers[0].param_groups[0]["lr"] < 0.1


# --- torch.nn checkpoints ----------------------------------------------------------------


def test_torch_nn_trained_checkpoint_loads_into_fastrnn(tmp_path):
    pl.seed_everything(0)
    dm = _small_sine()
    torch_model = SequenceForecaster(cell="gru", hidden_size=12, num_layers=2, backend="torch")
    trainer = _trainer(tmp_path, max_steps=3)
    trainer.fit(torch_model, dm)
    assert type(torch_model.encoder.rnn) is nn.GRU
    trainer.save_checkpoint(tmp_path / "torch.ckpt")

    fast = SequenceForecaster.load_from_checkpoint(tmp_path / "torch.ckpt", backend="reference")
    assert type(fast.encoder.rnn) is not nn.GRU and isinstance(fast.encoder.rnn, nn.Module)
    assert fast.encoder.rnn.__module__.startswith("fastrnn.")
    torch.testing.assert_close(fast.encoder.rnn.weight_hh_l1, torch_model.encoder.rnn.weight_hh_l1)
    x = next(iter(dm.val_dataloader()))[0]
    torch.testing.assert_close(fast.eval()(x), torch_model.eval()(x), atol=1e-5, rtol=1e-5)

    # and a bare torch.nn.GRU's state_dict drops straight into the recurrent submodule
    bare = nn.GRU(1, 12, num_layers=2, batch_first=True)
    fast.encoder.rnn.load_state_dict(bare.state_dict())
    torch.testing.assert_close(fast.encoder.rnn.weight_ih_l0, bare.weight_ih_l0)


# --- metrics and forecasting details -----------------------------------------------------


def test_mase_scales_by_the_naive_in_sample_error():
    x = torch.tensor([[0.0, 2.0, 4.0, 6.0], [1.0, 0.0, 1.0, 0.0]]).unsqueeze(-1)  # steps 2, 1
    scale = naive_scale(x)
    torch.testing.assert_close(scale, torch.tensor([[2.0], [1.0]]))
    target = torch.zeros(2, 3, 1)
    preds = target + torch.tensor([1.0, 3.0]).view(2, 1, 1)
    metric = MeanAbsoluteScaledError()
    metric.update(preds, target, scale)
    torch.testing.assert_close(metric.compute(), torch.tensor((0.5 + 3.0) / 2))


def test_predict_change_adds_the_last_observed_value():
    model = SequenceForecaster(input_size=2, horizon=3, output_size=1, predict_change=True)
    base = SequenceForecaster(input_size=2, horizon=3, output_size=1)
    base.load_state_dict(model.state_dict())
    x = torch.randn(4, 6, 2)
    lengths = torch.tensor([6, 3, 5, 1])
    last = x[torch.arange(4), lengths - 1, :1].unsqueeze(1)
    torch.testing.assert_close(model(x, lengths), base(x, lengths) + last)


def _csv(path, offset=70.0, n=150):
    """A series between about offset and offset + 60, with a header."""
    t = torch.arange(n, dtype=torch.float32)
    values = offset + 30 + 30 * torch.sin(2 * torch.pi * t / 12)
    path.write_text("value\n" + "\n".join(f"{v:.4f}" for v in values.tolist()) + "\n")
    return path


@pytest.mark.parametrize("log", [False, True])
def test_forecasts_and_metrics_in_the_series_units(tmp_path, log):
    """Predictions and MSE/MAE in the CSV's own units (70..130), log undone too; the loss is
    the standardised MSE; the scaler travels in the checkpoint and is used on new data."""
    pl.seed_everything(0)
    dm = CSVForecastingDataModule(str(_csv(tmp_path / "s.csv")), seq_len=12, horizon=3,
                                  log=log, batch_size=16, predict="test")
    model = SequenceForecaster(hidden_size=16, lr=1e-2, backend="reference")
    trainer = _trainer(tmp_path, max_epochs=3, enable_checkpointing=True)
    trainer.fit(model, dm)
    pred = torch.cat(trainer.predict(model, dm))  # the test split
    truth = dm.inverse_transform(dm.test_set.targets, 1)
    assert truth.min() > 69.9 and 40 < pred.mean() < 160  # the series' units, not -2..2
    tested = trainer.test(model, dm, verbose=False)[0]
    torch.testing.assert_close(tested["test_mse"], ((pred - truth) ** 2).mean().item(),
                               rtol=1e-4, atol=1e-3)
    assert tested["test_loss"] < tested["test_mse"]  # standardised vs the series' units
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")
    saved = torch.load(ckpt, weights_only=False)["CSVForecastingDataModule"]
    torch.testing.assert_close(saved["mean"], dm.mean)
    shifted = CSVForecastingDataModule(str(_csv(tmp_path / "t.csv", offset=500.0)), seq_len=12,
                                       horizon=3, log=log, batch_size=16)
    shifted.setup()
    shifted.load_state_dict(saved)  # the training data's transform, applied anew
    torch.testing.assert_close(shifted.mean, dm.mean)
    assert shifted.inverse_transform(shifted.test_set.targets, 1).min() > 499


def test_predict_takes_a_tensor_dataset(tmp_path):
    """``trainer.predict`` on ``DataLoader(TensorDataset(x))``: one-item batches."""
    model = SequenceForecaster(input_size=1, horizon=2, output_size=1, hidden_size=8,
                               backend="reference")
    x = torch.randn(6, 10, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=4)
    pred = torch.cat(_trainer(tmp_path).predict(model, loader))
    assert pred.shape == (6, 2, 1)
    torch.testing.assert_close(pred, model(x))


def test_predict_forecasts_past_the_end_with_the_time_index(tmp_path):
    """predict="future" (the default) forecasts horizon steps after the last row, labelled by
    the CSV's time column continued (month starts by months), written to forecast.csv."""
    from fastrnn.lightning import SavePredictions
    from fastrnn.lightning.future import extend_index

    months = [f"{1949 + m // 12}-{m % 12 + 1:02d}-01" for m in range(60)]
    values = [100 + 10 * ((m % 12) / 12) + m for m in range(60)]
    path = tmp_path / "monthly.csv"
    path.write_text("month,passengers\n" + "".join(f"{d},{v}\n" for d, v in zip(months, values)))
    dm = CSVForecastingDataModule(str(path), columns=["passengers"], time_column="month",
                                  seq_len=12, horizon=3, batch_size=8)
    model = SequenceForecaster(hidden_size=8, backend="reference")
    trainer = _trainer(tmp_path, max_epochs=1, callbacks=[SavePredictions()])
    trainer.fit(model, dm)
    pred = torch.cat(trainer.predict(model, dm))
    assert pred.shape == (1, 3, 1)
    window = dm.future_set.sequences[0]
    torch.testing.assert_close(dm.inverse_transform(window, 1)[:, 0],
                               torch.tensor(values[-12:]), rtol=1e-5, atol=1e-3)
    rows = (tmp_path / "forecast.csv").read_text().splitlines()
    assert rows[0] == "month,passengers"
    assert [r.split(",")[0] for r in rows[1:]] == ["1954-01-01", "1954-02-01", "1954-03-01"]
    assert float(rows[1].split(",")[1]) == pytest.approx(pred[0, 0, 0].item(), rel=1e-4)
    assert extend_index(["3", "5"], 2) == ["7", "9"]
    assert extend_index(["2020-01-01T00:00:00", "2020-01-01T06:00:00"], 1) == [
        "2020-01-01T12:00:00"]
    assert extend_index(["a", "b"], 2) == ["+1", "+2"]
    with pytest.raises(ValueError, match="predict must be"):
        CSVForecastingDataModule(str(path), predict="past")


def test_layernorm_cells_in_the_encoder():
    """cell: layernorm_lstm / layernorm_gru build fastrnn's LayerNorm modules (plain and
    stacked); torch.nn has none, so backend='torch' is refused."""
    from fastrnn.lightning.layers import RecurrentEncoder

    enc = RecurrentEncoder(3, cell="layernorm_gru", hidden_size=5, num_layers=2, residual=True,
                           zoneout=0.1)
    assert all(type(m).__name__ == "LayerNormGRU" for m in enc.layers)
    y = enc(torch.randn(2, 6, 3), torch.tensor([6, 4]))
    assert y.shape == (2, 6, 5) and y[1, 4:].abs().max() == 0
    enc = RecurrentEncoder(3, cell="layernorm_lstm", hidden_size=5, bidirectional=True)
    assert type(enc.rnn).__name__ == "LayerNormLSTM" and enc(torch.randn(2, 6, 3)).shape == (
        2, 6, 10)
    with pytest.raises(ValueError, match="torch.nn has no layernorm_lstm cell"):
        RecurrentEncoder(3, cell="layernorm_lstm", backend="torch")


def test_slstm_cell_and_heads_in_the_models():
    """cell: slstm builds fastrnn.SLSTM; num_heads reaches the layers; a classifier trains a
    step on them."""
    from fastrnn.lightning import SequenceClassifier
    from fastrnn.lightning.layers import RecurrentEncoder

    enc = RecurrentEncoder(3, cell="slstm", hidden_size=8, num_heads=2, num_layers=2)
    assert type(enc.rnn).__name__ == "SLSTM" and enc.rnn.num_heads == 2
    assert enc(torch.randn(2, 5, 3), torch.tensor([5, 3])).shape == (2, 5, 8)
    with pytest.raises(ValueError, match="num_heads need fastrnn's modules"):
        RecurrentEncoder(3, cell="lstm", hidden_size=8, num_heads=2, backend="torch")
    model = SequenceClassifier(input_size=3, num_classes=2, cell="gru", hidden_size=8,
                               num_heads=4)
    assert model.encoder.rnn.num_heads == 4 and model.encoder.rnn.weight_hh_l0.shape == (24, 2)
    logits = model(torch.randn(4, 6, 3))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1])).backward()
    assert model.encoder.rnn.weight_hh_l0.grad is not None
