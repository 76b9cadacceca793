"""Backend dispatch and the functional API (no modules here)."""

from fastrnn.ops.backend import (
    BACKENDS,
    BackendUnavailableError,
    get_default_backend,
    set_default_backend,
)
from fastrnn.ops.dispatch import resolve_backend
from fastrnn.ops.functional import input_projection, recurrence, rnn, rnn_cell

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "get_default_backend",
    "input_projection",
    "recurrence",
    "resolve_backend",
    "rnn",
    "rnn_cell",
    "set_default_backend",
]
