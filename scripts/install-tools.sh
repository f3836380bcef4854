#!/usr/bin/env sh
# Install the non-Python tools the test suite checks output with. CI setup must call this.
set -eu
cd "$(dirname "$0")/.."
# asl-validator (npm) for Step Functions definitions; tests find tools/asl-validator/node_modules/.bin.
npm ci --prefix tools/asl-validator --no-audit --no-fund
