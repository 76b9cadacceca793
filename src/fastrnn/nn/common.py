"""Pieces shared by the recurrent layers and the cells."""

from __future__ import annotations

import math

from torch.nn import Module, init


class BackendModule(Module):
    """A module with a ``backend`` attribute that unpickles from files that predate it."""

    backend: str | None

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, as torch.nn does."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def __setstate__(self, state: dict) -> None:
        state.setdefault("backend", None)
        super().__setstate__(state)
