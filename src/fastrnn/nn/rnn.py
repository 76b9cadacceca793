"""Drop-in ``RNN``, ``LSTM`` and ``GRU``: torch.nn's constructor, parameters and forward contract.

One extra keyword, ``backend`` ("auto", "reference", "native", "triton"; ``None`` = the process
default, see :func:`fastrnn.set_default_backend` and ``$FASTRNN_BACKEND``).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from fastrnn.nn.checks import TorchChecks
from fastrnn.nn.common import LAYER_DOC as _ARGS
from fastrnn.nn.common import (
    BackendModule,
    block_diagonal,
    check_heads,
    fused_only_backend,
    no_other_keywords,
    probabilities,
    reference_only_backend,
)
from fastrnn.ops import functional as ops
from fastrnn.ops.autocast import NATIVE_LAYERS as _NATIVE
from fastrnn.ops.autocast import result_dtypes
from fastrnn.ops.backend import validate_backend, warn_once
from fastrnn.ops.dispatch import resolve_backend
from fastrnn.ops.functional import num_states

__all__ = ["GRU", "LSTM", "RNN", "RNNBase"]

def _permute(hx: tuple[Tensor, ...], perm: Tensor | None) -> tuple[Tensor, ...]:
    return hx if perm is None else tuple(h.index_select(1, perm) for h in hx)


class RNNBase(TorchChecks, BackendModule):
    """Shared machinery of RNN, LSTM and GRU; parameters registered exactly as torch.nn does."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        backend: str | None = None,
        zoneout: float | tuple[float, float] = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
    ) -> None:
        super().__init__()
        self.dropout = float(dropout)
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of "
                "an element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                "dropout expects num_layers greater than 1, but got "
                f"dropout={dropout} and num_layers={num_layers}",
                stacklevel=2,
            )
        for name, value, kind in (
            ("bias", bias, bool), ("batch_first", batch_first, bool),
            ("input_size", input_size, int), ("hidden_size", hidden_size, int),
        ):
            if not isinstance(value, kind):
                raise TypeError(f"{name} should be of type {kind.__name__}, got: "
                                f"{type(value).__name__}")
            if kind is int and value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError(
                "proj_size should be a positive integer or zero to disable projections"
            )
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in ops.MODES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.backend = validate_backend(backend)
        self.zoneout = probabilities(zoneout, mode)
        self.dropconnect = float(dropconnect)
        if not 0 <= self.dropconnect < 1:
            raise ValueError(f"dropconnect must be in [0, 1), got {dropconnect!r}")
        self.num_heads = check_heads(num_heads, hidden_size, proj_size)

        factory = {"device": device, "dtype": dtype}
        gate_size = ops.num_gates(mode) * hidden_size
        out_size = proj_size if proj_size > 0 else hidden_size
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else out_size * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (gate_size, layer_input),
                          "weight_hh": (gate_size, out_size // self.num_heads)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size > 0:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = [name + suffix for name in shapes]
                for name, shape in zip(names, shapes.values()):
                    setattr(self, name, Parameter(torch.empty(shape, **factory)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()
        self.flatten_parameters()

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """Parameters grouped per layer and direction, as in torch.nn."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """Lay the weights out in one cuDNN buffer (CUDA + cuDNN only; otherwise a no-op)."""
        weights = self._flat_weights
        first = weights[0]
        if self.num_heads > 1 or self.mode not in _NATIVE or not all(
            w.dtype == first.dtype and w.is_cuda and torch.backends.cudnn.is_acceptable(w)
            for w in weights
        ) or len({w.data_ptr() for w in weights}) != len(weights):
            return
        import torch.backends.cudnn.rnn as cudnn_rnn

        with torch.cuda.device_of(first), torch.no_grad():
            if torch._use_cudnn_rnn_flatten_weight():
                torch._cudnn_rnn_flatten_weight(
                    weights, 2 + 2 * self.bias + (self.proj_size > 0), self.input_size,
                    cudnn_rnn.get_cudnn_mode(self.mode), self.hidden_size, self.proj_size,
                    self.num_layers, self.batch_first, bool(self.bidirectional),
                )

    def __setstate__(self, state: dict) -> None:
        state.setdefault("zoneout", (0.0, 0.0))  # pickles from before these keywords
        state.setdefault("dropconnect", 0.0)
        state.setdefault("num_heads", 1)
        super().__setstate__(state)

    def _apply(self, fn: Any, recurse: bool = True) -> RNNBase:
        ret = super()._apply(fn, recurse)
        self.flatten_parameters()
        return ret

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if self.proj_size != 0:
            s += ", proj_size={proj_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        if any(self.zoneout):
            s += f", zoneout={self.zoneout if self.mode == 'LSTM' else self.zoneout[0]}"
        if self.dropconnect:
            s += ", dropconnect={dropconnect}"
        if self.num_heads != 1:
            s += ", num_heads={num_heads}"
        if self.backend is not None:
            s += ", backend={backend!r}"
        return s.format(**self.__dict__)

    # --- forward -----------------------------------------------------------------------------

    def _run(
        self, input: Tensor, hx: tuple[Tensor, ...], batch_sizes: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Checked, time-major-or-batch_first input and full-rank state -> (output, states)."""
        backend = self._backend_for(input, batch_sizes)
        weights = self._flat_weights
        if backend == "native":  # torch's own: DropConnect here, heads as the dense matrix
            weights = self._dropconnected(weights)
            if self.num_heads > 1:
                weights = self._dense(weights)
            return self._native(input, hx, batch_sizes, weights)
        message = ops.check_tensors(input, hx, weights)
        if message is not None and (self._reference_features() or self.num_heads > 1
                                    or self.mode not in _NATIVE):
            raise RuntimeError(message)  # torch.nn's words; its module would compute without
        if message is not None:  # torch's own error for these tensors, or torch's result
            result = self._native(input, hx, batch_sizes, self._dropconnected(weights))
            warn_once(f"fastrnn: {message}; torch.nn accepts them: running torch's own "
                      f"{self.mode} instead of the {backend} backend")
            return result
        lengths = None
        if batch_sizes is not None:
            input, lengths = pad_packed_sequence(PackedSequence(input, batch_sizes))
        elif self.batch_first:
            input = input.transpose(0, 1)
        output, states = ops.rnn(
            self.mode, input, hx, weights, bias=self.bias, num_layers=self.num_layers,
            dropout=self.dropout, training=self.training, bidirectional=self.bidirectional,
            proj_size=self.proj_size, lengths=lengths, backend=backend, check=False,
            **self._functional_options(),
        )
        dtypes = None if self.mode not in _NATIVE else result_dtypes(
            self.mode, cell=False, input=input, weight=weights[0], states=hx,
            proj=self.proj_size > 0, packed=lengths is not None)
        if dtypes is not None:  # torch.nn's dtypes under autocast
            output = output.to(dtypes[0])
            states = tuple(s.to(d) for s, d in zip(states, dtypes[1:]))
        if lengths is not None:
            output = pack_padded_sequence(output, lengths).data
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, states

    def _dropconnected(self, weights: list[Tensor]) -> list[Tensor]:
        """``weights`` with DropConnect on each W_hh in training (one mask per call; with
        heads, on the blocks, before :meth:`_dense`), for torch's own implementation."""
        p = self.dropconnect
        if not (p and self.training):
            return weights
        return [F.dropout(w, p, training=True) if name.startswith("weight_hh") else w
                for name, w in zip(self._flat_weights_names, weights)]

    def _dense(self, weights: list[Tensor]) -> list[Tensor]:
        """``weights`` with each W_hh ``(G*H, H/N)`` of N heads as the dense block-diagonal
        ``(G*H, H)`` it stands for (differentiable: its gradient is the blocks')."""
        return [block_diagonal(w, self.num_heads) if name.startswith("weight_hh") else w
                for name, w in zip(self._flat_weights_names, weights)]

    def _native(
        self, input: Tensor, hx: tuple[Tensor, ...], batch_sizes: Tensor | None,
        weights: list[Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """torch's own implementation (cuDNN on CUDA), arguments as ``_run``'s."""
        state = hx if self.mode == "LSTM" else hx[0]
        args = (self._flat_weights if weights is None else weights, self.bias,
                self.num_layers, self.dropout, self.training, self.bidirectional)
        if batch_sizes is None:
            result = _NATIVE[self.mode](input, state, *args, self.batch_first)
        else:
            result = _NATIVE[self.mode](input, batch_sizes, state, *args)
        return result[0], tuple(result[1:])

    def forward(
        self, input: Tensor | PackedSequence, hx: Any = None, lengths: Tensor | None = None
    ) -> tuple[Any, Any]:
        """input: (T, B, I) / (B, T, I) if batch_first / (T, I) unbatched / PackedSequence.

        Returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for LSTM) exactly as torch.nn.
        ``lengths: (B,)`` (haste's keyword; any order, each in 1..T) with padded 3-D input
        stands for the PackedSequence of those lengths: the output is padded back to T with
        zeros past each length, the final states are each sequence's at its length.
        """
        if torch.compiler.is_compiling():
            # the native backend runs outside the graph, as torch.compile runs torch.nn's
            # RNNs: traced, torch's RNN op decomposes into every time step (minutes of
            # compiling, growing with T)
            data, batch_sizes = (input[:2] if isinstance(input, PackedSequence)
                                 else (input, None))
            if self._backend_for(data, batch_sizes) == "native":
                return _forward_outside_the_graph(self, input, hx, lengths)
        return self._forward(input, hx, lengths)

    def _backend_for(self, input: Tensor, batch_sizes: Tensor | None) -> str:
        """The backend a call with this input (a PackedSequence's data and batch sizes, or a
        tensor) runs; with zoneout, which torch.nn lacks, the fused kernels where they serve
        the call, else the reference (see :func:`fastrnn.nn.common.fused_only_backend`)."""
        call = self._call_config(input, batch_sizes)
        if not self._reference_features():
            return resolve_backend(self.backend, self.mode, **call)
        reason = ops.zoneout_unfusable(self.mode, self.proj_size)
        if reason is not None:
            return reference_only_backend(self.backend, [reason], self.mode)
        return fused_only_backend(self.backend, "zoneout", self.mode, **call)

    def _call_config(self, input: Tensor, batch_sizes: Tensor | None) -> dict[str, Any]:
        """The dispatcher's description of a call (``resolve_backend``'s keywords)."""
        if batch_sizes is not None:
            batch = int(batch_sizes[0])
        else:
            batch = input.size(0 if self.batch_first else 1) if input.dim() == 3 else 1
        return {"device": input.device, "dtype": input.dtype, "hidden_size": self.hidden_size,
                "proj_size": self.proj_size, "packed": batch_sizes is not None,
                "requires_grad": torch.is_grad_enabled(), "batch_size": batch}

    def _reference_features(self) -> list[str]:
        """What this module computes that torch.nn does not (zoneout: the reference and, but
        with a projection, the fused kernels run it)."""
        return ["zoneout"] if any(self.zoneout) else []

    def _functional_options(self) -> dict[str, Any]:
        """Keywords of :func:`fastrnn.ops.functional.rnn` beyond torch.nn's configuration."""
        return {"zoneout": self.zoneout, "dropconnect": self.dropconnect,
                "num_heads": self.num_heads}

    def _forward(self, input: Any, hx: Any, lengths: Any) -> tuple[Any, Any]:
        if lengths is not None:
            return self._forward_lengths(input, hx, lengths)
        is_lstm = num_states(self.mode) > 1  # states as a tuple (LSTM, sLSTM)
        name = {"LSTM": "LSTM", "GRU": "GRU", "SLSTM": "SLSTM"}.get(self.mode, "RNN")
        packed = isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = batch_sizes = None
        is_batched = True
        if packed:
            input, batch_sizes, sorted_indices, unsorted_indices = input
        else:
            if input.dim() not in (2, 3):
                tensor = " tensor" if name == "RNN" else ""
                raise ValueError(
                    f"{name}: Expected input to be 2D or 3D, got {input.dim()}D{tensor} instead"
                )
            is_batched = input.dim() == 3
            if not is_batched:
                input = input.unsqueeze(0 if self.batch_first else 1)
        state = self._prepare_state(input, hx, batch_sizes, is_batched)
        if is_lstm:
            self.check_forward_args(input, state, batch_sizes)
            state = _permute(state, sorted_indices)
        else:
            state = _permute(state, sorted_indices)
            self.check_forward_args(input, state, batch_sizes)
        if len(state) != num_states(self.mode):
            raise RuntimeError("lstm expects two hidden states")
        output, states = self._run(input, state, batch_sizes)
        if packed:
            output = PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices)
            states = _permute(states, unsorted_indices)
        elif not is_batched:
            output = output.squeeze(0 if self.batch_first else 1)
            states = tuple(s.squeeze(1) for s in states)
        return output, (states if is_lstm else states[0])

    def _forward_lengths(self, input: Any, hx: Any, lengths: Any) -> tuple[Any, Any]:
        if isinstance(input, PackedSequence):
            raise ValueError("lengths= takes padded input; a PackedSequence has its lengths")
        if input.dim() != 3:
            raise ValueError(f"lengths= needs batched 3-D input, got {input.dim()}-D input")
        T = input.size(1 if self.batch_first else 0)
        packed = pack_padded_sequence(input, torch.as_tensor(lengths).cpu(), self.batch_first,
                                      enforce_sorted=False)
        output, state = self.forward(packed, hx)
        output, _ = pad_packed_sequence(output, self.batch_first, total_length=T)
        return output, state

@torch.compiler.disable
def _forward_outside_the_graph(module: RNNBase, *args: Any) -> tuple[Any, Any]:
    return module._forward(*args)


class RNN(RNNBase):
    """Elman RNN, ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` with act tanh or
    relu: a drop-in for :class:`torch.nn.RNN`.
    """

    __doc__ += _ARGS.format(state=" ``h0: (num_layers * D, B, H)``", final="h_n", out="H",
                            extra="", more="\n        nonlinearity: ``\"tanh\"`` (default) "
                            "or ``\"relu\"`` (after num_layers when positional).")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        zoneout: float | tuple[float, float] = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
        backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        no_other_keywords(kwargs)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype, backend=backend, zoneout=zoneout,
                         dropconnect=dropconnect, num_heads=num_heads)


class LSTM(RNNBase):
    """LSTM (gates i, f, g, o as in torch.nn; with ``proj_size`` the hidden state is
    ``h_t = W_hr (o_t * tanh(c_t))``): a drop-in for :class:`torch.nn.LSTM`.
    """

    __doc__ += _ARGS.format(state=" ``(h0, c0)``, ``h0: (num_layers * D, B, P)``,\n"
                                  "            ``c0: (num_layers * D, B, H)`` (P = proj_size "
                                  "or H)", final="(h_n, c_n)", out="P",
                            extra=", ``weight_hr_l{k}``",
                            more="\n        proj_size: size of the projected hidden state, "
                            "0 (default) for none.")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        zoneout: float | tuple[float, float] = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
        backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        no_other_keywords(kwargs)
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype,
                         backend=backend, zoneout=zoneout, dropconnect=dropconnect,
                         num_heads=num_heads)


class GRU(RNNBase):
    """GRU (gates r, z, n as in torch.nn, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``):
    a drop-in for :class:`torch.nn.GRU`.
    """

    __doc__ += _ARGS.format(state=" ``h0: (num_layers * D, B, H)``", final="h_n", out="H",
                            extra="", more="")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        zoneout: float | tuple[float, float] = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
        backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        no_other_keywords(kwargs)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, backend=backend,
                         zoneout=zoneout, dropconnect=dropconnect, num_heads=num_heads)
