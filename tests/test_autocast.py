"""Under torch.autocast every backend returns the dtypes torch.nn returns (CPU, bfloat16)."""

from __future__ import annotations

import warnings

import pytest
import torch
from tolerances import assert_close

import fastrnn

MODULES = [("LSTM", {}), ("LSTM", {"proj_size": 2}), ("GRU", {}), ("RNN", {}),
           ("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {})]


def _flat(result) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    return [t for item in result for t in _flat(item)]


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("name,kwargs", MODULES)
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_autocast_dtypes_as_torch_nn(backend, name, kwargs, input_dtype):
    ref = getattr(torch.nn, name)(3, 4, **kwargs)
    ours = getattr(fastrnn, name)(3, 4, backend=backend, **kwargs)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3) if name.endswith("Cell") else torch.randn(5, 2, 3)
    x = x.to(input_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = _flat(ref(x))
        except RuntimeError:  # torch's oneDNN LSTM without bfloat16 support on this CPU
            expected = None
        actual = _flat(ours(x))
    if expected is None:
        assert all(a.dtype == torch.bfloat16 for a in actual)
        return
    assert [a.dtype for a in actual] == [e.dtype for e in expected]
    for a, e in zip(actual, expected, strict=True):
        assert_close(a, e, torch.bfloat16)
