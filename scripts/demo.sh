#!/usr/bin/env bash
# Set up (idempotent) and run the main demo on the churn example: validate it, simulate
# it locally, and compile it for every installed target into build/demo/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PC=.venv/bin/pipecast
EX=examples/churn/pipeline.yaml
echo; echo "== validate"; $PC validate "$EX"
echo; echo "== simulate (container steps run on this host)"; $PC run "$EX" --containers host --run-dir build/demo/runs
# Every installed target (the registry's list, so a new backend is in the demo by itself).
TARGETS=$(.venv/bin/python -c "from pipecast import registry; print(*(t for t in registry.available() if t != 'local'))")
for target in $TARGETS; do
  echo; echo "== compile --target $target"
  $PC compile "$EX" --target "$target" -o "build/demo/$target"
done
echo; echo "demo: compiled files are in build/demo/"
