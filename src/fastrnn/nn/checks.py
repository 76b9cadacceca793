"""torch.nn's checks of a recurrent layer's input and state, with its exception types and
messages, and the preparation of the initial state (mixed into :class:`fastrnn.nn.RNNBase`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fastrnn.ops.functional import num_states


class TorchChecks:
    """``check_input``, ``check_forward_args`` and the state sizes, as torch.nn.RNNBase."""

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch_first: bool
    proj_size: int
    _flat_weights: list[Tensor]

    def check_input(self, input: Tensor, batch_sizes: Tensor | None) -> None:
        weight_dtype = self._flat_weights[0].dtype
        if input.dtype != weight_dtype and not torch._C._is_any_autocast_enabled():
            raise ValueError(
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight_dtype}). "
                f"Convert input: input.to({weight_dtype}), or convert model: "
                f"model.to({input.dtype})"
            )
        expected_dim = 2 if batch_sizes is not None else 3
        if input.dim() != expected_dim:
            raise RuntimeError(f"input must have {expected_dim} dimensions, got {input.dim()}")
        if self.input_size != input.size(-1):
            raise RuntimeError(
                "input.size(-1) must be equal to input_size. "
                f"Expected {self.input_size}, got {input.size(-1)}"
            )

    def _state_sizes(self, input: Tensor, batch_sizes: Tensor | None) -> list[tuple[int, ...]]:
        if batch_sizes is not None:
            batch = int(batch_sizes[0])
        else:
            batch = input.size(0) if self.batch_first else input.size(1)
        rows = self.num_layers * (2 if self.bidirectional else 1)
        out = self.proj_size if self.proj_size > 0 else self.hidden_size
        sizes = [(rows, batch, out)]
        sizes += [(rows, batch, self.hidden_size)] * (num_states(self.mode) - 1)
        return sizes

    def check_forward_args(
        self, input: Tensor, hx: tuple[Tensor, ...], batch_sizes: Tensor | None
    ) -> None:
        self.check_input(input, batch_sizes)
        for i, (h, size) in enumerate(zip(hx, self._state_sizes(input, batch_sizes))):
            if h.size() != size:
                label = f"hidden[{i}] size" if num_states(self.mode) > 1 else "hidden size"
                raise RuntimeError(f"Expected {label} {size}, got {list(h.size())}")

    def _prepare_state(
        self, input: Tensor, hx: Any, batch_sizes: Tensor | None, is_batched: bool
    ) -> tuple[Tensor, ...]:
        if hx is None:
            sizes = self._state_sizes(input, batch_sizes)
            if num_states(self.mode) == 1:  # torch.nn sizes the default state by hidden_size
                sizes = [(sizes[0][0], sizes[0][1], self.hidden_size)]
            return tuple(torch.zeros(s, dtype=input.dtype, device=input.device) for s in sizes)
        count = num_states(self.mode)
        if batch_sizes is not None:
            return tuple(hx) if count > 1 else (hx,)
        want = 3 if is_batched else 2
        kind = "batched 3-D" if is_batched else "unbatched 2-D"
        if count == 2:  # torch.nn.LSTM's checks and messages, in its order
            if hx[0].dim() != want or hx[1].dim() != want:
                raise RuntimeError(
                    f"For {kind} input, hx and cx should also be {want}-D but got "
                    f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors"
                )
            state = tuple(hx)  # more than two: torch's size checks, then its error (_forward)
        elif count > 2:
            if not isinstance(hx, tuple | list) or len(hx) != count:
                got = f"{len(hx)} tensors" if isinstance(hx, tuple | list) else type(hx).__name__
                raise RuntimeError(f"{type(self).__name__} expects hx as a tuple of {count} "
                                   f"tensors, got {got}")
            if any(h.dim() != want for h in hx):
                dims = ", ".join(f"{h.dim()}-D" for h in hx)
                raise RuntimeError(f"For {kind} input, every tensor of hx should also be "
                                   f"{want}-D but got ({dims}) tensors")
            state = tuple(hx)
        else:
            if hx.dim() != want:
                raise RuntimeError(
                    f"For {kind} input, hx should also be {want}-D but got {hx.dim()}-D tensor"
                )
            state = (hx,)
        return state if is_batched else tuple(h.unsqueeze(1) for h in state)
