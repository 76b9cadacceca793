"""Backend dispatch: turn a requested backend into the one that runs this call."""

from __future__ import annotations

import torch

from fastrnn.ops.backend import BackendUnavailableError, get_default_backend, warn_once

__all__ = ["resolve_backend"]


def _triton_check(mode: str, device: torch.device, dtype: torch.dtype, config: dict) -> str | None:
    """None if the fused path serves the call, else the reason it cannot fuse this configuration.

    Raises BackendUnavailableError when the triton backend cannot run here at all.
    """
    try:
        from fastrnn.ops import triton_ops
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the triton backend has no kernel for {mode} yet ({exc}); "
            "use backend='reference' or 'native'"
        ) from exc
    return triton_ops.unsupported_reason(mode, device=device, dtype=dtype, **config)


def resolve_backend(
    requested: str | None, mode: str, device: torch.device, dtype: torch.dtype, **config: object
) -> str:
    """Return "native", "reference" or "triton" for this call.

    ``auto`` takes triton on CUDA where it serves the configuration, else torch's own
    implementation. ``triton`` falls back to the reference (warning once, naming the reason)
    for a configuration the fused kernels cannot do.
    """
    backend = requested if requested is not None else get_default_backend()
    if backend in ("native", "reference"):
        return backend
    if backend == "auto":
        if device.type != "cuda":
            return "native"
        try:
            reason = _triton_check(mode, device, dtype, config)
        except BackendUnavailableError:
            return "native"
        return "native" if reason else "triton"
    reason = _triton_check(mode, device, dtype, config)
    if reason:
        warn_once(f"fastrnn: the triton backend cannot fuse this {mode} ({reason}); "
                  "running the reference backend instead")
        return "reference"
    return "triton"
