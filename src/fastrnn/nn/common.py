"""Pieces shared by the recurrent layers and the cells."""

from __future__ import annotations

import math
import warnings

import torch
from torch.nn import Module, init


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
        if not hasattr(torch.jit.script(torch_twin(self)), "forward"):  # torch 2.13's RNNs
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
