#!/usr/bin/env bash
# Non-Python tools the tests use: asl-validator (npm) and Chromium (Debian) for the
# browser tests. Each is skipped when already present; failures are reported, and the
# tests that need a missing tool fail with a message that names this script.
set -uo pipefail
cd "$(dirname "$0")/.."

if command -v npm >/dev/null 2>&1; then
  if [ ! -x tools/asl-validator/node_modules/.bin/asl-validator ] && [ -f tools/asl-validator/package.json ]; then
    (cd tools/asl-validator && npm ci --silent --no-audit --no-fund >/dev/null 2>&1 || npm install --silent --no-audit --no-fund >/dev/null) \
      && echo "tools: asl-validator installed" || echo "tools: npm install of asl-validator failed"
  fi
else
  echo "tools: npm not found; asl-validator checks will fail"
fi

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) \
    && echo "tools: chromium installed" || echo "tools: apt-get install chromium failed"
fi
exit 0
