#!/usr/bin/env bash
# llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) for the served-model tests
# (tests/integration/test_served_model.py). PyPI ships it as source: this builds it with this
# machine's gcc and cmake (~5 min on 2 cores, multimodal parts left out) and keeps the wheel in
# $TUNEFORGE_CACHE/wheels/, in a folder named by the build flags, so a later install on the same
# machine takes seconds and a change of flags never reuses a wheel built with other ones.
# Not needed to use tuneforge.
#
# Portable build: GGML_NATIVE=OFF compiles for the x86-64 baseline llama.cpp then enables (SSE4.2,
# AVX, AVX2, FMA, F16C, BMI2) instead of `-march=native`. A native build on a VM whose CPU lists
# AVX-512 / AMX it does not really execute died with SIGILL on the first completion (issue 29), and
# a cached wheel would carry the build machine's instructions to the next machine.
#   bash scripts/install_server.sh [VENV_DIR]
set -euo pipefail
VENV=${1:-.venv}
VERSION=0.3.36
FLAGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"}
TAG=$(printf '%s %s' "$VERSION" "$FLAGS" | sha256sum | cut -c1-12)
WHEELS="${TUNEFORGE_CACHE:-$HOME/.cache/tuneforge}/wheels/llama-cpp-python-$VERSION-$TAG"

installed_tag=$("$VENV/bin/python" -c "import llama_cpp.server, pathlib, llama_cpp; \
p = pathlib.Path(llama_cpp.__file__).parent / 'tuneforge-build-flags.txt'; \
print(p.read_text().split()[0] if p.exists() else '')" 2>/dev/null || true)
if [ "$installed_tag" = "$TAG" ]; then
  exit 0
fi
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION from source with: $FLAGS (a few minutes, once)"
  mkdir -p "$WHEELS"
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} CMAKE_ARGS="$FLAGS" \
    "$VENV/bin/pip" wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$WHEELS.partial" "llama-cpp-python==$VERSION"
  mv "$WHEELS.partial"/llama_cpp_python-*.whl "$WHEELS"/ && rm -rf "$WHEELS.partial"
fi
"$VENV/bin/pip" install --quiet --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
"$VENV/bin/pip" install --quiet --find-links "$WHEELS" "llama-cpp-python[server]==$VERSION"
# The flags travel with the installed package, so a test can check what it runs on.
"$VENV/bin/python" - "$TAG" "$FLAGS" <<'PY'
import pathlib, sys, llama_cpp
(pathlib.Path(llama_cpp.__file__).parent / "tuneforge-build-flags.txt").write_text(" ".join(sys.argv[1:]) + "\n")
PY
echo "llama-cpp-python $VERSION installed from $WHEELS ($FLAGS)"
