"""Run cases: check each provider against an oracle first, then measure memory and time."""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from benchmarks.cases import BASELINE, TOLERANCES, Case
from benchmarks.peers import capture, kernel_names, split_provider
from benchmarks.timing import TimingSettings, peak_memory_mib, quantile, time_callable
from benchmarks.workloads import (
    MODE_BUILDERS,
    Inputs,
    ProviderUnavailable,
    build_module,
    classify_error,
    known_provider,
    make_inputs,
    served_by,
    torch_module,
)

__all__ = ["RunSettings", "compare_outputs", "oracle_precision", "run_cases"]

#: Largest forward multiply-add count whose float64 oracle still runs on the CPU in about a second.
FLOAT64_ORACLE_MACS = 2 * 10**8
#: With rounds, a provider whose median over rounds spreads more than this (range over median),
#: or whose baseline's does, gets no speedup but ``noisy``.
NOISY_SPREAD = 0.25


@dataclass(frozen=True)
class RunSettings:
    """Where and how to run: device, timer budgets, seed, and whether to check correctness."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    timing: TimingSettings = field(default_factory=TimingSettings)
    seed: int = 0
    check: bool = True
    rounds: int = 1  # > 1: providers timed in interleaved rounds (see run_case)


def oracle_precision(case: Case, device: torch.device) -> tuple[torch.device, torch.dtype]:
    """float64 on the CPU when small enough, else torch.nn in float32 (no TF32) on ``device``."""
    if device.type == "cpu" or case.macs <= FLOAT64_ORACLE_MACS:
        return torch.device("cpu"), torch.float64
    return device, torch.float32


@contextlib.contextmanager
def _tf32(allow: bool | None) -> Iterator[None]:
    """cuBLAS's and cuDNN's TF32 switches set to ``allow`` (None: left as they are)."""
    if allow is None:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _exact_float32() -> contextlib.AbstractContextManager[None]:
    """Switch off TF32 in cuBLAS and cuDNN so a float32 oracle really is float32."""
    return _tf32(False)


def compare_outputs(
    got: dict[str, Tensor], expected: dict[str, Tensor], dtype: str
) -> tuple[bool, float, dict[str, float]]:
    """``(passed, worst error ratio, max abs error per output)`` under :data:`TOLERANCES`.

    An output passes when ``|got - ref| <= atol * max(1, max|ref|) + rtol * |ref|`` everywhere
    (ratio <= 1); a missing output, a shape difference or a NaN fails.
    """
    atol, rtol = TOLERANCES[dtype]
    worst, errors = 0.0, {}
    for name, ref in expected.items():
        out = got.get(name)
        if out is None or out.shape != ref.shape:
            errors[name] = float("inf")
            worst = float("inf")
            continue
        ref = ref.detach().double().cpu()
        diff = (out.detach().double().cpu() - ref).abs()
        scale = max(1.0, ref.abs().max().item()) if ref.numel() else 1.0
        ratio = diff / (atol * scale + rtol * ref.abs())
        errors[name] = diff.max().item() if diff.numel() else 0.0
        if diff.numel():
            bad = torch.isnan(diff).any().item()
            worst = max(worst, float("inf") if bad else ratio.max().item())
    return worst <= 1.0, worst, errors


class _Progress:
    """tqdm on a terminal when installed, else one line per measurement on stderr (for logs)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.bar = total, 0, None
        self.enabled, self.start = enabled, time.perf_counter()
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit="run", dynamic_ncols=True, file=sys.stderr)

    def step(self, text: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(text[:60], refresh=False)
            self.bar.update()
        elif self.enabled:
            elapsed = time.perf_counter() - self.start
            print(f"[{self.done}/{self.total} {elapsed:.0f}s] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _record(case: Case, provider: str) -> dict:
    return {
        **case.to_dict(),
        "provider": provider,
        "status": "",
        "message": "",
        "backend": None,
        "oracle": "",
        "err_ratio": None,
        "max_abs_err": None,
        "errors": {},
        "median_ms": None,
        "p20_ms": None,
        "p80_ms": None,
        "p10_ms": None,
        "p90_ms": None,
        "reps": None,
        "us_per_step": None,
        "peak_mem_mib": None,
        "kernels": None,
        "speedup": None,
        "rounds": None,
        "spread": None,
        "noisy": False,
    }


def _measure(
    case: Case,
    provider: str,
    base: torch.nn.Module,
    inputs: Inputs,
    oracle: Callable[[], tuple[str, dict[str, Tensor]]] | None,
    s: RunSettings,
) -> dict:
    rec = _record(case, provider)
    try:
        dtype = getattr(torch, case.dtype)
        name, graphed = split_provider(provider)
        module = build_module(case, name, base, s.device, dtype)
        rec["backend"] = served_by(case, module, s.device, dtype)
        if rec["backend"] not in (None, name) and name != "auto":
            raise ProviderUnavailable(f"{name} falls back to {rec['backend']} for this case")
        run = MODE_BUILDERS[case.mode](case, module, inputs.to(s.device, dtype))
        if graphed:
            run = capture(run, s.device, ProviderUnavailable)
        if oracle is not None:
            rec["oracle"], expected = oracle()
            passed, rec["err_ratio"], rec["errors"] = compare_outputs(run(), expected, case.dtype)
            rec["max_abs_err"] = max(rec["errors"].values(), default=None)
            if not passed:
                rec["status"] = "mismatch"
                rec["message"] = f"max abs error {rec['max_abs_err']:.3g} exceeds tolerance"
                return rec
        rec["peak_mem_mib"] = peak_memory_mib(run, s.device)
        if name == BASELINE and not graphed:  # which cuDNN kernels (algorithm) ran
            rec["kernels"] = kernel_names(run, s.device)
        if s.rounds > 1:  # timed by run_case, interleaved with the other providers
            rec["status"], rec["_run"] = "ok", run
            return rec
        timing = time_callable(run, s.device, s.timing)
        rec.update(
            status="ok",
            median_ms=timing.median_ms,
            p20_ms=timing.p20_ms,
            p80_ms=timing.p80_ms,
            p10_ms=timing.p10_ms,
            p90_ms=timing.p90_ms,
            reps=timing.reps,
            us_per_step=1e3 * timing.median_ms / case.T,
        )
    except Exception as exc:  # noqa: BLE001 - every failure becomes a status, never a crash
        rec["status"], rec["message"] = classify_error(exc)
    return rec


def _time_in_rounds(records: list[dict], s: RunSettings) -> None:
    """Time every checked provider of a case in ``s.rounds`` rounds, in turn forward and
    reversed order, so drift of the machine falls on all of them: ``median_ms`` is the median
    over rounds of each round's median (``p20_ms``/``p80_ms`` the extremes over rounds,
    ``p10_ms``/``p90_ms`` the percentiles of every timed call of all rounds, ``reps`` their
    count), ``spread`` the rounds' range over that median, and ``speedup`` the median over
    rounds of the baseline's time over the provider's in the same round (none when either is
    noisy)."""
    timed = [rec for rec in records if "_run" in rec]
    per_round: dict[str, list] = {rec["provider"]: [] for rec in timed}
    for r in range(s.rounds):
        for rec in timed if r % 2 == 0 else reversed(timed):
            try:
                per_round[rec["provider"]].append(time_callable(rec["_run"], s.device, s.timing))
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                rec["status"], rec["message"] = classify_error(exc)
    for rec in timed:
        del rec["_run"]
        times = [t.median_ms for t in per_round[rec["provider"]]]
        if rec["status"] != "ok" or not times:
            continue
        median = statistics.median(times)
        calls = [x for t in per_round[rec["provider"]] for x in t.samples]
        rec.update(median_ms=median, p20_ms=min(times), p80_ms=max(times),
                   p10_ms=quantile(calls, 0.1) if calls else None,
                   p90_ms=quantile(calls, 0.9) if calls else None,
                   reps=len(calls) or None,
                   us_per_step=1e3 * median / rec["T"] if rec.get("T") else None,
                   rounds=len(times), spread=(max(times) - min(times)) / median)
    base = next((r for r in timed if r["provider"] == BASELINE and r["status"] == "ok"), None)
    for rec in timed:
        if base is None or rec["status"] != "ok":
            continue
        rec["noisy"] = rec["spread"] > NOISY_SPREAD or base["spread"] > NOISY_SPREAD
        if not rec["noisy"]:
            rec["speedup"] = statistics.median(b.median_ms / t.median_ms for b, t in zip(
                per_round[BASELINE], per_round[rec["provider"]]))


class OracleError(RuntimeError):
    """The oracle itself could not run (e.g. out of memory), so nothing can be checked."""


def _oracle(case: Case, base: torch.nn.Module, inputs: Inputs, s: RunSettings):
    """A memoised oracle: torch.nn at :func:`oracle_precision` on the same weights and inputs
    (fastrnn's reference where torch.nn has no such layer)."""
    cache: dict = {}
    provider = BASELINE if case.torch_equivalent else "reference"

    def compute() -> tuple[str, dict[str, Tensor]]:
        if not cache:
            device, dtype = oracle_precision(case, s.device)
            name = f"{provider} {str(dtype).removeprefix('torch.')} {device.type}"
            guard = _exact_float32() if device.type == "cuda" else contextlib.nullcontext()
            try:
                module = build_module(case, provider, base, device, dtype)
                with guard:
                    got = MODE_BUILDERS[case.mode](case, module, inputs.to(device, dtype))()
                cache["value"] = name, {k: v.detach() for k, v in got.items()}
            except Exception as exc:  # noqa: BLE001 - reported on every provider of the case
                cache["error"] = f"oracle ({name}) failed: {type(exc).__name__}: {exc}"
        if "error" in cache:
            raise OracleError(cache["error"])
        return cache["value"]

    return compute


def run_case(
    case: Case,
    providers: Sequence[str],
    s: RunSettings,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    """One record per provider for ``case``; speedups are against :data:`BASELINE`. A case
    with ``tf32`` set runs (and is timed) with TF32 switched that way."""
    with _tf32(case.tf32):
        return _run_case(case, providers, s, on_record)


def _run_case(
    case: Case,
    providers: Sequence[str],
    s: RunSettings,
    on_record: Callable[[dict], None] | None,
) -> list[dict]:
    seed = s.seed + zlib.crc32(case.key.encode())
    torch.manual_seed(seed)
    base = torch_module(case)
    inputs = make_inputs(case, torch.Generator().manual_seed(seed))
    oracle = _oracle(case, base, inputs, s) if s.check else None
    records = []
    for provider in providers:
        records.append(_measure(case, provider, base, inputs, oracle, s))
        if on_record is not None:
            on_record(records[-1])
        if s.device.type == "cuda":
            torch.cuda.empty_cache()
    if s.rounds > 1:
        _time_in_rounds(records, s)
    else:
        _fill_speedups(records)
    return records


def _fill_speedups(records: list[dict]) -> None:
    base = next((r for r in records if r["provider"] == BASELINE and r["status"] == "ok"), None)
    for rec in records:
        if base is not None and rec["status"] == "ok":
            rec["speedup"] = base["median_ms"] / rec["median_ms"]


def run_cases(
    cases: Sequence[Case],
    providers: Sequence[str],
    s: RunSettings,
    progress: bool = True,
    on_case: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run every case with every provider (the baseline always included); one record each.

    ``on_case(records_so_far)`` is called after each case, e.g. to save partial results.
    """
    providers = list(dict.fromkeys([BASELINE, *providers]))
    unknown = [p for p in providers if not known_provider(p)]
    unknown += [c.mode for c in cases if c.mode not in MODE_BUILDERS]
    if unknown:
        raise ValueError(f"unknown providers or modes: {sorted(set(unknown))}")
    bar = _Progress(len(cases) * len(providers), progress)
    records: list[dict] = []
    try:
        for case in cases:
            records += run_case(
                case, providers, s, lambda r: bar.step(f"{r['key']} {r['provider']}: {r['status']}")
            )
            if on_case is not None:
                on_case(records)
    finally:
        bar.close()
    return records
