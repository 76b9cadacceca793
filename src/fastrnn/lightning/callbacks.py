"""Callbacks: result plots, a final metrics printout, epoch timing and saved predictions."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics.classification import MulticlassConfusionMatrix

from fastrnn.lightning.future import write_forecast_csv
from fastrnn.lightning.models import SequenceClassifier, SequenceForecaster, unpack_batch
from fastrnn.lightning.plots import plot_confusion_matrix, plot_forecast

__all__ = [
    "EpochTimer", "PlotPredictions", "PrintMetrics", "RestoreRNGState", "SavePredictions",
    "fresh_path", "output_dir",
]


def output_dir(trainer: pl.Trainer) -> Path:
    """The run's folder: the logger's ``log_dir``; without a logger, the checkpoints' folder
    (where the checkpoint callback has one), else ``default_root_dir``."""
    if trainer.loggers and trainer.log_dir:
        return Path(trainer.log_dir)
    dirpath = getattr(trainer.checkpoint_callback, "dirpath", None)
    return Path(dirpath or trainer.default_root_dir)


def fresh_path(path: Path) -> Path:
    """``path`` if no file has that name, else the first free ``<stem>-1<suffix>``,
    ``<stem>-2<suffix>``, ...: a callback never writes over a file it did not make."""
    n = 0
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


class PlotPredictions(Callback):
    """After ``fit`` (validation split) and ``test`` (test split), write a PNG to the log dir.

    Forecasters get ``forecast.png`` (history, truth and forecast of ``num_windows`` windows,
    in the data's original units when the datamodule has ``inverse_transform``); classifiers
    get ``confusion_matrix.png``. Without matplotlib the plot is skipped with a warning.
    """

    def __init__(self, num_windows: int = 4) -> None:
        self.num_windows = num_windows
        self.paths: list[Path] = []

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._plot(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._plot(trainer, pl_module, "test")

    def _plot(self, trainer: pl.Trainer, module: pl.LightningModule, split: str) -> None:
        dm = trainer.datamodule
        if not trainer.is_global_zero or dm is None or trainer.sanity_checking:
            return
        loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
        if len(loader.dataset) == 0:
            return
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                if isinstance(module, SequenceForecaster):
                    path = self._forecast(module, dm, loader, output_dir(trainer), split)
                elif isinstance(module, SequenceClassifier):
                    path = self._confusion(module, dm, loader, output_dir(trainer), split)
                else:
                    return
        finally:
            module.train(was_training)
        if path is not None:
            self.paths.append(path)
            rank_zero_info(f"plot written to {path}")

    def _forecast(
        self, module: SequenceForecaster, dm: Any, loader: Any, out: Path, split: str
    ) -> Path | None:
        dataset = loader.dataset
        n = min(self.num_windows, len(dataset))
        picks = torch.linspace(0, len(dataset) - 1, n).round().long().tolist()  # spread out
        collate = loader.collate_fn
        batch = collate([dataset[i] for i in picks])
        x, lengths, y = unpack_batch(batch)
        extras = [None if t is None else t.to(module.device) for t in module._extras(batch)]
        pred = module(x.to(module.device), lengths, *extras).cpu()
        if hasattr(dm, "inverse_transform"):
            x, y, pred = (
                dm.inverse_transform(x),
                dm.inverse_transform(y),
                dm.inverse_transform(pred),
            )
        name = "forecast.png" if split == "val" else f"forecast_{split}.png"
        return plot_forecast(x[..., 0], y[..., 0], pred[..., 0], fresh_path(out / name))

    def _confusion(
        self, module: SequenceClassifier, dm: Any, loader: Any, out: Path, split: str
    ) -> Path | None:
        matrix = MulticlassConfusionMatrix(module.hparams.num_classes)
        for batch in loader:
            x, lengths, y = unpack_batch(batch)
            logits = module(x.to(module.device), lengths)
            matrix.update(logits.argmax(-1).cpu(), y)
        name = "confusion_matrix.png" if split == "val" else f"confusion_matrix_{split}.png"
        return plot_confusion_matrix(matrix.compute(), fresh_path(out / name),
                                     getattr(dm, "classes", None))


class PrintMetrics(Callback):
    """After ``fit``, print the last epoch's metrics and where the checkpoint went."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {
            k: float(v)
            for k, v in sorted(trainer.callback_metrics.items())
            if not k.endswith(("_step", "_epoch")) and v.numel() == 1
        }
        if not metrics:
            return
        width = max(map(len, metrics))
        lines = [f"final metrics after {trainer.current_epoch} epochs:"]
        lines += [f"  {k:<{width}}  {v:.4f}" for k, v in metrics.items()]
        ckpt = trainer.checkpoint_callback
        path = ckpt and (getattr(ckpt, "best_model_path", "") or ckpt.last_model_path)
        if path:
            lines.append(f"checkpoint: {path}")
        rank_zero_info("\n".join(lines))


class RestoreRNGState(Callback):
    """Keep the random number generators' states (Python's, NumPy's, torch's on the CPU and on
    every CUDA device) in each checkpoint and restore them on resume: a resumed run then draws
    the same dropout masks as the uninterrupted one, bit for bit (Lightning restores weights,
    optimizer and loop state, not the generators)."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        name, key, pos, has_gauss, cached = np.random.get_state()
        checkpoint["rng_states"] = {  # tensors and plain values: loadable with weights_only
            "python": random.getstate(),
            "numpy": [name, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if not states:  # a checkpoint saved without this callback
            return
        random.setstate(states["python"])
        name, key, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


class EpochTimer(Callback):
    """Wall-clock seconds of each training epoch (validation included) in ``self.times``."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)


class SavePredictions(BasePredictionWriter):
    """``predict`` writes all predictions, concatenated, to ``predictions.pt`` in the log dir;
    a forecaster predicting past the data's end (the datamodules' ``predict="future"``) also
    ``forecast.csv`` and ``forecast_future.png``."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")
        self.path: Path | None = None

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Any,
        batch_indices: Any,
    ) -> None:
        if not predictions:
            return
        preds = predictions[0] if isinstance(predictions[0], list) else predictions
        rank = trainer.global_rank
        name = "predictions.pt" if trainer.world_size == 1 else f"predictions_rank{rank}.pt"
        self.path = fresh_path(output_dir(trainer) / name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stacked = torch.cat([p.cpu() for p in preds])
        torch.save(stacked, self.path)
        rank_zero_info(f"predictions written to {self.path}")
        dm = trainer.datamodule
        if (isinstance(pl_module, SequenceForecaster) and trainer.world_size == 1
                and getattr(dm, "predict", None) == "future"):
            self._write_future(dm, stacked, self.path.parent)

    def _write_future(self, dm: Any, forecast: torch.Tensor, out: Path) -> None:
        """The forecast past each series' end: forecast.csv (time labels where the data has
        them) and forecast_future.png (history and forecast, in the data's units)."""
        names = dm.output_names()
        series = [str(s) for s in getattr(dm, "test_series", [])] or None
        path = write_forecast_csv(fresh_path(out / "forecast.csv"), forecast,
                                  dm.future_index(forecast.shape[1]), names,
                                  getattr(dm, "index_name", "step"), series)
        rank_zero_info(f"forecast written to {path}")
        O = forecast.shape[-1]
        history = dm.inverse_transform(dm.future_set.sequences[..., :O], O)
        n = min(4, forecast.shape[0])
        plot = plot_forecast(history[:n, :, 0], None, forecast[:n, :, 0],
                             fresh_path(out / "forecast_future.png"))
        if plot is not None:
            rank_zero_info(f"plot written to {plot}")
