"""Shared test helpers: build torch.nn / fastrnn twins and collect outputs and every gradient."""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from tolerances import assert_close
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import fastrnn

CELLS = {"LSTM": 4, "GRU": 3, "RNN": 1}


def twins(cell: str, *args, backend: str = "reference", dtype=torch.float64, **kwargs):
    """A torch.nn module and a fastrnn module of ``cell`` sharing one state_dict."""
    ref = getattr(torch.nn, cell)(*args, **kwargs).to(dtype)
    ours = getattr(fastrnn, cell)(*args, backend=backend, **kwargs).to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def make_inputs(module, *, T: int, B: int, kind: str, dtype, lengths=None, with_state=True,
                device=None):
    """Random input and initial state for ``module``; kind: batched, unbatched or packed."""
    I = module.input_size
    if kind == "unbatched":
        x = torch.randn(T, I, dtype=dtype, device=device)
    elif kind == "packed":
        x = torch.randn(T, B, I, dtype=dtype, device=device)
    else:
        shape = (B, T, I) if module.batch_first else (T, B, I)
        x = torch.randn(shape, dtype=dtype, device=device)
    x.requires_grad_(True)
    hx = None
    if with_state:
        rows = module.num_layers * (2 if module.bidirectional else 1)
        out = getattr(module, "proj_size", 0) or module.hidden_size
        shape = (rows, out) if kind == "unbatched" else (rows, B, out)
        h0 = torch.randn(shape, dtype=dtype, device=device, requires_grad=True)
        if isinstance(module, torch.nn.LSTM | fastrnn.LSTM):
            cshape = shape[:-1] + (module.hidden_size,)
            hx = (h0, torch.randn(cshape, dtype=dtype, device=device, requires_grad=True))
        else:
            hx = h0
    if kind == "packed":
        if lengths is None:
            lengths = torch.randint(1, T + 1, (B,))
            lengths[0] = T
        return x, hx, lengths
    return x, hx, None


def run_and_grads(module, x, hx, lengths=None, seed: int = 1):
    """Forward, a random-weighted loss on every output, backward; returns tensors to compare."""
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, state = module(inp, hx)
    if isinstance(out, PackedSequence):
        out = out.data
    states = state if isinstance(state, tuple) else (state,)
    g = torch.Generator().manual_seed(seed)
    loss = sum(
        (t * torch.randn(t.shape, generator=g).to(t)).sum() for t in (out, *states)
    )
    module.zero_grad(set_to_none=True)
    leaves = [x] + ([] if hx is None else list(hx if isinstance(hx, tuple) else (hx,)))
    for leaf in leaves:
        leaf.grad = None
    loss.backward()
    results = {"output": out, **{f"state{i}": s for i, s in enumerate(states)}}
    for i, leaf in enumerate(leaves):
        results[f"grad_input{i}"] = leaf.grad
    for name, p in module.named_parameters():
        results[f"grad_{name}"] = p.grad
    return results


def compare_with_torch(ref, ours, *, T, B, kind, dtype, with_state=True):
    """Run both modules on one random input; every output and gradient must agree."""
    x, hx, lengths = make_inputs(ref, T=T, B=B, kind=kind, dtype=dtype, with_state=with_state)
    expected = run_and_grads(ref, x, hx, lengths)
    actual = run_and_grads(ours, x, hx, lengths)
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert actual[key] is not None, key
        assert actual[key].shape == value.shape, key
        assert_close(actual[key], value, dtype, msg=key)


# A module configuration and input kind drawn by hypothesis, for compare_configuration.
CONFIGURATIONS = st.fixed_dictionaries({
    "cell": st.sampled_from(["LSTM", "GRU", "RNN"]),
    "input_size": st.integers(1, 6),
    "hidden_size": st.integers(2, 9),
    "layers": st.integers(1, 3),
    "bidir": st.booleans(),
    "batch_first": st.booleans(),
    "bias": st.booleans(),
    "use_proj": st.booleans(),
    "T": st.integers(1, 6),
    "B": st.integers(1, 4),
    "kind": st.sampled_from(["batched", "unbatched", "packed"]),
    "with_state": st.booleans(),
})


def compare_configuration(config: dict, *, backend: str, dtype) -> None:
    """torch.nn and fastrnn twins of one CONFIGURATIONS draw agree on every output and
    gradient (``compare_with_torch``)."""
    c = config
    kw = {"proj_size": c["hidden_size"] - 1} if c["use_proj"] and c["cell"] == "LSTM" else {}
    ref, ours = twins(c["cell"], c["input_size"], c["hidden_size"], num_layers=c["layers"],
                      bidirectional=c["bidir"], batch_first=c["batch_first"], bias=c["bias"],
                      backend=backend, dtype=dtype, **kw)
    compare_with_torch(ref, ours, T=c["T"], B=c["B"], kind=c["kind"], dtype=dtype,
                       with_state=c["with_state"])


def by_hand(module, x, states, lengths, step):
    """An independent oracle for a stack: every sequence alone over its own length, every layer
    and direction stepped in Python. x: (T, B, I) time-major; ``states``: the initial states
    ``(L*D, B, *)`` (h first); ``step(suffix, x_t, state) -> state`` runs one step of the layer
    and direction whose parameter names end in ``suffix`` on one row. Returns the output
    ``(T, B, D*H)``, zero past each length, and the final states stacked like ``states``."""
    T, B, _ = x.shape
    D = 2 if module.bidirectional else 1
    outs, finals = [], [[] for _ in states]
    for b in range(B):
        L = int(lengths[b])
        seq = x[:L, b:b + 1]
        last = [[] for _ in states]
        for layer in range(module.num_layers):
            per_dir = []
            for d in range(D):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                state = tuple(s[layer * D + d, b:b + 1] for s in states)
                ys = [None] * L
                for t in (range(L - 1, -1, -1) if d else range(L)):
                    state = step(suffix, seq[t], state)
                    ys[t] = state[0]
                per_dir.append(torch.cat(ys))
                for acc, s in zip(last, state):
                    acc.append(s)
            seq = torch.cat(per_dir, 1).unsqueeze(1)
        outs.append(torch.cat([seq[:, 0], seq.new_zeros(T - L, seq.shape[2])]))
        for acc, s in zip(finals, last):
            acc.append(torch.cat(s))
    return (torch.stack(outs, 1), *(torch.stack(f, 1) for f in finals))


def check_directions(out: list, expected: list, dirs: list, refs: list) -> None:
    """A two-direction ``triton_ops.layer`` call's outputs ``out`` (y, final states) against
    the per-direction float64 reference results ``expected``: y side by side, the final
    states stacked, and, after a random-weighted backward through both, the gradient of every
    leaf of each direction's inputs ``dirs`` against the reference's ``refs``."""
    exp = [torch.cat([e[0] for e in expected], dim=2)] + [
        torch.stack([e[k] for e in expected]) for k in range(1, len(expected[0]))]
    weights = [torch.randn(e.shape, dtype=torch.float64) for e in exp]
    sum((o.double() * w).sum() for o, w in zip(out, weights)).backward()
    sum((e * w).sum() for e, w in zip(exp, weights)).backward()
    for i, (o, e) in enumerate(zip(out, exp)):
        assert_close(o, e, torch.float32, msg=f"output {i}")
    for d, (leaves, ref_leaves) in enumerate(zip(dirs, refs)):
        for name, leaf in leaves.items():
            if leaf is not None:
                assert_close(leaf.grad, ref_leaves[name].grad, torch.float32,
                             msg=f"direction {d} grad {name}")
