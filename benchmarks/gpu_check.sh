#!/usr/bin/env bash
# The prepared check for a GPU machine on a short lease: the device, the GPU tests, then the
# quick benchmark suite. Needs no network. Usage, from anywhere:
#
#   bash benchmarks/gpu_check.sh OUTDIR
#
# OUTDIR receives gpu_check.log (everything printed), accuracy.md, floors.json, quick.json,
# quick.csv and quick.md (the plots are left to `python -m benchmarks report`). The GPU tests
# run in TEST_JOBS processes (default 8), capped at TEST_CAP seconds (default 120), the accuracy
# table (benchmarks/accuracy.py) at ACC_CAP (default 60), the floors (benchmarks/floors.py) at
# FLOORS_CAP (default 40), the suite at SUITE_CAP seconds (default 240: three interleaved rounds
# of at least 30 calls and 1 s per measurement), so the whole check ends within about 8.5
# minutes; a suite cut short still writes the cases it finished. Off by default, each with its
# cap: the launch-configuration sweep (SWEEP_CAP, e.g. 90; SWEEP_POINTS lists its points), the
# cells group (CELLS_CAP), the baselines suite (BASELINES_CAP: graphed, fp16, FlashRNN), the
# heads suite (HEADS_CAP), the LayerNorm group (LAYERNORM_CAP) and the tiles suite beyond the SM
# count (TILES_CAP). The results table is
# printed last. SUITE=NAME runs another suite (SUITE=smoke ACC_CAP=0 FLOORS_CAP=0 is a dry run
# of this script without a GPU).
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: bash benchmarks/gpu_check.sh OUTDIR" >&2; exit 2; }
mkdir -p "$1" && out=$(cd "$1" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2
py=${PYTHON:-python3}
log="$out/gpu_check.log"
: >"$log"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0  # compiled kernels, never the interpreter
say() { echo "== $*" | tee -a "$log"; }

say "device"
nvidia-smi 2>&1 | tee -a "$log"
"$py" - <<'PY' 2>&1 | tee -a "$log"
import torch
cudnn = torch.backends.cudnn.version()
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", cudnn)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none visible")
try:
    import triton
    print("triton", triton.__version__)
except ImportError as exc:
    print("triton missing:", exc)
PY

# fastrnn from this checkout: an editable install works offline with the image's setuptools;
# without it, src/ goes on the path (the benchmarks map kernels/ themselves).
if ! "$py" -c "import fastrnn.kernels" >/dev/null 2>&1; then
  say "installing fastrnn from the checkout (editable, no dependencies)"
  if ! "$py" -m pip install -q --no-deps --no-build-isolation -e . >>"$log" 2>&1 &&
    ! "$py" -m pip install -q --no-deps --no-build-isolation . >>"$log" 2>&1; then
    say "install failed; using PYTHONPATH=src"
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi

# Peers' wheels (FlashRNN and its einops/ninja) travel with the working tree in
# benchmarks/wheels/ (scripts/fetch_peer_wheels.sh fills it on a machine with a registry):
# installed without the network; without them the FlashRNN rows say flashrnn is missing.
if ls benchmarks/wheels/*.whl >/dev/null 2>&1 && ! "$py" -c "import flashrnn" >/dev/null 2>&1; then
  say "installing peer wheels from benchmarks/wheels"
  "$py" -m pip install -q --no-deps --no-index benchmarks/wheels/*.whl >>"$log" 2>&1 ||
    say "peer wheels failed to install (see the log)"
fi

# The GPU tests spend most of their time compiling kernels (one compile per configuration, on
# the CPU): TEST_JOBS pytest processes (default 8) share them out and the GPU. Their ids and
# logs stay out of OUTDIR (a scratch folder); the logs are appended to gpu_check.log.
jobs=${TEST_JOBS:-8}
say "GPU tests (pytest -m gpu, $jobs processes, cap ${TEST_CAP:-120}s)"
shards=$(mktemp -d)
"$py" -m pytest -m gpu -q --collect-only -p no:cacheprovider tests/test_gpu.py 2>/dev/null |
  grep '::' |
  awk -v n="$jobs" -v dir="$shards" '{ print > (dir "/ids" (NR % n)) }'
pids=()
for ids in "$shards"/ids*; do
  [ -e "$ids" ] || continue
  # shellcheck disable=SC2046  # one argument per test id (ids hold no spaces)
  timeout -k 10 "${TEST_CAP:-120}" "$py" -m pytest -q -p no:cacheprovider $(cat "$ids") \
    >"$ids.log" 2>&1 &
  pids+=("$!")
done
rc=5
for pid in "${pids[@]}"; do
  wait "$pid"
  code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then rc=$code; elif [ "$rc" -eq 5 ]; then rc=$code; fi
done
for ids in "$shards"/ids*.log; do
  [ -e "$ids" ] && tee -a "$log" <"$ids"
done
case $rc in
  0) say "GPU tests passed" ;;
  5) say "no GPU tests collected" ;;
  124 | 137) say "GPU tests stopped at the time cap" ;;
  *) say "GPU tests FAILED (exit $rc)" ;;
esac

if [ "${ACC_CAP:-60}" -gt 0 ]; then
  say "accuracy against float64, fused kernels and cuDNN (cap ${ACC_CAP:-60}s)"
  timeout -k 10 "${ACC_CAP:-60}" "$py" -m benchmarks.accuracy --out "$out" >>"$log" 2>&1
fi

suite=${SUITE:-quick}
if [ "${FLOORS_CAP:-40}" -gt 0 ]; then  # before the suites: their reports divide by them
  say "floors: empty launches, a grid-barrier step (cap ${FLOORS_CAP:-40}s)"
  timeout -k 10 "${FLOORS_CAP:-40}" "$py" -m benchmarks.floors --out "$out" 2>&1 | tee -a "$log"
fi

say "$suite suite (cap ${SUITE_CAP:-240}s)"
timeout -k 20 "${SUITE_CAP:-240}" "$py" -m benchmarks run --suite "$suite" --out "$out" --no-plot 2>&1 |
  tee -a "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  say "$suite suite ended early (exit $rc); tables from the cases it finished"
  json="$out/$suite.json" md="$out/$suite.md"
  if [ -f "$json" ] && { [ ! -f "$md" ] || [ "$json" -nt "$md" ]; }; then
    "$py" -m benchmarks report "$json" --no-plot >>"$log" 2>&1
  fi
fi

if [ "${SWEEP_CAP:-0}" -gt 0 ]; then
  say "launch-configuration sweep (cap ${SWEEP_CAP:-0}s)"
  timeout -k 10 "${SWEEP_CAP:-0}" "$py" -m benchmarks.sweep --out "$out" --jobs "$jobs" \
    --points "${SWEEP_POINTS:-lstm-fp32-1024-b1,lstm-bf16-768,lstm-bf16-1024-b1,lstm-fp32-512}" 2>&1 |
    tee -a "$log"
fi

if [ "${CELLS_CAP:-0}" -gt 0 ]; then  # off by default: CELLS_CAP=60 adds the cells group
  say "cells, eager and CUDA-graphed (cap ${CELLS_CAP}s)"
  timeout -k 10 "$CELLS_CAP" "$py" -m benchmarks.cells ${CELLS_ARGS:---quick} 2>&1 |
    tee "$out/cells.txt" | tee -a "$log"
fi

if [ "${BASELINES_CAP:-0}" -gt 0 ]; then  # off by default: BASELINES_CAP=240 adds it
  say "baselines at the FlashRNN point: graphed, fp16, FlashRNN (cap ${BASELINES_CAP}s)"
  timeout -k 10 "$BASELINES_CAP" "$py" -m benchmarks run --suite baselines --out "$out" \
    --quiet --no-plot 2>&1 | tail -n 40 | tee -a "$log"
fi

if [ "${HEADS_CAP:-0}" -gt 0 ]; then  # off by default: HEADS_CAP=240 adds it
  say "heads suite: LSTM and sLSTM heads against FlashRNN (cap ${HEADS_CAP}s)"
  timeout -k 10 "$HEADS_CAP" "$py" -m benchmarks run --suite heads --out "$out" --quiet \
    --no-plot 2>&1 | tail -n 40 | tee -a "$log"
fi

if [ "${LAYERNORM_CAP:-0}" -gt 0 ]; then  # off by default: LAYERNORM_CAP=120 adds it
  say "LayerNorm LSTM against the composite, fwd+bwd (cap ${LAYERNORM_CAP}s)"
  timeout -k 10 "$LAYERNORM_CAP" "$py" -m benchmarks.layernorm ${LAYERNORM_ARGS:-} 2>&1 |
    tee "$out/layernorm.txt" | tee -a "$log"
fi

if [ "${TILES_CAP:-0}" -gt 0 ]; then  # off by default: TILES_CAP=240 adds it (2 rounds)
  say "tiles suite: beyond the SM count, several tiles per program (cap ${TILES_CAP}s)"
  timeout -k 10 "$TILES_CAP" "$py" -m benchmarks run --suite tiles --out "$out" --rounds 2 \
    --quiet --no-plot 2>&1 | tail -n 40 | tee -a "$log"
fi

say "results in $out"
if [ -f "$out/$suite.md" ]; then
  tee -a "$log" <"$out/$suite.md"
else
  say "no results: see $log"
  exit 1
fi
