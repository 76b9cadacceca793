"""The ``fastrnn`` command line: configs, subcommands, outputs and configuration errors."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastrnn.lightning
from fastrnn.lightning import SequenceForecaster, SineDataModule

pytest.importorskip("jsonargparse")

from fastrnn.lightning.cli import main, with_default_classes  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_SINE = [
    *("--data.num_series", "10", "--data.series_len", "40", "--data.seq_len", "12"),
    *("--data.horizon", "3", "--data.batch_size", "16", "--model.hidden_size", "8"),
]
TINY_CLASSES = [
    *("--data.num_samples", "60", "--data.seq_len", "16", "--data.min_len", "8"),
    *("--model.hidden_size", "8", "--data.batch_size", "16"),
]


@pytest.fixture(autouse=True)
def _bare_argv(monkeypatch):
    """main(args=...) is the whole command line; pytest's own arguments are not."""
    monkeypatch.setattr(sys, "argv", ["fastrnn"])


def _trainer_args(tmp_path, epochs=2):
    return [
        *("--trainer.max_epochs", str(epochs), "--trainer.enable_progress_bar", "false"),
        *("--trainer.default_root_dir", str(tmp_path), "--trainer.log_every_n_steps", "1"),
    ]


def test_fit_validate_test_predict_from_the_sine_config(tmp_path, caplog):
    config = ["--config", str(CONFIGS / "sine_lstm.yaml"), *TINY_SINE]
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        cli = main(["fit", *config, *_trainer_args(tmp_path)])
    log_dir = Path(cli.trainer.log_dir)
    assert isinstance(cli.model, SequenceForecaster) and cli.model.hparams.cell == "lstm"
    assert cli.trainer.gradient_clip_val == 1.0
    assert (log_dir / "forecast.png").stat().st_size > 1000
    assert (log_dir / "config.yaml").is_file() and (log_dir / "metrics.csv").is_file()
    (ckpt,) = (log_dir / "checkpoints").glob("*.ckpt")
    assert "final metrics after 2 epochs" in caplog.text and "val_mase" in caplog.text
    assert "train_loss_epoch" not in caplog.text
    assert str(ckpt) in caplog.text

    cli = main(["validate", *config, *_trainer_args(tmp_path), "--ckpt_path", str(ckpt)])
    assert {"val_mse", "val_mae", "val_mase"} <= set(cli.trainer.callback_metrics)

    cli = main(["test", *config, *_trainer_args(tmp_path), "--ckpt_path", str(ckpt)])
    assert {"test_mse", "test_mae", "test_mase"} <= set(cli.trainer.callback_metrics)
    assert (Path(cli.trainer.log_dir) / "forecast_test.png").is_file()

    cli = main(["predict", *config, *_trainer_args(tmp_path), "--ckpt_path", str(ckpt)])
    preds = torch.load(Path(cli.trainer.log_dir) / "predictions.pt")
    assert preds.shape == (len(cli.datamodule.test_set), 3, 1)


def test_classification_config_writes_a_confusion_matrix(tmp_path):
    config = ["--config", str(CONFIGS / "classify_gru.yaml"), *TINY_CLASSES]
    cli = main(["fit", *config, *_trainer_args(tmp_path, epochs=1)])
    assert cli.model.hparams.pooling == "attention" and cli.model.encoder.stacked
    assert {"val_acc", "val_f1"} <= set(cli.trainer.callback_metrics)
    assert (Path(cli.trainer.log_dir) / "confusion_matrix.png").stat().st_size > 1000


def test_fit_alone_trains_the_sine_forecaster(tmp_path):
    cli = main(["fit", *TINY_SINE, *_trainer_args(tmp_path, epochs=1), "--model.cell", "gru"])
    assert type(cli.model) is SequenceForecaster and type(cli.datamodule) is SineDataModule
    assert cli.model.hparams.cell == "gru" and cli.trainer.current_epoch == 1
    assert with_default_classes(["fit", "--config", "x.yaml"]) == ["fit", "--config", "x.yaml"]
    assert with_default_classes(["test", "--data=D"])[1:] == [
        "--model=fastrnn.lightning.SequenceForecaster",
        "--data=D",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.cell", "transformer"], "cell must be one of"),
        (["--model.hidden_size", "-8"], "hidden_size must be a positive integer"),
        (["--data.seq_len", "0"], "seq_len must be a positive integer"),
        (
            ["--data", "fastrnn.lightning.CSVForecastingDataModule", "--data.path", "none.csv"],
            "data file not found: 'none.csv'",
        ),
    ],
)
def test_bad_configuration_fails_before_training(tmp_path, args, message):
    with pytest.raises(ValueError, match=f"invalid configuration: {message}"):
        main(["fit", *args, *_trainer_args(tmp_path)])
    assert not (tmp_path / "lightning_logs").exists()


def test_python_dash_m_runs_the_main_job(tmp_path):
    root = str(Path(fastrnn.lightning.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    args = [*TINY_SINE, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, "-m", "fastrnn.lightning", "fit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert "Epoch 0" in out  # Lightning's progress bar
    assert "final metrics after 1 epochs" in out and "val_mse" in out
    assert len(list(tmp_path.glob("lightning_logs/version_0/checkpoints/*.ckpt"))) == 1
    assert (tmp_path / "lightning_logs/version_0/forecast.png").is_file()
