#!/usr/bin/env bash
# Debian's Chromium for the report's browser test (tests/integration/test_report_browser.py).
# Installs it when missing and this is a root shell with apt-get; otherwise says how, and the test
# is skipped (CI sets TUNEFORGE_REQUIRE_BROWSER=1, which turns the skip into a failure).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the report browser test (once)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "note: chromium not found; the report browser test will be skipped (apt-get install chromium)"
fi
