"""LightningModules for sequence classification and forecasting on fastrnn's recurrent layers.

Batches are ``(x, y)`` for equal-length sequences or ``(x, lengths, y)`` for padded ones, with
``x: (B, T, I)`` and ``lengths: (B,)``. Gradient clipping is the Trainer's job: pass
``Trainer(gradient_clip_val=1.0)`` (or ``trainer.gradient_clip_val`` in a CLI config).

Sizes that the data determines (``input_size``, ``num_classes``, ``horizon``, ...) may be left
``None``: they are read from the attached ``LightningDataModule`` in :meth:`setup` and stored
in ``hparams``, so checkpoints rebuild the same network.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from fastrnn.lightning.checkpoints import verify_checkpoint
from fastrnn.lightning.layers import (
    BACKENDS,
    CELLS,
    POOLINGS,
    RecurrentEncoder,
    TemporalPooling,
    _check_choice,
    _check_positive,
)
from fastrnn.lightning.metrics import MeanAbsoluteScaledError, naive_scale

__all__ = ["SequenceClassifier", "SequenceForecaster", "unpack_batch"]

SCHEDULERS = ("cosine", "plateau")
STAGES = ("train", "val", "test")


def unpack_batch(batch: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(x, y)``, ``(x, lengths, y)``, a lone ``x``, ``(x,)`` (a ``TensorDataset(x)``'s
    batches) or a dict with ``x`` (``lengths``, ``y``) -> ``(x, lengths, y)``."""
    if isinstance(batch, Tensor):
        return batch, None, None
    if isinstance(batch, Mapping):
        return batch["x"], batch.get("lengths"), batch.get("y")
    if len(batch) == 1:
        return batch[0], None, None
    if len(batch) == 2:
        return batch[0], None, batch[1]
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    raise ValueError(f"expected a batch (x, y) or (x, lengths, y), got {len(batch)} items")


class _SequenceModule(pl.LightningModule):
    """Shared encoder, pooling, optimizer and metric plumbing."""

    _data_sizes: tuple[str, ...] = ()
    _size_defaults: dict[str, int] = {}  # for datamodules without that attribute

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        """Lightning's ``load_from_checkpoint``, after :func:`verify_checkpoint` for a local
        file (its checksum, where one was saved beside it)."""
        if isinstance(checkpoint_path, str | Path) and "://" not in str(checkpoint_path):
            verify_checkpoint(checkpoint_path)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def _validate_and_build(self) -> None:
        """Check the hyperparameters; build the network now if every size is known."""
        hp = self.hparams
        _check_choice("cell", hp.cell, CELLS)
        _check_choice("pooling", hp.pooling, POOLINGS)
        for name in ("hidden_size", "num_layers"):
            _check_positive(name, hp[name])
        for name in self._data_sizes:
            if hp[name] is not None and not (name in self._size_defaults and hp[name] == 0):
                _check_positive(name, hp[name])
        if not 0.0 <= hp.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {hp.dropout!r}")
        if hp.lr <= 0:
            raise ValueError(f"lr must be positive, got {hp.lr!r}")
        if hp.scheduler is not None:
            _check_choice("scheduler", hp.scheduler, SCHEDULERS)
        if hp.backend is not None:
            _check_choice("backend", hp.backend, BACKENDS)
        self.encoder: RecurrentEncoder | None = None
        if all(hp[name] is not None for name in self._data_sizes):
            self._build()

    # --- construction -------------------------------------------------------------------
    def _build(self) -> None:
        hp = self.hparams
        self.encoder = RecurrentEncoder(
            hp.input_size,
            cell=hp.cell,
            hidden_size=hp.hidden_size,
            num_layers=hp.num_layers,
            bidirectional=hp.bidirectional,
            dropout=hp.dropout,
            residual=hp.residual,
            layer_norm=hp.layer_norm,
            backend=hp.backend,
            zoneout=hp.get("zoneout", 0.0),
            dropconnect=hp.get("dropconnect", 0.0),
            num_heads=hp.get("num_heads", 1),
        )
        D = self.encoder.output_size
        self.pool = TemporalPooling(hp.pooling, D, hp.bidirectional)
        self.head = nn.Sequential(nn.Dropout(hp.dropout),
                                  nn.Linear(D + self._head_extra(), self._head_size()))
        metrics = self._metrics()
        self.train_metrics = metrics.clone(prefix="train_")
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")

    def _head_size(self) -> int:
        raise NotImplementedError

    def _head_extra(self) -> int:
        """Head inputs beside the pooled features."""
        return 0

    def _metrics(self) -> MetricCollection:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        """Fill sizes left ``None`` from the datamodule, then build the network."""
        if self.encoder is not None:
            self._check_data_sizes()
            return
        dm = self.trainer.datamodule if self._trainer is not None else None
        for name in self._data_sizes:
            if self.hparams[name] is None:
                value = getattr(dm, name, self._size_defaults.get(name))
                if value is None:
                    raise ValueError(
                        f"{type(self).__name__} needs {name}=...: pass it, or train with a "
                        f"datamodule that has a `{name}` attribute"
                    )
                self.hparams[name] = int(value)
        self._build()

    def on_fit_start(self) -> None:
        # A standalone validate/test leaves inference-mode metric states behind; fit updates
        # metrics under no_grad, where in-place updates of those would fail. Start afresh.
        for stage in STAGES:
            getattr(self, f"{stage}_metrics").reset()

    def _check_data_sizes(self) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        for name in self._data_sizes:
            value = getattr(dm, name, None)
            if value is not None and int(value) != self.hparams[name]:
                raise ValueError(
                    f"{type(self).__name__} was built with {name}={self.hparams[name]} but the "
                    f"datamodule has {name}={value}"
                )

    # --- forward ------------------------------------------------------------------------
    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (B, T, I), lengths: (B,) or None -> pooled features (B, D)."""
        if self.encoder is None:
            raise RuntimeError(
                f"{type(self).__name__} is not built yet: pass {', '.join(self._data_sizes)} "
                "or attach it to a Trainer with a datamodule"
            )
        return self.pool(self.encoder(x, lengths), lengths)

    # --- optimization -------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler is None:
            return optimizer
        if hp.scheduler == "cosine":
            total = self.trainer.estimated_stepping_batches
            total = int(total) if total != float("inf") else 1000
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
            config = {"scheduler": scheduler, "interval": "step"}
        else:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.5, patience=2
            )
            config = {"scheduler": scheduler, "monitor": "val_loss", "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": config}

    # --- steps --------------------------------------------------------------------------
    def _step(self, batch: Any, stage: str) -> Tensor:
        x, lengths, y = unpack_batch(batch)
        out = self(x, lengths, *self._extras(batch))
        loss = self._loss(out, y)
        metrics = getattr(self, f"{stage}_metrics")
        self._update_metrics(metrics, out, y, x, lengths)
        train = stage == "train"
        self.log(
            f"{stage}_loss",
            loss,
            prog_bar=True,
            on_step=train,
            on_epoch=True,
            batch_size=x.shape[0],
            sync_dist=not train,
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _extras(self, batch: Any) -> tuple:
        """Arguments of forward beyond ``(x, lengths)`` that a batch carries."""
        return ()

    def _update_metrics(
        self, metrics: MetricCollection, out: Tensor, y: Tensor, x: Tensor, lengths: Tensor | None
    ) -> None:
        raise NotImplementedError


class SequenceClassifier(_SequenceModule):
    """Many-to-one classifier: a sequence ``x: (B, T, I)`` in, logits ``(B, num_classes)`` out.

    Args:
        input_size: features per step (``None``: from the datamodule).
        num_classes: number of classes (``None``: from the datamodule).
        cell: ``"rnn"``, ``"lstm"``, ``"gru"``, ``"layernorm_lstm"``, ``"layernorm_gru"``
            (:class:`fastrnn.LayerNormLSTM` / :class:`fastrnn.LayerNormGRU`) or ``"slstm"``
            (:class:`fastrnn.SLSTM`).
        hidden_size, num_layers, bidirectional, dropout: as in ``torch.nn.LSTM``; ``dropout``
            also applies before the output layer.
        pooling: ``"last"``, ``"mean"`` or ``"attention"`` over valid time steps.
        residual, layer_norm: residual connections / LayerNorm between stacked layers.
        backend: fastrnn backend (``"auto"``, ``"reference"``, ``"native"``, ``"triton"``,
            ``None`` for the process default) or ``"torch"`` for torch.nn's modules.
        lr, weight_decay: Adam's settings.
        scheduler: ``None``, ``"cosine"`` (per step, to the end of training) or ``"plateau"``
            (halve the lr when ``val_loss`` stalls).
        zoneout, dropconnect: the recurrent layers' regularisers (see :class:`fastrnn.LSTM`).
        num_heads: heads of a block-diagonal recurrence (``num_heads`` of the fastrnn layers).
    """

    _data_sizes = ("input_size", "num_classes")

    def __init__(
        self,
        input_size: int | None = None,
        num_classes: int | None = None,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        residual: bool = False,
        layer_norm: bool = False,
        backend: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str | None = None,
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._validate_and_build()

    def _head_size(self) -> int:
        return self.hparams.num_classes

    def _metrics(self) -> MetricCollection:
        k = self.hparams.num_classes
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes=k, average="micro"),
                "f1": MulticlassF1Score(num_classes=k, average="macro"),
            }
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (B, T, I), lengths: (B,) or None -> logits (B, num_classes)."""
        features = self.encode(x, lengths)
        return self.head(features)

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y)

    def _update_metrics(
        self, metrics: MetricCollection, out: Tensor, y: Tensor, x: Tensor, lengths: Tensor | None
    ) -> None:
        metrics.update(out.detach(), y)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Class probabilities (B, num_classes)."""
        x, lengths, _ = unpack_batch(batch)
        return torch.softmax(self(x, lengths), dim=-1)


class SequenceForecaster(_SequenceModule):
    """Direct multi-step forecaster: a window ``x: (B, T, I)`` in, ``(B, horizon, O)`` out.

    ``horizon=1`` is next-value prediction. The ``O = output_size`` forecast channels are the
    first ``O`` input channels. With ``predict_change`` the network predicts the change from
    the last observed value, which helps on trending series. Logged metrics: MSE, MAE and the
    scale-free MASE (see :class:`MeanAbsoluteScaledError`), in the data's own units when the
    datamodule has an ``inverse_transform`` (as do predictions); ``*_loss`` is the MSE of the
    standardised values the network sees. ``known_size``: known-future covariates per forecast
    step (batches as dicts with ``future: (B, horizon, known_size)``), fed to the head beside
    the encoded window (default: the datamodule's ``known_size``, else 0). Other arguments as
    in :class:`SequenceClassifier`.
    """

    _data_sizes = ("input_size", "horizon", "output_size", "known_size")
    _size_defaults = {"known_size": 0}

    def __init__(
        self,
        input_size: int | None = None,
        horizon: int | None = None,
        output_size: int | None = None,
        predict_change: bool = False,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        residual: bool = False,
        layer_norm: bool = False,
        backend: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str | None = None,
        known_size: int | None = None,
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
    ) -> None:
        super().__init__()
        if known_size is None and None not in (input_size, horizon, output_size):
            known_size = 0  # every size given: no known-future covariates unless said
        self.save_hyperparameters()
        self._validate_and_build()

    def _head_extra(self) -> int:
        return self.hparams.horizon * self.hparams.known_size

    def _extras(self, batch: Any) -> tuple:
        return (batch.get("future"),) if isinstance(batch, Mapping) else ()

    def _head_size(self) -> int:
        return self.hparams.horizon * self.hparams.output_size

    def _metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "mse": MeanSquaredError(),
                "mae": MeanAbsoluteError(),
                "mase": MeanAbsoluteScaledError(),
            }
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None,
                future: Tensor | None = None) -> Tensor:
        """x: (B, T, I), lengths: (B,) or None, future: (B, horizon, known_size), the known
        covariates of the forecast steps -> forecast (B, horizon, output_size)."""
        B, O = x.shape[0], self.hparams.output_size
        features = self.encode(x, lengths)
        if self.hparams.known_size:
            if future is None:
                raise ValueError(f"this forecaster takes known_size={self.hparams.known_size} "
                                 "known-future covariates: pass future=(B, horizon, K)")
            features = torch.cat([features, future.flatten(1).to(features)], dim=1)
        out = self.head(features).view(B, self.hparams.horizon, O)
        if self.hparams.predict_change:
            if lengths is None:
                last = x[:, -1, :O]
            else:
                last = x[torch.arange(B, device=x.device), lengths.to(x.device) - 1, :O]
            out = out + last.unsqueeze(1)
        return out

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(out, y)

    def _to_data_units(self, t: Tensor) -> Tensor:
        """``t: (..., output_size)`` in the data's own units: the attached datamodule's
        ``inverse_transform`` undone (standardisation, log), else ``t`` as it is."""
        trainer = self._trainer
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        if dm is None or not hasattr(dm, "inverse_transform") or getattr(dm, "mean", 0) is None:
            return t
        return dm.inverse_transform(t, self.hparams.output_size)

    def _update_metrics(
        self, metrics: MetricCollection, out: Tensor, y: Tensor, x: Tensor, lengths: Tensor | None
    ) -> None:
        """MSE, MAE and MASE in the data's own units (the ``*_loss`` the network minimises is
        the MSE of the standardised values)."""
        O = self.hparams.output_size
        out, y, x = (self._to_data_units(t) for t in (out.detach(), y, x[..., :O]))
        metrics.update(out, y, scale=naive_scale(x, lengths))

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Forecast (B, horizon, output_size), in the data's own units."""
        x, lengths, _ = unpack_batch(batch)
        return self._to_data_units(self(x, lengths, *self._extras(batch)))
