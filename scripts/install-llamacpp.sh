#!/usr/bin/env bash
# Install llama-cpp-python into the given venv, building it once with AMX-safe flags.
#
# llama-cpp-python ships no wheel on PyPI, so pip compiles llama.cpp (3-8 minutes on 2 cores). On
# CPUs with AMX the default build crashes on the first decode (llama.cpp issue 20824), so we turn
# the AMX instructions off. pip's own wheel cache ignores CMAKE_ARGS, hence --no-cache-dir and a
# wheel cache of our own (outside the repo) so that a second install takes seconds.
set -euo pipefail

VENV_PY="${1:?usage: install-llamacpp.sh PATH/TO/venv/bin/python}"
VERSION="${LLAMACPP_VERSION:-0.3.36}"
CACHE="${CADRE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cadre/wheels}"
FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

mkdir -p "$CACHE"
wheel=$(ls "$CACHE"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $VERSION (AMX-safe flags; a few minutes, once) into $CACHE"
  tmp=$(mktemp -d)
  CMAKE_ARGS="-DCMAKE_C_FLAGS=\"$FLAGS\" -DCMAKE_CXX_FLAGS=\"$FLAGS\"" \
    "$VENV_PY" -m pip wheel --no-cache-dir --no-deps -w "$tmp" "llama-cpp-python==$VERSION"
  mv "$tmp"/llama_cpp_python-*.whl "$CACHE"/
  rm -rf "$tmp"
  wheel=$(ls "$CACHE"/llama_cpp_python-"$VERSION"-*.whl | head -n1)
else
  echo "reusing built wheel $wheel"
fi
"$VENV_PY" -m pip install --quiet "$wheel"
