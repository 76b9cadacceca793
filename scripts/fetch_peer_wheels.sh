#!/usr/bin/env bash
# Download the peers' wheels the baselines suite times (FlashRNN and what it imports) into
# benchmarks/wheels/, on a machine with a package registry, so that they travel with the working
# tree to a GPU machine without one (benchmarks/gpu_check.sh installs them from there). The
# folder is ignored by git: the wheels are other projects' code, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download --no-deps -d benchmarks/wheels "flashrnn==1.0.8" "einops>=0.8" "ninja>=1.11"
ls -l benchmarks/wheels
