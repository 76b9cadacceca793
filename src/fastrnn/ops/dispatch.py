"""Backend dispatch: turn a requested backend into the one that runs this call."""

from __future__ import annotations

import torch
from torch.autograd import forward_ad

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


def _transform() -> str | None:
    """The reason the fused ops cannot run under the current autograd transform, if any:
    torch.func's transforms (grad, vjp, jvp, jacrev, jacfwd, vmap, ...) and forward-mode AD
    need rules the custom ops do not have (under torch.func.jvp they would give a zero tangent,
    without forward AD they raise). Not while torch.compile traces, whose own interpreter is
    on that stack."""
    if torch.compiler.is_compiling():
        return None
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return "torch.func transforms (grad, jvp, vmap, ...) have no rule for the fused ops"
    if forward_ad._current_level >= 0:
        return "forward-mode AD has no rule for the fused ops"
    return None


def resolve_backend(
    requested: str | None, mode: str, device: torch.device, dtype: torch.dtype, **config: object
) -> str:
    """Return "native", "reference" or "triton" for this call.

    ``auto`` takes triton on CUDA where it serves the configuration, else torch's own
    implementation. ``triton`` falls back to the reference (warning once, naming the reason)
    for a configuration the fused kernels cannot do, and under torch.func transforms and
    forward-mode AD. Meta tensors (shapes only) take the reference, which computes nothing
    there.
    """
    backend = requested if requested is not None else get_default_backend()
    if backend in ("native", "reference"):
        return backend
    if backend == "auto":
        if device.type != "cuda" or _transform():
            return "native"
        try:
            reason = _triton_check(mode, device, dtype, config)
        except BackendUnavailableError:
            return "native"
        return "native" if reason else "triton"
    if device.type == "meta":
        return "reference"
    reason = _triton_check(mode, device, dtype, config) or _transform()
    if reason:
        warn_once(f"fastrnn: the triton backend cannot fuse this {mode} ({reason}); "
                  "running the reference backend instead")
        return "reference"
    return "triton"
