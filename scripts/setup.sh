#!/usr/bin/env bash
# Create .venv and install tracerl with its test and baseline extras from this checkout.
# torch: try the pinned CPU build first (it lies on local disk on the project's machines and installs
# in seconds); if that release is not available for this Python/platform, fall back to pyproject's
# loose requirement.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
"$VPY" -m pip install --quiet --upgrade pip
if ! "$VPY" -c "import torch" 2>/dev/null; then
  "$VPY" -m pip install --quiet "torch==2.13.0" || echo "setup: torch 2.13.0 unavailable here; pip resolves torch from pyproject"
fi
"$VPY" -m pip install --quiet -e ".[dev]"
