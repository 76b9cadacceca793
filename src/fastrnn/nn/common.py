"""Pieces shared by the recurrent layers and the cells."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import torch
from torch.nn import Module, init

from fastrnn.ops.backend import get_default_backend, warn_once
from fastrnn.ops.functional import block_diagonal

__all__ = ["LAYER_DOC", "BackendModule", "block_diagonal", "check_heads", "fused_only_backend",
           "no_other_keywords", "probabilities", "reference_only_backend"]


class BackendModule(Module):
    """A module with a ``backend`` attribute that unpickles from files that predate it."""

    backend: str | None

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, as torch.nn does."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def __prepare_scriptable__(self) -> Module:
        """What ``torch.jit.script`` scripts in place of this module: torch.nn's module of the
        same configuration and Parameters (TorchScript compiles torch's own implementation;
        the fused kernels run under ``torch.compile`` and ``torch.export``)."""
        from fastrnn.nn.swap import torch_twin

        name = type(self).__name__
        twin = torch_twin(self)
        if not _torch_scripts(type(twin)):
            raise RuntimeError(
                f"TorchScript cannot compile torch.nn.{name}'s forward with this torch "
                f"({torch.__version__}), so fastrnn.{name} cannot be scripted either: use "
                "torch.compile or torch.export, which run the fused kernels")
        if self.backend == "triton":
            warnings.warn(f"fastrnn: torch.jit.script runs torch.nn.{name}, not the triton "
                          "backend (use torch.compile or torch.export for the fused kernels)",
                          UserWarning, stacklevel=2)
        return twin

    def __setstate__(self, state: dict) -> None:
        state.setdefault("backend", None)
        super().__setstate__(state)


def check_heads(num_heads: Any, hidden_size: int, proj_size: int = 0) -> int:
    """``num_heads`` checked: a positive int dividing ``hidden_size``, without a projection."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads <= 0:
        raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads "
                         f"({num_heads})")
    if num_heads > 1 and proj_size > 0:
        raise ValueError("num_heads > 1 does not combine with proj_size")
    return num_heads


def reference_only_backend(requested: str | None, features: list[str], mode: str) -> str:
    """The backend of a module computing ``features`` that only the reference backend has:
    torch.nn has none of them (``backend="native"`` raises; a process default of native runs
    the reference, warning once), the fused kernels do not do them yet (``triton`` falls back,
    warning once)."""
    what = " and ".join(features)
    if requested == "native":
        raise ValueError(f"{what} is not part of torch.nn: use backend='auto', 'reference' or "
                         "'triton'")
    if requested is None:
        requested = get_default_backend()
        if requested == "native":
            warn_once(f"fastrnn: torch.nn has no {mode} with {what}; the process default "
                      "backend native runs the reference backend for it")
            return "reference"
    if requested == "triton":
        warn_once(f"fastrnn: the triton backend cannot fuse this {mode} ({what}); running the "
                  "reference backend instead")
    return "reference"


def fused_only_backend(requested: str | None, feature: str, mode: str, **call: Any) -> str:
    """The backend of a module torch.nn has no counterpart for (``feature``), but the fused
    kernels do: ``native`` raises (a process default of native runs the reference, warning
    once), ``auto`` takes triton where it serves the call (``call``: resolve_backend's keywords)
    and the reference elsewhere, ``triton`` falls back to the reference as for any layer."""
    from fastrnn.ops.dispatch import resolve_backend

    if requested == "native" or (requested is None and get_default_backend() == "native"):
        return reference_only_backend(requested, [feature], mode)
    backend = resolve_backend(requested, mode, **call)
    return "reference" if backend == "native" else backend


def probabilities(zoneout: Any, mode: str) -> tuple[float, float]:
    """Zoneout's (h, c) probabilities from one number (both) or, for the LSTM, a pair."""
    values = tuple(zoneout) if isinstance(zoneout, tuple | list) else (zoneout, zoneout)
    if len(values) != 2 or (mode != "LSTM" and values[0] != values[1]):
        raise ValueError(f"zoneout must be a probability (or, for LSTM, a pair (h, c)), "
                         f"got {zoneout!r}")
    for p in values:
        if not 0 <= float(p) < 1:
            raise ValueError(f"zoneout probabilities must be in [0, 1), got {zoneout!r}")
    return float(values[0]), float(values[1])


def no_other_keywords(kwargs: dict[str, Any]) -> None:
    """torch.nn's error for a keyword none of its RNN classes takes."""
    if kwargs:
        raise TypeError(
            f"RNNBase.__init__() got an unexpected keyword argument '{next(iter(kwargs))}'")


@functools.cache
def _torch_scripts(cls: type) -> bool:
    """Whether TorchScript compiles torch.nn's ``cls`` with its forward (torch 2.13 scripts
    its RNNs without one), tried once per class on a small instance."""
    return hasattr(torch.jit.script(cls(2, 2)), "forward")


# The shared part of the RNN, LSTM and GRU docstrings (formatted per class in fastrnn.nn.rnn).
LAYER_DOC = """
    Args:
        input_size: features of the input ``x`` per step.
        hidden_size: features of the hidden state ``h``.
        num_layers: stacked recurrent layers (default 1).
        bias: use ``bias_ih`` and ``bias_hh`` (default True).
        batch_first: input and output are ``(B, T, *)`` instead of ``(T, B, *)``.
        dropout: dropout on each layer's output but the last's, in training (default 0).
        bidirectional: run every layer in both directions (default False).{more}
        device, dtype: of the parameters, as in torch.nn.
        zoneout: probability that each element of the state keeps its previous value at a
            step (haste's and the zoneout paper's; the LSTM takes a pair (h, c)): a fresh
            Bernoulli mask per step in training, the expectation ``p h_prev + (1 - p) h_new``
            in evaluation; a seed draws the same masks on every backend and dtype. Fused on
            the triton backend (the reference with ``proj_size``; not torch.nn: native
            raises).
        dropconnect: dropout on the elements of every ``W_hh``, one mask per call, in training
            (AWD-LSTM's weight drop), on every backend.
        num_heads: split h into N heads of D = H/N with a block-diagonal ``W_hh`` (FlashRNN's
            and xLSTM's multi-head recurrence; default 1, torch.nn's dense layer):
            ``weight_hh_l{{k}}`` is then ``(G*H, D)``, rows ``g*H + n*D .. g*H + (n+1)*D``
            gate g's ``D x D`` block for head n (FlashRNN's ``R[G, N, D, D]`` reshaped, see
            :func:`fastrnn.to_flashrnn`); the input projection stays dense. Every backend
            (torch's own runs on the dense block-diagonal matrix).
        backend: ``"auto"`` (the fused kernels on CUDA where they serve the configuration,
            else torch's own), ``"native"`` (torch's own: cuDNN on CUDA), ``"reference"``
            (pure PyTorch, every feature, the kernels' oracle), ``"triton"`` (the fused kernels;
            configurations they cannot do run the reference with a one-time warning), or None
            for the process default (:func:`fastrnn.set_default_backend`, ``$FASTRNN_BACKEND``).

    Forward: ``module(input, hx=None, lengths=None)``, exactly torch.nn's contract:
        input: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, ``(T, I)`` unbatched, or a
            PackedSequence (sorted or not).
        hx: initial state{state}, zeros when None.
        lengths: ``(B,)`` sequence lengths for padded input, in any order (the PackedSequence
            of those lengths, padded back with zeros).
        Returns ``(output, {final})``: output ``(T, B, D * {out})`` (D = 2 if bidirectional),
        the final states ``(num_layers * D, B, *)``.

    Parameters and ``state_dict`` are torch.nn's (``weight_ih_l{{k}}``, ``weight_hh_l{{k}}``,
    ``bias_ih_l{{k}}``, ``bias_hh_l{{k}}``{extra}, ``_reverse`` for the second direction), so
    ``load_state_dict(torch_module.state_dict())`` works both ways; bad input raises torch.nn's
    exception and message. Not a subclass of the torch.nn class (see :func:`fastrnn.swap`).
"""
