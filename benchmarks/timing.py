"""Timers: CUDA events around every call on a GPU, ``time.perf_counter`` on the CPU.

Each measurement warms up, then times at least ``min_reps`` calls and at least ``rep_ms`` of
them (up to ``max_reps``); the count is recorded with the median and the 10th/20th/80th/90th
percentiles of the per-call times.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Timing", "TimingSettings", "peak_memory_mib", "quantile", "summary", "time_callable"]


@dataclass(frozen=True)
class TimingSettings:
    """Warm-up and measuring budgets in milliseconds, and the bounds on the timed calls."""

    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    min_reps: int = 10
    max_reps: int = 10_000


@dataclass(frozen=True)
class Timing:
    """Median and percentiles of one call in ms over ``reps`` timed calls (``samples``)."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    reps: int | None
    p10_ms: float | None = None
    p90_ms: float | None = None
    samples: tuple[float, ...] = ()


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of ``values`` (``0 <= q <= 1``)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(samples_ms: list[float]) -> Timing:
    """The :class:`Timing` of per-call times in ms."""
    return Timing(
        quantile(samples_ms, 0.5),
        quantile(samples_ms, 0.2),
        quantile(samples_ms, 0.8),
        len(samples_ms),
        quantile(samples_ms, 0.1),
        quantile(samples_ms, 0.9),
        tuple(samples_ms),
    )


def _host_clock(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


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
    return summary(samples)


def _cuda_calls(fn: Callable[[], object], s: TimingSettings, device: torch.device) -> Timing:
    """Warm up for ``warmup_ms`` (at least two calls), measure the pace of calls enqueued back
    to back, then enqueue the timed calls that way, an event pair around each (no host sync
    between calls), as many as ``min_reps`` and ``rep_ms`` at that pace ask for (up to
    ``max_reps``)."""
    gc.collect()
    with torch.cuda.device(device):
        torch.cuda.synchronize()
        start, calls = time.perf_counter(), 0
        while calls < 2 or (time.perf_counter() - start) * 1e3 < s.warmup_ms:
            fn()
            calls += 1
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        per_call_ms = (time.perf_counter() - start) * 1e3 / 3
        n = min(s.max_reps, max(s.min_reps, int(s.rep_ms / max(per_call_ms, 1e-3)) + 1))
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(n)]
        for begin, end in events:
            begin.record()
            fn()
            end.record()
        torch.cuda.synchronize()
    return summary([begin.elapsed_time(end) for begin, end in events])


def time_callable(fn: Callable[[], object], device: torch.device, s: TimingSettings) -> Timing:
    """Warm up, then time ``fn`` many times (see the module docstring); CUDA events on a GPU,
    the host clock on the CPU."""
    if device.type != "cuda":
        return _sample(lambda: _host_clock(fn), s)
    return _cuda_calls(fn, s, device)


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
