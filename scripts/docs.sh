#!/usr/bin/env bash
# Build the API reference (HTML, from the docstrings) into OUTDIR (default docs/api) with pdoc.
# Usage: bash scripts/docs.sh [OUTDIR]   (after scripts/setup.sh; pdoc is in the dev extra)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/api}
py=${PYTHON:-.venv/bin/python}
"$py" -m pdoc --docformat google -o "$out" fastrnn fastrnn.nn fastrnn.ops fastrnn.reference \
  fastrnn.kernels fastrnn.lightning fastrnn.lightning.cli fastrnn.lightning.checkpoints
echo "API reference written to $out/index.html"
