"""Compiles one kernel launch for an H100 (sm_90) ahead of time; run in worker processes.

Triton is imported only inside the functions, after ``use_triton`` may have put another
Triton's folder first on ``sys.path`` (to compile with the oldest supported one).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tempfile

FP32_PTRS = {"hbuf_ptr", "cbuf_ptr", "mbuf_ptr", "dhbuf_ptr", "dcbuf_ptr", "abuf_ptr",
             "sbuf_ptr", "kh_ptr", "kc_ptr"}
I32_PTRS = {"len_ptr", "bar_ptr"}
FP32_ARGS = {"eps"}
BARRIER_KERNELS = ("split", "ln_")  # kernels with the grid barrier (names start so)


def use_triton(path: str | None) -> None:
    """Worker initializer: import Triton from ``path`` (a ``pip install --target`` folder)."""
    if path:
        sys.path.insert(0, path)


def barrier_order(sass: str) -> dict:
    """The grid barrier's instructions in SASS: arrivals (GPU-scope atomic adds) each preceded
    by a GPU-scope fence, acquiring loads of the counter each followed by an L1 invalidation."""
    ins = [line.split("*/", 1)[1].split(";")[0] for line in sass.splitlines()
           if re.match(r"\s*/\*[0-9a-f]{4,}\*/", line)]
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
    kernel with the grid barrier, ``barrier_order`` of its SASS; ``{"error": ...}`` when the
    compiler fails."""
    try:
        return _compile(key)
    except Exception as exc:  # reported per config by the test
        import triton

        return {"error": f"{type(exc).__name__}: {exc}", "triton": triton.__version__}


def _compile(key: tuple) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin",
                             "cuobjdump")
    module, kernel_name, dname, meta, options, divisible = key
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
            signature[arg] = "fp32" if arg in FP32_ARGS else "i32"
    # the runtime's specialisation: 16-byte aligned pointers (the launchers guarantee them),
    # integer arguments divisible by 16 among ``divisible``
    attrs = {(i,): [["tt.divisibility", 16]] for i, a in enumerate(fn.arg_names)
             if a.endswith("_ptr") or a in divisible}
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=meta, attrs=attrs),
                              target=GPUTarget("cuda", 90, 32), options=dict(options))
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        usage = subprocess.run([cuobjdump, "--dump-resource-usage", f.name], check=True,
                               capture_output=True, text=True).stdout
        sass = subprocess.run([cuobjdump, "-sass", f.name], check=True, capture_output=True,
                              text=True).stdout if (kernel_name.startswith(BARRIER_KERNELS)
                                                    or meta.get("BARRIER")) else ""
    stats = {k: int(v) for k, v in re.findall(r"\b(REG|STACK|LOCAL):(\d+)", usage)}
    return {"shared": compiled.metadata.shared, "triton": triton.__version__, **stats,
            **({"barrier": barrier_order(sass)} if sass else {})}
