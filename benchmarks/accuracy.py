"""Accuracy of fastrnn's backends and torch.nn against a float64 oracle, output by output.

``python -m benchmarks.accuracy [--cases NAME,...] [--device cuda|cpu] [--seeds N]`` runs each
case's module (same weights for every provider), forward and backward with a random-weighted
loss over the output and final states, and compares the output, the final states and every
gradient (input, initial states, every parameter) with fastrnn's reference backend in float64.
Per provider and tensor it prints the normwise relative error ``|a - r| / |r|`` and the worst
element's error over the tolerance band of ``benchmarks.cases.TOLERANCES`` (above 1: outside).
On a GPU, ``torch`` is cuDNN: the table shows whether the fused kernels are as faithful as it.
``--device cpu`` runs the kernels in Triton's interpreter.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import benchmarks  # noqa: F401  (puts the checkout's fastrnn on the path)

#: name -> (module, dtype, T, B, H, extra constructor arguments); input size 24.
CASES: dict[str, tuple[str, str, int, int, int, dict]] = {
    "lstm-fp32-29": ("LSTM", "float32", 6, 5, 29, {}),
    "lstm-fp32-64-T1000": ("LSTM", "float32", 1000, 4, 64, {}),
    "lstm-bf16-256": ("LSTM", "bfloat16", 8, 16, 256, {}),
    "lstm-bf16-256-B144": ("LSTM", "bfloat16", 5, 144, 256, {}),
    "lstm-bf16-2048": ("LSTM", "bfloat16", 8, 16, 2048, {}),
    "lstm-bf16-512-proj": ("LSTM", "bfloat16", 6, 160, 512, {"proj_size": 128}),
    "gru-bf16-256": ("GRU", "bfloat16", 8, 16, 256, {}),
    "gru-bf16-1024": ("GRU", "bfloat16", 8, 16, 1024, {}),
    "rnn-bf16-2048": ("RNN", "bfloat16", 8, 16, 2048, {}),
    "rnn-fp32-768": ("RNN", "float32", 8, 16, 768, {}),
    "lstm-bf16-768-T1024": ("LSTM", "bfloat16", 1024, 16, 768, {}),
}
INPUT = 24


def _outputs(module, x, hx, seed: int) -> dict:
    import torch

    out, state = module(x, hx)
    states = state if isinstance(state, tuple) else (state,)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((t * torch.randn(t.shape, generator=gen).to(t)).sum() for t in (out, *states))
    leaves = [x, *(hx if isinstance(hx, tuple) else (hx,))]
    params = dict(module.named_parameters())
    grads = torch.autograd.grad(loss, [*leaves, *params.values()])
    names = ["output", *(f"state{i}" for i in range(len(states))),
             "grad_input", *("grad_h0", "grad_c0")[: len(leaves) - 1],
             *(f"grad_{n}" for n in params)]
    return dict(zip(names, [out, *states, *grads]))


def run_case(name: str, device: str, seed: int, providers: list[str]) -> list[dict]:
    """Errors of each provider's tensors against the float64 oracle."""
    import torch

    import fastrnn
    from benchmarks.runner import compare_outputs

    cell, dtype_name, T, B, H, extra = CASES[name]
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(seed)
    base = getattr(torch.nn, cell)(INPUT, H, **extra)
    modules = {}
    for p in providers:
        mod = base if p == "torch" else getattr(fastrnn, cell)(INPUT, H, backend=p, **extra)
        if p != "torch":
            mod.load_state_dict(base.state_dict())
        modules[p] = mod.to(device, dtype)
    oracle = getattr(fastrnn, cell)(INPUT, H, backend="reference", **extra)
    oracle.load_state_dict(modules[providers[0]].state_dict())  # the rounded weights
    oracle = oracle.to(device, torch.float64)
    x = torch.randn(T, B, INPUT, device=device, dtype=dtype)
    P = extra.get("proj_size") or H
    hx = (torch.randn(1, B, P, device=device, dtype=dtype),
          torch.randn(1, B, H, device=device, dtype=dtype))
    hx = hx if cell == "LSTM" else hx[0]

    def leaves(dt):
        lf = lambda t: t.detach().to(dt).requires_grad_()  # noqa: E731
        return lf(x), tuple(map(lf, hx)) if isinstance(hx, tuple) else lf(hx)

    want = _outputs(oracle, *leaves(torch.float64), seed)
    rows = []
    for p, mod in modules.items():
        got = _outputs(mod, *leaves(dtype), seed)
        for key, ref in want.items():
            a, r = got[key].double(), ref.double()
            rows.append({
                "case": name, "provider": p, "tensor": key,
                "norm_rel": ((a - r).norm() / r.norm().clamp_min(1e-30)).item(),
                "worst_over_band": compare_outputs({key: a}, {key: r}, dtype_name)[1],
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--providers", default="triton,torch")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table to OUT/accuracy.md")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    providers = args.providers.split(",")
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    emit("| case | tensor | " + " | ".join(f"{p} rel err | {p} worst/band" for p in providers)
         + " |")
    emit("|---|---|" + "---:|---:|" * len(providers))
    for name in args.cases.split(","):
        for seed in range(args.seeds):
            try:
                rows = run_case(name, args.device, seed, providers)
            except Exception as exc:  # noqa: BLE001 - reported per case
                emit(f"| {name} | error: {type(exc).__name__}: {str(exc)[:100]} |")
                continue
            by_tensor: dict[str, dict] = {}
            for r in rows:
                by_tensor.setdefault(r["tensor"], {})[r["provider"]] = r
            for tensor, per in by_tensor.items():
                cells = " | ".join(f"{per[p]['norm_rel']:.1e} | {per[p]['worst_over_band']:.2f}"
                                   for p in providers)
                emit(f"| {name} s{seed} | {tensor} | {cells} |")
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / "accuracy.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
