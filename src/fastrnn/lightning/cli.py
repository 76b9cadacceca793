"""The ``fastrnn`` command line: Lightning's CLI (fit, validate, test, predict) with defaults.

Examples::

    fastrnn fit                                   # LSTM forecaster on synthetic sine waves
    fastrnn fit --config sine_lstm                # a bundled config, by name
    fastrnn fit --config classify_gru --trainer.max_epochs 5
    fastrnn fit --config my_run.yaml              # or a config file of your own
    fastrnn test --config sine_lstm --ckpt_path path/to/last.ckpt
    fastrnn fit --print_config                    # the full, editable configuration
    fastrnn configs                               # the bundled configs, one line each
    fastrnn --version

Any ``LightningModule``/``LightningDataModule`` may be named by ``class_path``; without one the
model is :class:`~fastrnn.lightning.SequenceForecaster` and the data
:class:`~fastrnn.lightning.SineDataModule`. Sizes fixed by the data (``input_size``,
``num_classes``, ``horizon``) are filled in from the datamodule. Gradients are clipped to norm
1.0 by default (``--trainer.gradient_clip_val``). Each run writes its checkpoints (the best by
``val_loss`` and ``last.ckpt``, each with a SHA-256
checksum beside it, checked before any checkpoint is read back: see
:mod:`fastrnn.lightning.checkpoints`), metrics and a plot (``forecast.png`` or
``confusion_matrix.png``) under ``lightning_logs/version_N/`` (without a logger, beside the
checkpoints; never over an existing file). An invalid setting or an unusable ``--ckpt_path``
ends the command with a short usage error and exit status 2, before anything is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningCLI

from fastrnn.lightning.callbacks import (
    PlotPredictions,
    PrintMetrics,
    RestoreRNGState,
    SavePredictions,
    fresh_path,
)
from fastrnn.lightning.checkpoints import CheckpointError, ChecksumCheckpointIO, verify_checkpoint

__all__ = ["FastRNNCLI", "main"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # the bundled configs
DEFAULT_MODEL = "fastrnn.lightning.SequenceForecaster"
DEFAULT_DATA = "fastrnn.lightning.SineDataModule"


SUBCOMMANDS = ("fit", "validate", "test", "predict")
# ckpt_path values the Trainer resolves itself (not files)
CKPT_KEYWORDS = ("best", "last", "hpc", "registry")


class FastRNNCLI(LightningCLI):
    """``LightningCLI`` in subclass mode. A setting the model or data rejects, and an unusable
    ``ckpt_path``, end the command as a misspelled key does: a short usage error naming what
    is wrong, exit status 2, before anything is written."""

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and str(ckpt_path) not in CKPT_KEYWORDS and "://" not in str(ckpt_path):
            try:
                verify_checkpoint(ckpt_path)
            except CheckpointError as error:
                self._parser(subcommand).error(f"--ckpt_path: {error}")
        super()._parse_ckpt_path()

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Lightning's trainer, with a CSVLogger where none was set (whether or not
        tensorboard is installed): the run folder's ``metrics.csv``. ``validate``, ``test``
        and ``predict`` with a checkpoint of a run write into that run's folder (a fresh
        subfolder named after the command), not into a new ``version_N``."""
        trainer = self._get(self.config_init, "trainer", default={})
        if trainer.get("logger") in (None, True) and "logger" not in kwargs:
            kwargs["logger"] = self._default_logger(trainer.get("default_root_dir"))
        return super().instantiate_trainer(**kwargs)

    def _default_logger(self, root: Any) -> Any:
        from lightning.pytorch.loggers import CSVLogger

        ckpt = self._get(self.config, "ckpt_path") if self.subcommand != "fit" else None
        path = Path(str(ckpt)) if ckpt else None
        if path is not None and path.is_file() and path.parent.name == "checkpoints":
            run = path.resolve().parents[1]
            return CSVLogger(save_dir=run, name="", version=fresh_path(run / self.subcommand).name)
        return CSVLogger(save_dir=root or Path.cwd())

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as error:
            root = _root_cause(error)
            section = _section(root)
            where = f"invalid {section} setting" if section else "invalid configuration"
            self._parser(self.subcommand).error(f"{where}: {root}")


def _root_cause(error: BaseException) -> BaseException:
    """The innermost ``ValueError`` behind ``error`` (jsonargparse wraps the model's own)."""
    while isinstance(error.__cause__ or error.__context__, ValueError):
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


def _section(error: BaseException) -> str | None:
    """``model`` or ``data``: whose constructor raised ``error`` (from its traceback)."""
    import lightning.pytorch as pl

    tb, section = error.__traceback__, None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, pl.LightningModule):
            section = "model"
        elif isinstance(owner, pl.LightningDataModule):
            section = "data"
        tb = tb.tb_next
    return section


def bundled_configs() -> dict[str, str]:
    """The configs shipped with fastrnn: name -> the first line of its description."""
    return {path.stem: path.read_text().splitlines()[0].lstrip("# ").strip()
            for path in sorted(CONFIG_DIR.glob("*.yaml"))}


def resolve_configs(args: list[str]) -> list[str]:
    """``args`` with every ``--config NAME`` that names no file but a bundled config (with or
    without ``.yaml``) replaced by that config's path."""

    def resolve(value: str) -> str:
        if Path(value).exists() or "\n" in value:
            return value
        for candidate in (CONFIG_DIR / value, CONFIG_DIR / f"{value}.yaml"):
            if candidate.is_file() and candidate.parent == CONFIG_DIR:
                return str(candidate)
        return value

    out = list(args)
    for i, prefix, value in _config_values(args):
        out[i] = prefix + resolve(value)
    return out


def _config_values(args: list[str]) -> list[tuple[int, str, str]]:
    """``(index, prefix, value)`` of each config among ``args``: ``-c V`` / ``--config V``
    (the value at ``index``, no prefix) or ``--config=V`` (prefix ``--config=``)."""
    found = []
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            found.append((i + 1, "", args[i + 1]))
        elif arg.startswith("--config="):
            found.append((i, "--config=", arg.split("=", 1)[1]))
    return found


def _config_keys(args: list[str]) -> set[str]:
    """Top-level keys the ``--config`` files (or YAML strings) among ``args`` set."""
    import yaml

    keys: set[str] = set()
    for _, _, value in _config_values(args):
        path = Path(value)
        try:
            loaded = yaml.safe_load(path.read_text() if path.is_file() else value)
        except (OSError, yaml.YAMLError):
            continue  # jsonargparse reports it
        if isinstance(loaded, dict):
            keys.update(loaded)
    return keys


def with_default_classes(args: list[str], subcommand: bool = True) -> list[str]:
    """Insert ``--model``/``--data`` defaults (after the subcommand, if ``subcommand``) unless
    the command line or a config names them, so ``fastrnn fit`` alone trains on sine waves and
    a config naming only ``trainer:`` keeps the default model and data."""
    position = next((i for i, a in enumerate(args) if a in SUBCOMMANDS), None) if subcommand else -1
    if position is None:
        return list(args)
    rest = args[position + 1 :]
    configured = _config_keys(rest)
    extra = []
    for key, default in (("--model", DEFAULT_MODEL), ("--data", DEFAULT_DATA)):
        named = any(a == key or a.startswith(key + "=") for a in rest)
        if not named and key[2:] not in configured:
            extra.append(f"{key}={default}")
    return [*args[: position + 1], *extra, *rest]


def trainer_defaults() -> dict[str, Any]:
    """Trainer settings used unless a config or flag overrides them."""
    return {
        "max_epochs": 20,
        "gradient_clip_val": 1.0,
        "log_every_n_steps": 10,
        "callbacks": [PlotPredictions(), PrintMetrics(), SavePredictions(), RestoreRNGState(),
                      ModelCheckpoint(monitor="val_loss", save_last=True)],
        "plugins": [ChecksumCheckpointIO()],
    }


def _info(args: list[str]) -> bool:
    """Answer ``fastrnn --version`` and ``fastrnn configs``; whether ``args`` was one."""
    if args == ["--version"]:
        import torch

        import fastrnn

        print(f"fastrnn {fastrnn.__version__} (torch {torch.__version__})")
        return True
    if args == ["configs"]:
        configs = bundled_configs()
        width = max(map(len, configs))
        for name, about in configs.items():
            print(f"{name:<{width}}  {about}")
        print(f"\n(in {CONFIG_DIR}; use one with: fastrnn fit --config NAME)")
        return True
    return False


def main(args: ArgsType = None, run: bool = True) -> FastRNNCLI | None:
    """Entry point of ``fastrnn``, ``python -m fastrnn`` and ``python -m fastrnn.lightning``.

    ``args``: a list of command-line arguments (default: ``sys.argv[1:]``, which then gets
    the default model and data in place). ``--config`` takes a file or a bundled config's
    name (``fastrnn configs`` lists them). Returns the CLI, or None for ``--version`` and
    ``configs``, which only print.
    """
    import fastrnn.lightning  # noqa: F401  (makes the short class names resolvable)

    try:
        import jsonargparse  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "the fastrnn command line needs jsonargparse: "
            "pip install 'jsonargparse[signatures]>=4.39'"
        ) from error

    if args is None:  # the command line itself: LightningCLI reads sys.argv
        sys.argv[1:] = with_default_classes(resolve_configs(sys.argv[1:]), subcommand=run)
        if _info(sys.argv[1:]):
            return None
    elif isinstance(args, list):
        if _info(args):
            return None
        args = with_default_classes(resolve_configs(args), subcommand=run)
    return FastRNNCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=trainer_defaults(),
        seed_everything_default=0,
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main()


def console_main() -> None:
    """The ``fastrnn`` console script: :func:`main` without a return value (exit status 0)."""
    main()
