"""torch.compile traces the triton backend into one graph: the recurrences are custom ops.

Runs in the interpreter on the CPU: ``aot_eager`` for the gradient checks (the autograd formula
of the custom ops is traced, the kernels run at run time), one ``inductor`` compile at a tiny
size, and ``torch._dynamo.explain`` counting graph breaks. Packed sequences are not covered:
torch marks ``pack_padded_sequence`` untraceable, so they break the graph (as with torch.nn).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from fastrnn.kernels import launch
from helpers import make_inputs, run_and_grads, twins
from tolerances import assert_close

CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3), "batched"),
    ("GRU", dict(batch_first=True, dropout=0.5, num_layers=2), "batched"),
    ("RNN", dict(nonlinearity="relu", bias=False), "unbatched"),
]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compiled_grads(module, x, hx, backend: str) -> dict:
    compiled = torch.compile(module, fullgraph=True, backend=backend)
    results = run_and_grads(compiled, x, hx)
    return {key.replace("_orig_mod.", ""): value for key, value in results.items()}


@pytest.mark.parametrize("cell,kwargs,kind", CASES)
def test_no_graph_breaks(cell, kwargs, kind):
    _, ours = twins(cell, 4, 6, backend="triton", dtype=torch.float32, **kwargs)
    x, hx, _ = make_inputs(ours, T=5, B=3, kind=kind, dtype=torch.float32)
    explained = torch._dynamo.explain(ours)(x, hx)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.parametrize("cell,kwargs,kind", CASES)
def test_fullgraph_outputs_and_gradients(monkeypatch, cell, kwargs, kind):
    """Compiled (aot_eager) against torch.nn: outputs, final states, every gradient; the
    fused kernels ran (dropout is off in eval mode, so both compute one function)."""
    calls = []
    forward = launch.forward
    monkeypatch.setattr(launch, "forward", lambda *a, **kw: calls.append(1) or forward(*a, **kw))
    ref, ours = twins(cell, 4, 6, backend="triton", dtype=torch.float32, **kwargs)
    ref.eval()
    ours.eval()
    x, hx, _ = make_inputs(ref, T=5, B=3, kind=kind, dtype=torch.float32)
    expected = run_and_grads(ref, x, hx)
    actual = _compiled_grads(ours, x, hx, "aot_eager")
    assert calls
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert_close(actual[key], value, torch.float32, msg=key)


def test_inductor_fullgraph_matches_eager():
    _, ours = twins("LSTM", 3, 5, backend="triton", dtype=torch.float32)
    x, hx, _ = make_inputs(ours, T=3, B=2, kind="batched", dtype=torch.float32)
    expected = run_and_grads(ours, x, hx)
    actual = _compiled_grads(ours, x, hx, "inductor")
    for key, value in expected.items():
        assert_close(actual[key], value, torch.float32, msg=key)


def test_native_backend_stays_out_of_the_graph_like_torch_nn():
    """Under torch.compile the native backend's RNN runs outside the graph, as torch.nn's
    does: traced, torch's RNN op decomposes into every time step (a graph, and a compile
    time, growing with T). The graphs around it do not depend on T."""
    import fastrnn

    for backend in ("native", "auto"):  # auto is native on the CPU
        torch.manual_seed(0)
        embed, rnn = torch.nn.Linear(4, 4), fastrnn.LSTM(4, 6, backend=backend)

        def step(x, embed=embed, rnn=rnn):
            return rnn(torch.relu(embed(x)))[0].tanh().sum()

        graphs = []

        def record(gm, example_inputs, graphs=graphs):
            graphs.append(gm)
            return gm.forward

        x = torch.randn(5, 2, 4)
        assert_close(torch.compile(step, backend=record)(x), step(x), torch.float32)
        targets = [str(node.target) for gm in graphs for node in gm.graph.nodes]
        assert any("relu" in t for t in targets) and any("tanh" in t for t in targets)
        assert not any("lstm" in t.lower() for t in targets), (backend, targets)
        torch._dynamo.reset()


def test_reference_time_loop_is_one_op_under_compile():
    """The reference's loop is one opaque op per layer and direction in the graph, whatever T
    (traced step by step, compile time grew with T); outputs and every gradient as eager."""
    nodes = []
    for T in (3, 12):
        torch._dynamo.reset()
        graphs = []

        def record(gm, example_inputs, graphs=graphs):
            graphs.append(gm)
            return gm.forward

        ref, ours = twins("GRU", 4, 5, backend="reference", dtype=torch.float32,
                          bidirectional=True)
        x, hx, _ = make_inputs(ours, T=T, B=2, kind="batched", dtype=torch.float32)
        torch.compile(ours, fullgraph=True, backend=record)(x, hx)
        nodes.append(sum(len(gm.graph.nodes) for gm in graphs))
        targets = [str(n.target) for gm in graphs for n in gm.graph.nodes]
        assert sum("reference_recurrence" in t for t in targets) == 2  # two directions
        expected = run_and_grads(ref, x, hx)
        actual = _compiled_grads(ours, x, hx, "aot_eager")
        for key, value in expected.items():
            assert_close(actual[key], value, torch.float32, msg=key)
    assert nodes[0] == nodes[1]


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_torch_export_and_jit_trace_still_work(backend):
    """Leaving the graph (native) and the opaque reference op keep torch.export and
    torch.jit.trace working: the exported and traced modules compute the eager outputs."""
    import fastrnn

    module = fastrnn.LSTM(4, 6, num_layers=2, backend=backend)
    x = torch.randn(5, 2, 4)
    expected = module(x)[0]
    assert_close(torch.export.export(module, (x,)).module()(x)[0], expected, torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks in forward
        traced = torch.jit.trace(module, (x,))
    assert_close(traced(x)[0], expected, torch.float32)
