#!/usr/bin/env bash
# llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) for the served-model tests
# (tests/integration/test_served_model.py). PyPI ships it as source: pip builds it with this
# machine's gcc and cmake (~5 min on 2 cores, multimodal parts left out) and keeps the wheel in its
# cache, so a later install on the same machine takes seconds. Not needed to use tuneforge.
#   bash scripts/install_server.sh [VENV_DIR]
set -euo pipefail
VENV=${1:-.venv}
if "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  exit 0
fi
echo "building llama-cpp-python[server] from source (a few minutes, once)"
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
CMAKE_ARGS=${CMAKE_ARGS:-"-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"} \
  "$VENV/bin/pip" install --quiet "llama-cpp-python[server]==0.3.36"
