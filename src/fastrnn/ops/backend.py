"""Backend names, the process-wide default and the one-time fallback warnings."""

from __future__ import annotations

import os
import warnings

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "get_default_backend",
    "set_default_backend",
    "validate_backend",
    "warn_once",
]

BACKENDS = ("auto", "reference", "native", "triton")
_ENV = "FASTRNN_BACKEND"
_default: str | None = None
_warned: set[str] = set()


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot serve this configuration; the message says why."""


def validate_backend(backend: str | None) -> str | None:
    """Check a backend name (``None`` means the process default); returns it unchanged."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    return backend


def get_default_backend() -> str:
    """The process default: :func:`set_default_backend`, else ``$FASTRNN_BACKEND``, else auto."""
    if _default is not None:
        return _default
    env = os.environ.get(_ENV)
    if not env:
        return "auto"
    if env not in BACKENDS:
        raise ValueError(f"{_ENV} must be one of {BACKENDS}, got {env!r}")
    return env


def set_default_backend(backend: str | None) -> None:
    """Set the process-wide default backend; ``None`` restores ``$FASTRNN_BACKEND``/auto."""
    global _default
    _default = validate_backend(backend)


def warn_once(message: str) -> None:
    """Emit ``message`` as a UserWarning the first time it is seen in this process. It counts
    as seen once emitted: a ``warnings`` filter that turns it into an error raises it again on
    the next call, as the first time."""
    if message not in _warned:
        warnings.warn(message, UserWarning, stacklevel=3)
        _warned.add(message)
