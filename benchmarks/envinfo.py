"""What the numbers were measured on: device, drivers, library versions, source commit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

from benchmarks import REPO_ROOT

__all__ = ["cpu_model", "default_out_dir", "environment", "slug"]


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
        "git_commit": _run("git", "rev-parse", "HEAD", cwd=REPO_ROOT),
        "git_dirty": None,
    }
    if env["git_commit"]:
        status = _run("git", "status", "--porcelain", "--untracked-files=no", cwd=REPO_ROOT)
        env["git_dirty"] = bool(status)
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
        )
    return env


def default_out_dir(env: dict) -> Path:
    """``benchmarks/results/<gpu-slug>/`` on a GPU, ``benchmarks/results/cpu-<cpu-slug>/`` else."""
    name = slug(env["gpu"]) if env.get("gpu") else f"cpu-{slug(env['cpu'])}"
    return REPO_ROOT / "benchmarks" / "results" / name
