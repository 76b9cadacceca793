"""Measured floors of a time step on this GPU: what no recurrence kernel can beat.

- **Launch**: the time per launch of an empty Triton kernel, back to back (eager: the host's
  launch rate) and replayed from a CUDA graph (the device's). One launch per time step (the
  split path's fallback, or torch's eager cuDNN) cannot be faster than this.
- **Barrier step**: one step of a persistent kernel with the grid the LSTM's split path runs
  at a point (``fastrnn.kernels.common.pick_config``), doing only what every step must do:
  read the whole state h of its batch tile from global memory, write its slice of the next
  one (ping-pong between two buffers) and pass the grid-wide barrier. No math: a persistent
  recurrence's step cannot be faster.

Written to ``floors.json`` (and printed); ``python -m benchmarks report`` divides every timed
row's µs per step by the barrier step of the FlashRNN point when the file sits beside the
results. Run with ``python -m benchmarks.floors [--out DIR]`` (CUDA only).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import triton
import triton.language as tl
from fastrnn.kernels.common import grid_barrier

from benchmarks.report import FLOOR_POINT
from benchmarks.timing import TimingSettings, time_callable

__all__ = ["FLOOR_POINT", "barrier_grid", "main", "measure", "ping_pong", "ping_pong_kernel"]


_POINTS = (FLOOR_POINT, ("lstm", 64, 1024, "bfloat16"), ("lstm", 1, 1024, "float32"),
           ("gru", 16, 768, "bfloat16"))


@triton.jit
def empty_kernel(x_ptr):
    """Nothing: the cost of a launch."""
    pass


@triton.jit
def ping_pong_kernel(
    buf_ptr,  # (2, B, H) two state buffers: step s reads buffer s % 2, writes the other
    bar_ptr,  # (1,) int32 barrier counter, zero at launch
    T, B, H,  # steps, batch, hidden size
    BARRIER: tl.constexpr,  # pass the grid barrier each step (False: one program, no wait)
    BLOCK_B: tl.constexpr,  # batch rows per program
    BLOCK_H: tl.constexpr,  # hidden units each program writes
    BLOCK_K: tl.constexpr,  # columns of h read per load
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rmask = rows < B
    out_mask = rmask[:, None] & (cols < H)[None, :]
    programs = tl.num_programs(0) * tl.num_programs(1)
    for s in range(T):
        src = buf_ptr + (s % 2) * B * H
        dst = buf_ptr + ((s + 1) % 2) * B * H
        total = tl.zeros([BLOCK_B], dtype=tl.float32)
        for k in range(0, H, BLOCK_K):  # the whole row of h, as the gates' product reads it
            kc = k + tl.arange(0, BLOCK_K)
            tile = tl.load(src + rows[:, None] * H + kc[None, :],
                           mask=rmask[:, None] & (kc < H)[None, :], other=0.0)
            total += tl.sum(tile.to(tl.float32), axis=1)
        own = tl.load(src + rows[:, None] * H + cols[None, :], mask=out_mask, other=0.0)
        # the next state: the program's slice moved over, the row's sum to keep the reads live
        new = own.to(tl.float32) + 0.0 * total[:, None]
        tl.store(dst + rows[:, None] * H + cols[None, :], new.to(own.dtype), mask=out_mask)
        if BARRIER:
            grid_barrier(bar_ptr, (s + 1) * programs)


def barrier_grid(cell: str, B: int, H: int, dtype: torch.dtype) -> tuple[tuple[int, int], int,
                                                                         int]:
    """The split path's grid (batch tiles, hidden slices) for a point, its batch rows and hidden
    units per program."""
    from fastrnn.kernels.common import CELLS, pick_config

    cfg = pick_config(CELLS[cell.upper()], H, B, dtype)
    return (-(-B // cfg.block_b), -(-H // cfg.block_h)), cfg.block_b, cfg.block_h


def ping_pong(buf: torch.Tensor, T: int, block_b: int, block_h: int, grid: tuple[int, int],
              block_k: int = 64) -> torch.Tensor:
    """Run ``T`` ping-pong steps over ``buf: (2, B, H)`` (returns it); the barrier whenever
    the grid has more than one program (all resident at once: CUDA)."""
    bar = torch.zeros(1, dtype=torch.int32, device=buf.device)
    _, B, H = buf.shape
    ping_pong_kernel[grid](buf, bar, T, B, H, BARRIER=grid[0] * grid[1] > 1, BLOCK_B=block_b,
                           BLOCK_H=block_h, BLOCK_K=block_k, num_warps=4)
    return buf


def measure(T: int = 1024, timing: TimingSettings | None = None,
            points: Sequence[tuple[str, int, int, str]] = _POINTS) -> dict:
    """``{"launch_us": {"eager", "graphed"}, "barrier_step_us": {point: us}, ...}`` on CUDA."""
    if not torch.cuda.is_available():
        raise RuntimeError("the floors are measured on a CUDA device")
    device = torch.device("cuda")
    timing = timing or TimingSettings(warmup_ms=100.0, rep_ms=1000.0, min_reps=30)
    x = torch.zeros(1, device=device)
    launches = 100

    def eager() -> None:
        for _ in range(launches):
            empty_kernel[(1,)](x)

    eager()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        eager()
    result: dict = {
        "launch_us": {
            "eager": 1e3 * time_callable(eager, device, timing).median_ms / launches,
            "graphed": 1e3 * time_callable(graph.replay, device, timing).median_ms / launches,
        },
        "barrier_step_us": {}, "T": T, "floor_point": " ".join(map(str, FLOOR_POINT)),
        "device": torch.cuda.get_device_name(device),
        "sm_count": torch.cuda.get_device_properties(device).multi_processor_count,
    }
    for cell, B, H, dtype_name in points:
        dtype = getattr(torch, dtype_name)
        grid, block_b, block_h = barrier_grid(cell, B, H, dtype)
        if grid[0] * grid[1] > result["sm_count"]:
            continue  # no grid barrier there: one launch per step, the launch floor
        buf = torch.zeros(2, B, H, device=device, dtype=dtype)
        call = functools.partial(ping_pong, buf, T, block_b, block_h, grid)
        ms = time_callable(call, device, timing).median_ms
        result["barrier_step_us"][f"{cell} {B} {H} {dtype_name}"] = {
            "us": 1e3 * ms / T, "programs": grid[0] * grid[1]}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for floors.json")
    parser.add_argument("--steps", type=int, default=1024)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("floors: no CUDA device visible", file=sys.stderr)
        return 2
    result = measure(T=args.steps)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "floors.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
