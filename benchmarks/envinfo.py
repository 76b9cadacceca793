"""What the numbers were measured on: device, drivers, library versions, source commit."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

from benchmarks import REPO_ROOT

__all__ = ["BEHAVIOUR_VARIABLES", "cpu_model", "default_out_dir", "environment", "gpu_state",
           "slug", "source_state"]

#: Environment variables that change what a run measures, recorded when set (prefixes end in _).
BEHAVIOUR_VARIABLES = ("CUDA_LAUNCH_BLOCKING", "NVIDIA_TF32_OVERRIDE", "TORCH_CUDNN_V8_API_",
                       "CUDA_MODULE_LOADING", "CUBLAS_WORKSPACE_CONFIG", "TORCH_ALLOW_TF32_",
                       "TRITON_", "FASTRNN_", "OMP_NUM_THREADS", "PYTORCH_CUDA_ALLOC_CONF")
_GPU_QUERY = ("clocks.sm", "clocks.mem", "clocks.max.sm", "temperature.gpu", "power.draw",
              "clocks_throttle_reasons.active", "pstate")


def slug(text: str) -> str:
    """``"NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _run(*cmd: str, cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - any import failure just means "not there"
        return None


def source_state(root: Path = REPO_ROOT) -> dict:
    """The tree that ran: git commit, whether tracked files differ from it, and the SHA-256 of
    that difference (``git diff HEAD``), so a dirty run names its exact source."""
    commit = _run("git", "rev-parse", "HEAD", cwd=root)
    state: dict = {"git_commit": commit, "git_dirty": None, "git_diff_sha256": None}
    if commit:
        diff = _run("git", "diff", "HEAD", "--no-ext-diff", cwd=root)
        state["git_dirty"] = bool(diff)
        if diff:
            state["git_diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()
    return state


def behaviour_variables(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The set environment variables of :data:`BEHAVIOUR_VARIABLES`."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in sorted(environ.items())
            if any(k == name or (name.endswith("_") and k.startswith(name))
                   for name in BEHAVIOUR_VARIABLES)}


def gpu_state() -> dict[str, str] | None:
    """Clocks, temperature, power and active throttle reasons of GPU 0 (``nvidia-smi``), or
    None without it: recorded before and after a run."""
    out = _run("nvidia-smi", f"--query-gpu={','.join(_GPU_QUERY)}", "--format=csv,noheader",
               "--id=0")
    if out is None:
        return None
    values = [v.strip() for v in out.splitlines()[0].split(",")]
    return dict(zip(_GPU_QUERY, values))


def environment(device: torch.device) -> dict:
    """A JSON-ready description of the machine, the libraries and fastrnn's source state."""
    env: dict = {
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device.type,
        "cpu": cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "fastrnn": _version("fastrnn"),
        "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
        **source_state(),
        "variables": behaviour_variables(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            sm_count=props.multi_processor_count,
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
            driver=_run("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"),
            gpu_state_before=gpu_state(),
        )
    return env


def default_out_dir(env: dict) -> Path:
    """``benchmarks/results/<gpu-slug>/`` on a GPU, ``benchmarks/results/cpu-<cpu-slug>/`` else."""
    name = slug(env["gpu"]) if env.get("gpu") else f"cpu-{slug(env['cpu'])}"
    return REPO_ROOT / "benchmarks" / "results" / name
