"""LayerNorm LSTM: ``fastrnn.LayerNormLSTM`` against the composite users write today.

The composite is a Python loop over time of a cell built from torch.nn pieces (PyTorch's
``benchmarks/fastrnns`` LayerNorm LSTM cell: two ``F.linear``, ``nn.LayerNorm(4H)`` on each
projection, ``nn.LayerNorm(H)`` on the cell state), eager and with the step ``torch.compile``d
(the loop stays in Python: compiling T unrolled steps takes minutes). It computes exactly
``LayerNormLSTM(cell_norm="state")`` and shares its weights; outputs are checked against it
first. Providers: ``composite``, ``composite compiled``, ``fastrnn reference`` and ``fastrnn``
(``--backend``, default auto: the fused kernels on CUDA, the reference elsewhere). Timed:
forward + backward of ``output.sum()``, in interleaved rounds; reported: the median per call
and per time step, the spread over rounds, and fastrnn's speedup over each composite where
both spreads stay within 25%.

Run with ``python -m benchmarks.layernorm`` (GPU: T=1024, B=16, H in {256, 512, 768}, bf16;
``--quick`` for a CPU-sized point).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.runner import NOISY_SPREAD as NOISY
from benchmarks.timing import TimingSettings, time_callable

__all__ = ["Composite", "format_table", "main", "measure"]


class Composite(nn.Module):
    """The users' LayerNorm LSTM: a loop over a cell of torch.nn pieces (one layer)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        G = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size))
        self.ln_ih, self.ln_hh, self.ln_c = nn.LayerNorm(G), nn.LayerNorm(G), nn.LayerNorm(
            hidden_size)
        self.step: Callable[..., tuple[Tensor, Tensor]] = self._step

    def _step(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        gates = self.ln_ih(F.linear(x, self.weight_ih)) + self.ln_hh(F.linear(h, self.weight_hh))
        i, f, g, o = gates.chunk(4, 1)
        c = self.ln_c(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g))
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x: Tensor) -> Tensor:
        """x: (T, B, I) -> y: (T, B, H), from zero state."""
        h = x.new_zeros(x.shape[1], self.weight_hh.shape[1])
        c = h
        ys = []
        for t in range(x.shape[0]):
            h, c = self.step(x[t], h, c)
            ys.append(h)
        return torch.stack(ys)

    def load_from(self, m: nn.Module) -> None:
        """Copy a ``LayerNormLSTM(cell_norm="state", bias=True)``'s weights: its b_ih and
        b_hh are the two projections' LayerNorm biases."""
        with torch.no_grad():
            self.weight_ih.copy_(m.weight_ih_l0)
            self.weight_hh.copy_(m.weight_hh_l0)
            for norm, w, b in ((self.ln_ih, m.ln_weight_ih_l0, m.bias_ih_l0),
                               (self.ln_hh, m.ln_weight_hh_l0, m.bias_hh_l0),
                               (self.ln_c, m.ln_weight_c_l0, m.ln_bias_c_l0)):
                norm.weight.copy_(w)
                norm.bias.copy_(b)


def _point(T: int, B: int, H: int, dtype: torch.dtype, device: torch.device, backend: str,
           rounds: int, timing: TimingSettings, compiled: bool) -> dict:
    import fastrnn

    torch.manual_seed(0)
    ours = fastrnn.LayerNormLSTM(H, H, cell_norm="state", backend=backend).to(device, dtype)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ref = fastrnn.LayerNormLSTM(H, H, cell_norm="state", backend="reference").to(device, dtype)
    ref.load_state_dict(ours.state_dict())
    composite = Composite(H, H).to(device, dtype)
    composite.load_from(ours)
    x = torch.randn(T, B, H, device=device, dtype=dtype, requires_grad=True)
    with torch.no_grad():
        want, got = composite(x), ours(x)[0]
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    if not torch.allclose(got.float(), want.float(), rtol=tol, atol=tol):
        return {"status": "mismatch"}
    modules = {"composite": composite, "fastrnn reference": ref, "fastrnn": ours}
    if compiled:
        fast = Composite(H, H).to(device, dtype)
        fast.load_from(ours)
        fast.step = torch.compile(fast._step)
        modules["composite compiled"] = fast

    def call(module: nn.Module) -> Callable[[], None]:
        def run() -> None:
            out = module(x)
            (out[0] if isinstance(out, tuple) else out).float().sum().backward()
        return run

    providers = {key: call(m) for key, m in modules.items()}
    times: dict[str, list[float]] = {k: [] for k in providers}
    for r in range(rounds):
        for key in (list(providers) if r % 2 == 0 else list(reversed(providers))):
            times[key].append(time_callable(providers[key], device, timing).median_ms)
    result: dict = {"status": "ok"}
    for key, values in times.items():
        med = statistics.median(values)
        result[key] = {"ms": med, "us_per_step": 1e3 * med / T,
                       "spread": (max(values) - min(values)) / med}
    return result


def measure(T: int = 1024, batch: int = 16, hidden: Sequence[int] = (256, 512, 768),
            dtype: torch.dtype = torch.bfloat16, device: torch.device | None = None,
            backend: str = "auto", rounds: int = 3, timing: TimingSettings | None = None,
            compiled: bool = True) -> dict:
    """``{(T, B, H, dtype name): point}`` (see :func:`_point`)."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    timing = timing or TimingSettings(warmup_ms=50.0, rep_ms=300.0, min_reps=3)
    return {(T, batch, H, str(dtype).removeprefix("torch.")): _point(
        T, batch, H, dtype, device, backend, rounds, timing, compiled) for H in hidden}


def _ratio(ours: dict, ref: dict | None) -> str:
    if ref is None:
        return "-"
    if ours["spread"] > NOISY or ref["spread"] > NOISY:
        return "noisy"
    return f"{ref['ms'] / ours['ms']:.2f}x"


def format_table(results: dict) -> str:
    """One line per point: ms per fwd+bwd call (us per step) of each provider, speedups."""
    keys = ("composite", "composite compiled", "fastrnn reference", "fastrnn")
    lines = [f"{'T':>5} {'B':>3} {'H':>4} {'dtype':<9} " + " ".join(f"{k:>22}" for k in keys)
             + f" {'vs eager':>9} {'vs compiled':>11}"]
    for (T, B, H, dtype), res in results.items():
        head = f"{T:>5} {B:>3} {H:>4} {dtype:<9} "
        if res["status"] != "ok":
            lines.append(head + res["status"])
            continue
        cells = [f"{res[k]['ms']:9.2f} ms ({res[k]['us_per_step']:6.1f})" if k in res
                 else f"{'-':>22}" for k in keys]
        lines.append(head + " ".join(f"{c:>22}" for c in cells)
                     + f" {_ratio(res['fastrnn'], res['composite']):>9}"
                     f" {_ratio(res['fastrnn'], res.get('composite compiled')):>11}")
    lines.append("\nforward + backward per call, median over interleaved rounds (us per step); "
                 f"speedup = composite's time / fastrnn's (none where a spread exceeds "
                 f"{NOISY:.0%})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.layernorm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="T=64, B=4, H=64, float32 (CPU-sized)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the torch.compile'd composite")
    args = parser.parse_args(argv)
    sizes = dict(T=64, batch=4, hidden=(64,), dtype=torch.float32) if args.quick else {}
    print(format_table(measure(backend=args.backend, rounds=args.rounds,
                               compiled=not args.no_compile, **sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
