#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The kernels are also compiled with the oldest Triton the project supports (its ptxas differs),
# kept apart in .triton-min (tests/test_kernel_compile.py).
if [ "$(uname -sm)" = "Linux x86_64" ]; then
  [ -d .triton-min/triton ] ||
    .venv/bin/python -m pip install -q --no-deps --target .triton-min "triton==3.6.0"
  export FASTRNN_MIN_TRITON_PATH="$PWD/.triton-min"
fi
# Both cores: pytest-xdist workers, each test file on one of them (--dist loadfile), so the
# ahead-of-time compile check compiles its configs once (loadgroup's xdist_group marks are not
# honoured with pytest 9.2 and pytest-xdist 3.8: every worker compiled every config).
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile "$@"
.venv/bin/ruff check .
