#!/usr/bin/env bash
# Fresh machine → the app on the bundled model and the sample portrait.
# Creates .venv (once), installs MMFA Studio into it, and launches `mmfa-studio`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch is pinned in the same command so pip never swaps in a different build; a CUDA machine gets CUDA's.
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0" -e .
exec .venv/bin/mmfa-studio "$@"
