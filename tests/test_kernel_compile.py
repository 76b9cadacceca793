"""Every kernel configuration the launchers can pick compiles for an H100 (sm_90) without spills.

Ahead-of-time compiles on the CPU: for each cell x dtype x hidden-size bucket x batch bucket x
projection x forward/backward (x TF32 on/off for float32), ``pick_config`` chooses a config and
``kernel_meta`` the kernel and constexprs a launch would use, with every optional feature on
(lengths, reverse, saving for backward, b_hn, the grid barrier). Checks: shared memory within
the 227 KB per block, ``cuobjdump`` reports no stack or local memory (no register spills), and
the grid barrier's machine code orders memory across SMs: a GPU-scope fence before each
arrival, the L1 cache invalidated after each acquiring load of the counter (so h written by
other programs is never read stale).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import re
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

triton = pytest.importorskip("triton")
from fastrnn.kernels import common, launch  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

SHARED_LIMIT = 232448  # bytes of shared memory one block may use on an H100
HIDDEN = [1, 16, 17, 32, 33, 64, 65, 100, 128, 129, 256, 512, 768, 1024, 2048]
BATCH = [1, 64]
PROJ = [1, 17, 33]
DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
FP32_PTRS = {"hbuf_ptr", "cbuf_ptr", "mbuf_ptr", "dhbuf_ptr", "dcbuf_ptr", "rbuf_ptr"}
I32_PTRS = {"len_ptr", "bar_ptr"}
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def _pickable() -> dict[str, tuple]:
    """id -> (kernel, dtype name, constexprs, options) for every distinct pickable launch."""
    found: dict[str, tuple] = {}
    tf32 = torch.backends.cudnn.allow_tf32
    try:
        for allow_tf32 in (True, False):
            torch.backends.cudnn.allow_tf32 = allow_tf32
            for cell_name, cell in common.CELLS.items():
                projs = [0] + (PROJ if cell == common.LSTM else [])
                for dtype, dname in DTYPES.items():
                    for H in HIDDEN:
                        for B in BATCH:
                            for proj in [p for p in projs if p < H]:
                                for backward in (False, True):
                                    cfg = common.pick_config(cell, H, B, dtype, proj, backward)
                                    kernel, meta = launch.kernel_meta(
                                        cell, dtype, cfg, backward=backward, proj=proj > 0,
                                        has_bhn=True,
                                        lengths=True, reverse=True, barrier=not cfg.resident,
                                    )
                                    options = {"num_warps": meta.pop("num_warps"),
                                               "num_stages": meta.pop("num_stages")}
                                    meta = {k: v for k, v in meta.items()
                                            if k in kernel.arg_names}
                                    key = (kernel.fn.__module__, kernel.__name__, dname,
                                           tuple(sorted(meta.items())),
                                           tuple(sorted(options.items())))
                                    name = (f"{cell_name}-{dname}-{kernel.__name__}-"
                                            f"H{meta['BLOCK_H']}-K{meta.get('BLOCK_P', 0)}"
                                            f"{meta.get('BLOCK_K', '')}-B{meta['BLOCK_B']}-"
                                            f"{'proj-' if meta.get('PROJ') else ''}"
                                            f"{'chip-' if meta.get('W_ON_CHIP') else ''}"
                                            f"{meta['PREC']}-w{options['num_warps']}")
                                    found.setdefault(name, key)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    return found


def barrier_order(sass: str) -> dict:
    """The grid barrier's instructions in SASS: arrivals (GPU-scope atomic adds) each preceded
    by a GPU-scope fence, acquiring loads of the counter each followed by an L1 invalidation."""
    ins = [line.split("*/", 1)[1].split(";")[0] for line in sass.splitlines()
           if re.match(r"\s*/\*[0-9a-f]{4}\*/", line)]
    arrive = [i for i, x in enumerate(ins) if re.search(r"\b(RED|ATOM)G?\..*STRONG\.GPU", x)]
    wait = [i for i, x in enumerate(ins) if re.search(r"\bLDG\..*STRONG\.GPU", x)]
    return {
        "arrive": len(arrive), "wait": len(wait),
        "release": all(any("MEMBAR" in x and "GPU" in x for x in ins[max(0, i - 6) : i])
                       for i in arrive),
        "acquire": all(any("CCTL.IVALL" in x for x in ins[i + 1 : i + 4]) for i in wait),
    }


def compile_config(key: tuple) -> dict:
    """AOT-compile one launch for sm_90: shared bytes, cuobjdump's REG/STACK/LOCAL and, for a
    kernel with the grid barrier, ``barrier_order`` of its SASS."""
    module, kernel_name, dname, meta, options = key
    fn = getattr(importlib.import_module(module), kernel_name)
    meta = dict(meta)
    signature = {}
    for arg in fn.arg_names:
        if arg in meta:
            signature[arg] = "constexpr"
        elif arg.endswith("_ptr"):
            signature[arg] = "*fp32" if arg in FP32_PTRS else "*i32" if arg in I32_PTRS else (
                "*" + dname)
        else:
            signature[arg] = "i32"
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=meta),
                              target=GPUTarget("cuda", 90, 32), options=dict(options))
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        usage = subprocess.run([CUOBJDUMP, "--dump-resource-usage", f.name], check=True,
                               capture_output=True, text=True).stdout
        sass = subprocess.run([CUOBJDUMP, "-sass", f.name], check=True, capture_output=True,
                              text=True).stdout if meta.get("BARRIER") else ""
    stats = {k: int(v) for k, v in re.findall(r"\b(REG|STACK|LOCAL):(\d+)", usage)}
    return {"shared": compiled.metadata.shared, **stats,
            **({"barrier": barrier_order(sass)} if sass else {})}


CONFIGS = _pickable()


@pytest.fixture(scope="session")
def compiled() -> dict[str, dict]:
    """All configs compiled once, in fresh processes that import the kernels uninterpreted."""
    names = sorted(CONFIGS)
    saved = {k: os.environ.get(k) for k in ("TRITON_INTERPRET", "TRITON_DEFAULT_FP_FUSION")}
    os.environ["TRITON_INTERPRET"] = "0"  # children get real @jit functions for triton.compile
    os.environ["TRITON_DEFAULT_FP_FUSION"] = "1"
    try:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            results = pool.map(compile_config, [CONFIGS[n] for n in names])
            for key, value in saved.items():  # every worker has started by now
                if value is None:
                    os.environ.pop(key)
                else:
                    os.environ[key] = value
            return dict(zip(names, results))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_enumeration_covers_both_paths_and_all_cells():
    kernels = {key[1] for key in CONFIGS.values()}
    assert kernels == {"resident_forward_kernel", "resident_backward_kernel",
                       "split_forward_kernel", "split_backward_kernel"}
    assert {dict(key[3])["CELL"] for key in CONFIGS.values()} == set(common.CELLS.values())
    split_proj = {key[1] for key in CONFIGS.values() if dict(key[3]).get("PROJ")
                  and "BLOCK_K" in dict(key[3])}
    assert split_proj == {"split_forward_kernel", "split_backward_kernel"}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiles_without_spills(compiled, name):
    stats = compiled[name]
    assert stats["shared"] <= SHARED_LIMIT, stats
    assert stats["STACK"] == 0 and stats["LOCAL"] == 0, stats


@pytest.mark.parametrize("name", sorted(n for n in CONFIGS if dict(CONFIGS[n][3]).get("BARRIER")))
def test_grid_barrier_orders_memory(compiled, name):
    order = compiled[name]["barrier"]
    assert order["arrive"] >= 1 and order["wait"] >= 1, order
    assert order["release"] and order["acquire"], order


def test_barrier_order_detects_missing_fences():
    sass = "".join(f"        /*{i:04x}*/  {op} ;  /* 0x0 */\n" for i, op in enumerate(
        ["MEMBAR.ALL.GPU", "REDG.E.ADD.STRONG.GPU desc[UR4][R2.64], R5", "BAR.SYNC 0x0",
         "LDG.E.STRONG.GPU R6, desc[UR4][R2.64]", "CCTL.IVALL"]))
    assert barrier_order(sass) == {"arrive": 1, "wait": 1, "release": True, "acquire": True}
    broken = barrier_order(sass.replace("MEMBAR.ALL.GPU", "NOP").replace("CCTL.IVALL", "NOP"))
    assert not broken["release"] and not broken["acquire"]
