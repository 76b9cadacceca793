"""CPU overhead check: forward+backward of ``fastrnn.LSTM`` against ``torch.nn.LSTM``.

T=100, B=32, I=H=128, float32 on the CPU. ``backend="auto"`` should cost at most
:data:`TARGET` times torch.nn; ``backend="reference"`` (the pure-PyTorch loop) is shown for
scale. Providers are measured in interleaved rounds (each round times every provider once, after
checking its outputs and input gradient against float64); a provider's ratio is the median over
rounds of its time over torch.nn's time in the same round, which cancels slow drift.

Run with ``python -m benchmarks.cpu_overhead`` (or ``python -m benchmarks overhead``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

import torch

from benchmarks.cases import BASELINE, Case
from benchmarks.envinfo import cpu_model
from benchmarks.runner import RunSettings, run_case
from benchmarks.timing import TimingSettings
from benchmarks.workloads import LABELS

__all__ = ["CASE", "TARGET", "main", "measure"]

CASE = Case("lstm", T=100, B=32, I=128, H=128, mode="fwd_bwd", label="CPU overhead check")
PROVIDERS = (BASELINE, "auto", "native", "reference")
TARGET = 1.05


def measure(
    rounds: int = 7, timing: TimingSettings | None = None, providers: Sequence[str] = PROVIDERS
) -> dict[str, dict]:
    """``provider -> {"status", "message", "median_ms", "ratio", "ratio_range"}`` over rounds.

    ``median_ms`` is the median over rounds of each round's median; ``ratio`` is the median over
    rounds of the provider's time over torch.nn's in the same round, ``ratio_range`` its extremes.
    """
    timing = timing or TimingSettings(warmup_ms=100.0, rep_ms=300.0, min_reps=10)
    settings = RunSettings(device=torch.device("cpu"), timing=timing)
    per_round = [
        {r["provider"]: r for r in run_case(CASE, providers, settings)} for _ in range(rounds)
    ]
    out: dict[str, dict] = {}
    for provider in dict.fromkeys([BASELINE, *providers]):
        recs = [rnd[provider] for rnd in per_round]
        ok = [r for r in recs if r["status"] == "ok"]
        if len(ok) < len(recs):
            bad = next(r for r in recs if r["status"] != "ok")
            out[provider] = {"status": bad["status"], "message": bad["message"]}
            continue
        ratios = [1 / r["speedup"] for r in ok if r["speedup"]]
        out[provider] = {
            "status": "ok",
            "message": "",
            "median_ms": statistics.median(r["median_ms"] for r in ok),
            "ratio": statistics.median(ratios) if ratios else None,
            "ratio_range": (min(ratios), max(ratios)) if ratios else None,
        }
    return out


def _threads() -> str:
    n = torch.get_num_threads()
    return f"{n} thread{'s' if n != 1 else ''}"


def format_table(results: dict[str, dict], rounds: int) -> str:
    """The printed report: one line per provider, the target verdict on the auto line."""
    lines = [
        "fastrnn CPU overhead check: LSTM forward+backward, T=100 B=32 I=H=128 float32",
        f"CPU: {cpu_model()}, {_threads()}; torch {torch.__version__}; {rounds} interleaved rounds",
        "",
        f"{'provider':<20} {'median ms':>10} {'x torch.nn':>11}  range over rounds",
    ]
    for provider, res in results.items():
        name = LABELS.get(provider, provider)
        if res["status"] != "ok":
            lines.append(f"{name:<20} {res['status']:>10}  {res['message']}")
            continue
        ratio = res["ratio"]
        verdict = ""
        if provider == "auto" and ratio is not None:
            verdict = f"  target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'MISSED'}"
        ratio_text = f"{'-':>11}{'':17}"
        if ratio is not None:
            low, high = res.get("ratio_range") or (ratio, ratio)
            ratio_text = f"{ratio:>10.3f}x  {f'{low:.3f}-{high:.3f}':<17}"
        lines.append(f"{name:<20} {res['median_ms']:>10.3f} {ratio_text}{verdict}".rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; with ``--strict`` exit 1 when auto misses the target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--strict", action="store_true", help="exit 1 if auto misses the target")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = measure(args.rounds)
    print(format_table(results, args.rounds))
    auto = results.get("auto", {})
    missed = auto.get("status") != "ok" or (auto.get("ratio") or 0) > TARGET
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
