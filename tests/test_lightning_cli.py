"""The ``fastrnn`` command line: configs, subcommands, outputs and configuration errors."""

import hashlib
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

from fastrnn.lightning.checkpoints import CheckpointError, checksum_path  # noqa: E402
from fastrnn.lightning.cli import CONFIG_DIR as CONFIGS  # noqa: E402
from fastrnn.lightning.cli import (  # noqa: E402
    bundled_configs,
    main,
    resolve_configs,
    with_default_classes,
)

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
    ckpt = Path(cli.trainer.checkpoint_callback.best_model_path)  # the best by val_loss
    names = sorted(p.name for p in (log_dir / "checkpoints").glob("*.ckpt"))
    assert ckpt.name in names and "last.ckpt" in names and len(names) == 2
    assert "final metrics after 2 epochs" in caplog.text and "val_mase" in caplog.text
    assert "train_loss_epoch" not in caplog.text
    assert str(ckpt) in caplog.text

    # the run's own folder, not a new version_N, and never over an earlier command's output
    for run in range(2):
        cli = main(["validate", *config, *_trainer_args(tmp_path), "--ckpt_path", str(ckpt)])
        assert {"val_mse", "val_mae", "val_mase"} <= set(cli.trainer.callback_metrics)
        assert Path(cli.trainer.log_dir) == log_dir / ("validate", "validate-1")[run]

    cli = main(["test", *config, *_trainer_args(tmp_path), "--ckpt_path", str(ckpt)])
    assert {"test_mse", "test_mae", "test_mase"} <= set(cli.trainer.callback_metrics)
    assert (log_dir / "test" / "forecast_test.png").is_file()

    cli = main(["predict", *config, *_trainer_args(tmp_path), "--ckpt_path", str(ckpt)])
    preds = torch.load(log_dir / "predict" / "predictions.pt")  # past each test series' end
    assert preds.shape == (len(cli.datamodule.test_series), 3, 1)
    rows = (log_dir / "predict" / "forecast.csv").read_text().splitlines()
    assert rows[0] == "series,step,y0" and len(rows) == 1 + preds.shape[0] * 3
    assert rows[1].split(",")[1] == "40"  # the step after the series' 40 (series_len)
    assert (log_dir / "predict" / "forecast_future.png").is_file()
    assert sorted(p.name for p in log_dir.parent.iterdir()) == [log_dir.name]


def test_classification_config_writes_a_confusion_matrix(tmp_path):
    config = ["--config", "classify_gru", *TINY_CLASSES]  # a bundled config, by name
    cli = main(["fit", *config, *_trainer_args(tmp_path, epochs=1)])
    assert cli.model.hparams.pooling == "attention" and cli.model.encoder.stacked
    assert {"val_acc", "val_f1"} <= set(cli.trainer.callback_metrics)
    assert (Path(cli.trainer.log_dir) / "confusion_matrix.png").stat().st_size > 1000


def test_fit_alone_trains_the_sine_forecaster(tmp_path):
    cli = main(["fit", *TINY_SINE, *_trainer_args(tmp_path, epochs=1), "--model.cell", "gru"])
    assert type(cli.model) is SequenceForecaster and type(cli.datamodule) is SineDataModule
    assert cli.model.hparams.cell == "gru" and cli.trainer.current_epoch == 1
    sine = str(CONFIGS / "sine_lstm.yaml")
    assert with_default_classes(["fit", "--config", sine]) == ["fit", "--config", sine]
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
def test_bad_configuration_fails_before_training(tmp_path, capsys, args, message):
    """A short usage error naming the section, the setting, the value and what is allowed
    (as for a misspelled key), exit status 2, nothing written."""
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *args, *_trainer_args(tmp_path)])
    assert exit_.value.code == 2
    section = args[0].split(".")[0][2:]
    assert f"error: invalid {section} setting: {message}" in capsys.readouterr().err
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
    assert len(list(tmp_path.glob("lightning_logs/version_0/checkpoints/*.ckpt"))) == 2
    assert (tmp_path / "lightning_logs/version_0/forecast.png").is_file()


def _command(tmp_path, *args, timeout=300):
    """``python -m fastrnn.lightning ARGS`` in ``tmp_path`` (the real sys.argv path)."""
    root = str(Path(fastrnn.lightning.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "fastrnn.lightning", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=tmp_path)


def test_command_line_prints_no_args_warning_and_invalid_values_exit_2(tmp_path):
    """Lightning warns when ``args`` and ``sys.argv`` are both given: the command passes
    neither twice. An invalid value exits 2 with one usage error and no traceback."""
    run = _command(tmp_path, "--help")
    assert run.returncode == 0 and "fit" in run.stdout
    assert "args parameter" not in run.stdout + run.stderr
    run = _command(tmp_path, "fit", "--model.hidden_size", "-1", "--trainer.fast_dev_run", "true")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "args parameter" not in run.stderr
    assert run.stderr.rstrip().endswith(
        "error: invalid model setting: hidden_size must be a positive integer, got -1")
    assert not (tmp_path / "lightning_logs").exists()


def test_config_naming_only_some_sections_keeps_the_defaults(tmp_path):
    config = tmp_path / "trainer_only.yaml"
    config.write_text("trainer:\n  max_epochs: 1\n")
    cli = main(["fit", "--config", str(config), *TINY_SINE, *_trainer_args(tmp_path, epochs=1)])
    assert type(cli.model) is SequenceForecaster and type(cli.datamodule) is SineDataModule
    data_only = tmp_path / "data_only.yaml"
    data_only.write_text("data:\n  class_path: SyntheticClassificationDataModule\n")
    assert with_default_classes(["fit", "-c", str(data_only)]) == [
        "fit", "--model=fastrnn.lightning.SequenceForecaster", "-c", str(data_only)]


def test_without_a_logger_plots_never_overwrite_a_file(tmp_path, monkeypatch, caplog):
    """The plot goes beside the checkpoints, under a fresh name where one is taken."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    for path in (tmp_path / "forecast.png", tmp_path / "checkpoints" / "forecast.png"):
        path.write_text("the user's own file")
    args = [*TINY_SINE, "--trainer.logger", "false", "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false"]
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        main(["fit", *args])
    for path in (tmp_path / "forecast.png", tmp_path / "checkpoints" / "forecast.png"):
        assert path.read_text() == "the user's own file"
    assert (tmp_path / "checkpoints" / "forecast-1.png").stat().st_size > 1000
    assert f"plot written to {tmp_path / 'checkpoints' / 'forecast-1.png'}" in caplog.text


def _fit_checkpoint(tmp_path) -> Path:
    cli = main(["fit", *TINY_SINE, *_trainer_args(tmp_path, epochs=1)])
    return Path(cli.trainer.log_dir, "checkpoints", "last.ckpt")


def _damaged(ckpt: Path, tmp_path, name: str, checksum: bool) -> Path:
    """A copy of ``ckpt`` with 2000 bytes zeroed in the middle (and its checksum file)."""
    data = bytearray(ckpt.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    copy = tmp_path / name
    copy.write_bytes(data)
    if checksum:
        checksum_path(copy).write_text(checksum_path(ckpt).read_text())
    return copy


def test_checkpoints_have_checksums_and_bad_ones_fail_cleanly(tmp_path, capsys):
    ckpt = _fit_checkpoint(tmp_path)
    assert checksum_path(ckpt).read_text().split() == [
        hashlib.sha256(ckpt.read_bytes()).hexdigest(), ckpt.name]
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "garbage.ckpt").write_bytes(b"garbage, not a checkpoint" * 10)
    cases = {
        str(tmp_path / "missing.ckpt"): "checkpoint not found",
        str(tmp_path / "empty.ckpt"): "is empty",
        str(tmp_path / "garbage.ckpt"): "is not a checkpoint",
        str(_damaged(ckpt, tmp_path, "zeroed.ckpt", True)): "does not match its checksum",
        str(_damaged(ckpt, tmp_path, "zeroed_nosum.ckpt", False)): "is damaged",
    }
    before = sorted(tmp_path.rglob("*"))
    for path, message in cases.items():
        with pytest.raises(SystemExit) as exit_:
            main(["fit", *TINY_SINE, *_trainer_args(tmp_path), "--ckpt_path", path])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert message in err and repr(path) in err, err[-500:]
        with pytest.raises(CheckpointError, match=message):
            SequenceForecaster.load_from_checkpoint(path)
    assert sorted(tmp_path.rglob("*")) == before  # no run folder was made
    checksum_path(ckpt).unlink()  # a checkpoint without a checksum still loads
    assert isinstance(SequenceForecaster.load_from_checkpoint(ckpt), SequenceForecaster)
    cli = main(["fit", *TINY_SINE, *_trainer_args(tmp_path, epochs=2), "--ckpt_path", str(ckpt)])
    assert cli.trainer.current_epoch == 2


def test_bundled_configs_by_name(tmp_path, monkeypatch, capsys):
    """Every shipped config is listed and resolves by name (with or without .yaml) from any
    directory; a file of that name in the working directory, or a path, wins."""
    monkeypatch.chdir(tmp_path)
    configs = bundled_configs()
    assert {"sine_lstm", "classify_gru", "japanese_vowels_gru", "airline_gru"} <= set(configs)
    assert all(configs.values())
    sine = str(CONFIGS / "sine_lstm.yaml")
    assert resolve_configs(["fit", "--config", "sine_lstm"]) == ["fit", "--config", sine]
    assert resolve_configs(["fit", "--config=sine_lstm.yaml"]) == ["fit", f"--config={sine}"]
    assert resolve_configs(["fit", "-c", "nope"]) == ["fit", "-c", "nope"]
    (tmp_path / "sine_lstm").write_text("trainer: {}\n")
    assert resolve_configs(["fit", "--config", "sine_lstm"]) == ["fit", "--config", "sine_lstm"]
    assert main(["configs"]) is None
    out = capsys.readouterr().out
    assert all(name in out for name in configs)
    assert main(["--version"]) is None
    assert capsys.readouterr().out.startswith(f"fastrnn {fastrnn.__version__} (torch ")


def test_tensorboard_logger_from_the_extra(tmp_path):
    """``pip install fastrnn[tensorboard]`` makes ``--trainer.logger TensorBoardLogger`` work."""
    pytest.importorskip("tensorboard")
    cli = main(["fit", *TINY_SINE, *_trainer_args(tmp_path, epochs=1),
                "--trainer.logger", "TensorBoardLogger",
                "--trainer.logger.save_dir", str(tmp_path / "tb")])
    assert type(cli.trainer.logger).__name__ == "TensorBoardLogger"
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_bundled_stores_config_fits_and_forecasts_each_store(tmp_path):
    """The shipped long-table config: three stores, planned promotions as known covariates."""
    args = ["--config", "stores_lstm", *_trainer_args(tmp_path, epochs=1)]
    cli = main(["fit", *args])
    assert cli.datamodule.known_size == 1 and cli.model.hparams.known_size == 1
    ckpt = Path(cli.trainer.log_dir, "checkpoints", "last.ckpt")
    cli = main(["predict", *args, "--ckpt_path", str(ckpt)])
    rows = (Path(cli.trainer.log_dir) / "forecast.csv").read_text().splitlines()
    assert rows[0] == "series,week,sales" and len(rows) == 1 + 3 * 8
    assert {r.split(",")[0] for r in rows[1:]} == {"north", "south", "city"}
    assert rows[1].split(",")[1] == "2024-12-30"  # the week after north's last sales


def test_bundled_layernorm_config_trains_a_layernorm_lstm(tmp_path):
    """The shipped LayerNorm config: fastrnn.LayerNormLSTM with zoneout and DropConnect."""
    cli = main(["fit", "--config", "sine_layernorm_lstm", *TINY_SINE,
                *_trainer_args(tmp_path, epochs=1)])
    layers = cli.model.encoder.rnn
    assert type(layers).__name__ == "LayerNormLSTM" and layers.num_layers == 2
    assert layers.zoneout == (0.05, 0.05) and layers.dropconnect == 0.1
    assert any(key.endswith("encoder.rnn.ln_weight_hh_l1") for key in cli.model.state_dict())
    assert Path(cli.trainer.log_dir, "checkpoints", "last.ckpt").is_file()
