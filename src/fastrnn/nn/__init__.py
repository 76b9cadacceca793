"""Drop-in modules for torch.nn.RNN, LSTM, GRU and their cells."""

from fastrnn.nn.cell import GRUCell, LSTMCell, RNNCell, RNNCellBase
from fastrnn.nn.convert import from_flashrnn, to_flashrnn
from fastrnn.nn.layer_norm import LayerNormGRU, LayerNormGRUCell, LayerNormLSTM, LayerNormLSTMCell
from fastrnn.nn.rnn import GRU, LSTM, RNN, RNNBase
from fastrnn.nn.slstm import SLSTM, SLSTMCell
from fastrnn.nn.swap import swap, to_torch

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "LayerNormGRU", "LayerNormGRUCell",
           "LayerNormLSTM", "LayerNormLSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase",
           "SLSTM", "SLSTMCell", "from_flashrnn", "swap", "to_flashrnn", "to_torch"]
