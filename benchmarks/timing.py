"""Timers: CUDA events through ``triton.testing.do_bench``, ``time.perf_counter`` on the CPU."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Timing", "TimingSettings", "peak_memory_mib", "quantile", "time_callable"]


@dataclass(frozen=True)
class TimingSettings:
    """Warm-up and measuring budgets in milliseconds; repeat bounds apply to the CPU timer."""

    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    min_reps: int = 10
    max_reps: int = 10_000


@dataclass(frozen=True)
class Timing:
    """Median and 20th/80th percentiles of one call in ms; ``reps`` is None under do_bench."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    reps: int | None


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of ``values`` (``0 <= q <= 1``)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _summary(samples_ms: list[float]) -> Timing:
    return Timing(
        quantile(samples_ms, 0.5),
        quantile(samples_ms, 0.2),
        quantile(samples_ms, 0.8),
        len(samples_ms),
    )


def _host_clock(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _cuda_events(fn: Callable[[], object]) -> float:
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    fn()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end)


def _sample(one_call: Callable[[], float], s: TimingSettings) -> Timing:
    """Warm up (at least two calls, ``warmup_ms``), then collect ``min_reps..max_reps`` samples."""
    gc.collect()
    start, calls = time.perf_counter(), 0
    while calls < 2 or (time.perf_counter() - start) * 1e3 < s.warmup_ms:
        one_call()
        calls += 1
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < s.min_reps or (
        len(samples) < s.max_reps and (time.perf_counter() - start) * 1e3 < s.rep_ms
    ):
        samples.append(one_call())
    return _summary(samples)


def time_callable(fn: Callable[[], object], device: torch.device, s: TimingSettings) -> Timing:
    """Warm up, then time ``fn`` many times; CUDA events on a GPU, the host clock on the CPU."""
    if device.type != "cuda":
        return _sample(lambda: _host_clock(fn), s)
    try:
        from triton.testing import do_bench
    except ImportError:  # CUDA events per call, same budgets
        return _sample(lambda: _cuda_events(fn), s)
    median, p20, p80 = do_bench(fn, warmup=s.warmup_ms, rep=s.rep_ms, quantiles=[0.5, 0.2, 0.8])
    return Timing(median, p20, p80, reps=None)  # do_bench picks the count


def peak_memory_mib(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak device memory one call of ``fn`` allocates above what was held before it, in MiB."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20
