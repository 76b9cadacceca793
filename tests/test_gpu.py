"""The compiled Triton kernels on a CUDA device against torch.nn (cuDNN) and the float64 reference.

Run by ``benchmarks/gpu_check.sh`` (``TRITON_INTERPRET=0 pytest -m gpu``); skipped without CUDA.
Every path the dispatcher can take is exercised: resident (H = 29 in float32, 37 and 64 in
half precision: the widths whose W_hh fits the resident budget), split behind the grid
barrier (H = 256 ... 2048 at B = 16; each cell with its W_hh slice on chip and streamed; vector
programs at B = 1), split beyond the SMs (programs that each run several tiles), the
projection on both, packed unsorted lengths, bidirectional stacks, T = 1 to 10,000, eval-mode
backward and inference, and backward writing over the saved values against one that keeps the
graph. Each case compares outputs, final states and every gradient.

The whole file must finish well under two minutes on an H100, first-launch compiles included:
the cases share kernel configurations (the streaming split kernels' constexprs do not depend on
H, the on-chip ones only on its power-of-two bucket), so the number of distinct compiles stays
small. Memory is checked against cuDNN; time is not.
"""

from __future__ import annotations

import contextlib
import os

import pytest
import torch
from fastrnn.kernels import common, launch, recurrence, split
from helpers import make_inputs, run_and_grads, twins
from tolerances import assert_close
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                       reason="compiled kernels only: run with TRITON_INTERPRET=0"),
]

CUDA = torch.device("cuda")
# precision name -> (dtype, TF32 allowed)
PRECISIONS = {
    "fp32": (torch.float32, False),
    "tf32": (torch.float32, True),
    "bf16": (torch.bfloat16, False),
    "fp16": (torch.float16, False),
}
INPUT = 24  # input size of every case: the input projection is torch's, keep it cheap


@contextlib.contextmanager
def tf32(allowed: bool):
    """Set both TF32 switches (cuDNN and the kernels read cudnn's; torch's GEMMs matmul's)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def spilled_kernels() -> list[tuple]:
    """Every recurrence kernel compiled in this process that spills registers (local memory
    per thread, as the driver reports it): the compile test checks each config's variant
    ahead of time, this checks the variants the launches really ran."""
    found = []
    for kernel in (split.split_forward_kernel, split.split_backward_kernel,
                   recurrence.resident_forward_kernel, recurrence.resident_backward_kernel):
        for cache in kernel.device_caches.values():
            for compiled in cache[0].values():
                if getattr(compiled, "n_spills", 0):
                    meta = compiled.metadata
                    found.append((kernel.__name__, str(compiled.hash)[:12], meta.num_warps,
                                  meta.num_stages, compiled.n_spills))
    return found


@pytest.fixture(autouse=True)
def no_register_spills():
    """No kernel compiled during a test spills (each is reported by the test that ran it)."""
    before = set(spilled_kernels())
    yield
    assert not set(spilled_kernels()) - before


def tolerance_dtype(precision: str) -> torch.dtype:
    """The tolerances.py row a precision is held to. TF32 rounds the products' operands to
    float16's 10-bit mantissa, so TF32 float32 is loosened explicitly to float16's row."""
    return torch.float16 if precision == "tf32" else PRECISIONS[precision][0]


def modules(cell: str, hidden: int, dtype: torch.dtype, **kwargs):
    """(torch.nn on cuDNN, fastrnn on triton, fastrnn reference in float64), equal weights."""
    name = "RNN" if cell.startswith("RNN") else cell
    if cell == "RNN_RELU":
        kwargs["nonlinearity"] = "relu"
    ref, ours = twins(name, INPUT, hidden, backend="triton", dtype=dtype, **kwargs)
    oracle = getattr(fastrnn, name)(INPUT, hidden, backend="reference", **kwargs).double()
    oracle.load_state_dict(ours.state_dict())
    return ref.to(CUDA), ours.to(CUDA), oracle.to(CUDA)


def as_float64(x, hx):
    """Detached float64 leaves with the same values as the input and state."""
    leaf = lambda t: t.detach().double().requires_grad_()  # noqa: E731
    return leaf(x), None if hx is None else (
        tuple(map(leaf, hx)) if isinstance(hx, tuple) else leaf(hx))


def check(cell: str, precision: str, *, H: int, B: int, T: int, kind: str = "batched",
          torch_nn: bool = True, train: bool = True, **kwargs) -> None:
    """Outputs, final states and every gradient of the triton module match the float64
    reference within the precision's tolerance (absolute part relative to each tensor's scale:
    weight gradients sum T x B terms), and torch.nn on cuDNN (when ``torch_nn``) within that
    tolerance plus cuDNN's own largest distance from the reference."""
    dtype, allow_tf32 = PRECISIONS[precision]
    tol = tolerance_dtype(precision)
    with tf32(allow_tf32):
        ref, ours, oracle = modules(cell, H, dtype, **kwargs)
        for module in (ref, ours, oracle):
            module.train(train)
        x, hx, lengths = make_inputs(ref, T=T, B=B, kind=kind, dtype=dtype, device=CUDA)
        got = run_and_grads(ours, x, hx, lengths)
        want = run_and_grads(oracle, *as_float64(x, hx), lengths)
        cudnn = run_and_grads(ref, x, hx, lengths) if torch_nn else {}
    assert want.keys() == got.keys()
    for key, value in want.items():
        assert got[key] is not None and got[key].dtype == dtype, key
        assert_close(got[key], value, tol, msg=f"{cell} {precision} H={H}: {key} vs float64",
                     scaled=True)
    for key, value in cudnn.items():
        # cuDNN rounds differently (its float32 weight gradients are off the float64 ones by
        # more than float32's tolerance): agree with it up to its own largest error.
        own = (value.double() - want[key].double()).abs().max().item()
        assert_close(got[key], value, tol, msg=f"{cell} {precision} H={H}: {key} vs cuDNN",
                     extra_atol=own, scaled=True)


def split_programs(H: int, B: int) -> int:
    """Programs of a split launch (every cell and dtype share the block sizes)."""
    cfg = common.pick_config(common.LSTM, H, B, torch.float32)
    assert not cfg.resident
    return -(-B // cfg.block_b) * -(-H // cfg.block_h)


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_resident_every_cell_and_precision(cell, precision):
    dtype = PRECISIONS[precision][0]
    H = 29 if dtype == torch.float32 else 37
    assert common.pick_config(common.CELLS[cell], H, 5, dtype).resident
    check(cell, precision, H=H, B=5, T=6)


@pytest.mark.parametrize("cell,precision", [("LSTM", "bf16"), ("GRU", "fp16")])
def test_resident_widest(cell, precision):
    assert common.pick_config(common.CELLS[cell], 64, 7, PRECISIONS[precision][0]).resident
    check(cell, precision, H=64, B=7, T=6)


SPLIT_BARRIER_CASES = [
    ("LSTM", "bf16", 256), ("LSTM", "fp16", 256), ("LSTM", "tf32", 256), ("LSTM", "fp32", 768),
    ("LSTM", "bf16", 512), ("LSTM", "bf16", 1024), ("LSTM", "bf16", 2048), ("GRU", "bf16", 256),
    ("GRU", "fp32", 768), ("GRU", "bf16", 1024), ("RNN_TANH", "fp32", 768),
    ("RNN_TANH", "bf16", 2048), ("RNN_RELU", "fp32", 1024),
    # sizes not divisible by 16: Triton's unaligned kernel variants and their own configs
    ("LSTM", "bf16", 1000), ("GRU", "tf32", 700), ("RNN_TANH", "fp16", 1500),
]


def test_split_cases_keep_w_on_chip_and_stream_it():
    """Every cell runs behind the barrier both with its W_hh slice on chip and streamed."""
    for kind in ("LSTM", "GRU", "RNN"):
        on_chip = {common.pick_config(common.CELLS[cell], H, 16, PRECISIONS[precision][0]).w_on_chip
                   for cell, precision, H in SPLIT_BARRIER_CASES if cell.startswith(kind)}
        assert on_chip == {False, True}, kind


@pytest.mark.parametrize("cell,precision,H", SPLIT_BARRIER_CASES)
def test_split_with_grid_barrier(cell, precision, H):
    programs = split_programs(H, 16)
    if H < 2048:  # 128 programs exceed the SMs of some H100 variants
        assert launch.uses_barrier(CUDA, programs)
    check(cell, precision, H=H, B=16, T=8)


@pytest.mark.parametrize("cell,precision,H,B", [
    ("LSTM", "bf16", 256, 0), ("GRU", "fp32", 256, 0), ("LSTM", "bf16", 1024, 64),
    ("GRU", "bf16", 1024, 64), ("RNN_TANH", "fp16", 2048, 256), ("LSTM", "tf32", 1000, 80),
])
def test_split_beyond_the_sms(cell, precision, H, B):
    """More tiles than SMs: programs that each run several tiles, all behind the barrier."""
    sms = torch.cuda.get_device_properties(CUDA).multi_processor_count
    B = B or 16 * (sms // 16 + 1)  # batch tiles x 16 hidden slices > SMs
    assert not launch.uses_barrier(CUDA, split_programs(H, B))
    cfg = common.pick_config(common.CELLS[cell], H, B, PRECISIONS[precision][0])
    grid, barrier = launch._grid(cfg, B, H, 1, CUDA)
    assert barrier and grid[0] * grid[1] <= sms
    check(cell, precision, H=H, B=B, T=5)


@pytest.mark.parametrize("cell,precision,H", [
    ("LSTM", "fp32", 1024), ("LSTM", "bf16", 1024), ("LSTM", "tf32", 300), ("GRU", "tf32", 768),
    ("GRU", "fp16", 1000), ("RNN_RELU", "bf16", 512),
])
def test_vector_programs_at_batch_one(cell, precision, H):
    """Batch 1: the forward's vector programs (W_hh slices in registers) behind the barrier."""
    cfg = common.pick_config(common.CELLS[cell], H, 1, PRECISIONS[precision][0])
    assert cfg.vector and launch.uses_barrier(CUDA, -(-H // cfg.block_h))
    check(cell, precision, H=H, B=1, T=9)


def test_vector_programs_beyond_the_sms():
    """Both directions at H = 1024 would take 256 vector programs: the batched forward."""
    assert not common.pick_config(common.LSTM, 1024, 1, torch.bfloat16, directions=2).vector
    check("LSTM", "bf16", H=1024, B=1, T=5, kind="packed", bidirectional=True)


@pytest.mark.parametrize("precision,H,P,B", [
    ("fp32", 29, 11, 5),  # resident
    ("bf16", 64, 16, 5),  # resident
    ("bf16", 512, 128, 16),  # split, grid barrier
    ("fp32", 300, 100, 16),  # split, odd sizes
    ("bf16", 512, 128, 160),  # split, 320 tiles: 128 programs run 3 or fewer each
])
def test_projection(precision, H, P, B):
    cfg = common.pick_config(common.LSTM, H, B, PRECISIONS[precision][0], P)
    assert cfg.resident == (H <= 64)
    check("LSTM", precision, H=H, B=B, T=6, proj_size=P)


@pytest.mark.parametrize("cell,H", [("LSTM", 29), ("LSTM", 256), ("GRU", 29), ("GRU", 768),
                                    ("RNN_TANH", 300)])
def test_packed_bidirectional_two_layers(cell, H):
    check(cell, "fp32", H=H, B=11, T=9, kind="packed", num_layers=2, bidirectional=True)


@pytest.mark.parametrize("T", [1, 1000, 10_000])
def test_sequence_length_extremes(T):
    check("LSTM", "fp32", H=64, B=4, T=T)


def test_backward_in_eval_mode():
    """cuDNN refuses backward in eval mode: against the float64 reference only."""
    check("LSTM", "fp32", H=256, B=16, T=5, train=False, torch_nn=False)
    check("GRU", "bf16", H=37, B=3, T=5, train=False, torch_nn=False)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("H", [29, 1024])
def test_inference(mode, H):
    ref, ours, _ = modules("LSTM", H, torch.float32)
    x = torch.randn(7, 16, INPUT, device=CUDA)
    with tf32(False), getattr(torch, mode)():
        out, (h, c) = ours(x)
        want, (h_ref, c_ref) = ref(x)
    assert not out.requires_grad
    for a, e in ((out, want), (h, h_ref), (c, c_ref)):
        assert_close(a, e, torch.float32)


def test_torch_compile_fullgraph():
    """The custom ops on CUDA under torch.compile (aot_eager: no extra inductor compiles)."""
    _, ours, _ = modules("LSTM", 256, torch.bfloat16, proj_size=64)
    x = torch.randn(6, 16, INPUT, device=CUDA, dtype=torch.bfloat16)
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
    got, want = compiled(x), ours(x)
    for a, e in ((got[0], want[0]), (got[1][0], want[1][0]), (got[1][1], want[1][1])):
        assert_close(a, e, torch.bfloat16)


GRAPH_CASES = [
    ("LSTM", "bf16", 48, dict(proj_size=24)),  # resident with a projection: m written over c
    ("LSTM", "tf32", 256, dict(proj_size=128)),  # split with a projection
    ("LSTM", "bf16", 512, dict(bidirectional=True)),  # split, W_hh slices on chip
    ("GRU", "fp16", 1000, dict(bidirectional=True)),  # split, streamed, unaligned
]


@pytest.mark.parametrize("cell,precision,H,kwargs", GRAPH_CASES)
def test_backward_over_the_saved_values(cell, precision, H, kwargs):
    """A backward that releases the graph writes its gradients over the saved values; with
    the GPU's concurrency its gradients equal those of one that keeps the graph (and gives
    them a tensor of their own), on packed unsorted input."""
    dtype, allow_tf32 = PRECISIONS[precision]
    with tf32(allow_tf32):
        _, ours, _ = modules(cell, H, dtype, **kwargs)
        x, hx, lengths = make_inputs(ours, T=40, B=16, kind="packed", dtype=dtype, device=CUDA)
        out = ours(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)[0].data
        leaves = [x, *(hx if isinstance(hx, tuple) else (hx,)), *ours.parameters()]
        weight = torch.randn_like(out)
        kept = torch.autograd.grad(out, leaves, weight, retain_graph=True)
        released = torch.autograd.grad(out, leaves, weight)
    for got, want in zip(released, kept, strict=True):
        assert_close(got, want, tolerance_dtype(precision), scaled=True)


def _peak_training_bytes(module, x) -> int:
    """Peak memory above what was allocated before one forward and backward."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out, (h, c) = module(x)
    (out.float().sum() + h.float().sum() + c.float().sum()).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


@pytest.mark.parametrize("H", [64, 512])  # resident, split
def test_training_peak_memory_against_cudnn(capsys, H):
    """Recorded on the terminal; both keep per-step gate values in the input dtype. On an H100:
    0.16x cuDNN's peak at H=64, 0.52x at H=512 (1.44x while a reduction over the strided gate
    gradients copied them to float32). The target is at most cuDNN's; three quarters of it
    catches a tensor of per-step gate values too many."""
    ref, ours, _ = modules("LSTM", H, torch.float16)
    x = torch.randn(200, 16, INPUT, device=CUDA, dtype=torch.float16, requires_grad=True)
    _peak_training_bytes(ours, x)  # compiles and warms the allocator
    cudnn, fused = _peak_training_bytes(ref, x), _peak_training_bytes(ours, x)
    with capsys.disabled():
        print(f"\npeak training memory, LSTM fp16 T=200 B=16 H={H}: cuDNN "
              f"{cudnn / 2**20:.2f} MiB, triton {fused / 2**20:.2f} MiB ({fused / cudnn:.2f}x)")
    assert fused <= 0.75 * cudnn


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_state_on_the_cpu_beside_cuda_input_raises_torch_error(cell):
    """Never a host pointer in a kernel: torch.nn's own error, before any launch."""
    ref, ours = twins(cell, INPUT, 40, backend="triton", dtype=torch.float32)
    ref, ours = ref.to(CUDA), ours.to(CUDA)
    x = torch.randn(5, 3, INPUT, device=CUDA)
    h0 = torch.zeros(1, 3, 40)  # on the CPU
    hx = (h0, torch.zeros(1, 3, 40, device=CUDA)) if cell == "LSTM" else h0
    with pytest.raises(Exception) as expected:
        ref(x, hx)
    with pytest.raises(type(expected.value)) as actual:
        ours(x, hx)
    assert str(actual.value) == str(expected.value)
    cell_ours = fastrnn.GRUCell(INPUT, 40, backend="triton").to(CUDA)
    with pytest.raises(RuntimeError):
        cell_ours(x[0], torch.zeros(3, 40))


@pytest.mark.parametrize("H,B", [(37, 3), (256, 16), (1000, 16), (256, 1)])  # resident, split
# on chip, split streaming, vector
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_nonfinite_initial_state_as_the_reference(cell, H, B):
    """inf, NaN and the largest float in h0 give what the float64 reference (torch's own ops)
    gives: finite where it is finite and close, non-finite where it is not (the padded lanes
    never spread them). Not against cuDNN, whose relu may turn NaN into 0."""
    _, ours, oracle = modules(cell, H, torch.float32)
    x = torch.randn(6, B, INPUT, device=CUDA)
    for value in (float("inf"), float("nan"), torch.finfo(torch.float32).max):
        h0 = torch.randn(1, B, H, device=CUDA)
        h0[0, B // 2, H // 2] = value
        hx = (h0, torch.randn(1, B, H, device=CUDA)) if cell == "LSTM" else h0
        with tf32(False):
            got = ours(x, hx)
        want = oracle(*as_float64(x, hx))
        for w, g in zip((want[0], *(want[1] if cell == "LSTM" else (want[1],))),
                        (got[0], *(got[1] if cell == "LSTM" else (got[1],)))):
            assert torch.equal(g.isfinite(), w.isfinite()), f"{cell} H={H} h0={value}"
            finite = w.isfinite()
            assert_close(g[finite], w[finite], torch.float32, msg=f"{cell} H={H} h0={value}")


def test_decode_loop_replayed_from_a_cuda_graph():
    """A decoder loop of fastrnn.LSTMCell (triton) captured in a CUDA graph: each replay, with
    new values copied into the captured input, equals the eager loop (the README's pattern)."""
    torch.manual_seed(0)
    cell = fastrnn.LSTMCell(32, 64, backend="triton").to(CUDA)
    head = torch.nn.Linear(64, 32).to(CUDA)

    def decode(x, h, c, steps=8):
        outs = []
        for _ in range(steps):
            h, c = cell(x, (h, c))
            x = torch.tanh(head(h))
            outs.append(x)
        return torch.stack(outs)

    x0 = torch.randn(4, 32, device=CUDA)
    h0, c0 = torch.zeros(4, 64, device=CUDA), torch.zeros(4, 64, device=CUDA)
    static_x = x0.clone()
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: compiles the kernels outside the capture
            for _ in range(2):
                decode(static_x, h0, c0)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = decode(static_x, h0, c0)
        for _ in range(2):
            fresh = torch.randn_like(x0)
            static_x.copy_(fresh)
            graph.replay()
            assert_close(static_out, decode(fresh, h0, c0), torch.float32)


@pytest.mark.parametrize("cell,H", [("LSTM", 32), ("LSTM", 512), ("GRU", 768), ("RNN", 1024)])
def test_layers_replayed_from_a_cuda_graph(cell, H):
    """Whole layers on the triton backend (resident, and split behind the grid barrier, whose
    counter is zeroed on the device each call) captured in a CUDA graph, inference and
    forward+backward (autograd.grad inside the capture, torch's whole-network recipe): every
    replay with new input equals the eager call."""
    torch.manual_seed(0)
    layer = getattr(fastrnn, cell)(16, H, backend="triton").to(CUDA, torch.bfloat16)
    x = torch.randn(64, 16, 16, device=CUDA, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(64, 16, H, device=CUDA, dtype=torch.bfloat16)
    params = list(layer.parameters())

    def train():
        out = layer(x)[0]
        return (out, *torch.autograd.grad(out, [x, *params], grad))

    def infer():
        with torch.no_grad():
            return (layer(x)[0],)

    for run in (infer, train):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static = run()
        for _ in range(2):
            with torch.no_grad():
                x.copy_(torch.randn_like(x))
            graph.replay()
            for got, want in zip(static, run()):
                assert_close(got, want, torch.bfloat16, scaled=True)


def _against_the_reference(cls, H, dtype, T=48, B=16, **kwargs):
    """A fastrnn layer torch.nn lacks, triton against the reference in float64: outputs,
    final states and every gradient (packed unsorted lengths)."""
    torch.manual_seed(0)
    ref = cls(INPUT, H, backend="reference", **kwargs).double().to(CUDA)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.startswith("ln_"):
                p.add_(torch.randn_like(p) * 0.3)
    ours = cls(INPUT, H, backend="triton", **kwargs).to(CUDA, dtype)
    ours.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
    ref.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
    x = torch.randn(T, B, INPUT, device=CUDA)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    torch.manual_seed(1)  # the same zoneout masks for both
    got = run_and_grads(ours, x.to(dtype).requires_grad_(), None, lengths)
    torch.manual_seed(1)
    want = run_and_grads(ref, x.double().requires_grad_(), None, lengths)
    for name in want:
        assert_close(got[name], want[name], dtype, msg=name, scaled=True)


@pytest.mark.parametrize("H,heads", [(64, 1), (256, 4), (768, 12), (768, 1)])
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_slstm_fused(precision, H, heads):
    """The sLSTM: resident heads of 64, split heads, one dense head of 768 (split, streamed)."""
    dtype, allowed = PRECISIONS[precision]
    with tf32(allowed):
        _against_the_reference(fastrnn.SLSTM, H, dtype, num_heads=heads, bidirectional=H == 256)


@pytest.mark.parametrize("cls,kwargs", [
    (fastrnn.LayerNormLSTM, {}), (fastrnn.LayerNormLSTM, {"cell_norm": "state", "per_gate": True}),
    (fastrnn.LayerNormGRU, {"bidirectional": True}),
])
@pytest.mark.parametrize("H", [256, 768])
def test_layer_norm_fused(cls, kwargs, H):
    """The LayerNorm layers fused behind the grid barrier (W_hh on chip at 256, streamed at
    768), in bfloat16."""
    _against_the_reference(cls, H, torch.bfloat16, **kwargs)


@pytest.mark.parametrize("cls,kwargs", [
    (fastrnn.LayerNormLSTM, {"cell_norm": "state"}), (fastrnn.LayerNormGRU, {"per_gate": True}),
])
def test_layer_norm_beyond_the_sms(cls, kwargs):
    """B = 64 at H = 1024 (256 tiles): W_hh streamed, the grid cut to the SMs, every phase of
    every step behind the barrier, in bfloat16."""
    from fastrnn.kernels import layer_norm

    cell = common.LSTM if cls is fastrnn.LayerNormLSTM else common.GRU
    for backward in (False, True):
        cfg, grid, barrier = layer_norm.ln_launch(cell, 1024, 64, 1, torch.bfloat16, CUDA,
                                                  backward)
        assert barrier and not cfg.w_on_chip and grid[0] * grid[1] < 256
    _against_the_reference(cls, 1024, torch.bfloat16, T=8, B=64, **kwargs)


@pytest.mark.parametrize("cls,kwargs", [
    (fastrnn.LSTM, {"zoneout": (0.1, 0.2)}), (fastrnn.GRU, {"zoneout": 0.15}),
    (fastrnn.RNN, {"zoneout": 0.1}), (fastrnn.LayerNormLSTM, {"zoneout": (0.1, 0.2)}),
])
@pytest.mark.parametrize("H", [64, 768])
def test_zoneout_fused(cls, kwargs, H):
    """Zoneout's masks in the fused kernels (resident at 64, split behind the barrier at 768),
    bfloat16, against the float64 reference with the same masks."""
    _against_the_reference(cls, H, torch.bfloat16, bidirectional=H == 64, **kwargs)
