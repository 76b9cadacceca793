"""Drop-in ``RNNCell``, ``LSTMCell`` and ``GRUCell`` with an extra ``backend`` keyword."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter

from fastrnn.nn.common import BackendModule, reference_only_backend
from fastrnn.ops import functional as ops
from fastrnn.ops.autocast import NATIVE_CELLS as _NATIVE
from fastrnn.ops.autocast import result_dtypes
from fastrnn.ops.backend import get_default_backend, validate_backend, warn_once
from fastrnn.ops.dispatch import resolve_backend

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "RNNCellBase"]

_TORCH_FORWARD = {"RNNCell": torch.nn.RNNCell.forward, "LSTMCell": torch.nn.LSTMCell.forward,
                  "GRUCell": torch.nn.GRUCell.forward}


class RNNCellBase(BackendModule):
    """Shared machinery of the cells; parameters registered exactly as torch.nn does."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device: Any = None,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.backend = validate_backend(backend)
        self.weight_ih = Parameter(torch.empty((num_chunks * hidden_size, input_size), **factory))
        self.weight_hh = Parameter(torch.empty((num_chunks * hidden_size, hidden_size), **factory))
        if bias:
            self.bias_ih = Parameter(torch.empty(num_chunks * hidden_size, **factory))
            self.bias_hh = Parameter(torch.empty(num_chunks * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    mode = "RNN_TANH"

    def _reference_features(self) -> list[str]:
        """What this cell computes that only the reference backend does (none)."""
        return []

    def _cell_options(self) -> dict[str, Any]:
        """Keywords of :func:`fastrnn.ops.functional.rnn_cell` beyond torch.nn's cell."""
        return {}

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if self.bias is not True:
            s += ", bias={bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += ", nonlinearity={nonlinearity}"
        if self.backend is not None:
            s += ", backend={backend!r}"
        return s.format(**self.__dict__)

    def _check(self, input: Tensor, hx: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        """torch's cell checks (aten's messages), run before the reference/triton paths: None
        when they pass; for tensors of other devices or dtypes, torch's own error, or torch's
        result where it accepts them (a float64 c beside float32 input)."""
        if input.size(1) != self.input_size:
            raise RuntimeError(
                f"input has inconsistent input_size: got {input.size(1)} expected "
                f"{self.input_size}"
            )
        for i, h in enumerate(hx):
            if h.size(0) != input.size(0):
                raise RuntimeError(
                    f"Input batch size {input.size(0)} doesn't match hidden{i} batch size "
                    f"{h.size(0)}"
                )
            if h.size(1) != self.hidden_size:
                raise RuntimeError(
                    f"hidden{i} has inconsistent hidden_size: got {h.size(1)}, expected "
                    f"{self.hidden_size}"
                )
        weights = [w for w in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
                   if w is not None]
        message = ops.check_tensors(input, hx, weights)
        weight_dtype = self.weight_ih.dtype
        if message is None and input.dtype != weight_dtype and not (
                torch._C._is_any_autocast_enabled()):
            message = ("mat1 and mat2 must have the same dtype, but got "
                       f"{ops.scalar_name(input.dtype)} and {ops.scalar_name(weight_dtype)}")
        if message is None:
            return None
        if self._reference_features():
            raise RuntimeError(message)  # torch.nn's words; its cell would compute without
        result = self._native(input, hx)
        warn_once(f"fastrnn: {message}; torch.nn accepts them: running torch's own "
                  f"{type(self).__name__}")
        return result

    def _native(self, input: Tensor, hx: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """torch's own cell: input: (B, I), hx: (h,) or (h, c) -> the new state tuple."""
        args = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.mode == "LSTM":
            return tuple(_NATIVE[self.mode](input, hx, *args))
        return (_NATIVE[self.mode](input, hx[0], *args),)

    def _step(self, input: Tensor, hx: Any, name: str) -> Any:
        """Shared forward: input: (B, I) or (I,); hx as torch.nn; returns torch.nn's result.
        Where torch's own cell runs (``native``, ``auto`` off CUDA), torch.nn's forward itself
        runs on this module: torch's checks and messages, and no other host cost per call."""
        requested = self.backend if self.backend is not None else get_default_backend()
        features = self._reference_features()
        if not features and (
                requested == "native" or (requested == "auto" and input.device.type != "cuda")):
            return _TORCH_FORWARD[type(self).__name__](self, input, hx)
        is_lstm = self.mode == "LSTM"
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None:
            for idx, value in enumerate(hx if is_lstm else (hx,)):
                if value.dim() not in (1, 2):
                    what = f"hx[{idx}]" if is_lstm else "hidden"
                    raise ValueError(
                        f"{name}: Expected {what} to be 1D or 2D, got {value.dim()}D instead"
                    )
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
        if hx is None:
            zeros = torch.zeros(input.size(0), self.hidden_size, dtype=input.dtype,
                                device=input.device)
            state = (zeros, zeros) if is_lstm else (zeros,)
        else:
            state = tuple(hx) if is_lstm else (hx,)
            if not is_batched:
                state = tuple(h.unsqueeze(0) for h in state)
        if features:
            backend = reference_only_backend(self.backend, features, self.mode)
        else:
            backend = resolve_backend(
                self.backend, self.mode, input.device, input.dtype,
                hidden_size=self.hidden_size, proj_size=0, packed=False,
                requires_grad=torch.is_grad_enabled(), batch_size=input.size(0),
            )
        if backend == "native":
            out = self._native(input, state)
        else:
            out = self._check(input, state) or ops.rnn_cell(
                self.mode, input, state, self.weight_ih, self.weight_hh, self.bias_ih,
                self.bias_hh, backend=backend, check=False, **self._cell_options())
            dtypes = result_dtypes(self.mode, cell=True, input=input, weight=self.weight_ih,
                                   states=state)
            if dtypes is not None:  # torch.nn's dtypes under autocast
                out = tuple(o.to(d) for o, d in zip(out, dtypes))
        if not is_batched:
            out = tuple(o.squeeze(0) for o in out)
        return out if is_lstm else out[0]


_CELL_ARGS = """
    Args:
        input_size: features of the input ``x``.
        hidden_size: features of the hidden state ``h``.
        bias: use ``bias_ih`` and ``bias_hh`` (default True).{more}
        device, dtype: of the parameters, as in torch.nn.
        backend: ``"auto"``, ``"native"``, ``"reference"``, ``"triton"`` or None (the process
            default), as for :class:`fastrnn.LSTM`.

    Forward: ``cell(input, hx=None)``: input ``(B, I)`` or ``(I,)``; {state}, zeros when None.
    Returns {returns}, of the input's rank. Parameters, ``state_dict``, results and errors are
    torch.nn's.
"""


class RNNCell(RNNCellBase):
    """Elman cell, ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` with act tanh or relu: a
    drop-in for :class:`torch.nn.RNNCell`.
    """

    __doc__ += _CELL_ARGS.format(
        more="\n        nonlinearity: ``\"tanh\"`` (default) or ``\"relu\"``.",
        state="hx ``(B, H)``", returns="h'")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 1, device, dtype, backend)
        self.nonlinearity = nonlinearity

    @property
    def mode(self) -> str:  # type: ignore[override]
        if self.nonlinearity == "tanh":
            return "RNN_TANH"
        if self.nonlinearity == "relu":
            return "RNN_RELU"
        raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """input: (B, I) or (I,); hx: (B, H) or (H,). Returns h': same rank as input."""
        return self._step(input, hx, "RNNCell")


class _GatedCell(RNNCellBase):
    """LSTMCell and GRUCell: torch.nn's cell constructor with ``num_chunks`` gates."""

    num_chunks = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, self.num_chunks, device, dtype, backend)


class LSTMCell(_GatedCell):
    """LSTM cell (gates i, f, g, o as in torch.nn): a drop-in for :class:`torch.nn.LSTMCell`.
    """

    __doc__ += _CELL_ARGS.format(more="", state="hx ``(h, c)``, each ``(B, H)``",
                                 returns="``(h', c')``")

    mode = "LSTM"
    num_chunks = 4

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """input: (B, I) or (I,); hx: ((B, H), (B, H)). Returns (h', c')."""
        return self._step(input, hx, "LSTMCell")


class GRUCell(_GatedCell):
    """GRU cell (gates r, z, n as in torch.nn): a drop-in for :class:`torch.nn.GRUCell`."""

    __doc__ += _CELL_ARGS.format(more="", state="hx ``(B, H)``", returns="h'")

    mode = "GRU"
    num_chunks = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """input: (B, I) or (I,); hx: (B, H) or (H,). Returns h': same rank as input."""
        return self._step(input, hx, "GRUCell")
