"""Training memory of the fused path, counted on the CPU (kernels in the interpreter).

A dispatch mode records every tensor the forward and backward create and frees it when its
last tensor dies, so the peak of live bytes is the device-independent part of the training
peak that ``tests/test_gpu.py`` measures against cuDNN on a GPU. Units: ``T * B * H`` values
of the input dtype. What a layer keeps or makes, LSTM: the saved pre-activations and c (5),
whose gate blocks first receive the input projection, and the output (1) in forward; backward
writes the gate gradients over the saved values, so it adds the output's gradient (1) and the
input's. Measured at this size (small weights and states add a little): LSTM 8.9, GRU 7.5,
RNN 4.0; with the projection in a tensor of its own 11.0, 8.9 and 3.8; with the gate gradients
in one too 12.9, 11.9 and 3.8; before the backward stopped materialising a zero gradient for
the saved tensor and the shifted h for dW_hh: 18.5, 20.2 and 4.7.
"""

from __future__ import annotations

import math
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fastrnn


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages of tensors created under the mode while any of them lives."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.current = self.peak = 0
        self.created: list[tuple[str, tuple[int, ...]]] = []

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current -= entry[0]
                del self.live[key]

    def _track(self, tensor: torch.Tensor, name: str) -> None:
        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0:
            return
        if key in self.live:
            self.live[key][1] += 1
        else:
            self.live[key] = [size, 1]
            self.current += size
            self.peak = max(self.peak, self.current)
            self.created.append((name, tuple(tensor.shape)))
        weakref.finalize(tensor, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self._track(t, str(func.overloadpacket))
        return out


def _train(cell: str, T: int, B: int, H: int, **backward) -> LiveBytes:
    module = getattr(fastrnn, cell)(24, H, backend="triton").to(torch.bfloat16)
    x = torch.randn(T, B, 24, dtype=torch.bfloat16, requires_grad=True)
    with LiveBytes() as mode:
        out, state = module(x)
        states = state if isinstance(state, tuple) else (state,)
        sum(t.float().sum() for t in (out, *states)).backward(**backward)
    return mode


@pytest.mark.parametrize("cell,bound", [("LSTM", 9.5), ("GRU", 8.0), ("RNN", 4.5)])
def test_training_peak_in_units_of_the_output(cell, bound):
    T, B, H = 40, 16, 64
    mode = _train(cell, T, B, H)
    unit = T * B * H * torch.bfloat16.itemsize
    assert mode.peak / unit <= bound, (mode.peak / unit, mode.created)
    saved = {"LSTM": 5, "GRU": 4, "RNN": 0}[cell] * H
    # no zero gradient is made for the saved activations (an output only so it can be saved)
    assert not any(name == "aten.zeros" and shape[-1:] == (saved,)
                   for name, shape in mode.created), mode.created
    if saved:  # (an Elman RNN's gate values are its output's size)
        # neither the input projection nor the gate gradients take a tensor of their own: the
        # only tensor of per-step gate values is the saved one
        gates = {"LSTM": 4, "GRU": 3}[cell] * H
        steps = [(name, shape) for name, shape in mode.created
                 if math.prod(shape) >= T * B * gates]
        assert steps == [("fastrnn.recurrence", (T, B, saved))], steps


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_retained_graph_keeps_the_saved_values(cell):
    """With ``retain_graph`` backward leaves the saved values as they are (a second backward
    reads them): its gradients take a tensor of their own (4 gate blocks; the GRU's 3 and
    its r * dn)."""
    T, B, H = 40, 16, 64
    steps = [(name, shape) for name, shape in _train(cell, T, B, H, retain_graph=True).created
             if math.prod(shape) >= T * B * 3 * H]
    assert steps[-1] == ("fastrnn.recurrence_backward", (T, B, 4 * H)), steps
