#!/usr/bin/env bash
# Create .venv (if missing) and install fastrnn with its dev, plot, data and tensorboard extras.
# On a machine without an NVIDIA GPU this installs the CPU build of torch, never a CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip 2>/dev/null || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install -q torch
  else
    # The CPU build. Where no local CPU wheel is configured, add
    # --index-url https://download.pytorch.org/whl/cpu to keep the download small.
    $PIP install -q "torch==2.13.0"
  fi
fi
$PIP install -q -e ".[dev,plot,data,tensorboard]"
