"""Every kernel configuration the launchers can pick compiles for an H100 (sm_90) without spills.

Ahead-of-time compiles on the CPU: for each cell x dtype x hidden-size bucket x batch bucket x
projection x forward/backward (x TF32 on/off for float32), with W_hh on chip allowed or not (the
streaming config launches take beyond the SM count; the LayerNorm layers' configs likewise),
``pick_config`` chooses a config and
``kernel_meta`` the kernel and constexprs a launch would use, for one direction and for both
directions of a bidirectional layer in one launch. Whatever else a launch varies is a runtime
argument of the one kernel a config compiles to (lengths or none, saving or not, the grid
barrier or a launch per phase, the directions and running order, relu), so what is checked here
is what runs. Each compiles as the variant Triton
builds at run time for those sizes: pointers 16-byte aligned (the launchers guarantee it), H and
P marked divisible by 16 where they are (the kernels specialise no other integer), so the sizes
cover each bucket both ways. Checks: shared memory within
the 227 KB per block, ``cuobjdump`` reports no stack or local memory (no register spills), and
the grid barrier's machine code orders memory across SMs: a GPU-scope fence before each
arrival, the L1 cache invalidated after each acquiring load of the counter (so h written by
other programs is never read stale).
"""

from __future__ import annotations

import inspect
import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402
from compile_worker import BARRIER_KERNELS, barrier_order, compile_config, use_triton  # noqa: E402
from fastrnn.kernels import (  # noqa: E402
    common,
    launch,
    layer_norm,
    layer_norm_backward,
    recurrence,
    split,
)

# A folder holding the oldest Triton the project supports (``pip install --target``), to compile
# every config with its ptxas as well as with the installed Triton's.
MIN_TRITON_PATH = os.environ.get("FASTRNN_MIN_TRITON_PATH")
MIN_TRITON = "3.6"
SHARED_LIMIT = 232448  # bytes of shared memory one block may use on an H100
# Hidden and projection sizes: each power-of-two bucket with sizes divisible by 16 and not
# (Triton compiles each config once per divisibility of H and P, see common.is_aligned).
HIDDEN = [1, 16, 17, 32, 33, 64, 65, 100, 128, 129, 256, 300, 512, 768, 1000, 1024, 1500, 2048]
BATCH = [1, 64]
PROJ = [1, 17, 32, 33]
DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _problems():
    """(cell name, cell, dtype, H, B, proj, backward, directions) of every covered launch."""
    for cell_name, cell in common.CELLS.items():
        projs = [0] + (PROJ if cell == common.LSTM else [])
        for dtype, H, B, proj, backward, directions in itertools.product(
            DTYPES, HIDDEN, BATCH, projs, (False, True), (1, 2)
        ):
            if proj < H:
                yield cell_name, cell, dtype, H, B, proj, backward, directions


def _pickable() -> dict[str, tuple]:
    """id -> (kernel, dtype name, constexprs, options) for every distinct pickable launch: a
    bidirectional layer's launch (directions 2) or one direction's (they differ in config only
    where vector programs would exceed 128)."""
    found: dict[str, tuple] = {}
    keys: set[tuple] = set()
    tf32 = torch.backends.cudnn.allow_tf32
    try:
        for allow_tf32 in (True, False):
            torch.backends.cudnn.allow_tf32 = allow_tf32
            for (cell_name, cell, dtype, H, B, proj, backward, directions), on_chip in (
                    itertools.product(_problems(), (True, False))):
                # on_chip=False: the streaming config launches take beyond the SMs
                cfg = common.pick_config(cell, H, B, dtype, proj, backward,
                                         directions=directions, on_chip=on_chip)
                kernel, meta = launch.kernel_meta(cell, dtype, cfg, backward=backward,
                                                  proj=proj > 0)
                options = {k: meta.pop(k) for k in ("num_warps", "num_stages", "maxnreg")}
                meta = {k: v for k, v in meta.items() if k in kernel.arg_names}
                divisible = tuple(name for name, n in (("H", H), ("P", proj or H))
                                  if n % common.ALIGN == 0)
                key = (kernel.fn.__module__, kernel.__name__, DTYPES[dtype],
                       tuple(sorted(meta.items())), tuple(sorted(options.items())), divisible)
                name = (f"{cell_name}-{DTYPES[dtype]}-{kernel.__name__}-"
                        f"H{meta['BLOCK_H']}-K{meta.get('BLOCK_P', 0)}{meta.get('BLOCK_K', '')}-"
                        f"B{meta['BLOCK_B']}-{'proj-' if meta.get('PROJ') else ''}"
                        f"{'chip-' if meta.get('W_ON_CHIP') else ''}"
                        f"{'vector-' if meta.get('VECTOR') else ''}"
                        f"{meta['PREC']}-w{options['num_warps']}"
                        f"{''.join('-' + n + '16' for n in divisible)}")
                if key not in keys:  # RNN_RELU runs RNN_TANH's kernels (relu is a runtime flag)
                    keys.add(key)
                    found[name] = key
        for allow_tf32 in (True, False):  # the LayerNorm layers' kernels
            torch.backends.cudnn.allow_tf32 = allow_tf32
            for (cell_name, cell), dtype, H, (module, kernel_name), on_chip in itertools.product(
                    [("LSTM", common.LSTM), ("GRU", common.GRU)], DTYPES, HIDDEN,
                    [("fastrnn.kernels.layer_norm", "ln_forward_kernel"),
                     ("fastrnn.kernels.layer_norm_backward", "ln_backward_kernel")],
                    (True, False)):
                cfg = layer_norm.pick_ln_config(cell, H, dtype, kernel_name.startswith("ln_b"),
                                                on_chip)
                meta = layer_norm.ln_kernel_meta(cell, dtype, cfg, H)
                options = {k: meta.pop(k) for k in ("num_warps", "num_stages", "maxnreg")}
                divisible = ("H",) if H % common.ALIGN == 0 else ()
                key = (module, kernel_name, DTYPES[dtype], tuple(sorted(meta.items())),
                       tuple(sorted(options.items())), divisible)
                name = (f"{cell_name}-{DTYPES[dtype]}-{kernel_name}-H{meta['BLOCK_H']}-"
                        f"K{meta['BLOCK_K']}-S{meta['BLOCK_S']}-"
                        f"{'chip-' if meta['W_ON_CHIP'] else ''}{meta['PREC']}-"
                        f"w{options['num_warps']}{'-H16' if divisible else ''}")
                if key not in keys:
                    keys.add(key)
                    found[name] = key
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    return found


CONFIGS = _pickable()


@pytest.fixture(scope="session", params=["installed"] + (["oldest"] if MIN_TRITON_PATH else []))
def compiled(request) -> dict[str, dict]:
    """All configs compiled once per Triton (the installed one; the oldest supported one where
    FASTRNN_MIN_TRITON_PATH is set), in fresh processes that import the kernels uninterpreted."""
    names = sorted(CONFIGS)
    path = MIN_TRITON_PATH if request.param == "oldest" else None
    env = {"TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # children get real @jit functions for triton.compile
    try:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1,
                                 mp_context=multiprocessing.get_context("spawn"),
                                 initializer=use_triton, initargs=(path,)) as pool:
            results = dict(zip(names, pool.map(compile_config, [CONFIGS[n] for n in names])))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    versions = {r["triton"] for r in results.values()}
    if request.param == "oldest":
        assert versions == {v for v in versions if v.startswith(MIN_TRITON + ".")}, versions
    else:
        assert versions == {triton.__version__}, versions
    return results


def test_enumeration_covers_both_paths_and_all_cells():
    kernels = {key[1] for key in CONFIGS.values()}
    assert kernels == {"resident_forward_kernel", "resident_backward_kernel",
                       "split_forward_kernel", "split_backward_kernel", "ln_forward_kernel",
                       "ln_backward_kernel"}
    cells = {dict(key[3])["CELL"] for key in CONFIGS.values()}
    assert cells == set(common.CELLS.values()) - {common.RNN_RELU}  # relu: RNN_TANH's kernels
    split_proj = {key[1] for key in CONFIGS.values() if dict(key[3]).get("PROJ")
                  and "BLOCK_K" in dict(key[3])}
    assert split_proj == {"split_forward_kernel", "split_backward_kernel"}


def _unspecialized(kernel) -> set[str]:
    """Arguments a kernel tells Triton never to specialise (interpreted or compiled)."""
    if hasattr(kernel, "kwargs"):
        return set(kernel.kwargs["do_not_specialize"])
    return {p.name for p in kernel.params if p.do_not_specialize}


@pytest.mark.parametrize("kernel", [split.split_forward_kernel, split.split_backward_kernel,
                                    recurrence.resident_forward_kernel,
                                    recurrence.resident_backward_kernel,
                                    layer_norm.ln_forward_kernel,
                                    layer_norm_backward.ln_backward_kernel])
def test_only_h_and_p_specialise(kernel):
    """The variants compiled here are the ones that run only if no other integer argument
    (the steps, the batch, the phase range, the relu flag) picks a variant of its own."""
    params = inspect.signature(kernel.fn).parameters.values()
    ints = {p.name for p in params if p.annotation not in (tl.constexpr, "tl.constexpr")
            and not p.name.endswith("_ptr")}
    expected = {"H"} if kernel.__name__.startswith("ln_") else {"H", "P"}
    assert ints - _unspecialized(kernel) == expected


def test_launchers_align_views():
    view = torch.arange(9.0)[1:]
    assert view.data_ptr() % 16 != 0
    aligned = launch._aligned(view)
    assert aligned.data_ptr() % 16 == 0 and torch.equal(aligned, view)
    fresh = torch.ones(8)
    assert launch._aligned(fresh) is fresh


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiles_without_spills(compiled, name):
    stats = compiled[name]
    assert "error" not in stats, stats
    assert stats["shared"] <= SHARED_LIMIT, stats
    assert stats["STACK"] == 0 and stats["LOCAL"] == 0, stats


@pytest.mark.parametrize("name", sorted(n for n in CONFIGS
                                        if CONFIGS[n][1].startswith(BARRIER_KERNELS)))
def test_grid_barrier_orders_memory(compiled, name):
    assert "barrier" in compiled[name], compiled[name]
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
