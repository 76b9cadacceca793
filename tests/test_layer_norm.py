"""LayerNormLSTM, LayerNormGRU and their cells against an independent step-by-step oracle."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import by_hand
from tolerances import assert_close
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastrnn
from fastrnn.ops import backend as backend_state

F64 = torch.float64


def _ln(a: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
    """Layer normalisation written out: mean and biased variance per row and group."""
    B, F = a.shape
    a = a.reshape(B, groups, F // groups)
    n = a.shape[-1]
    mean = a.sum(-1, keepdim=True) / n
    var = ((a - mean) ** 2).sum(-1, keepdim=True) / n
    return ((a - mean) / torch.sqrt(var + eps)).reshape(B, F)


def _step(mode, p, sfx, x, h, c, groups, eps, cell_norm):
    """One step of one layer and direction, by the formulas of fastrnn.nn.layer_norm."""
    zero = torch.zeros(p["weight_ih" + sfx].shape[0], dtype=x.dtype)
    gi = p["ln_weight_ih" + sfx] * _ln(x @ p["weight_ih" + sfx].T, groups, eps) \
        + p.get("bias_ih" + sfx, zero)
    gh = p["ln_weight_hh" + sfx] * _ln(h @ p["weight_hh" + sfx].T, groups, eps) \
        + p.get("bias_hh" + sfx, zero)
    if mode == "GRU":
        H = h.shape[1]
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h, None
    i, f, g, o = (gi + gh).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if cell_norm is None:
        return torch.sigmoid(o) * torch.tanh(c), c
    normed = p["ln_weight_c" + sfx] * _ln(c, 1, eps) + p["ln_bias_c" + sfx]
    if cell_norm == "state":
        c = normed
    return torch.sigmoid(o) * torch.tanh(normed), c


def _oracle(m, x, h0, c0, lengths):
    """x: (T, B, I) time-major -> output (T, B, D*H) zero-padded, h_n, c_n (None for GRU)."""
    p = dict(m.named_parameters())
    groups = (4 if m.mode == "LSTM" else 3) if m.per_gate else 1
    cell_norm = getattr(m, "cell_norm", None)

    def step(sfx, x_t, state):
        h, c = _step(m.mode, p, sfx, x_t, state[0], state[1] if len(state) > 1 else None,
                     groups, m.eps, cell_norm)
        return (h,) if c is None else (h, c)

    out = by_hand(m, x, (h0,) if c0 is None else (h0, c0), lengths, step)
    return out[0], out[1], (out[2] if c0 is not None else None)


def _randomise(m: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.6)


def _grads(tensors, leaves):
    weights = torch.Generator().manual_seed(3)
    loss = sum((t * torch.randn(t.shape, generator=weights, dtype=t.dtype)).sum()
               for t in tensors if t is not None)
    return torch.autograd.grad(loss, leaves, allow_unused=False)


CASES = [
    ("LSTM", dict(cell_norm="output")),
    ("LSTM", dict(cell_norm="state", per_gate=True)),
    ("LSTM", dict(cell_norm=None, bias=False)),
    ("GRU", dict()),
    ("GRU", dict(per_gate=True, bias=False)),
]


@pytest.mark.parametrize("mode,kwargs", CASES)
@pytest.mark.parametrize("packed", [False, True])
def test_reference_matches_the_step_by_step_oracle(mode, kwargs, packed):
    cls = fastrnn.LayerNormLSTM if mode == "LSTM" else fastrnn.LayerNormGRU
    m = cls(3, 5, num_layers=2, bidirectional=True, eps=1e-3, backend="reference",
            **kwargs).to(F64)
    _randomise(m)
    T, B = 5, 3
    x = torch.randn(T, B, 3, dtype=F64, requires_grad=True)
    h0 = torch.randn(4, B, 5, dtype=F64, requires_grad=True)
    c0 = torch.randn(4, B, 5, dtype=F64, requires_grad=True) if mode == "LSTM" else None
    lengths = torch.tensor([2, 5, 4]) if packed else torch.full((B,), T)
    hx = (h0, c0) if mode == "LSTM" else h0
    if packed:
        out, state = m(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
        out = pad_packed_sequence(out, total_length=T)[0]
    else:
        out, state = m(x, hx)
    h_n, c_n = state if mode == "LSTM" else (state, None)
    want = _oracle(m, x, h0, c0, lengths)
    for name, got, exp in zip(("output", "h_n", "c_n"), (out, h_n, c_n), want):
        if exp is not None:
            assert_close(got, exp, F64, msg=name)
    leaves = [x, h0, *([c0] if c0 is not None else []), *m.parameters()]
    names = ["x", "h0", *(["c0"] if c0 is not None else []),
             *(n for n, _ in m.named_parameters())]
    for name, got, exp in zip(names, _grads((out, h_n, c_n), leaves), _grads(want, leaves)):
        assert_close(got, exp, F64, msg=f"grad {name}")


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_gradcheck(mode):
    cls = fastrnn.LayerNormLSTM if mode == "LSTM" else fastrnn.LayerNormGRU
    m = cls(2, 3, backend="reference").to(F64)
    _randomise(m)
    params = dict(m.named_parameters())
    x = torch.randn(3, 2, 2, dtype=F64, requires_grad=True)
    g = params["ln_weight_hh_l0"].detach().clone().requires_grad_(True)
    extra = [params["ln_bias_c_l0"].detach().clone().requires_grad_(True)] if mode == "LSTM" \
        else []

    def f(x, g, *rest):
        swapped = {**params, "ln_weight_hh_l0": g}
        if rest:
            swapped["ln_bias_c_l0"] = rest[0]
        out, state = torch.func.functional_call(m, swapped, (x,))
        return out, *(state if mode == "LSTM" else (state,))

    assert torch.autograd.gradcheck(f, (x, g, *extra))


def test_parameters_names_and_initialisation():
    m = fastrnn.LayerNormLSTM(3, 8, num_layers=2, bidirectional=True)
    torch_keys = set(torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True).state_dict())
    norm_keys = set(m.state_dict()) - torch_keys
    assert torch_keys <= set(m.state_dict())
    assert norm_keys == {f"ln_{w}_l{k}{s}" for w in ("weight_ih", "weight_hh", "weight_c",
                                                       "bias_c")
                         for k in (0, 1) for s in ("", "_reverse")}
    for name, p in m.named_parameters():
        if name.startswith("ln_weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.startswith("ln_bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            assert p.abs().max() <= 8 ** -0.5 and p.std() > 0, name
    assert m.ln_weight_ih_l0.shape == (32,) and m.ln_bias_c_l1_reverse.shape == (8,)
    g = fastrnn.LayerNormGRU(3, 8)
    assert {n for n, _ in g.named_parameters() if n.startswith("ln_")} == {
        "ln_weight_ih_l0", "ln_weight_hh_l0"}
    assert set(fastrnn.LayerNormLSTM(3, 8, cell_norm=None).state_dict()) == {
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "ln_weight_ih_l0",
        "ln_weight_hh_l0"}
    missing = m.load_state_dict(torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True)
                                .state_dict(), strict=False).missing_keys
    assert set(missing) == norm_keys
    assert repr(fastrnn.LayerNormLSTM(3, 8, eps=1e-3, per_gate=True, cell_norm="state")) == (
        "LayerNormLSTM(3, 8, eps=0.001, per_gate=True, cell_norm='state')")


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_forward_contract(mode):
    """batch_first, unbatched, default state, lengths= and the cells agree with the
    time-major batched call."""
    cls = fastrnn.LayerNormLSTM if mode == "LSTM" else fastrnn.LayerNormGRU
    m = cls(3, 4, num_layers=2, backend="reference")
    _randomise(m)
    bf = cls(3, 4, num_layers=2, batch_first=True, backend="reference")
    bf.load_state_dict(m.state_dict())
    x = torch.randn(6, 2, 3)
    out, state = m(x)
    assert_close(bf(x.transpose(0, 1))[0].transpose(0, 1), out, torch.float32)
    single, single_state = m(x[:, 1])
    assert single.shape == (6, 4)
    assert_close(single, out[:, 1], torch.float32)
    first = single_state[0] if mode == "LSTM" else single_state
    assert_close(first, (state[0] if mode == "LSTM" else state)[:, 1], torch.float32)
    lengths = torch.tensor([3, 6])
    padded, _ = m(x, lengths=lengths)
    want = pad_packed_sequence(m(pack_padded_sequence(x, lengths, enforce_sorted=False))[0],
                               total_length=6)[0]
    assert torch.equal(padded, want)
    assert padded[3:, 0].abs().max() == 0
    cell = (fastrnn.LayerNormLSTMCell if mode == "LSTM" else fastrnn.LayerNormGRUCell)(3, 4)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in m.state_dict().items()
                          if k.endswith("_l0")})
    one, one_state = cls(3, 4, backend="reference"), None
    one.load_state_dict({k: v for k, v in m.state_dict().items() if k.endswith("_l0")})
    out1, one_state = one(x[:1])
    step = cell(x[0])
    assert_close(step[0] if mode == "LSTM" else step, out1[0], torch.float32)
    if mode == "LSTM":
        assert_close(step[1], one_state[1][0], torch.float32)
    assert (cell(x[0, 0])[0] if mode == "LSTM" else cell(x[0, 0])).shape == (4,)


def test_backends_and_bad_input():
    backend_state._warned.clear()
    x = torch.randn(4, 2, 3)
    with pytest.raises(ValueError, match="layer normalisation is not part of torch.nn"):
        fastrnn.LayerNormLSTM(3, 4, backend="native")(x)
    with pytest.raises(ValueError, match="layer normalisation is not part of torch.nn"):
        fastrnn.LayerNormGRUCell(3, 4, backend="native")(x[0])
    ref = fastrnn.LayerNormGRU(3, 4, backend="reference")
    ours = fastrnn.LayerNormGRU(3, 4, backend="triton")
    ours.load_state_dict(ref.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fused
        got = ours(x)[0]
    assert_close(got, ref(x)[0], torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastrnn.LayerNormLSTM(3, 4)(x)[0].shape == (4, 2, 4)  # auto: the reference
    with pytest.raises(ValueError, match="proj_size argument is not supported"):
        fastrnn.LayerNormLSTM(3, 4, proj_size=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        fastrnn.LayerNormGRU(3, 4, foo=1)
    for bad in (0.0, -1e-5, "1e-5", True):
        with pytest.raises(ValueError, match="eps must be a positive number"):
            fastrnn.LayerNormLSTM(3, 4, eps=bad)
    with pytest.raises(ValueError, match="cell_norm must be one of"):
        fastrnn.LayerNormLSTM(3, 4, cell_norm="input")
    with pytest.raises(TypeError, match="per_gate should be of type bool"):
        fastrnn.LayerNormGRU(3, 4, per_gate=1)
    with pytest.raises(ValueError, match="zoneout probabilities must be in"):
        fastrnn.LayerNormLSTM(3, 4, zoneout=1.0)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size"):
        fastrnn.LayerNormLSTM(3, 4)(torch.randn(4, 2, 5))
    with pytest.raises(RuntimeError, match="Input and hidden tensors are not the same dtype"):
        fastrnn.LayerNormGRU(3, 4)(x, torch.randn(1, 2, 4, dtype=F64))
    with pytest.raises(RuntimeError, match="Input and hidden tensors are not the same dtype"):
        fastrnn.LayerNormLSTMCell(3, 4)(x[0], (torch.randn(2, 4), torch.randn(2, 4, dtype=F64)))
    with pytest.raises(RuntimeError, match="TorchScript cannot compile fastrnn.LayerNormLSTM"):
        torch.jit.script(fastrnn.LayerNormLSTM(3, 4))
    assert fastrnn.to_torch(fastrnn.LayerNormLSTM(3, 4)).__class__ is fastrnn.LayerNormLSTM


def test_regularisers_reproducible_and_backward_in_evaluation():
    m = fastrnn.LayerNormLSTM(3, 4, num_layers=2, dropout=0.3, zoneout=(0.2, 0.4),
                              dropconnect=0.3)
    x = torch.randn(7, 2, 3)
    torch.manual_seed(5)
    a = m(x)[0]
    torch.manual_seed(5)
    b = m(x)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, m(x)[0])  # fresh masks per call
    m.eval()
    x.requires_grad_(True)
    out = m(x)[0]
    assert torch.equal(out, m(x)[0])
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.parameters())
    assert "zoneout=(0.2, 0.4), dropconnect=0.3" in repr(m)


def test_process_default_native_runs_the_reference(monkeypatch):
    """torch.nn has no LayerNorm LSTM: backend='native' raises, a process default of native
    runs the reference with a one-time warning."""
    backend_state._warned.clear()
    monkeypatch.setenv("FASTRNN_BACKEND", "native")
    m = fastrnn.LayerNormLSTM(3, 4)
    ref = fastrnn.LayerNormLSTM(3, 4, backend="reference")
    ref.load_state_dict(m.state_dict())
    x = torch.randn(5, 2, 3)
    with pytest.warns(UserWarning, match="the process default backend native runs the reference"):
        assert torch.equal(m(x)[0], ref(x)[0])
