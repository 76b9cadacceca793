"""The fused LayerNorm LSTM and GRU (triton backend, in the interpreter; inference) against
the float64 reference: the kernel's every norm option, one launch per phase and behind the
barrier, and the modules."""

from __future__ import annotations

import warnings

import pytest
import torch
from fastrnn.kernels import common, launch
from fastrnn.kernels import layer_norm as kernel
from helpers import run_and_grads
from tolerances import assert_close
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastrnn
from fastrnn import reference
from fastrnn.ops import backend as backend_state

F64 = torch.float64


def _check(cell: str, *, H: int, cell_norm=None, per_gate=False, reverse=False, B=3, T=4,
           dtype=torch.float32, lengths=None):
    """One direction's y, h_n and c_n against the reference recurrence in float64."""
    code = common.CELLS[cell]
    G = common.GATES[code]
    gx, w = torch.randn(T, B, G * H), torch.randn(G * H, H) * H**-0.5
    gain, h0, c0 = torch.rand(G * H) + 0.5, torch.randn(B, H), torch.randn(B, H)
    wc, bc, bhn = torch.rand(H) + 0.5, torch.randn(H) * 0.1, torch.randn(H)
    args = [t.to(dtype) for t in (gx, w, gain, h0, c0, wc, bc, bhn)]
    gx, w, gain, h0, c0, wc, bc, bhn = (t.to(F64) for t in args)
    if cell == "LSTM":
        norm = reference.RecurrentNorm(gain, wc, bc, 1e-5, per_gate, cell_norm)
        expected = reference.lstm_recurrence(gx, w, h0, c0, None, lengths, reverse, norm=norm)
        got = kernel.ln_forward(code, args[0], args[1][None], args[2][None], args[3][None],
                                args[4][None], args[5][None], args[6][None], None, lengths,
                                int(reverse), 1e-5, per_gate, cell_norm)
    else:
        norm = reference.RecurrentNorm(gain, None, None, 1e-5, per_gate, None)
        expected = reference.gru_recurrence(gx, w, bhn, h0, lengths, reverse, norm=norm)
        got = kernel.ln_forward(code, args[0], args[1][None], args[2][None], args[3][None],
                                None, None, None, args[7][None], lengths, int(reverse), 1e-5,
                                per_gate)
    assert got[0].dtype == dtype and got[3] is None
    for name, g, e in zip(("y", "h_n", "c_n"), (got[0], got[1][0], got[2]), expected):
        if g is not None:
            assert_close(g[0] if name == "c_n" else g, e, dtype, msg=name)


@pytest.mark.parametrize("cell_norm", ["output", "state", None])
@pytest.mark.parametrize("per_gate", [False, True])
def test_lstm_norms(cell_norm, per_gate):
    """H = 37: three slices, one launch per phase; unequal lengths, reverse."""
    _check("LSTM", H=37, cell_norm=cell_norm, per_gate=per_gate, reverse=per_gate,
           lengths=torch.tensor([4, 1, 3]))


@pytest.mark.parametrize("per_gate", [False, True])
def test_gru_norms(per_gate):
    _check("GRU", H=37, per_gate=per_gate, reverse=not per_gate, lengths=torch.tensor([2, 4, 3]))


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_one_program_behind_the_barrier(monkeypatch, cell):
    """H, B <= 16: one program, every phase in one launch behind the grid barrier."""
    seen = []
    run_phases = launch._run_phases

    def spy(kernel_fn, grid, args, meta, phases, barrier):
        seen.append((grid, barrier, phases))
        run_phases(kernel_fn, grid, args, meta, phases, barrier)

    monkeypatch.setattr(launch, "_run_phases", spy)
    _check(cell, H=13, cell_norm="output", T=5)
    assert seen == [((1, 1, 1), True, 5 * (3 if cell == "LSTM" else 2))]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    _check("LSTM", H=21, cell_norm="output", dtype=dtype)


def test_configs_chip_or_stream():
    """W_hh on chip where common.chip_fits, else streamed; the slices' moments fit one tile."""
    small = kernel.pick_ln_config(common.LSTM, 256, torch.bfloat16)
    large = kernel.pick_ln_config(common.LSTM, 2048, torch.bfloat16)
    assert small.w_on_chip and small.block_k == 256 and not large.w_on_chip
    meta = kernel.ln_kernel_meta(common.LSTM, torch.bfloat16, large, 2048)
    assert meta["BLOCK_S"] == kernel.SLICE_CHUNK and meta["BLOCK_K"] == kernel.STREAM_BLOCK_K[2]


def _twins(cls, **kwargs):
    torch.manual_seed(0)
    ref = cls(5, 12, backend="reference", **kwargs).double()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.startswith("ln_"):  # gains and biases away from their initial 1 and 0
                p.add_(torch.randn_like(p) * 0.3)
    ours = cls(5, 12, backend="triton", **kwargs)
    ours.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    return ref.eval(), ours.eval()


@pytest.mark.parametrize("cls,kwargs", [
    (fastrnn.LayerNormLSTM, {"num_layers": 2, "bidirectional": True}),
    (fastrnn.LayerNormLSTM, {"cell_norm": "state", "per_gate": True, "batch_first": True}),
    (fastrnn.LayerNormGRU, {"bidirectional": True, "per_gate": True}),
])
def test_modules_match_the_reference_in_inference(monkeypatch, cls, kwargs):
    """No grad: the fused kernel runs (no fallback, no warning); packed unsorted lengths
    where not batch_first; outputs and final states against the float64 reference."""
    calls = []
    forward = kernel.ln_forward
    monkeypatch.setattr(kernel, "ln_forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    ref, ours = _twins(cls, **kwargs)
    D = 2 if ref.bidirectional else 1
    T, B = 5, 3
    x = torch.randn((B, T, 5) if ref.batch_first else (T, B, 5), dtype=F64)
    hx = torch.randn(ref.num_layers * D, B, 12, dtype=F64)
    hx = (hx, torch.randn_like(hx)) if cls is fastrnn.LayerNormLSTM else hx
    lengths = None if ref.batch_first else torch.tensor([3, 5, 2])

    def run(module, dtype):
        inp = x.to(dtype)
        state = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
        if lengths is not None:
            inp = pack_padded_sequence(inp, lengths, enforce_sorted=False)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("error")
            out, final = module(inp, state)
        if lengths is not None:
            out = pad_packed_sequence(out)[0]
        return out, final if isinstance(final, tuple) else (final,)

    (out, final), (want, want_final) = run(ours, torch.float32), run(ref, F64)
    assert len(calls) == ref.num_layers
    assert_close(out, want, torch.float32, msg="output")
    for i, (a, b) in enumerate(zip(final, want_final)):
        assert_close(a, b, torch.float32, msg=f"state {i}")


@pytest.mark.parametrize("cls,kwargs,H", [
    (fastrnn.LayerNormLSTM, {}, 12),
    (fastrnn.LayerNormLSTM, {"cell_norm": "state", "per_gate": True, "bidirectional": True}, 12),
    (fastrnn.LayerNormLSTM, {"cell_norm": None, "num_layers": 2}, 37),
    (fastrnn.LayerNormGRU, {"bidirectional": True}, 37),
    (fastrnn.LayerNormGRU, {"per_gate": True, "dropconnect": 0.3}, 12),
])
def test_training_matches_the_reference(monkeypatch, cls, kwargs, H):
    """Fused forward and backward (H = 37: three slices, a launch per phase; 12: one program
    behind the barrier unless bidirectional; their statistics combined two slices at a time):
    outputs, final states and every gradient (input, h0, c0, each parameter and norm
    parameter), packed unsorted lengths."""
    _check_gradients(monkeypatch, cls, kwargs, H, training=True)


@pytest.mark.parametrize("cls,kwargs,H,training", [
    (fastrnn.LayerNormLSTM, {"zoneout": (0.3, 0.5)}, 37, True),
    (fastrnn.LayerNormLSTM, {"zoneout": (0.3, 0.5), "cell_norm": "state",
                             "bidirectional": True}, 12, True),
    (fastrnn.LayerNormLSTM, {"zoneout": (0.2, 0.4), "cell_norm": None}, 12, True),
    (fastrnn.LayerNormLSTM, {"zoneout": (0.2, 0.4), "cell_norm": "state"}, 12, False),
    (fastrnn.LayerNormGRU, {"zoneout": 0.3, "per_gate": True}, 37, True),
    (fastrnn.LayerNormGRU, {"zoneout": 0.3}, 12, False),
])
def test_zoneout_matches_the_reference(monkeypatch, cls, kwargs, H, training):
    """Zoneout in the fused kernels, in training (a seed draws the same masks on both
    backends) and in evaluation (the expectation; backward too): every output and gradient
    against the float64 reference, every cell norm option."""
    _check_gradients(monkeypatch, cls, kwargs, H, training=training)


def _check_gradients(monkeypatch, cls, kwargs: dict, H: int, training: bool,
                     batch: int = 3) -> None:
    """A LayerNorm layer on the triton backend (ln_backward run once per layer) against the
    float64 reference: outputs, final states and every gradient, packed unsorted lengths."""
    monkeypatch.setattr(kernel, "SLICE_CHUNK", 2)
    calls = []
    from fastrnn.kernels import layer_norm_backward

    backward = layer_norm_backward.ln_backward
    monkeypatch.setattr(layer_norm_backward, "ln_backward",
                        lambda *a, **k: calls.append(1) or backward(*a, **k))
    torch.manual_seed(0)
    ref = cls(5, H, backend="reference", **kwargs).double()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.startswith("ln_"):
                p.add_(torch.randn_like(p) * 0.3)
    ours = cls(5, H, backend="triton", **kwargs)
    ours.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    D = 2 if ref.bidirectional else 1
    x = torch.randn(4, batch, 5, dtype=F64)
    hx = torch.randn(ref.num_layers * D, batch, H, dtype=F64)
    hx = (hx, torch.randn_like(hx)) if cls is fastrnn.LayerNormLSTM else hx
    lengths = torch.tensor([3, 4, 2] * batch)[:batch]

    def run(module, dtype):
        torch.manual_seed(1)  # the same DropConnect and zoneout masks for both
        state = (tuple(h.to(dtype).requires_grad_() for h in hx) if isinstance(hx, tuple)
                 else hx.to(dtype).requires_grad_())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return run_and_grads(module, x.to(dtype).requires_grad_(), state, lengths)

    got, want = run(ours.train(training), torch.float32), run(ref.train(training), F64)
    assert len(calls) == ref.num_layers and got.keys() == want.keys()
    for name in want:
        assert_close(got[name], want[name], torch.float32, msg=name, scaled=True)


def test_double_backward_on_the_reference_recurrences():
    """create_graph=True: second derivatives as the reference's."""
    results = []
    torch.manual_seed(0)
    ref = fastrnn.LayerNormLSTM(3, 6, backend="reference").double()
    ours = fastrnn.LayerNormLSTM(3, 6, backend="triton")
    ours.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    x = torch.randn(3, 2, 3, dtype=F64)
    for module, dtype in ((ours, torch.float32), (ref, F64)):
        inp = x.to(dtype).requires_grad_()
        out, (h, c) = module(inp)
        (g,) = torch.autograd.grad((out**2).sum() + c.sum(), inp, create_graph=True)
        (gg,) = torch.autograd.grad((g**2).sum(), module.ln_weight_hh_l0)
        results.append((g, gg))
    for a, b in zip(*results):
        assert_close(a, b, torch.float32, scaled=True)


def test_heads_run_the_reference():
    """What the fused kernels do not do: the reference, warning once why; ``auto`` off CUDA:
    the reference, silently."""
    backend_state._warned.clear()
    x = torch.randn(4, 2, 5)
    heads = fastrnn.LayerNormLSTM(5, 12, num_heads=2, backend="triton")
    with pytest.warns(UserWarning, match="several heads"):
        heads(x)
    auto = fastrnn.LayerNormLSTM(5, 12, backend="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto(x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_training_in_half_precision(dtype):
    """Half-precision layers (float32 states, statistics and saved values inside): outputs and
    every gradient within the dtype's tolerance of the float64 reference."""
    torch.manual_seed(0)
    ref = fastrnn.LayerNormLSTM(5, 16, backend="reference").double()
    ours = fastrnn.LayerNormLSTM(5, 16, backend="triton").to(dtype)
    ours.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
    ref.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})  # same rounding
    x = torch.randn(4, 3, 5, dtype=dtype)
    got = run_and_grads(ours, x.clone().requires_grad_(), None)
    want = run_and_grads(ref, x.double().requires_grad_(), None)
    for name in want:
        assert got[name].dtype == dtype
        assert_close(got[name], want[name], dtype, msg=name, scaled=True)
