#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
.venv/bin/ruff check .
