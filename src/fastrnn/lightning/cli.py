"""The ``fastrnn`` command line: Lightning's CLI (fit, validate, test, predict) with defaults.

Examples::

    fastrnn fit                                   # LSTM forecaster on synthetic sine waves
    fastrnn fit --config configs/sine_lstm.yaml
    fastrnn fit --config configs/classify_gru.yaml --trainer.max_epochs 5
    fastrnn test --config configs/sine_lstm.yaml --ckpt_path path/to/last.ckpt
    fastrnn fit --print_config                    # the full, editable configuration

Any ``LightningModule``/``LightningDataModule`` may be named by ``class_path``; without one the
model is :class:`~fastrnn.lightning.SequenceForecaster` and the data
:class:`~fastrnn.lightning.SineDataModule`. Sizes fixed by the data (``input_size``,
``num_classes``, ``horizon``) are filled in from the datamodule. Gradients are clipped to norm
1.0 by default (``--trainer.gradient_clip_val``). Each run writes its checkpoint, metrics and a
plot (``forecast.png`` or ``confusion_matrix.png``) under ``lightning_logs/version_N/``.
"""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.cli import ArgsType, LightningCLI

from fastrnn.lightning.callbacks import PlotPredictions, PrintMetrics, SavePredictions

__all__ = ["FastRNNCLI", "main"]

DEFAULT_MODEL = "fastrnn.lightning.SequenceForecaster"
DEFAULT_DATA = "fastrnn.lightning.SineDataModule"


SUBCOMMANDS = ("fit", "validate", "test", "predict")


class FastRNNCLI(LightningCLI):
    """``LightningCLI`` in subclass mode; a bad setting raises a ``ValueError`` naming it."""

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as error:
            root = _root_cause(error)
            if root is error:
                raise
            raise ValueError(f"invalid configuration: {root}") from root


def _root_cause(error: BaseException) -> BaseException:
    """The innermost ``ValueError`` behind ``error`` (jsonargparse wraps the model's own)."""
    while isinstance(error.__cause__ or error.__context__, ValueError):
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


def with_default_classes(args: list[str], subcommand: bool = True) -> list[str]:
    """Insert ``--model``/``--data`` defaults (after the subcommand, if ``subcommand``) unless
    a config or the command line names them, so ``fastrnn fit`` alone trains on sine waves."""
    position = next((i for i, a in enumerate(args) if a in SUBCOMMANDS), None) if subcommand else -1
    if position is None:
        return list(args)
    rest = args[position + 1 :]
    if any(a in ("-c", "--config") or a.startswith("--config=") for a in rest):
        return list(args)
    extra = []
    for key, default in (("--model", DEFAULT_MODEL), ("--data", DEFAULT_DATA)):
        if not any(a == key or a.startswith(key + "=") for a in rest):
            extra.append(f"{key}={default}")
    return [*args[: position + 1], *extra, *rest]


def trainer_defaults() -> dict[str, Any]:
    """Trainer settings used unless a config or flag overrides them."""
    return {
        "max_epochs": 20,
        "gradient_clip_val": 1.0,
        "log_every_n_steps": 10,
        "callbacks": [PlotPredictions(), PrintMetrics(), SavePredictions()],
    }


def main(args: ArgsType = None, run: bool = True) -> FastRNNCLI:
    """Entry point of ``fastrnn`` and ``python -m fastrnn.lightning``.

    ``args``: a list of command-line arguments (default: ``sys.argv[1:]``).
    """
    import fastrnn.lightning  # noqa: F401  (makes the short class names resolvable)

    try:
        import jsonargparse  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "the fastrnn command line needs jsonargparse: "
            "pip install 'jsonargparse[signatures]>=4.39'"
        ) from error

    if args is None:
        args = sys.argv[1:]
    if isinstance(args, list):
        args = with_default_classes(args, subcommand=run)
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
