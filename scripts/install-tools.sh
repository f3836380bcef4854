#!/usr/bin/env bash
# Non-Python tools the test suite checks output with (CI setup calls this):
#   - asl-validator (npm), for Step Functions definitions: tools/asl-validator/node_modules/.bin
#   - Chromium (Debian), for the browser tests of graphs and reports
#   - graphviz (Debian), to check generated DOT files
# Each is skipped when already present. A failure is reported; the tests that need the
# missing tool then fail with a message naming this script.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -x tools/asl-validator/node_modules/.bin/asl-validator ]; then
  if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tools/asl-validator --no-audit --no-fund --silent >/dev/null 2>&1 \
      && echo "tools: asl-validator installed" \
      || echo "tools: npm ci of asl-validator failed"
  else
    echo "tools: npm not found; asl-validator checks will fail"
  fi
fi

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1) \
      && echo "tools: installed ${missing[*]}" \
      || echo "tools: apt-get install ${missing[*]} failed"
  else
    echo "tools: missing ${missing[*]} (install them with your package manager)"
  fi
fi
exit 0
