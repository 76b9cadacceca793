"""The one per-dtype tolerance table every numerical test uses.

``TOL[dtype] = (rtol, atol)`` for comparing a backend's result with the float64 reference
or with torch.nn. float64 is near machine precision; float32 leaves room for a different
summation order over T steps; the half types are limited by their 8/11-bit mantissas.
"""

import torch

TOL: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (2e-5, 2e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, msg: str = "",
                 extra_atol: float = 0.0, scaled: bool = False, equal_nan: bool = False):
    """Compare in float64 with the tolerance of ``dtype`` (``atol`` widened by ``extra_atol``);
    NaN anywhere fails, unless ``equal_nan`` (then NaN must stand where ``expected`` has NaN;
    infinities always compare exactly). ``scaled``: ``atol`` is relative to
    ``max(1, max|expected|)`` (for sums over many steps and rows, whose rounding grows with
    their magnitude, such as weight gradients at large T x B). ``msg`` prefixes torch's report
    of the mismatch."""
    rtol, atol = TOL[dtype]
    if scaled:
        atol *= max(1.0, expected.detach().abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual.detach().double(), expected.detach().double(), rtol=rtol, atol=atol + extra_atol,
        equal_nan=equal_nan,
        msg=(lambda report: f"{msg}: {report}") if msg else None,
    )
