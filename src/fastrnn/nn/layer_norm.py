"""``LayerNormLSTM``, ``LayerNormGRU`` and their cells: layer normalisation inside the
recurrence (Ba et al. 2016; haste's LayerNormLSTM/GRU), on torch.nn's LSTM/GRU contract.

Per layer and direction, with ``LN(a) = (a - mean(a)) / sqrt(var(a) + eps)`` (biased variance,
statistics over all G*H gate features of a row, or per gate block of H with
``per_gate=True``)::

    gates = ln_weight_ih * LN(x W_ih^T) + b_ih + ln_weight_hh * LN(h W_hh^T) + b_hh

so ``bias_ih`` and ``bias_hh`` are the two norms' biases (GRU: ``n = tanh(gx_n + r * gh_n)``
with ``gh = ln_weight_hh * LN(h W_hh^T) + b_hh``, torch's GRU otherwise). The LSTM also
normalises its cell state, by ``cell_norm``: ``"output"`` (haste, the default) ``c' = f c +
i g`` is carried and ``h' = o * tanh(ln_weight_c * LN(c') + ln_bias_c)``; ``"state"``
(PyTorch's ``benchmarks/fastrnns`` LayerNorm LSTM) the normalised cell state is carried,
``c' = ln_weight_c * LN(f c + i g) + ln_bias_c``, ``h' = o * tanh(c')``; None for neither.
Gains start at 1, ``ln_bias_c`` at 0; every other parameter as torch.nn's. torch.nn has no
such layer, so ``native`` raises. The layers are fused on the triton backend, forward and
backward, zoneout included (``fastrnn.kernels.layer_norm``), which ``auto`` takes on CUDA;
heads, torch.compile and the cells run on the reference backend (``triton`` falls back,
warning once).
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module, Parameter, init

from fastrnn.nn.cell import _GatedCell
from fastrnn.nn.common import (
    LAYER_DOC,
    fused_only_backend,
    no_other_keywords,
    reference_only_backend,
)
from fastrnn.nn.rnn import RNNBase
from fastrnn.ops import functional as ops
from fastrnn.ops.backend import get_default_backend
from fastrnn.reference import CELL_NORMS

__all__ = ["LayerNormGRU", "LayerNormGRUCell", "LayerNormLSTM", "LayerNormLSTMCell"]

_NORM_ARGS = """
        eps: added to the variance in every layer normalisation (default 1e-5).
        per_gate: normalise each gate block of H separately instead of all G*H gate
            features of a row together (default False, as haste and Ba et al.)."""
_CELL_NORM_ARG = """
        cell_norm: ``"output"`` (default, haste), ``"state"`` (PyTorch's fastrnns) or None:
            where the cell state is normalised (see the formula above)."""


def _check_norm_options(eps: Any, per_gate: Any, cell_norm: Any) -> None:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if not isinstance(per_gate, bool):
        raise TypeError(f"per_gate should be of type bool, got: {type(per_gate).__name__}")
    if cell_norm not in CELL_NORMS:
        raise ValueError(f"cell_norm must be one of {CELL_NORMS}, got {cell_norm!r}")


class _Norms:
    """The layer-norm parameters of a module (mixed into the layers and the cells)."""

    eps: float
    per_gate: bool
    cell_norm: str | None
    _norm_names: list[str]

    def _register_norms(self: Any, suffixes: list[str], gates: int, factory: dict) -> None:
        cell = self.mode == "LSTM" and self.cell_norm is not None
        self._norm_names = []
        H = self.hidden_size
        for suffix in suffixes:
            shapes = {"ln_weight_ih": gates * H, "ln_weight_hh": gates * H}
            if cell:
                shapes.update(ln_weight_c=H, ln_bias_c=H)
            for name, size in shapes.items():
                setattr(self, name + suffix, Parameter(torch.empty(size, **factory)))
                self._norm_names.append(name + suffix)
        self._reset_norms()

    def _reset_norms(self: Any) -> None:
        for name in getattr(self, "_norm_names", ()):
            (init.zeros_ if name.startswith("ln_bias") else init.ones_)(getattr(self, name))

    def _layer_norm(self: Any) -> ops.LayerNormConfig:
        weights = [getattr(self, name) for name in self._norm_names]
        cell = self.cell_norm if self.mode == "LSTM" else None
        return ops.LayerNormConfig(weights, float(self.eps), self.per_gate, cell)

    def _norm_repr(self: Any) -> str:
        s = "" if self.eps == 1e-5 else f", eps={self.eps}"
        if self.per_gate:
            s += ", per_gate=True"
        if self.mode == "LSTM" and self.cell_norm != "output":
            s += f", cell_norm={self.cell_norm!r}"
        return s

    def __prepare_scriptable__(self: Any) -> Module:
        raise RuntimeError(f"TorchScript cannot compile fastrnn.{type(self).__name__} (torch.nn "
                           "has no such module): use torch.compile or torch.export")


class _LayerNormStack(_Norms, RNNBase):
    """LayerNormLSTM and LayerNormGRU: RNNBase plus the norms of every layer and direction."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int,
                 bias: bool, batch_first: bool, dropout: float, bidirectional: bool,
                 device: Any, dtype: Any, zoneout: Any, dropconnect: float, num_heads: int,
                 eps: float, per_gate: bool, cell_norm: str | None, backend: str | None,
                 kwargs: dict[str, Any]) -> None:
        if "proj_size" in kwargs:
            raise ValueError(f"proj_size argument is not supported by {type(self).__name__}")
        no_other_keywords(kwargs)
        _check_norm_options(eps, per_gate, cell_norm)
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, backend=backend,
                         zoneout=zoneout, dropconnect=dropconnect, num_heads=num_heads)
        self.eps, self.per_gate, self.cell_norm = float(eps), per_gate, cell_norm
        suffixes = [f"_l{k}" + ("_reverse" if d else "") for k in range(num_layers)
                    for d in range(2 if bidirectional else 1)]
        self._register_norms(suffixes, ops.num_gates(mode), {"device": device, "dtype": dtype})

    def reset_parameters(self) -> None:
        """torch.nn's initialisation for torch's parameters; gains 1 and biases 0 for the
        norms."""
        super().reset_parameters()
        self._reset_norms()

    def extra_repr(self) -> str:
        return super().extra_repr() + self._norm_repr()

    def _reference_features(self) -> list[str]:
        return ["layer normalisation", *super()._reference_features()]

    def _backend_for(self, input: Tensor, batch_sizes: Tensor | None) -> str:
        """The fused kernels where they serve the call (see the module docstring), else the
        reference."""
        from fastrnn.ops import fused_norm

        requested = self.backend
        if requested == "native" or (requested is None and get_default_backend() == "native"):
            return reference_only_backend(requested, self._reference_features(), self.mode)
        reason = fused_norm.fusable(self.num_heads)
        if reason is not None:
            return reference_only_backend(requested, [reason], self.mode)
        return fused_only_backend(requested, "layer normalisation", self.mode,
                                  **self._call_config(input, batch_sizes))

    def _functional_options(self) -> dict[str, Any]:
        return {**super()._functional_options(), "layer_norm": self._layer_norm()}


class LayerNormLSTM(_LayerNormStack):
    """LSTM with layer normalisation of the input and recurrent projections and of the cell
    state (the module docstring gives the formula), on torch.nn.LSTM's contract (no
    ``proj_size``).
    """

    __doc__ += LAYER_DOC.format(
        state=" ``(h0, c0)``, each ``(num_layers * D, B, H)``", final="(h_n, c_n)", out="H",
        extra=", ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}`` ``(4H,)``, ``ln_weight_c_l{k}``,"
              " ``ln_bias_c_l{k}`` ``(H,)``", more=_NORM_ARGS + _CELL_NORM_ARG)

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
        zoneout: float | tuple[float, float] = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
        eps: float = 1e-5,
        per_gate: bool = False,
        cell_norm: str | None = "output",
        backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype, zoneout, dropconnect, num_heads,
                         eps, per_gate, cell_norm, backend, kwargs)


class LayerNormGRU(_LayerNormStack):
    """GRU with layer normalisation of the input and recurrent projections (the module
    docstring gives the formula), on torch.nn.GRU's contract.
    """

    __doc__ += LAYER_DOC.format(
        state=" ``h0: (num_layers * D, B, H)``", final="h_n", out="H",
        extra=", ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}`` ``(3H,)``", more=_NORM_ARGS)

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
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
        eps: float = 1e-5,
        per_gate: bool = False,
        backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype, zoneout, dropconnect, num_heads,
                         eps, per_gate, "output", backend, kwargs)


class _LayerNormCell(_Norms, _GatedCell):
    """The LayerNorm cells: torch.nn's cell plus one layer's norms (parameter names without
    the ``_l0`` suffix)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, device: Any, dtype: Any,
                 eps: float, per_gate: bool, cell_norm: str | None,
                 backend: str | None) -> None:
        _check_norm_options(eps, per_gate, cell_norm)
        super().__init__(input_size, hidden_size, bias, device, dtype, backend)
        self.eps, self.per_gate, self.cell_norm = float(eps), per_gate, cell_norm
        self._register_norms([""], self.num_chunks, {"device": device, "dtype": dtype})

    def reset_parameters(self) -> None:
        """torch.nn's initialisation for torch's parameters; gains 1, biases 0 for the norms."""
        super().reset_parameters()
        self._reset_norms()

    def extra_repr(self) -> str:
        return super().extra_repr() + self._norm_repr()

    def _reference_features(self) -> list[str]:
        return ["layer normalisation"]

    def _cell_options(self) -> dict[str, Any]:
        return {"layer_norm": self._layer_norm()}


_CELL_DOC = """
    Args:
        input_size, hidden_size, bias, device, dtype: as torch.nn.{name}'s.{more}
        backend: ``"auto"``, ``"reference"`` or ``"triton"`` (which falls back to the
            reference, warning once), or None (the process default).

    Forward: ``cell(input, hx=None)``: input ``(B, I)`` or ``(I,)``; {state}, zeros when None.
    Returns {returns}, of the input's rank. Parameters: torch.nn.{name}'s plus
    ``ln_weight_ih``, ``ln_weight_hh`` ``({gates}H,)``{extra}.
"""


class LayerNormLSTMCell(_LayerNormCell):
    """One step of :class:`LayerNormLSTM` (the formula is in this module's docstring)."""

    __doc__ += _CELL_DOC.format(name="LSTMCell", more=_NORM_ARGS + _CELL_NORM_ARG,
                                state="hx ``(h, c)``, each ``(B, H)``", returns="``(h', c')``",
                                gates=4, extra=", ``ln_weight_c``, ``ln_bias_c`` ``(H,)``")

    mode = "LSTM"
    num_chunks = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None, eps: float = 1e-5, per_gate: bool = False,
                 cell_norm: str | None = "output", backend: str | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype, eps, per_gate, cell_norm,
                         backend)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """input: (B, I) or (I,); hx: ((B, H), (B, H)). Returns (h', c')."""
        return self._step(input, hx, "LayerNormLSTMCell")


class LayerNormGRUCell(_LayerNormCell):
    """One step of :class:`LayerNormGRU` (the formula is in this module's docstring)."""

    __doc__ += _CELL_DOC.format(name="GRUCell", more=_NORM_ARGS, state="hx ``(B, H)``",
                                returns="h'", gates=3, extra="")

    mode = "GRU"
    num_chunks = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None, eps: float = 1e-5, per_gate: bool = False,
                 backend: str | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype, eps, per_gate, "output",
                         backend)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """input: (B, I) or (I,); hx: (B, H) or (H,). Returns h': same rank as input."""
        return self._step(input, hx, "LayerNormGRUCell")
