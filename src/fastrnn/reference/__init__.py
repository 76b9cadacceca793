"""Pure-PyTorch recurrences: readable, float32-or-better, any device.

They share the Triton launchers' signatures and are the oracle for every kernel test.
"""

from fastrnn.reference.recurrence import (
    CELL_NORMS,
    RecurrentNorm,
    gru_recurrence,
    layer_norm,
    lstm_recurrence,
    rnn_recurrence,
    slstm_recurrence,
)

__all__ = ["CELL_NORMS", "RecurrentNorm", "gru_recurrence", "layer_norm", "lstm_recurrence",
           "rnn_recurrence", "slstm_recurrence"]
