#!/usr/bin/env bash
# Set up (idempotent) and run the main demo on the churn example: validate it, simulate
# it locally, and compile it for every installed target into build/demo/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PC=.venv/bin/pipecast
EX=examples/churn/pipeline.yaml
echo; echo "== validate"; $PC validate "$EX"
# The base dataset defaults to a remote URI (what the compiled pipelines read); the simulator
# reads the copy shipped with the example (a relative path is relative to the pipeline file).
echo; echo "== simulate"; $PC run "$EX" --param data_uri=data/customers.csv --run-dir build/demo/runs
# Every installed target (the registry's list, so a new backend is in the demo by itself).
TARGETS=$(.venv/bin/python -c "from pipecast import registry; print(*(t for t in registry.available() if t != 'local'))")
for target in $TARGETS; do
  echo; echo "== compile --target $target"
  $PC compile "$EX" --target "$target" -o "build/demo/$target"
done
echo; echo "demo: compiled files are in build/demo/"
