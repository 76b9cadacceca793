"""Compile time: the first ``torch.compile``-d training step of a small classifier, per backend.

An embedding, a 2-layer bidirectional LSTM (I=16, H=32), a linear head and cross-entropy, B=8,
one compiled training step (forward and backward, ``fullgraph=False``) at T = 20, 100, 1000, in
a fresh process with an empty inductor cache each time: ``torch.nn.LSTM`` against
``fastrnn.LSTM`` with ``backend="auto"`` (torch's own implementation on the CPU) and
``"reference"``. Reported per provider and T: the first step's seconds (compiling included;
median and range over ``--rounds`` processes, run interleaved), its ratio to torch.nn's in the
same round, and the steady-state ms per compiled step against eager. The target: the default
backend's first step at most :data:`TARGET` times torch.nn's at every T, its steady state no
slower than eager.

Run with ``python -m benchmarks.compile_time`` (``--lengths 20 100`` to narrow, ``--timeout``
seconds per process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LENGTHS", "PROVIDERS", "TARGET", "format_table", "main", "measure"]

LENGTHS = (20, 100, 1000)
PROVIDERS = ("torch", "auto", "reference")
TARGET = 1.5
ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
import torch
provider, T, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
if provider == "torch":
    rnn = torch.nn.LSTM(16, 32, num_layers=2, bidirectional=True)
else:
    import fastrnn
    rnn = fastrnn.LSTM(16, 32, num_layers=2, bidirectional=True, backend=provider)
model = torch.nn.ModuleList([torch.nn.Embedding(50, 16), rnn, torch.nn.Linear(64, 3)])

def step(x, y):
    out, _ = model[1](model[0](x))
    loss = torch.nn.functional.cross_entropy(model[2](out[-1]), y)
    loss.backward()
    return loss

x, y = torch.randint(0, 50, (T, 8)), torch.randint(0, 3, (8,))
compiled = torch.compile(step)
start = time.perf_counter()
compiled(x, y)
first = time.perf_counter() - start

def per_step(fn):
    fn(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn(x, y)
        times.append(time.perf_counter() - start)
    times.sort()
    return 1e3 * times[len(times) // 2]

print(json.dumps({"first_s": first, "steady_ms": per_step(compiled),
                  "eager_ms": per_step(step)}))
"""


def _run_child(provider: str, T: int, steps: int, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache  # a fresh cache: the compile a new user pays
        env["TRITON_CACHE_DIR"] = cache
        try:
            run = subprocess.run([sys.executable, "-c", _CHILD, provider, str(T), str(steps)],
                                 capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "message": f"over {timeout:.0f} s"}
    if run.returncode != 0:
        return {"status": "error", "message": run.stderr.strip().splitlines()[-1][:200]}
    return {"status": "ok", **json.loads(run.stdout.strip().splitlines()[-1])}


def measure(lengths: Sequence[int] = LENGTHS, providers: Sequence[str] = PROVIDERS,
            rounds: int = 3, steps: int = 10, timeout: float = 900.0) -> dict:
    """``{(provider, T): {"status", "first_s", "first_range", "ratio", "ratio_range",
    "steady_ms", "eager_ms", "rounds"}}``; providers run interleaved within each round, and
    a provider that timed out at some T is not run at longer ones."""
    raw: dict[tuple[str, int], list[dict]] = {}
    given_up: set[str] = set()
    for T in lengths:
        for _ in range(rounds):
            for provider in providers:
                if provider in given_up:
                    continue
                result = _run_child(provider, T, steps, timeout)
                raw.setdefault((provider, T), []).append(result)
                if result["status"] == "timeout":
                    given_up.add(provider)
    out = {}
    for (provider, T), results in raw.items():
        ok = [r for r in results if r["status"] == "ok"]
        if len(ok) < len(results):
            bad = next(r for r in results if r["status"] != "ok")
            out[(provider, T)] = {"status": bad["status"], "message": bad["message"]}
            continue
        base = [r["first_s"] for r in raw.get(("torch", T), []) if r["status"] == "ok"]
        ratios = [r["first_s"] / b for r, b in zip(ok, base)] if base else []
        first = [r["first_s"] for r in ok]
        out[(provider, T)] = {
            "status": "ok", "rounds": len(ok),
            "first_s": statistics.median(first), "first_range": (min(first), max(first)),
            "ratio": statistics.median(ratios) if ratios else None,
            "ratio_range": (min(ratios), max(ratios)) if ratios else None,
            "steady_ms": statistics.median(r["steady_ms"] for r in ok),
            "eager_ms": statistics.median(r["eager_ms"] for r in ok),
        }
    return out


def format_table(results: dict) -> str:
    """One line per provider and T; the target verdict on the default backend's lines."""
    lines = ["torch.compile, first training step (fresh inductor cache), 2-layer bidirectional "
             "LSTM I=16 H=32 B=8, CPU",
             "",
             f"{'provider':<10} {'T':>5} {'first s':>8} {'range':>13} {'x torch.nn':>11} "
             f"{'steady ms':>10} {'eager ms':>9}"]
    for (provider, T), res in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if res["status"] != "ok":
            lines.append(f"{provider:<10} {T:>5} {res['status']:>8}  {res['message']}")
            continue
        low, high = res["first_range"]
        ratio = "-" if res["ratio"] is None else f"{res['ratio']:.2f}x"
        verdict = ""
        if provider == "auto" and res["ratio"] is not None:
            met = res["ratio"] <= TARGET and res["steady_ms"] <= 1.1 * res["eager_ms"]
            verdict = f"  target: {'met' if met else 'MISSED'}"
        lines.append(f"{provider:<10} {T:>5} {res['first_s']:>8.2f} "
                     f"{f'{low:.2f}-{high:.2f}':>13} {ratio:>11} {res['steady_ms']:>10.2f} "
                     f"{res['eager_ms']:>9.2f}{verdict}")
    rounds = {res.get("rounds") for res in results.values() if res["status"] == "ok"}
    lines.append(f"\nrounds per point: {', '.join(map(str, sorted(rounds)))}; steady and eager: "
                 "median ms per step (steady within 10% of eager counts as no slower)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile_time",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--providers", nargs="+", default=list(PROVIDERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = measure(args.lengths, args.providers, args.rounds, args.steps, args.timeout)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(
            [{"provider": p, "T": t, **r} for (p, t), r in results.items()], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
