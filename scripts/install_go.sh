#!/usr/bin/env bash
# Debian's Go for the Ollama template test (tests/unit/test_modelfile.py): it runs the exported
# Modelfile's TEMPLATE through Go's own text/template. Installs it when missing and this is a root
# shell with apt-get; otherwise says how, and the test is skipped (CI sets TUNEFORGE_REQUIRE_GO=1,
# which turns the skip into a failure).
set -euo pipefail
if command -v go >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's golang-go for the Ollama template test (once)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
else
  echo "note: go not found; the Ollama template test will be skipped (apt-get install golang-go)"
fi
