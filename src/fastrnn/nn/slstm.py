"""``SLSTM`` and ``SLSTMCell``: xLSTM's sLSTM (Beck et al. 2024) as drop-in style modules.

Per layer and direction, gates i, f, z, o (in that order in every weight)::

    i~, f~, z~, o~ = x W_ih^T + b_ih + h W_hh^T + b_hh
    m' = i~ where n == 0 (the first step from a zero state), else max(log sigmoid(f~) + m, i~)
    i = exp(i~ - m'),   f = exp(log sigmoid(f~) + m - m')           (exponential input gate)
    c' = f c + i tanh(z~),   n' = f n + i,   h' = sigmoid(o~) c' / n'

(the paper's equations 8-17 with a sigmoid forget gate; m is the stabiliser that keeps
``exp`` finite, and cancels in h). The states are ``(h, c, n, m)``, each ``(num_layers * D, B,
H)``. With ``num_heads = N`` the recurrent matrix is block-diagonal over N heads of H/N (as
xLSTM's sLSTM blocks and FlashRNN run it; the layout of :class:`fastrnn.LSTM`'s ``num_heads``).
The triton backend fuses them (forward and backward, heads as program groups, states in
float32 inside the kernels); ``auto`` runs it on CUDA and the reference elsewhere; torch.nn has
no sLSTM, so ``native`` raises. FlashRNN's ``slstm`` computes the same function from a zero
state (it floors n at 1, which that m rule never reaches): :func:`fastrnn.to_flashrnn`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import Module, Parameter

from fastrnn.nn.common import (
    BackendModule,
    block_diagonal,
    check_heads,
    fused_only_backend,
    no_other_keywords,
)
from fastrnn.nn.rnn import RNNBase
from fastrnn.ops import functional as ops
from fastrnn.ops.backend import validate_backend

__all__ = ["SLSTM", "SLSTMCell"]

_FEATURE = "the sLSTM cell"


def _no_script(self: Any) -> Module:
    raise RuntimeError(f"TorchScript cannot compile fastrnn.{type(self).__name__} (torch.nn has "
                       "no such module): use torch.compile or torch.export")


class SLSTM(RNNBase):
    """Multi-layer sLSTM (the module docstring has the formula), on torch.nn.LSTM's contract.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        device, dtype: as :class:`torch.nn.LSTM`'s (no ``proj_size``; the arguments after
            ``bidirectional`` by keyword only, since torch.nn.LSTM's eighth is ``proj_size``).
        dropconnect: dropout on the elements of every ``W_hh``, one mask per call, in training.
        num_heads: heads of the block-diagonal recurrence (default 1: a dense ``W_hh``).
        backend: ``"auto"`` (triton on CUDA, else the reference), ``"reference"``,
            ``"triton"`` (fused; a configuration it cannot fuse runs the reference with a
            warning; without CUDA or ``TRITON_INTERPRET=1`` it raises
            BackendUnavailableError, as :class:`fastrnn.LSTM`'s) or None (the process
            default).

    Forward: ``module(input, hx=None, lengths=None)``: input ``(T, B, I)`` (``(B, T, I)`` with
    ``batch_first``), ``(T, I)`` unbatched, or a PackedSequence; ``hx = (h0, c0, n0, m0)``,
    each ``(num_layers * D, B, H)``, zeros when None. Returns ``(output, (h_n, c_n, n_n,
    m_n))``, output ``(T, B, D * H)``. Parameters as torch.nn.LSTM's (``weight_ih_l{k}``,
    ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``_reverse``), gates i, f, z, o;
    initialised as torch.nn's, uniform in ``(-1/sqrt(H), 1/sqrt(H))``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        device: Any = None,
        dtype: Any = None,
        dropconnect: float = 0.0,
        num_heads: int = 1,
        backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is not supported by SLSTM")
        no_other_keywords(kwargs)
        super().__init__("SLSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, backend=backend,
                         dropconnect=dropconnect, num_heads=num_heads)

    __prepare_scriptable__ = _no_script

    def _backend_for(self, input: Tensor, batch_sizes: Tensor | None) -> str:
        return fused_only_backend(self.backend, _FEATURE, self.mode,
                                  **self._call_config(input, batch_sizes))


class SLSTMCell(BackendModule):
    """One sLSTM step (the module docstring has the formula).

    Args:
        input_size, hidden_size, bias, device, dtype: as :class:`torch.nn.LSTMCell`'s.
        num_heads: heads of the block-diagonal recurrence (default 1).
        backend: as :class:`SLSTM`'s.

    Forward: ``cell(input, hx=None)``: input ``(B, I)`` or ``(I,)``; ``hx = (h, c, n, m)``, each
    ``(B, H)`` (``(H,)`` unbatched), zeros when None. Returns ``(h', c', n', m')`` of the
    input's rank. Parameters ``weight_ih (4H, I)``, ``weight_hh (4H, H/N)``, ``bias_ih``,
    ``bias_hh (4H,)``.
    """

    mode = "SLSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None, *, num_heads: int = 1,
                 backend: str | None = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.num_heads = check_heads(num_heads, hidden_size)
        self.backend = validate_backend(backend)
        G = 4 * hidden_size
        self.weight_ih = Parameter(torch.empty(G, input_size, **factory))
        self.weight_hh = Parameter(torch.empty(G, hidden_size // num_heads, **factory))
        if bias:
            self.bias_ih = Parameter(torch.empty(G, **factory))
            self.bias_hh = Parameter(torch.empty(G, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    __prepare_scriptable__ = _no_script

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.num_heads != 1:
            s += f", num_heads={self.num_heads}"
        return s + ("" if self.backend is None else f", backend={self.backend!r}")

    def forward(self, input: Tensor, hx: tuple[Tensor, ...] | None = None) -> tuple[Tensor, ...]:
        """input: (B, I) or (I,); hx: four (B, H) or (H,). Returns (h', c', n', m')."""
        if input.dim() not in (1, 2):
            raise ValueError(f"SLSTMCell: Expected input to be 1D or 2D, got {input.dim()}D "
                             "instead")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            zeros = x.new_zeros(x.size(0), self.hidden_size)
            state = (zeros,) * 4
        else:
            if not isinstance(hx, tuple | list) or len(hx) != 4:
                raise RuntimeError("SLSTMCell expects hx as a tuple (h, c, n, m)")
            if any(h.dim() != input.dim() for h in hx):
                raise ValueError(f"SLSTMCell: Expected hx to be {input.dim()}D like the input")
            state = tuple(hx) if batched else tuple(h.unsqueeze(0) for h in hx)
        if x.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {x.size(1)} expected "
                               f"{self.input_size}")
        for i, h in enumerate(state):
            if h.shape != (x.size(0), self.hidden_size):
                raise RuntimeError(f"hidden{i} has inconsistent size {tuple(h.shape)}, expected "
                                   f"{(x.size(0), self.hidden_size)}")
        weights = [w for w in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
                   if w is not None]
        if (message := ops.check_tensors(x, state, weights)) is not None:
            raise RuntimeError(message)
        backend = fused_only_backend(
            self.backend, _FEATURE, self.mode, device=x.device, dtype=x.dtype,
            hidden_size=self.hidden_size, proj_size=0, packed=False,
            requires_grad=torch.is_grad_enabled(), batch_size=x.size(0))
        out = ops.rnn_cell(self.mode, x, state, self.weight_ih,
                           block_diagonal(self.weight_hh, self.num_heads), self.bias_ih,
                           self.bias_hh, backend=backend, check=False)
        return out if batched else tuple(o.squeeze(0) for o in out)
