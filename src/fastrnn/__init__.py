"""fastrnn: fused Triton RNN, LSTM and GRU behind drop-in replacements for torch.nn."""

from fastrnn.nn import (
    GRU,
    LSTM,
    RNN,
    SLSTM,
    GRUCell,
    LayerNormGRU,
    LayerNormGRUCell,
    LayerNormLSTM,
    LayerNormLSTMCell,
    LSTMCell,
    RNNCell,
    SLSTMCell,
    from_flashrnn,
    swap,
    to_flashrnn,
    to_torch,
)
from fastrnn.ops.backend import (
    BACKENDS,
    BackendUnavailableError,
    get_default_backend,
    set_default_backend,
)

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "GRU",
    "LSTM",
    "RNN",
    "BackendUnavailableError",
    "GRUCell",
    "LSTMCell",
    "LayerNormGRU",
    "LayerNormGRUCell",
    "LayerNormLSTM",
    "LayerNormLSTMCell",
    "RNNCell",
    "SLSTM",
    "SLSTMCell",
    "__version__",
    "from_flashrnn",
    "get_default_backend",
    "set_default_backend",
    "swap",
    "to_flashrnn",
    "to_torch",
]
