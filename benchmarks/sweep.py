"""Launch-configuration sweep of the recurrence kernels at the headline points.

``python -m benchmarks.sweep [--out DIR] [--jobs N] [--points NAME,...]`` times the forward and
backward launchers (``fastrnn.kernels.launch``, no autograd, no input projection) with the
configuration ``pick_config`` chooses and with alternatives around it: W_hh streamed in chunks of
32 to 128 (software-pipelined or not) or kept on chip, 16 or 32 hidden units per program, 4 or 8
warps; at batch 1 also vector programs of 4 to 16 hidden units. Each alternative's result is
compared with the chosen one's (largest difference over the largest value), so a
faster variant is only worth adopting when it also agrees. The compiles run first in ``--jobs``
processes (they share Triton's cache), then the timings one after another on the GPU. Writes
``sweep.json`` and ``sweep.md`` to ``--out``; prints the table. ``--device cpu`` is a dry run
under the interpreter at tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import benchmarks  # noqa: F401  (puts the checkout's fastrnn on the path)

#: name -> (cell, dtype, T, B, H, passes): the quick suite's points ("inference": no saved
#: activations).
POINTS: dict[str, tuple[str, str, int, int, int, tuple[str, ...]]] = {
    "lstm-fp32-1024-b1": ("LSTM", "float32", 100, 1, 1024, ("inference",)),
    "lstm-bf16-768": ("LSTM", "bfloat16", 1024, 16, 768, ("forward", "backward")),
    "lstm-bf16-1024-b1": ("LSTM", "bfloat16", 100, 1, 1024, ("inference",)),
    "lstm-fp32-256-b1": ("LSTM", "float32", 100, 1, 256, ("inference",)),
    "lstm-bf16-512": ("LSTM", "bfloat16", 1024, 16, 512, ("forward", "backward")),
    "lstm-fp32-512": ("LSTM", "float32", 100, 64, 512, ("forward", "backward")),
    "gru-bf16-512": ("GRU", "bfloat16", 1024, 16, 512, ("forward", "backward")),
    "lstm-bf16-256": ("LSTM", "bfloat16", 1024, 16, 256, ("forward", "backward")),
}
SHARED_LIMIT = 227 * 1024  # bytes of shared memory one H100 block may use


@dataclass(frozen=True)
class Job:
    point: str
    pass_: str
    cfg: dict
    default: bool


def _configs(cell: int, H: int, B: int, dtype, backward: bool) -> list:
    """The chosen config first, then the alternatives (split path only)."""
    from fastrnn.kernels import common

    base = common.pick_config(cell, H, B, dtype, 0, backward)
    out = [base]
    if base.resident:
        return out

    def regs(cfg):
        return common.with_registers(cfg, dtype, backward)

    gates, kp = common.GATES[cell], common.pow2(H)
    if base.vector:  # other vector programs (at most 128, all resident), then the batched ones
        for bh, warps in ((8, 16), (16, 8), (4, 4), (4, 8)):
            if kp // bh <= 128 and gates * bh * kp * dtype.itemsize <= 128 * 1024:
                out.append(regs(common.Config(False, 1, bh, kp, warps, w_on_chip=True,
                                              vector=True)))
        out.append(common.pick_config(cell, H, B, dtype, 0, backward, vector=False))
    for bk, warps, stages in ((32, 4, 1), (64, 4, 1), (64, 8, 1), (128, 4, 1), (128, 8, 1),
                              (64, 4, 3), (32, 8, 3), (32, 8, 2), (64, 8, 3)):
        out.append(regs(common.Config(False, 16, 16, min(bk, kp), warps, stages)))
    out.append(regs(common.Config(False, 16, 32, min(64, kp), 8)))
    for bh, warps in ((16, 4), (16, 8), (32, 8)):
        if gates * bh * kp * dtype.itemsize <= SHARED_LIMIT * 3 // 4:
            out.append(regs(common.Config(False, 16, bh, kp, warps, w_on_chip=True)))
    seen, unique = set(), []
    for cfg in out:
        if cfg not in seen:
            seen.add(cfg)
            unique.append(cfg)
    return unique


def _point(name: str, small: bool):
    import torch

    cell, dtype, T, B, H, passes = POINTS[name]
    if small:  # a dry run: the same kinds of configs at sizes the interpreter runs quickly
        T, B, H = 2, min(B, 3), min(H, 40)
    return cell, getattr(torch, dtype), T, B, H, passes


def _inputs(name: str, device: str, small: bool) -> dict:
    import torch
    from fastrnn.kernels import common

    cell, dtype, T, B, H, _ = _point(name, small)
    code = common.CELLS[cell]
    G = common.GATES[code]
    gen = torch.Generator().manual_seed(0)
    r = lambda *s, scale=1.0: (torch.randn(*s, generator=gen) * scale).to(device, dtype)  # noqa: E731
    inp = {
        "gx": r(T, B, G * H, scale=0.5),
        "w_hh": r(1, G * H, H, scale=H**-0.5),
        "h0": r(1, B, H, scale=0.5),
        "c0": r(1, B, H, scale=0.5) if code == common.LSTM else None,
        "b_hn": r(1, H, scale=0.1) if code == common.GRU else None,
        "dy": r(T, B, H),
        "dh_n": r(1, B, H),
        "dc_n": r(1, B, H) if code == common.LSTM else None,
    }
    return inp


def _run(job: Job, inp: dict, saved: tuple | None, small: bool):
    """One launch of ``job``; returns the callable and the tensors to compare."""
    from fastrnn.kernels import common, launch

    cell, *_ = _point(job.point, small)
    code = common.CELLS[cell]
    cfg = common.Config(**job.cfg)
    if job.pass_ in ("forward", "inference"):
        def fn():
            return launch.forward(code, inp["gx"], inp["w_hh"], inp["h0"], inp["c0"],
                                  b_hn=inp["b_hn"], save=job.pass_ == "forward", config=cfg)
        return fn, lambda out: [out[0], out[1]]
    y, ws = saved

    def fn():
        return launch.backward(code, inp["dy"], inp["dh_n"], inp["dc_n"], inp["w_hh"], None,
                               inp["h0"], inp["c0"], y, ws, config=cfg)
    return fn, lambda out: [out[0], out[1]]


def _saved(name: str, inp: dict, small: bool) -> tuple:
    from fastrnn.kernels import common, launch

    cell, *_ = _point(name, small)
    y, _, _, ws = launch.forward(common.CELLS[cell], inp["gx"], inp["w_hh"], inp["h0"], inp["c0"],
                                 b_hn=inp["b_hn"], save=True)
    return y, ws


def _warm(args: tuple) -> str | None:
    """Compile one job's kernel by launching it once (in a worker); returns an error or None."""
    job, device, small = args
    try:
        inp = _inputs(job.point, device, small)
        saved = _saved(job.point, inp, small) if job.pass_ == "backward" else None
        fn, _ = _run(job, inp, saved, small)
        fn()
        return None
    except Exception as exc:  # noqa: BLE001 - reported per job
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def _rel(a, b) -> float:
    scale = b.float().abs().max().item() or 1.0
    return (a.float() - b.float()).abs().max().item() / scale


def _time(fn, device: str) -> float:
    import torch

    from benchmarks.timing import TimingSettings, time_callable

    return time_callable(fn, torch.device(device), TimingSettings(10.0, 60.0, 1)).median_ms


def _label(cfg: dict) -> str:
    kind = "vector" if cfg["vector"] else "chip" if cfg["w_on_chip"] else (
        "resident" if cfg["resident"] else "stream")
    return (f"{kind} bh={cfg['block_h']} bk={cfg['block_k']} w={cfg['num_warps']} "
            f"st={cfg['num_stages']} regs={cfg['maxnreg']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--points", default=",".join(POINTS))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = parser.parse_args(argv)
    small = args.device == "cpu"
    if small:
        os.environ["TRITON_INTERPRET"] = "1"
    from fastrnn.kernels import common

    jobs: list[Job] = []
    for name in args.points.split(","):
        cell, dtype, T, B, H, passes = _point(name, small)
        for pass_ in passes:
            cfgs = _configs(common.CELLS[cell], H, B, dtype, pass_ == "backward")
            jobs += [Job(name, pass_, asdict(c), i == 0) for i, c in enumerate(cfgs)]
    print(f"{len(jobs)} launches to compile and time", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, args.jobs), mp_context=ctx) as pool:
        errors = list(pool.map(_warm, [(j, args.device, small) for j in jobs]))

    rows, ref = [], {}
    for job, err in zip(jobs, errors):
        row = {"point": job.point, "pass": job.pass_, "config": _label(job.cfg),
               "default": job.default, "ms": None, "rel_diff": None, "error": err}
        rows.append(row)
        if err:
            print(f"{job.point} {job.pass_} {row['config']}: {err}", flush=True)
            continue
        key = (job.point, job.pass_)
        if key not in ref or job.default:
            inp = _inputs(job.point, args.device, small)
            ref[key] = (inp, _saved(job.point, inp, small) if job.pass_ == "backward" else None,
                        None)
        inp, saved, expected = ref[key]
        fn, pick = _run(job, inp, saved, small)
        got = pick(fn())
        if job.default:
            ref[key] = (inp, saved, got)
        elif expected is not None:
            row["rel_diff"] = max(_rel(g, e) for g, e in zip(got, expected))
        row["ms"] = _time(fn, args.device)
        print(f"{job.point:18} {job.pass_:9} {row['config']:36} {row['ms']:9.3f} ms "
              f"{'default' if job.default else row['rel_diff']}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(rows, indent=1))
    lines = ["| point | pass | config | ms | vs default | rel diff |", "|---|---|---|---|---|---|"]
    base = {(r["point"], r["pass"]): r["ms"] for r in rows if r["default"]}
    for r in rows:
        b = base.get((r["point"], r["pass"]))
        speed = f"{b / r['ms']:.2f}x" if r["ms"] and b else "-"
        ms = f"{r['ms']:.3f}" if r["ms"] else (r["error"] or "-")
        diff = "default" if r["default"] else (f"{r['rel_diff']:.1e}" if r["rel_diff"] is not None
                                               else "-")
        lines.append(f"| {r['point']} | {r['pass']} | {r['config']} | {ms} | {speed} | {diff} |")
    (args.out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
