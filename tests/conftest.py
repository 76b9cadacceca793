"""Test-wide set-up: Triton kernels run in the interpreter, and new empty tensors hold NaN.

Filling ``torch.empty``/``empty_like``/``new_empty`` results with NaN makes any output element
a kernel or op forgets to write show up as a failure instead of passing by luck.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import functools  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


def _poison(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            with torch.no_grad():
                out.fill_(float("nan"))
        return out

    return wrapper


torch.empty = _poison(torch.empty)
torch.empty_like = _poison(torch.empty_like)
torch.empty_strided = _poison(torch.empty_strided)
torch.Tensor.new_empty = _poison(torch.Tensor.new_empty)


@pytest.fixture(autouse=True)
def _seed_and_default_backend():
    """Every test starts from seed 0 and the process-default backend."""
    import fastrnn

    torch.manual_seed(0)
    fastrnn.set_default_backend(None)
    yield
    fastrnn.set_default_backend(None)
