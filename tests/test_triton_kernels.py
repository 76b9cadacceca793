"""The fused recurrences (fastrnn.ops.triton_ops) against the float64 reference, in the interpreter.

Both launch paths run: ``resident`` (one program owns the hidden width, the time loop inside
the kernel) and ``split`` (programs own 16 hidden units, W_hh streamed in 16-wide chunks; all
phases behind the barrier in a grid of one program that runs every tile, or, with both
directions in one launch, a launch per phase), forced on small sizes through ``pick_config``;
and the split path with the W_hh slice on chip, which ``pick_config`` itself chooses once the
resident budget is forced to zero.
"""

from __future__ import annotations

import pytest
import torch
from fastrnn.kernels import common, launch
from helpers import check_directions, compare_with_torch, twins
from tolerances import assert_close

from fastrnn import reference
from fastrnn.ops import BackendUnavailableError, triton_ops

SPLIT = common.Config(resident=False, block_b=16, block_h=16, block_k=16, num_warps=4)
CELL_NAMES = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]


@pytest.fixture(params=["resident", "split"])
def path(request, monkeypatch):
    """Run under the resident config (what small sizes pick) or a forced split config."""
    if request.param == "split":
        monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    return request.param


def _problem(cell: str, T: int, B: int, H: int, dtype, proj: int = 0, bias: bool = True):
    """Random leaf tensors (in ``dtype``) for one recurrence call of ``cell``."""
    G = {"LSTM": 4, "GRU": 3}.get(cell, 1)
    P = proj or H
    scale = H**-0.5

    def leaf(*shape, s=1.0):
        return (torch.randn(*shape, dtype=torch.float64) * s).to(dtype).requires_grad_()

    args = {"gx": leaf(T, B, G * H), "w_hh": leaf(G * H, P, s=scale), "h0": leaf(B, P)}
    if cell == "LSTM":
        args["c0"] = leaf(B, H)
        args["w_hr"] = leaf(P, H, s=scale) if proj else None
    if cell == "GRU":
        args["b_hn"] = leaf(H) if bias else None
    return args


def _call(impl, cell: str, args: dict, lengths, reverse: bool):
    if cell == "LSTM":
        return impl.lstm_recurrence(args["gx"], args["w_hh"], args["h0"], args["c0"],
                                    args["w_hr"], lengths, reverse)
    if cell == "GRU":
        return impl.gru_recurrence(args["gx"], args["w_hh"], args["b_hn"], args["h0"], lengths,
                                   reverse)
    return impl.rnn_recurrence(args["gx"], args["w_hh"], args["h0"], cell[4:].lower(), lengths,
                               reverse)


def _check(cell: str, *, T: int, B: int, H: int, dtype=torch.float32, proj: int = 0,
           lengths=None, reverse: bool = False, bias: bool = True):
    """Outputs and the gradients of every input match the float64 reference."""
    args = _problem(cell, T, B, H, dtype, proj, bias)
    ref_args = {k: None if v is None else v.detach().double().requires_grad_()
                for k, v in args.items()}
    out = _call(triton_ops, cell, args, lengths, reverse)
    expected = _call(reference, cell, ref_args, lengths, reverse)
    weights = [torch.randn(e.shape, dtype=torch.float64) for e in expected]
    sum((o.double() * w).sum() for o, w in zip(out, weights)).backward()
    sum((e * w).sum() for e, w in zip(expected, weights)).backward()
    for i, (o, e) in enumerate(zip(out, expected)):
        assert o.dtype == dtype
        assert_close(o, e, dtype, msg=f"output {i}")
    for name, leaf in args.items():
        if leaf is not None:
            assert leaf.grad is not None, name
            assert_close(leaf.grad, ref_args[name].grad, dtype, msg=f"grad {name}")


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_odd_sizes_float32(path, cell, reverse):
    _check(cell, T=6, B=3, H=37, reverse=reverse)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_variable_lengths(path, cell, reverse):
    _check(cell, T=7, B=4, H=20, lengths=torch.tensor([3, 7, 1, 5]), reverse=reverse)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_single_step_single_row(path, cell):
    _check(cell, T=1, B=1, H=5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_half_precision(path, cell, dtype):
    _check(cell, T=5, B=3, H=24, dtype=dtype, lengths=torch.tensor([5, 2, 4]))


@pytest.mark.parametrize("reverse", [False, True])
def test_projection(path, reverse):
    _check("LSTM", T=6, B=3, H=29, proj=11, lengths=torch.tensor([6, 3, 1]), reverse=reverse)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_projection_half_precision(path, dtype):
    _check("LSTM", T=4, B=2, H=21, proj=18, dtype=dtype)


@pytest.mark.parametrize("reverse", [False, True])
def test_projection_picked_split(monkeypatch, reverse):
    """The config pick_config gives a projection beyond the resident budget (forced small)."""
    monkeypatch.setattr(common, "RESIDENT_BYTES", 1024)
    assert not common.pick_config(common.LSTM, 80, 17, torch.float32, 33).resident
    _check("LSTM", T=3, B=17, H=80, proj=33, lengths=torch.tensor([3, 1] + [2] * 15),
           reverse=reverse)


def test_gru_without_b_hn(path):
    _check("GRU", T=4, B=2, H=9, bias=False)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_long_sequence(path, cell):
    _check(cell, T=200, B=2, H=3, lengths=torch.tensor([200, 117]), reverse=True)


def _stack_directions(cell: str, dirs: list[dict]) -> dict:
    """The inputs of ``triton_ops.layer`` from one ``_problem`` per direction."""
    def stack(name):
        parts = [d[name] for d in dirs]
        return None if parts[0] is None else torch.stack(parts)

    state = (stack("h0"), stack("c0")) if cell == "LSTM" else (stack("h0"),)
    return {"gx": torch.cat([d["gx"] for d in dirs], dim=2), "w_hh": stack("w_hh"),
            "state": state, "b_hn": stack("b_hn") if cell == "GRU" else None,
            "w_hr": stack("w_hr") if cell == "LSTM" else None}


@pytest.mark.parametrize("cell,proj", [(c, 0) for c in CELL_NAMES] + [("LSTM", 3)])
@pytest.mark.parametrize("reverse", [False, True])
def test_both_directions_in_one_launch(path, cell, proj, reverse):
    """``layer`` with D = 2 (direction 1 runs opposite to direction 0) against the float64
    reference run per direction: outputs side by side, final states, every gradient."""
    lengths = torch.tensor([5, 2, 4])
    dirs = [_problem(cell, 5, 3, 7, torch.float32, proj) for _ in range(2)]
    refs = [{k: None if v is None else v.detach().double().requires_grad_() for k, v in d.items()}
            for d in dirs]
    fused = _stack_directions(cell, dirs)
    y, finals = triton_ops.layer(cell, fused["gx"], fused["w_hh"], fused["state"],
                                 b_hn=fused["b_hn"], w_hr=fused["w_hr"], lengths=lengths,
                                 reverse=reverse)
    expected = [_call(reference, cell, r, lengths, reverse != (d == 1))
                for d, r in enumerate(refs)]
    out = [y] + list(finals)
    check_directions(out, expected, dirs, refs)


class _LaunchRecorder:
    """A kernel whose launches record their keyword arguments (the constexprs and launch
    options) under (kernel name, H) in ``seen``."""

    def __init__(self, kernel, seen: dict, H: list[int]) -> None:
        self.kernel, self.seen, self.H = kernel, seen, H

    def __getattr__(self, name):
        return getattr(self.kernel, name)

    def __getitem__(self, grid):
        run = self.kernel[grid]

        def record(*args, **kwargs):
            key = (self.kernel.__name__, self.H[0])
            self.seen.setdefault(key, set()).add(tuple(sorted(kwargs.items())))
            return run(*args, **kwargs)

        return record


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_one_variant_per_config(path, cell, monkeypatch):
    """Lengths or none, saving for backward or not, either running order, the grid barrier
    (split grids of one program in the interpreter) or a launch per phase: every launch of a
    kernel at one size passes the same constexprs, so the variant the compile check builds
    for a config is the one that runs."""
    seen, size = {}, [0]
    for name in ("resident_forward_kernel", "resident_backward_kernel", "split_forward_kernel",
                 "split_backward_kernel"):
        monkeypatch.setattr(launch, name, _LaunchRecorder(getattr(launch, name), seen, size))
    for H in (16, 37):
        size[0] = H
        for lengths in (None, torch.tensor([2, 3, 1])):
            for reverse in (False, True):
                args = _problem(cell, 3, 3, H, torch.float32)
                sum(o.sum() for o in _call(triton_ops, cell, args, lengths, reverse)).backward()
                with torch.no_grad():
                    _call(triton_ops, cell, args, lengths, reverse)
    for H in (16, 37):  # a forward and a backward kernel at each size
        assert sorted(name.split("_")[1] for name, h in seen if h == H) == ["backward", "forward"]
    assert all(len(variants) == 1 for variants in seen.values()), seen


def _spy_split_launches(monkeypatch, record) -> list:
    """No resident budget; returns the list of split launches made, each as
    ``record(grid, barrier, meta)``."""
    monkeypatch.setattr(common, "RESIDENT_BYTES", 0)
    launches = []
    run_phases = launch._run_phases

    def spy(kernel, grid, args, meta, phases, barrier):
        launches.append(record(grid, barrier, meta))
        run_phases(kernel, grid, args, meta, phases, barrier)

    monkeypatch.setattr(launch, "_run_phases", spy)
    return launches


@pytest.fixture
def on_chip(monkeypatch):
    """Split launches with W_hh on chip (what pick_config picks without a resident budget
    beyond batch 1), as (grid, barrier, W_ON_CHIP)."""
    return _spy_split_launches(monkeypatch, lambda grid, barrier, meta: (
        grid, barrier, meta["W_ON_CHIP"]))


@pytest.fixture
def vector(monkeypatch):
    """Split launches at batch 1 (vector programs in the forward), as (grid, barrier, VECTOR)."""
    return _spy_split_launches(monkeypatch, lambda grid, barrier, meta: (
        grid, barrier, meta.get("VECTOR", False)))


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_w_on_chip(on_chip, cell, reverse):
    """One program (B, H <= 16): the whole time loop in one launch, the slice loaded once."""
    assert common.pick_config(common.CELLS[cell], 16, 16, torch.float32).w_on_chip
    _check(cell, T=6, B=5, H=13, lengths=torch.tensor([6, 2, 5, 1, 4]), reverse=reverse)
    assert on_chip == [((1, 1, 1), True, True)] * 2  # forward, backward


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_w_on_chip_half_precision(on_chip, dtype):
    _check("LSTM", T=5, B=3, H=16, dtype=dtype, lengths=torch.tensor([5, 2, 4]))
    assert on_chip == [((1, 1, 1), True, True)] * 2


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_w_on_chip_matches_torch_nn(on_chip, cell):
    """Packed, unsorted lengths, both directions in one launch (two programs, so one launch
    per phase in the interpreter)."""
    ref, ours = twins(cell, 4, 11, backend="triton", dtype=torch.float32, bidirectional=True)
    compare_with_torch(ref, ours, T=5, B=3, kind="packed", dtype=torch.float32)
    assert on_chip == [((1, 1, 2), False, True)] * 2  # forward, backward


def test_w_on_chip_not_with_projection(on_chip):
    """A projection streams W_hh (and W_hr): one program runs the 2 batch tiles x 2 slices
    behind the barrier (tests/test_split_tiles.py)."""
    _check("LSTM", T=3, B=17, H=20, proj=9, lengths=torch.tensor([3, 1] + [2] * 15))
    assert on_chip == [((1, 1, 1), True, False)] * 2


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_vector_forward(vector, cell, reverse):
    """Batch 1: vector programs of 8 hidden units (5 of them, a launch per step), W_hh slices in
    registers; the backward takes the batched split kernel."""
    cfg = common.pick_config(common.CELLS[cell], 37, 1, torch.float32)
    assert cfg.vector and cfg.block_b == 1 and cfg.block_h == common.VECTOR_BLOCK_H
    _check(cell, T=6, B=1, H=37, lengths=torch.tensor([4]), reverse=reverse)
    assert vector == [((1, 5, 1), False, True), ((1, 3, 1), False, False)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_vector_forward_half_precision_one_program(vector, cell, dtype):
    """One program: all steps in one launch behind the grid barrier."""
    _check(cell, T=5, B=1, H=7, dtype=dtype)
    assert vector[0] == ((1, 1, 1), True, True)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("kind", ["unbatched", "packed"])
def test_vector_forward_matches_torch_nn(vector, cell, kind):
    """Unbatched input and a packed batch of one, both directions in one launch, two layers."""
    ref, ours = twins(cell, 4, 11, backend="triton", dtype=torch.float32, bidirectional=True,
                      num_layers=2)
    compare_with_torch(ref, ours, T=5, B=1, kind=kind, dtype=torch.float32)
    assert vector[0] == ((1, 2, 2), False, True)


def test_vector_programs_beyond_the_gpu_take_the_batched_kernel(vector, monkeypatch):
    """On a GPU whose SMs cannot hold every vector program at once (one SM here: more would
    deadlock the interpreter's barrier), the forward does not step them from Python (each
    launch would reload every slice) but takes the batched config, streaming W_hh when its
    on-chip slices exceed the SMs too: one program behind the barrier (the backward too)."""
    monkeypatch.setattr(launch, "is_interpreted", lambda device: False)
    monkeypatch.setattr(launch, "resident_programs", lambda device: 1)
    _check("GRU", T=3, B=1, H=37)
    assert vector == [((1, 1, 1), True, False)] * 2


def test_vector_only_forward_at_batch_one_without_projection():
    pick = common.pick_config
    assert pick(common.LSTM, 1024, 1, torch.float32).vector
    assert pick(common.GRU, 1024, 1, torch.bfloat16).vector
    assert pick(common.RNN_TANH, 1000, 1, torch.float16).vector
    assert pick(common.LSTM, 2048, 1, torch.bfloat16).block_b == 16  # more programs than SMs
    assert not pick(common.LSTM, 1024, 2, torch.float32).vector
    assert not pick(common.LSTM, 1024, 1, torch.float32, backward=True).vector
    assert not pick(common.LSTM, 1024, 1, torch.float32, 512).vector
    assert not pick(common.LSTM, 1024, 1, torch.float32, vector=False).vector
    assert pick(common.LSTM, 16, 1, torch.float32).resident


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_inference_saves_nothing(monkeypatch, mode):
    args = _problem("LSTM", 4, 2, 6, torch.float32)
    calls = []
    forward = launch.forward

    def spy(*a, **kw):
        calls.append(kw.get("save", True))
        return forward(*a, **kw)

    monkeypatch.setattr(launch, "forward", spy)
    with getattr(torch, mode)():
        y, h, c = _call(triton_ops, "LSTM", args, None, False)
    assert calls == [False]
    assert not y.requires_grad
    expected = _call(reference, "LSTM", args, None, False)
    assert_close(y, expected[0], torch.float32)
    assert_close(c, expected[2], torch.float32)


def test_pick_config_covers_every_hidden_size():
    for cell in common.CELLS.values():
        for H in range(1, 2049):
            cfg = common.pick_config(cell, H, 3, torch.bfloat16)
            for block in (cfg.block_b, cfg.block_h, cfg.block_k):
                assert block >= 16 and block & (block - 1) == 0
            if cfg.resident or cfg.w_on_chip:
                assert cfg.block_k >= H
    assert common.pick_config(common.LSTM, 32, 8, torch.float32).resident
    assert not common.pick_config(common.LSTM, 2048, 8, torch.bfloat16).resident
    assert common.pick_config(common.LSTM, 512, 8, torch.bfloat16).w_on_chip
    assert not common.pick_config(common.LSTM, 1024, 8, torch.bfloat16).w_on_chip
    assert common.pick_config(common.GRU, 1024, 8, torch.bfloat16).w_on_chip
    assert common.pick_config(common.LSTM, 512, 8, torch.float32).w_on_chip
    assert common.pick_config(common.LSTM, 512, 8, torch.bfloat16, backward=True).w_on_chip
    # the half-precision LSTM backward keeps a 1024-wide slice on chip for aligned sizes only
    assert common.pick_config(common.LSTM, 1024, 8, torch.bfloat16, backward=True).w_on_chip
    assert not common.pick_config(common.LSTM, 1000, 8, torch.bfloat16, backward=True).w_on_chip
    assert common.pick_config(common.GRU, 1024, 8, torch.bfloat16, backward=True).w_on_chip
    assert not common.pick_config(common.LSTM, 512, 8, torch.bfloat16, 128).w_on_chip


def test_aligned_sizes_take_four_warps_and_three_stages(monkeypatch):
    """Sizes divisible by 16 run Triton's aligned kernel variants, which compile spill-free
    with 4 warps (and 3 stages when streaming) where the unaligned ones need 8 or 1 stage."""
    pick = common.pick_config
    assert common.is_aligned(768) and not common.is_aligned(1000)
    assert not common.is_aligned(512, 100) and common.is_aligned(512, 128)
    stream = pick(common.LSTM, 768, 16, torch.bfloat16)
    assert (stream.w_on_chip, stream.num_warps, stream.num_stages, stream.block_k) == (
        False, 4, 3, 64)
    odd = pick(common.LSTM, 1000, 16, torch.bfloat16)
    assert (odd.w_on_chip, odd.num_warps) == (False, 8)
    assert pick(common.GRU, 512, 16, torch.bfloat16).num_warps == 4
    assert pick(common.GRU, 500, 16, torch.bfloat16).num_warps == 8
    assert pick(common.LSTM, 1024, 16, torch.float32, backward=True).block_k == 64  # TF32
    tf32 = pick(common.LSTM, 1024, 16, torch.float32)  # the forward's tile loop: 32 wide
    assert (tf32.block_k, tf32.num_stages) == (32, 3)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    exact = pick(common.LSTM, 1024, 16, torch.float32, backward=True)
    assert exact.block_k == 32 and exact.num_stages == 3
    assert pick(common.LSTM, 768, 16, torch.bfloat16, 256).num_warps == 8  # projection


def _reason(**overrides):
    kwargs = {"device": torch.device("cpu"), "dtype": torch.float32, "hidden_size": 32,
              "proj_size": 0, "packed": True, "requires_grad": True} | overrides
    return triton_ops.unsupported_reason("LSTM", **kwargs)


def test_unsupported_reason(monkeypatch):
    assert _reason() is None
    assert _reason(dtype=torch.bfloat16, hidden_size=2048) is None
    assert "float64" in _reason(dtype=torch.float64)
    assert _reason(hidden_size=1024, proj_size=100) is None
    assert _reason(hidden_size=29, proj_size=11) is None
    assert _reason(hidden_size=2048, batch_size=65535) is None
    assert "32-bit" in _reason(hidden_size=2048, batch_size=65536)
    assert "32-bit" in _reason(hidden_size=16384)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        _reason()
