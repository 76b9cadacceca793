"""Lightning models, data modules, callbacks and the ``fastrnn`` command line.

Built on fastrnn's public ``RNN``/``LSTM``/``GRU`` modules; see :mod:`fastrnn.lightning.cli`.
"""

from fastrnn.lightning.callbacks import (
    PlotPredictions,
    PrintMetrics,
    RestoreRNGState,
    SavePredictions,
)
from fastrnn.lightning.checkpoints import ChecksumCheckpointIO, verify_checkpoint
from fastrnn.lightning.data import (
    SequenceDataset,
    SineDataModule,
    SyntheticClassificationDataModule,
    pad_collate,
)
from fastrnn.lightning.data_aeon import AeonClassificationDataModule, AeonForecastingDataModule
from fastrnn.lightning.data_csv import CSVForecastingDataModule
from fastrnn.lightning.layers import RecurrentEncoder, TemporalPooling
from fastrnn.lightning.metrics import MeanAbsoluteScaledError
from fastrnn.lightning.models import SequenceClassifier, SequenceForecaster

__all__ = [
    "AeonClassificationDataModule",
    "AeonForecastingDataModule",
    "CSVForecastingDataModule",
    "ChecksumCheckpointIO",
    "MeanAbsoluteScaledError",
    "PlotPredictions",
    "PrintMetrics",
    "RecurrentEncoder",
    "RestoreRNGState",
    "SavePredictions",
    "SequenceClassifier",
    "SequenceDataset",
    "SequenceForecaster",
    "SineDataModule",
    "SyntheticClassificationDataModule",
    "TemporalPooling",
    "pad_collate",
    "verify_checkpoint",
]
