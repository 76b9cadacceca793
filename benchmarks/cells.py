"""Cells: one step of ``fastrnn.LSTMCell/GRUCell/RNNCell`` against torch.nn's, per call.

For each cell, batch B in {1, 16, 64}, hidden size H in {256, 512, 1024} (input size H) and
dtype: the time of one forward call (``torch.no_grad``, a decoder's step) of torch.nn's cell
and of fastrnn's (``--backend``, default auto: the fused kernels on CUDA, torch's own cell on
the CPU), eager and, on CUDA, replayed from a CUDA graph of the call; and the host time of a
call (wall clock of the Python call alone, without waiting for the GPU). Providers are timed in
interleaved rounds; reported: the median over rounds, its spread, and the ratio to torch.nn's
only where both spreads stay within 25%. Outputs are checked against torch.nn's first.

Run with ``python -m benchmarks.cells`` (``--quick`` for B=16, H=256 only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch

from benchmarks.peers import capture
from benchmarks.runner import NOISY_SPREAD as NOISY
from benchmarks.timing import TimingSettings, time_callable

__all__ = ["CELLS", "format_table", "main", "measure"]

CELLS = ("LSTMCell", "GRUCell", "RNNCell")


def _host_us(fn: Callable[[], object], calls: int = 200) -> float:
    """Median host time of a call in microseconds (the GPU is not waited for per call)."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return 1e6 * statistics.median(times)


def _point(name: str, B: int, H: int, dtype: torch.dtype, device: torch.device, backend: str,
           rounds: int, timing: TimingSettings) -> dict:
    import fastrnn

    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(H, H).to(device, dtype)
    ours = getattr(fastrnn, name)(H, H, backend=backend).to(device, dtype)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, H, device=device, dtype=dtype)
    h = torch.randn(B, H, device=device, dtype=dtype)
    hx = (h, h.clone()) if name == "LSTMCell" else h
    calls = {"torch": lambda: ref(x, hx), "fastrnn": lambda: ours(x, hx)}
    with torch.no_grad():
        want, got = calls["torch"](), calls["fastrnn"]()
        for w, g in zip(*(o if isinstance(o, tuple) else (o,) for o in (want, got))):
            tol = 2e-2 if dtype != torch.float32 else 1e-3
            if not torch.allclose(g.float(), w.float(), rtol=tol, atol=tol):
                return {"status": "mismatch"}
        providers = dict(calls)
        if device.type == "cuda":
            for key in list(calls):
                providers[key + " graphed"] = capture(calls[key], device, RuntimeError)
        times: dict[str, list[float]] = {k: [] for k in providers}
        host: dict[str, list[float]] = {k: [] for k in calls}
        for r in range(rounds):
            order = list(providers) if r % 2 == 0 else list(reversed(providers))
            for key in order:
                times[key].append(time_callable(providers[key], device, timing).median_ms * 1e3)
            for key in calls:
                host[key].append(_host_us(calls[key]))
    result: dict = {"status": "ok"}
    for key, values in times.items():
        med = statistics.median(values)
        result[key] = {"us": med, "spread": (max(values) - min(values)) / med}
    for key, values in host.items():
        result[key]["host_us"] = statistics.median(values)
    return result


def measure(cells: Sequence[str] = CELLS, batches: Sequence[int] = (1, 16, 64),
            hidden: Sequence[int] = (256, 512, 1024),
            dtypes: Sequence[torch.dtype] = (torch.float32, torch.bfloat16),
            device: torch.device | None = None, backend: str = "auto", rounds: int = 3,
            timing: TimingSettings | None = None) -> dict:
    """``{(cell, B, H, dtype name): point}`` (see :func:`_point`)."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    timing = timing or TimingSettings(warmup_ms=20.0, rep_ms=100.0, min_reps=20)
    return {(c, B, H, str(d).removeprefix("torch.")): _point(c, B, H, d, device, backend,
                                                             rounds, timing)
            for c in cells for B in batches for H in hidden for d in dtypes}


def _ratio(ours: dict, ref: dict) -> str:
    if ours["spread"] > NOISY or ref["spread"] > NOISY:
        return "noisy"
    return f"{ref['us'] / ours['us']:.2f}x"


def format_table(results: dict) -> str:
    """One line per point: per-call microseconds (eager, graphed), speedups, host time."""
    lines = [f"{'cell':<9} {'B':>3} {'H':>5} {'dtype':<9} {'torch us':>9} {'fastrnn us':>10} "
             f"{'speedup':>8} {'graphed us (t/f)':>17} {'host us (t/f)':>14}"]
    for (cell, B, H, dtype), res in results.items():
        if res["status"] != "ok":
            lines.append(f"{cell:<9} {B:>3} {H:>5} {dtype:<9} {res['status']}")
            continue
        t, f = res["torch"], res["fastrnn"]
        graphed = "-"
        if "torch graphed" in res:
            graphed = f"{res['torch graphed']['us']:.1f}/{res['fastrnn graphed']['us']:.1f}"
        lines.append(f"{cell:<9} {B:>3} {H:>5} {dtype:<9} {t['us']:>9.1f} {f['us']:>10.1f} "
                     f"{_ratio(f, t):>8} {graphed:>17} "
                     f"{t['host_us']:>6.1f}/{f['host_us']:<6.1f}")
    lines.append("\nmedian over interleaved rounds; speedup = torch.nn's time / fastrnn's "
                 f"(none where a spread exceeds {NOISY:.0%}); host: the Python call alone")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cells", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="B=16, H=256 only")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = dict(batches=(16,), hidden=(256,)) if args.quick else {}
    print(format_table(measure(backend=args.backend, rounds=args.rounds, **sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
